#!/usr/bin/env bash
# One training epoch of the reference job as a user sees it, staticnet vs PyTorch at its best.
#
#   benchmarks/compare_pytorch_epoch.sh [--threads "1 2"] [--rounds 3] [--build DIR]
#
# staticnet: `fashion_mnist --epochs 1 --json --threads T` (the README's main job: fit with
# the validation pass; its "seconds" is the epoch, data loading not counted).
# PyTorch: benchmarks/pytorch_epoch.py (the same network, Adam, batch 32, shuffled epoch over
# in-memory tensors plus the test pass), in contiguous and channels-last format; the faster
# format's median counts.
# Per thread count the programs run alternately, --rounds times each, so both see the same
# machine state. One JSON line per thread count, then, as the last line, one JSON object
# with every configuration. "epoch_ratio" = PyTorch seconds / staticnet seconds (above 1:
# staticnet is faster). Installs python3-torch and libopenblas0-pthread if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/common.sh
threads_list="1 2" rounds=3 build=build-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads_list="$2"; shift 2;;
    --rounds) rounds="$2"; shift 2;;
    --build) build="$2"; shift 2;;
    *) echo "compare_pytorch_epoch.sh: unknown option $1" >&2; exit 2;;
  esac
done

ensure_pytorch
bash scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$build" --target fashion_mnist -j "$(nproc)" >/dev/null

# The value of "seconds" inside the object named $1 of pytorch_epoch.py's line.
format_seconds() { sed -n "s/.*\"$1\": *{\"seconds\": *\([0-9.]*\).*/\1/p"; }
list() { local IFS=,; echo "$*"; }

summary=""
for threads in $threads_list; do
  ours=() contiguous=() channels_last=() accuracy="" libs=""
  for _ in $(seq "$rounds"); do
    out=$("$build/examples/fashion_mnist" --epochs 1 --json --threads "$threads")
    ours+=("$(echo "$out" | head -1 | field seconds)")
    accuracy=$(echo "$out" | head -1 | field val_accuracy)
    line=$(OMP_NUM_THREADS="$threads" /usr/bin/python3 benchmarks/pytorch_epoch.py --threads "$threads")
    contiguous+=("$(echo "$line" | format_seconds contiguous)")
    channels_last+=("$(echo "$line" | format_seconds channels_last)")
    libs=$(echo "$line" | sed -n 's/.*"libraries": \(\[[^]]*\]\).*/\1/p')
  done
  s=$(printf '%s\n' "${ours[@]}" | median)
  pc=$(printf '%s\n' "${contiguous[@]}" | median)
  pl=$(printf '%s\n' "${channels_last[@]}" | median)
  read -r p best < <(awk -v c="$pc" -v l="$pl" 'BEGIN {if (l < c) print l, "channels_last"; else print c, "contiguous"}')
  ratio=$(awk -v a="$p" -v b="$s" 'BEGIN {printf "%.2f", a / b}')
  echo "{\"threads\":$threads,\"staticnet_seconds\":$s,\"pytorch_seconds\":$p,\"pytorch_format\":\"$best\",\"epoch_ratio\":$ratio,\"rounds\":$rounds,\"staticnet_all\":[$(list "${ours[@]}")],\"pytorch_contiguous_all\":[$(list "${contiguous[@]}")],\"pytorch_channels_last_all\":[$(list "${channels_last[@]}")],\"staticnet_val_accuracy\":$accuracy,\"pytorch_libraries\":$libs}"
  summary="${summary:+$summary,}{\"threads\":$threads,\"staticnet_seconds\":$s,\"pytorch_seconds\":$p,\"pytorch_format\":\"$best\",\"epoch_ratio\":$ratio}"
done
echo "{\"bench\":\"epoch\",\"machine\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)\",\"rounds\":$rounds,\"results\":[$summary]}"
