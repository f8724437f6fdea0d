#!/usr/bin/env bash
# The test suite: installs what is missing, builds the tests (Release) and runs them with CTest.
# Extra arguments go to ctest (e.g. -L unit, -R gemm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
# Benchmarks are not tests: leave them out of this build (they build with their scripts).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build -j "$jobs"
cd build && ctest --output-on-failure -j "$jobs" "$@"
