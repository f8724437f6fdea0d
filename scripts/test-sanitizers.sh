#!/usr/bin/env bash
# The AddressSanitizer + UndefinedBehaviorSanitizer configuration: builds the single-process
# test programs with -fsanitize=address,undefined (any report aborts the test) and runs them.
# (The MPI tests are left out: Open MPI itself is not clean under LeakSanitizer.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTATICNET_SANITIZE=address,undefined \
  -DSTATICNET_BUILD_EXAMPLES=OFF -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TOOLS=OFF -DSTATICNET_MPI=OFF >/dev/null
cmake --build build-asan -j "$(nproc)"
cd build-asan && ctest --output-on-failure -j "$(nproc)" -L unit
