#!/usr/bin/env bash
# Training throughput of the ResNet example's network (examples/resnet_cnn.hpp), staticnet vs
# PyTorch, on this machine, now.
#
#   benchmarks/compare_pytorch_resnet.sh [--threads "1 2"] [--batch 64] [--rounds 5] [--build DIR]
#
# For each thread count it runs bench_resnet and benchmarks/pytorch_resnet.py (contiguous and
# channels-last) alternately, --rounds times each, so all see the same machine state, and
# prints one JSON line with the medians and the ratio staticnet / PyTorch at its best (the
# faster format); the last line summarises. Needs python3-torch.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/common.sh
threads_list="1 2" batch=64 rounds=5 build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads_list="$2"; shift 2;;
    --batch) batch="$2"; shift 2;;
    --rounds) rounds="$2"; shift 2;;
    --build) build="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$build" --target bench_resnet -j "$(nproc)" >/dev/null


summary=""
for threads in $threads_list; do
  ours=() theirs=() theirs_cl=()
  for _ in $(seq "$rounds"); do
    ours+=("$("$build/benchmarks/bench_resnet" --threads "$threads" --batch "$batch" --steps 30 --reps 3 | field images_per_s)")
    theirs+=("$(OMP_NUM_THREADS="$threads" /usr/bin/python3 benchmarks/pytorch_resnet.py --threads "$threads" \
                --batch "$batch" --steps 30 --reps 3 | field images_per_s)")
    theirs_cl+=("$(OMP_NUM_THREADS="$threads" /usr/bin/python3 benchmarks/pytorch_resnet.py --threads "$threads" \
                --batch "$batch" --steps 30 --reps 3 --format channels_last | field images_per_s)")
  done
  s=$(printf '%s\n' "${ours[@]}" | median)
  # PyTorch at its best: the faster of its contiguous and channels-last formats.
  p=$( (printf '%s\n' "${theirs[@]}" | median; printf '%s\n' "${theirs_cl[@]}" | median) | sort -g | tail -1)
  ratio=$(awk -v a="$s" -v b="$p" 'BEGIN {printf "%.2f", a / b}')
  echo "{\"model\":\"resnet_cnn\",\"threads\":$threads,\"batch\":$batch,\"staticnet_ips\":$s,\"pytorch_ips\":$p,\"ratio\":$ratio,\"rounds\":$rounds,\"staticnet_all\":[$(IFS=,; echo "${ours[*]}")],\"pytorch_all\":[$(IFS=,; echo "${theirs[*]}")]}"
  summary="${summary:+$summary,}{\"threads\":$threads,\"staticnet_ips\":$s,\"pytorch_ips\":$p,\"ratio\":$ratio}"
done
echo "{\"machine\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)\",\"results\":[$summary]}"
