#!/usr/bin/env bash
# The ResNet example's full training run (the README's ResNet row), kept out of CI:
#
#   benchmarks/train_resnet.sh [--build DIR] [fashion_mnist_resnet options...]
#
# Builds fashion_mnist_resnet (Release) and trains it with its default settings (or the
# options given) with --json; prints each epoch's line, the test result and the wall time,
# and saves them to DIR/fashion_mnist_resnet.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
if [ "${1:-}" = "--build" ]; then build="$2"; shift 2; fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target fashion_mnist_resnet -j "$(nproc)" >/dev/null
start=$(date +%s)
"$build/examples/fashion_mnist_resnet" --json "$@" | tee "$build/fashion_mnist_resnet.jsonl"
echo "{\"wall_seconds\":$(( $(date +%s) - start )),\"machine\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)\"}" \
  | tee -a "$build/fashion_mnist_resnet.jsonl"
