#!/usr/bin/env bash
# The main job: installs what is missing, builds the example and trains the reference CNN on
# Fashion-MNIST with progress output. Arguments go to the program (e.g. --epochs 3, --json).
# Under MPI: NP=2 bash scripts/train.sh   (runs mpirun -np 2; see docs/distributed.md)
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what training needs: no clang, OpenCV or ONNX (those are scripts/test.sh's).
bash scripts/install-deps.sh --train
# Without the tests, so that CMake does not look for the test toolchain (Catch2, nlohmann
# json); scripts/test.sh turns them back on in the same build folder.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_TESTS=OFF >/dev/null
cmake --build build --target fashion_mnist -j "$(nproc)"
if [ -n "${NP:-}" ]; then
  extra=()
  [ "$(id -u)" = 0 ] && extra+=(--allow-run-as-root)
  # No binding: Open MPI would pin each rank to a single core when NP <= 2 (one thread each,
  # the rest of the machine idle) and to a socket above. Unbound, each rank takes its share
  # of the CPUs, nproc / NP threads; --threads N overrides (docs/distributed.md, "Threads
  # and binding").
  exec mpirun "${extra[@]}" --bind-to none --oversubscribe -np "$NP" build/examples/fashion_mnist "$@"
fi
exec build/examples/fashion_mnist "$@"
