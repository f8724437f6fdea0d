#!/usr/bin/env bash
# The consumer's view of staticnet, as a user gets it (cf. fmt's find-package-test and
# add-subdirectory-test). The CTest test package:consumer runs it.
#
#   bash tests/consumer/run.sh <staticnet source dir>
#
#   (a) install: configure staticnet (tests, examples, benchmarks off), install it, move the
#       installation elsewhere (it must be relocatable, as vcpkg and Conan move it), then build
#       tests/consumer against it with find_package and run it: staticnet::native at the
#       CPU's SIMD width, and the default-flags build warning that it is narrower; and an
#       image-folder reader linked with staticnet::image alone, where stb is installed
#   (b) add_subdirectory: build tests/consumer with staticnet as a subdirectory and run it
#   (c) pkg-config: the installed staticnet.pc gives flags that build a one-file program
#   (d) the CMake package's corners, configure only: a consumer without MPI, COMPONENTS mpi,
#       an xsimd of another major version (a stand-in package config for xsimd 13)
#   (e) the vcpkg port run with stand-ins for vcpkg (ports/check_ports.cmake), then
#       find_package in vcpkg's layout
#
# Environment: CXX (the compiler), STATICNET_CONSUMER_JOBS (build jobs, default 2),
# STATICNET_CONSUMER_KEEP=1 keeps the work directory. Exits non-zero on the first failure.
set -euo pipefail

