#!/usr/bin/env bash
# Training throughput of the reference CNN, staticnet vs PyTorch, on this machine, now.
#
#   benchmarks/compare_pytorch.sh [--threads "1 2"] [--batch "32"] [--rounds 5] [--build DIR]
#
# For each (threads, batch) it runs bench_train and benchmarks/pytorch_reference.py (in both
# memory formats, contiguous and channels-last, the faster counting) alternately, --rounds times each, so both see the same machine state, and prints one JSON
# line per configuration with both medians and the ratio staticnet / PyTorch. The last line
# is one JSON object summarising every configuration. Installs python3-torch and
# libopenblas0-pthread (PyTorch's dense layers fall back to the slow reference BLAS without it).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/common.sh
threads_list="1 2" batch_list="32" rounds=5 build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads_list="$2"; shift 2;;
    --batch) batch_list="$2"; shift 2;;
    --rounds) rounds="$2"; shift 2;;
    --build) build="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done

ensure_pytorch
bash scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$build" --target bench_train -j "$(nproc)" >/dev/null


summary=""
for threads in $threads_list; do
  for batch in $batch_list; do
    ours=() theirs=() libs=""
    for _ in $(seq "$rounds"); do
      ours+=("$("$build/benchmarks/bench_train" --threads "$threads" --batch "$batch" --reps 3 --no-inference | field images_per_s)")
      # PyTorch at its best: both memory formats, the faster one counts for this round.
      best=0
      for format in contiguous channels_last; do
        line=$(OMP_NUM_THREADS="$threads" /usr/bin/python3 benchmarks/pytorch_reference.py --threads "$threads" --batch "$batch" --reps 5 --steps 60 --format "$format")
        best=$(awk -v a="$best" -v b="$(echo "$line" | field images_per_s)" 'BEGIN {print (b > a ? b : a)}')
      done
      theirs+=("$best")
      libs=$(echo "$line" | sed -n 's/.*"libraries": \(\[[^]]*\]\).*/\1/p')
    done
    s=$(printf '%s\n' "${ours[@]}" | median)
    p=$(printf '%s\n' "${theirs[@]}" | median)
    ratio=$(awk -v a="$s" -v b="$p" 'BEGIN {printf "%.2f", a / b}')
    result="{\"threads\":$threads,\"batch\":$batch,\"staticnet_ips\":$s,\"pytorch_ips\":$p,\"ratio\":$ratio,\"rounds\":$rounds,\"staticnet_all\":[$(IFS=,; echo "${ours[*]}")],\"pytorch_all\":[$(IFS=,; echo "${theirs[*]}")],\"pytorch_libraries\":$libs}"
    echo "$result"
    summary="${summary:+$summary,}{\"threads\":$threads,\"batch\":$batch,\"staticnet_ips\":$s,\"pytorch_ips\":$p,\"ratio\":$ratio}"
  done
done
echo "{\"machine\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)\",\"results\":[$summary]}"
