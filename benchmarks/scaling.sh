#!/usr/bin/env bash
# Data-parallel scaling of the reference CNN on this machine, with bench_train under mpirun.
#
#   benchmarks/scaling.sh [--ranks "1 2"] [--batch 32] [--build DIR] [--no-netns]
#
# Prints JSON lines: weak scaling (batch per rank fixed) and strong scaling (global batch
# fixed) for each rank count, with both gradient synchronisation modes, the time per step in
# synchronisation vs compute, and the weak-scaling efficiency against 1 rank. Then, as root
# and where network namespaces can be made, 2 ranks on two "hosts" (namespaces joined by a
# veth pair shaped to 10 Gbit/s with 100 us delay, Open MPI over TCP).
set -euo pipefail
cd "$(dirname "$0")/.."
ranks_list="1 2" batch=32 build=build netns=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks_list="$2"; shift 2;;
    --batch) batch="$2"; shift 2;;
    --build) build="$2"; shift 2;;
    --no-netns) netns=0; shift;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
bench="$build/benchmarks/bench_train"
[ -x "$bench" ] || { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=ON >/dev/null; cmake --build "$build" --target bench_train -j "$(nproc)" >/dev/null; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -1; }
common=(--threads 1 --batch "$batch" --reps 5 --steps 40 --no-inference)

# The 1-rank baseline: the best of three runs (a slow outlier would flatter the efficiency).
base=0
for _ in 1 2 3; do
  ips=$(OMPI_MCA_plm=isolated mpirun -np 1 --bind-to core "$bench" "${common[@]}" | field images_per_s)
  base=$(awk -v a="$ips" -v b="$base" 'BEGIN {print (a > b ? a : b)}')
done
echo "{\"baseline_1_rank_images_per_s\":$base}"
for sync in after_backward overlapped; do
  for n in $ranks_list; do
    line=$(OMPI_MCA_plm=isolated mpirun -np "$n" --bind-to core "$bench" "${common[@]}" --sync "$sync")
    ips=$(echo "$line" | field images_per_s)
    eff=$(awk -v a="$ips" -v b="$base" -v n="$n" 'BEGIN {printf "%.3f", a / (b * n)}')
    echo "${line%\}},\"weak_efficiency\":$eff}"
  done
done
for n in $ranks_list; do
  OMPI_MCA_plm=isolated mpirun -np "$n" --bind-to core "$bench" --threads 1 --batch $((batch * 2)) --strong --reps 5 --steps 40 --no-inference
done
if [ $netns = 1 ]; then
  for sync in after_backward overlapped; do
    out=$(bash tests/multihost/run.sh --shape "$bench" "${common[@]}" --sync "$sync" 2>/tmp/scaling-netns.$$ | grep '"bench"' || true)
    shaping=$(sed -n 's/^shaping: //p' /tmp/scaling-netns.$$); rm -f /tmp/scaling-netns.$$
    if [ -n "$out" ]; then
      ips=$(echo "$out" | field images_per_s)
      eff=$(awk -v a="$ips" -v b="$base" 'BEGIN {printf "%.3f", a / (b * 2)}')
      echo "${out%\}},\"network\":\"2 namespaces, veth, TCP, $shaping\",\"weak_efficiency\":$eff}"
    else
      echo '{"network":"2 namespaces","skipped":"network namespaces or tc netem not available"}'
    fi
  done
fi
