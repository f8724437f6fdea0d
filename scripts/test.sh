#!/usr/bin/env bash
# The test suite: installs what is missing, then
#  1. builds everything with the default compiler (GCC on Debian, Release) and runs every
#     test with CTest,
#  2. builds the unit tests with clang 19 and runs them (users build with clang too),
#  3. runs a named subset of the unit tests under AddressSanitizer + UBSan
#     (scripts/test-sanitizers.sh --ci: kernels, layers, data readers, thread pool).
# Extra arguments go to the first CTest run (e.g. -L unit, -R gemm), and then only that
# run is made: steps 2 and 3 belong to the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
# Benchmarks are not tests: leave them out of this build (they build with their scripts).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TESTS=ON >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" "$@") || { bash scripts/skip-reasons.sh build; exit 1; }
bash scripts/skip-reasons.sh build  # CTest hides a skipped test's output: say why here
[ $# -eq 0 ] || exit 0

echo "== unit tests built with clang 19"
# (The headers-on-their-own check and the programs that only the other labels run were
# built by the first pass; here only what `-L unit` runs.)
CXX=clang++-19 cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=OFF \
  -DSTATICNET_BUILD_TOOLS=OFF -DSTATICNET_CHECK_HEADERS=OFF >/dev/null
cmake --build build-clang -j "$jobs" --target unit_tests
(cd build-clang && ctest --output-on-failure -j "$jobs" -L unit)

echo "== unit tests under AddressSanitizer + UBSan (CI subset)"
bash scripts/test-sanitizers.sh --ci
