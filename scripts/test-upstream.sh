#!/usr/bin/env bash
# Every header, the unit tests whose behaviour the libraries decide (SIMD kernels, layers,
# training, the xtensor API: `upstream_programs` in tests/CMakeLists.txt) and the
# find_package consumer test built a second time, against the current xtensor/xsimd/xtl
# releases instead of Debian 12's (xtensor 0.24, xsimd 8, xtl 0.7): what vcpkg and Conan
# users get. scripts/test.sh runs it.
#
#   bash scripts/test-upstream.sh [PREFIX]
#
# PREFIX holds the releases installed (include/ and their CMake package files); default:
# ../shared/upstream/prefix beside the project (present on the development machines and in
# CI, see ../shared/upstream/README.md). Where it is missing (a user's machine) this script
# says so and exits 0 without claiming a pass. To test other releases, install them into a
# prefix (cmake --install of each) and name it. JOBS=N sets the build jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-../shared/upstream/prefix}
jobs=${JOBS:-$(nproc)}

if [[ ! -f $prefix/include/xsimd/xsimd.hpp || ! -f $prefix/include/xtl/xtl_config.hpp ]]; then
  echo "test-upstream: no xtensor/xsimd/xtl releases in '$prefix': nothing built or tested against them (not a pass)"
  exit 0
fi
prefix=$(cd "$prefix" && pwd)
version() {  # version <header> <macro prefix>: "MAJOR.MINOR.PATCH" from a library's config header
  local h=$1 p=$2
  printf '%s.%s.%s' "$(sed -n "s/^#define ${p}_VERSION_MAJOR \([0-9]*\).*/\1/p" "$h")" \
    "$(sed -n "s/^#define ${p}_VERSION_MINOR \([0-9]*\).*/\1/p" "$h")" \
    "$(sed -n "s/^#define ${p}_VERSION_PATCH \([0-9]*\).*/\1/p" "$h")"
}
xsimd_header=$prefix/include/xsimd/config/xsimd_config.hpp
xtensor_header=$prefix/include/xtensor/core/xtensor_config.hpp  # xtensor >= 0.26
[[ -f $xtensor_header ]] || xtensor_header=$prefix/include/xtensor/xtensor_config.hpp
echo "== unit tests against xsimd $(version "$xsimd_header" XSIMD), xtensor $(version "$xtensor_header" XTENSOR)," \
     "xtl $(version "$prefix/include/xtl/xtl_config.hpp" XTL) from $prefix"

bash scripts/install-deps.sh
start=$SECONDS
cmake -S . -B build-upstream -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TOOLS=OFF >/dev/null
# A build that quietly found Debian's packages would prove nothing.
for package in xsimd xtensor xtl; do
  dir=$(sed -n "s/^${package}_DIR:[A-Z]*=//p" build-upstream/CMakeCache.txt)
  if [[ $dir != "$prefix"/* ]]; then
    echo "test-upstream: CMake found $package in '$dir', not in $prefix" >&2
    exit 1
  fi
done
# The unit tests, and every public header compiled (staticnet_headers_together, one translation
# unit): a header that only the examples include is still built against the new releases.
# (Each header on its own, 70 translation units and most of this step's time, is the Debian
# pass's check of what each header includes; the releases change no include.)
# Every header compiled together, and the unit programs whose behaviour the releases decide
# (tests/CMakeLists.txt names them: upstream_programs).
cmake --build build-upstream -j "$jobs" --target upstream_tests staticnet_headers_together
pattern="^($(tr ';' '|' < build-upstream/upstream_programs.txt)):"
(cd build-upstream && ctest --output-on-failure --no-tests=error -j "$jobs" -L unit -R "$pattern")
echo "test-upstream: unit tests built and passed in $((SECONDS - start)) s"

echo "== the find_package consumer against the same releases"
start=$SECONDS
CMAKE_PREFIX_PATH="$prefix" bash tests/consumer/run.sh "$PWD"
echo "test-upstream: consumer test passed in $((SECONDS - start)) s"