if [[ $# -ne 1 || ! -f "$1/CMakeLists.txt" ]]; then
    echo "usage: $0 <staticnet source dir>" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
jobs=${STATICNET_CONSUMER_JOBS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/staticnet-consumer.XXXXXX")
if [[ ${STATICNET_CONSUMER_KEEP:-0} == 1 ]]; then
    echo "work directory: $work"
else
    trap 'rm -rf "$work"' EXIT
fi
start=$SECONDS
step_start=$SECONDS

step() {
    echo
    echo "== $* (at $((SECONDS - start)) s)"
    step_start=$SECONDS
}
fail() {
    echo "package:consumer: FAILED: $*" >&2
    exit 1
}
# Runs a command with its output in a log, shown only when it fails.
quiet() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        fail "'$*' failed (log: $log)"
    fi
}
cache_value() {  # cache_value <build dir> <variable>
    sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt"
}

consumer_flags=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)

# ---------------------------------------------------------------- (a) install + find_package
step "(a) install staticnet, move the installation, find_package from a consumer"
quiet "$work/configure.log" cmake -S "$src" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$work/configured-prefix" \
    -DSTATICNET_BUILD_TESTS=OFF -DSTATICNET_BUILD_EXAMPLES=OFF -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TOOLS=OFF
quiet "$work/install.log" cmake --install "$work/build" --prefix "$work/staged"
mv "$work/staged" "$work/prefix"
prefix=$work/prefix
for f in include/staticnet/staticnet.hpp include/staticnet/comm/mpi.hpp \
         share/cmake/staticnet/staticnetConfig.cmake share/cmake/staticnet/staticnetConfigVersion.cmake \
         share/cmake/staticnet/staticnetTargets.cmake share/pkgconfig/staticnet.pc; do
    [[ -f $prefix/$f ]] || fail "the installation lacks $f"
done
for d in lib lib64 bin; do
    [[ ! -e $prefix/$d ]] || fail "a header-only installation has $d/"
done
if grep -rlF -e "$work" -e "$src" "$prefix/share"; then
    fail "installed files name the build, staging or source directory (above): not relocatable"
fi
has_mpi=0
[[ -f $prefix/share/cmake/staticnet/staticnetMpiTargets.cmake ]] && has_mpi=1
echo "installed into $prefix (staticnet::mpi: $has_mpi)"

quiet "$work/consumer-package-configure.log" cmake -S "$src/tests/consumer" -B "$work/consumer-package" \
    -DCMAKE_PREFIX_PATH="$prefix" "${consumer_flags[@]}"
found=$(cache_value "$work/consumer-package" staticnet_DIR)
[[ $found == "$prefix/share/cmake/staticnet" ]] || fail "the consumer found staticnet in '$found', not in $prefix"
quiet "$work/consumer-package-build.log" cmake --build "$work/consumer-package" -j "$jobs"
"$work/consumer-package/consumer" 2>"$work/consumer-stderr.txt" || fail "the consumer built with find_package failed (above)"
# staticnet::native runs at the CPU's full SIMD width; the plain build (CMake's default
# flags: SSE2 on x86-64) says on stderr that it does not, when the CPU has more.
native_line=$("$work/consumer-package/consumer_native") || fail "consumer_native (find_package, staticnet::native) failed: $native_line"
echo "$native_line"
cpu_arch=$(sed -n 's/^consumer: SIMD .*, CPU //p' <<<"$native_line")
plain_arch=$(sed -n 's/^staticnet: compiled for \([^,]*\), but this CPU has.*/\1/p' "$work/consumer-stderr.txt")
if [[ -n $cpu_arch && $cpu_arch != sse2 && $(uname -m) == x86_64 ]]; then
    [[ -n $plain_arch ]] || fail "the consumer built with CMake's default flags runs narrower than this CPU ($cpu_arch) and did not say so on stderr"
    echo "the default-flags build warned: compiled for $plain_arch, CPU has $cpu_arch"
fi
if [[ $has_mpi == 1 ]]; then
    [[ -x $work/consumer-package/consumer_mpi ]] || fail "staticnet::mpi is installed but consumer_mpi was not built"
    "$work/consumer-package/consumer_mpi" || fail "consumer_mpi (find_package) failed"
fi
# staticnet::image where stb was found: image_folder.hpp links with that target alone.
if [[ -f $prefix/share/cmake/staticnet/staticnetImageTargets.cmake ]]; then
    [[ -x $work/consumer-package/consumer_image ]] || fail "staticnet::image is installed but consumer_image was not built"
    "$work/consumer-package/consumer_image" || fail "consumer_image (find_package, staticnet::image) failed"
elif pkg-config --exists stb 2>/dev/null; then
    fail "stb is installed (pkg-config stb) but the installation has no staticnet::image"
fi
echo "ok ($((SECONDS - step_start)) s)"

# ---------------------------------------------------------------- (b) add_subdirectory
step "(b) staticnet as a subdirectory of the consumer"
quiet "$work/consumer-subdir-configure.log" cmake -S "$src/tests/consumer" -B "$work/consumer-subdir" \
    -DSTATICNET_CONSUMER_MODE=subdirectory -DSTATICNET_SOURCE_DIR="$src" "${consumer_flags[@]}"
for option in STATICNET_BUILD_TESTS STATICNET_BUILD_EXAMPLES STATICNET_BUILD_BENCHMARKS STATICNET_BUILD_TOOLS; do
    [[ $(cache_value "$work/consumer-subdir" $option) == OFF ]] || fail "$option is not OFF by default in a subdirectory"
done
quiet "$work/consumer-subdir-build.log" cmake --build "$work/consumer-subdir" -j "$jobs"
"$work/consumer-subdir/consumer" || fail "the consumer built with add_subdirectory failed (above)"
if [[ -x $work/consumer-subdir/consumer_mpi ]]; then
    "$work/consumer-subdir/consumer_mpi" || fail "consumer_mpi (add_subdirectory) failed"
fi
if [[ -x $work/consumer-subdir/consumer_image ]]; then
    "$work/consumer-subdir/consumer_image" || fail "consumer_image (add_subdirectory) failed"
fi
echo "ok ($((SECONDS - step_start)) s)"

# ---------------------------------------------------------------- (c) pkg-config
step "(c) pkg-config"
command -v pkg-config >/dev/null || fail "pkg-config is not installed (Debian: apt-get install pkg-config)"
export PKG_CONFIG_PATH=$prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
version=$(pkg-config --modversion staticnet) || fail "pkg-config does not find staticnet in $prefix/share/pkgconfig"
cflags=$(pkg-config --cflags staticnet) || fail "pkg-config --cflags staticnet failed"
libs=$(pkg-config --libs staticnet) || fail "pkg-config --libs staticnet failed"
echo "staticnet $version: cflags: $cflags; libs: $libs"
[[ $(pkg-config --variable=includedir staticnet) -ef $prefix/include ]] || fail "pkg-config's includedir is not $prefix/include"
cat >"$work/pkg_config_program.cpp" <<'EOF'
#include <staticnet/staticnet.hpp>

#include <cstdio>
#include <exception>

int main() {
    try {  // reads through zlib, so the program needs -lz
        (void)staticnet::data::read_idx_header("/nonexistent/staticnet-pkg-config-check");
        return 1;
    } catch (const std::exception& e) {
        std::printf("pkg-config program: %s (as expected)\n", e.what());
    }
    staticnet::thread_pool pool{2};  // threads: -pthread
    std::printf("pkg-config program: %zu threads, %zu float lanes\n", pool.size(), staticnet::simd::float_lanes);
    return 0;
}
EOF
# shellcheck disable=SC2086  # the flags are words
quiet "$work/pkg-config-build.log" ${CXX:-c++} -O1 -o "$work/pkg_config_program" "$work/pkg_config_program.cpp" $cflags $libs
"$work/pkg_config_program" || fail "the program built with pkg-config's flags failed"
echo "ok ($((SECONDS - step_start)) s)"

# ---------------------------------------------------------------- (d) the CMake package's corners
step "(d) find_package corners: no MPI, COMPONENTS mpi, xsimd 13"
mkdir -p "$work/probe"
cat >"$work/probe/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(staticnet_probe LANGUAGES CXX)
find_package(staticnet CONFIG REQUIRED ${PROBE_ARGS})
if(TARGET staticnet::mpi)
  set(mpi_target TRUE)
else()
  set(mpi_target FALSE)
endif()
message(STATUS "probe: staticnet_HAS_MPI=${staticnet_HAS_MPI} staticnet::mpi=${mpi_target} xsimd=${xsimd_VERSION}")
EOF
probe_n=0
# probe <expect: ok|fail> <text the output must contain> <cmake arguments...>
probe() {
    local expect=$1 needle=$2
    shift 2
    probe_n=$((probe_n + 1))
    local dir=$work/probe-build-$probe_n
    local rc=0
    cmake -S "$work/probe" -B "$dir" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "$@" >"$dir.log" 2>&1 || rc=$?
    if [[ $expect == ok && $rc -ne 0 ]] || [[ $expect == fail && $rc -eq 0 ]] || ! grep -qF -- "$needle" "$dir.log"; then
        tail -n 30 "$dir.log" >&2
        fail "probe $probe_n ($*): expected to $expect with '$needle' in its output"
    fi
    echo "probe $probe_n: $expect, '$needle'"
}
probe ok "staticnet::mpi=FALSE" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_DISABLE_FIND_PACKAGE_MPI=TRUE
probe fail "component mpi" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_DISABLE_FIND_PACKAGE_MPI=TRUE "-DPROBE_ARGS=COMPONENTS;mpi"
probe fail "no component nonsense" -DCMAKE_PREFIX_PATH="$prefix" "-DPROBE_ARGS=COMPONENTS;nonsense"
if [[ $has_mpi == 1 ]]; then
    probe ok "staticnet::mpi=TRUE" -DCMAKE_PREFIX_PATH="$prefix" "-DPROBE_ARGS=COMPONENTS;mpi"
fi
# xsimd's package version file, and the one Conan generates, accept only the major version
# asked for: staticnet must take xsimd 9..13 as well as 8. The stand-in is a package config
# for "xsimd 13.0.0" with an empty include directory (configure only, nothing is compiled).
real_xsimd=$(cache_value "$work/build" xsimd_DIR)
ignore="$real_xsimd;$(readlink -f "$real_xsimd")"
if [[ $real_xsimd == /usr/* ]]; then ignore+=";${real_xsimd#/usr}"; else ignore+=";/usr$real_xsimd"; fi
xsimd13=$work/xsimd13/share/cmake/xsimd
mkdir -p "$xsimd13"
cat >"$xsimd13/xsimdConfig.cmake" <<EOF
if(NOT TARGET xsimd)
  add_library(xsimd INTERFACE IMPORTED)
  get_filename_component(_xsimd_include "\${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
  set_target_properties(xsimd PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${_xsimd_include}")
endif()
EOF
mkdir -p "$work/xsimd13/include"
cat >"$work/xsimd13.cmake" <<EOF
include(CMakePackageConfigHelpers)
write_basic_package_version_file("$xsimd13/xsimdConfigVersion.cmake" VERSION 13.0.0 COMPATIBILITY SameMajorVersion)
EOF
quiet "$work/xsimd13.log" cmake -P "$work/xsimd13.cmake"
probe ok "xsimd=13.0.0" -DCMAKE_PREFIX_PATH="$prefix" -Dxsimd_DIR="$xsimd13" "-DCMAKE_IGNORE_PATH=$ignore"
quiet "$work/configure-xsimd13.log" cmake -S "$src" -B "$work/build-xsimd13" -Dxsimd_DIR="$xsimd13" "-DCMAKE_IGNORE_PATH=$ignore" \
    -DSTATICNET_BUILD_TESTS=OFF -DSTATICNET_BUILD_EXAMPLES=OFF -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TOOLS=OFF -DSTATICNET_MPI=OFF
[[ $(cache_value "$work/build-xsimd13" xsimd_DIR) == "$xsimd13" ]] || fail "staticnet's own configure did not take the xsimd 13 stand-in"
echo "staticnet configures with the xsimd 13 stand-in"
echo "ok ($((SECONDS - step_start)) s)"

# ---------------------------------------------------------------- (e) the vcpkg port, Conan's version
step "(e) vcpkg port run with stand-ins, find_package in vcpkg's layout; recipe versions"
features=""
[[ $has_mpi == 1 ]] && features=mpi
quiet "$work/check-ports.log" cmake -DSOURCE_DIR="$src" -DWORK_DIR="$work/vcpkg" -DFEATURES="$features" \
    -P "$src/ports/check_ports.cmake"
grep -E "^-- (ok|FAIL)|WARNING|vcpkg would" "$work/check-ports.log" | sed 's/^-- //'
if [[ $has_mpi == 1 ]]; then
    probe ok "staticnet::mpi=TRUE" -DCMAKE_PREFIX_PATH="$work/vcpkg/packages/staticnet" "-DPROBE_ARGS=COMPONENTS;mpi"
else
    probe ok "staticnet::mpi=FALSE" -DCMAKE_PREFIX_PATH="$work/vcpkg/packages/staticnet"
fi
found=$(cache_value "$work/probe-build-$probe_n" staticnet_DIR)
[[ $found == "$work/vcpkg/packages/staticnet/share/staticnet" ]] || fail "the probe found staticnet in '$found', not in vcpkg's layout"
echo "ok ($((SECONDS - step_start)) s)"

echo
echo "package:consumer: all checks passed in $((SECONDS - start)) s"
