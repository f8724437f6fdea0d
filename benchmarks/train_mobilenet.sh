#!/usr/bin/env bash
# The MobileNetV2 example's full training run on Fashion-MNIST (issue 27's bar: test accuracy
# at least 0.91 within 30 minutes on the development machine), kept out of CI:
#
#   benchmarks/train_mobilenet.sh [--build DIR] [fashion_mnist_mobilenet options...]
#
# Builds fashion_mnist_mobilenet (Release) and trains it with its default settings (15 epochs
# of AdamW, batch 64, label smoothing 0.1, flips and crops, normalised input) or the options
# given, with --json; prints each epoch's line, the test result, the wall time and the
# machine, and saves them to DIR/fashion_mnist_mobilenet.jsonl. The smoke test in CI is
# zoo:mobilenet_trains.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
if [ "${1:-}" = "--build" ]; then build="$2"; shift 2; fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target fashion_mnist_mobilenet -j "$(nproc)" >/dev/null
start=$(date +%s)
"$build/examples/fashion_mnist_mobilenet" --json "$@" | tee "$build/fashion_mnist_mobilenet.jsonl"
echo "{\"wall_seconds\":$(( $(date +%s) - start )),\"machine\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)\"}" \
  | tee -a "$build/fashion_mnist_mobilenet.jsonl"
