#!/usr/bin/env bash
# Thread counts far above the CPUs: one epoch of the reference job
# (`fashion_mnist --epochs 1 --json --threads T`) with each T, alternately, `--rounds` times.
# Prints each run's epoch seconds, wall seconds and CPU seconds (user + system; the whole
# process: data, threads, training, test), the medians, and last one JSON object with
# `ratio`: the median wall time of the last T over that of the first (the bar is at
# most 2 with "2 64" on 2 cores), and `cpu_ratio`, the same for CPU time, which other load on
# the machine changes less (spinning threads would show there).
#
#   benchmarks/thread_counts.sh [--threads "2 64"] [--rounds 2] [--batch-size 32] [--limit N]
#                               [--program build/examples/fashion_mnist]
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/common.sh
threads_list="2 64" rounds=2 batch=32 limit=0 program=build/examples/fashion_mnist
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads_list="$2"; shift 2;;
    --rounds) rounds="$2"; shift 2;;
    --batch-size) batch="$2"; shift 2;;
    --limit) limit="$2"; shift 2;;
    --program) program="$2"; shift 2;;
    *) echo "thread_counts.sh: unknown option $1" >&2; exit 2;;
  esac
done
if [ ! -x "$program" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build --target fashion_mnist -j "$(nproc)" >/dev/null
fi
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs for this process" >&2
declare -A walls=() epochs=() cpus=()
out_file=$(mktemp)
trap 'rm -f "$out_file"' EXIT
for r in $(seq "$rounds"); do
  for t in $threads_list; do
    # The thread cap's warning goes to stderr, where it belongs; only the JSON is read.
    TIMEFORMAT='%R %U %S'
    times=$( { time "$program" --epochs 1 --json --threads "$t" --batch-size "$batch" --limit "$limit" \
               >"$out_file"; } 2>&1 >/dev/null | tail -1)
    e=$(head -1 "$out_file" | field seconds)
    read -r wall user sys <<<"$times"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
    echo "round $r, --threads $t: epoch ${e} s, wall ${wall} s, CPU ${cpu} s" >&2
    walls[$t]+="$wall "
    epochs[$t]+="$e "
    cpus[$t]+="$cpu "
  done
done
json="{\"rounds\":$rounds,\"batch_size\":$batch"
first="" last="" first_cpu="" last_cpu=""
for t in $threads_list; do
  w=$(tr ' ' '\n' <<<"${walls[$t]}" | grep . | median)
  e=$(tr ' ' '\n' <<<"${epochs[$t]}" | grep . | median)
  c=$(tr ' ' '\n' <<<"${cpus[$t]}" | grep . | median)
  echo "--threads $t: median epoch ${e} s, median wall ${w} s, median CPU ${c} s"
  json+=",\"threads_${t}_wall_s\":$w,\"threads_${t}_epoch_s\":$e,\"threads_${t}_cpu_s\":$c"
  [ -n "$first" ] || { first=$w; first_cpu=$c; }
  last=$w last_cpu=$c
done
echo "${json},\"ratio\":$(awk -v a="$last" -v b="$first" 'BEGIN {printf "%.3f", a / b}'),\"cpu_ratio\":$(awk -v a="$last_cpu" -v b="$first_cpu" 'BEGIN {printf "%.3f", a / b}')}"
