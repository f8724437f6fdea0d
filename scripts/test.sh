#!/usr/bin/env bash
# The test suite: installs what is missing, then
#  1. builds everything with the default compiler (GCC on Debian, Release) and runs every
#     test with CTest,
#  2. builds the unit tests and the example with clang 19 and libc++ and runs the tests
#     (users build with clang and its standard library too),
#  3. builds the unit tests and the consumer test against the current xtensor/xsimd releases
#     (scripts/test-upstream.sh; vcpkg and Conan users get those, Debian has older ones),
#  4. cross-builds the SIMD kernels' tests for ARM64 and runs them under qemu
#     (scripts/test-arm64.sh),
#  5. runs a named subset of the unit tests under AddressSanitizer + UBSan
#     (scripts/test-sanitizers.sh --ci: kernels, layers, data readers, thread pool).
# Extra arguments go to the first CTest run (e.g. -L unit, -R gemm), and then only that
# run is made: steps 2 to 5 belong to the whole suite. Each step prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
step=$SECONDS
# Benchmarks are not tests: leave them out of this build (they build with their scripts).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TESTS=ON >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" "$@") || { bash scripts/skip-reasons.sh build; exit 1; }
bash scripts/skip-reasons.sh build  # CTest hides a skipped test's output: say why here
[ $# -eq 0 ] || exit 0

echo "== GCC build and every test: $((SECONDS - step)) s"

step=$SECONDS
echo "== unit tests and the example built with clang 19 and libc++"
# (The headers-on-their-own check and the programs that only the other labels run were
# built by the first pass; here what `-L unit` runs, and the example, whose command line
# reads numbers with the standard library's own parsing. Boost.MPI is built against
# libstdc++, so this build has no MPI.)
CXX=clang++-19 cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-stdlib=libc++ \
  -DSTATICNET_MPI=OFF -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TOOLS=OFF -DSTATICNET_CHECK_HEADERS=OFF >/dev/null
cmake --build build-clang -j "$jobs" --target unit_tests fashion_mnist
(cd build-clang && ctest --output-on-failure -j "$jobs" -L unit)
(cd build-clang && ctest --output-on-failure --no-tests=error -j "$jobs" -L tool -R '^fashion_mnist:')
echo "== clang 19 + libc++: $((SECONDS - step)) s"

step=$SECONDS
bash scripts/test-upstream.sh
echo "== current xtensor/xsimd releases: $((SECONDS - step)) s"

step=$SECONDS
echo "== ARM64 (cross-built, under qemu-aarch64)"
bash scripts/test-arm64.sh
echo "== ARM64: $((SECONDS - step)) s"

step=$SECONDS
echo "== unit tests under AddressSanitizer + UBSan (CI subset)"
bash scripts/test-sanitizers.sh --ci
echo "== sanitizers: $((SECONDS - step)) s"
