#!/usr/bin/env bash
# The main job: installs what is missing, builds the example and trains the reference CNN on
# Fashion-MNIST with progress output. Arguments go to the program (e.g. --epochs 3, --json).
# Under MPI: NP=2 bash scripts/train.sh   (runs mpirun -np 2; see docs/distributed.md)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target fashion_mnist -j "$(nproc)"
if [ -n "${NP:-}" ]; then
  extra=()
  [ "$(id -u)" = 0 ] && extra+=(--allow-run-as-root)
  exec mpirun "${extra[@]}" --oversubscribe -np "$NP" build/examples/fashion_mnist "$@"
fi
exec build/examples/fashion_mnist "$@"
