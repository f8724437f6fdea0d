#!/usr/bin/env bash
# The default thread count under mpirun against explicit ones: one epoch of the reference job
# (`fashion_mnist --epochs 1 --json`) under `mpirun -np NP`, with the default threads and with
# each `--threads T`, alternately, `--rounds` times. Prints the median seconds per epoch of each
# and, last, one JSON object with `default_over_best` (the default's median / the best
# explicit median; the goal is at most 1.05).
#
#   benchmarks/compare_thread_defaults.sh [--np 2] [--threads "1 2"] [--rounds 3] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/common.sh
np=2 threads_list="1 2" rounds=3 build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --np) np="$2"; shift 2;;
    --threads) threads_list="$2"; shift 2;;
    --rounds) rounds="$2"; shift 2;;
    --build) build="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
program="$build/examples/fashion_mnist"
[ -x "$program" ] || { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null; cmake --build "$build" --target fashion_mnist -j "$(nproc)" >/dev/null; }
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-run-as-root)
declare -A times=()
configs=(default)
for t in $threads_list; do configs+=("$t"); done
for r in $(seq "$rounds"); do
  for c in "${configs[@]}"; do
    args=()
    [ "$c" = default ] || args=(--threads "$c")
    s=$(mpirun "${extra[@]}" -np "$np" "$program" --epochs 1 --json "${args[@]}" | head -1 | field seconds)
    echo "round $r, ${c} threads: ${s} s per epoch" >&2
    times[$c]+="$s "
  done
done
json="{\"np\":$np,\"rounds\":$rounds"
best=""
for c in "${configs[@]}"; do
  m=$(tr ' ' '\n' <<<"${times[$c]}" | grep . | median)
  echo "${c} threads: median ${m} s per epoch (${times[$c]% })"
  json+=",\"${c}_s\":$m"
  if [ "$c" != default ]; then
    best=$(awk -v a="$m" -v b="$best" 'BEGIN {print (b == "" || a < b) ? a : b}')
  fi
done
default=$(tr ' ' '\n' <<<"${times[default]}" | grep . | median)
ratio=$(awk -v d="$default" -v b="$best" 'BEGIN {printf "%.3f", d / b}')
echo "${json},\"best_explicit_s\":$best,\"default_over_best\":$ratio}"
