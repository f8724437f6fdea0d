#!/usr/bin/env bash
# Measures what benchmarks/scaling_model.py needs on this machine, then runs the model: the
# allreduce sweep (bench_allreduce) at 1-4 ranks, bench_train at 1 and 2 ranks (scaling.sh
# --no-netns: weak and strong, both sync modes) and in deterministic mode.
#
#   benchmarks/scaling_projection.sh [--build DIR] [--out FILE] [--runs N]
#
# With --runs N everything is measured N times, one run after the other; the model takes the
# fastest of the runs for each configuration (on a shared machine other jobs only slow a run).
#
# Ranks beyond the cores (`nproc`) are run unbound and their lines marked "oversubscribed":
# their times include waiting for a core, which the model does not fit.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build out=benchmarks/scaling_measured.jsonl runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2;;
    --out) out="$2"; shift 2;;
    --runs) runs="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
bench="$build/benchmarks"
for p in bench_allreduce bench_train; do
  [ -x "$bench/$p" ] || { echo "build $bench/$p first (-DSTATICNET_BUILD_BENCHMARKS=ON, MPI found)" >&2; exit 1; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cores=$(nproc)
# The load before each part: on a shared machine, other jobs show up here.
load() { echo "{\"part\":\"$1\",\"loadavg\":\"$(cut -d' ' -f1-4 /proc/loadavg)\",\"date\":\"$(date -u +%FT%TZ)\"}"; }
for run in $(seq "$runs"); do
  load "allreduce, run $run"
  for n in 1 2 3 4; do
    if [ "$n" -le "$cores" ]; then
      OMPI_MCA_plm=isolated mpirun -np "$n" --bind-to core "$bench/bench_allreduce"
    else
      OMPI_MCA_plm=isolated mpirun -np "$n" --bind-to none "$bench/bench_allreduce" --reps 50 |
        sed "s/}\$/,\"oversubscribed\":true,\"cores\":$cores}/"
    fi
  done
  load "train, run $run"
  bash benchmarks/scaling.sh --no-netns --build "$build"
  load "deterministic, run $run"
  for n in 1 2; do
    OMPI_MCA_plm=isolated mpirun -np "$n" --bind-to core "$bench/bench_train" --threads 1 --batch 32 --reps 5 --steps 40 \
      --no-inference --deterministic
  done
  load "end, run $run"
done | tee "$out"
/usr/bin/python3 benchmarks/scaling_model.py "$out"
