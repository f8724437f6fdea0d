#!/usr/bin/env bash
# The test suite: installs what is missing, builds the tests (Release) and runs them with CTest.
# Extra arguments go to ctest (e.g. -L unit, -R gemm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
cd build && ctest --output-on-failure -j "$jobs" "$@"
