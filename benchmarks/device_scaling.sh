#!/usr/bin/env bash
# Multi-rank weak scaling of the reference CNN on a many-core machine, staticnet against
# PyTorch DDP in the same run: `mpirun -np P bench_train` (one thread per rank, batch 32 per
# rank, both gradient-synchronisation modes) and benchmarks/pytorch_ddp_scaling.py (gloo, one
# thread per process, contiguous and channels-last), for P = 1, 2, 4, 8, 16, plus
# bench_allreduce's sweep at the same rank counts. Prints JSON lines; the last one compares.
#
#   bash benchmarks/device_scaling.sh BUNDLE [--procs "1 2 4 8 16"] [--steps N]
#
# BUNDLE is the folder of the relocatable Open MPI bundle (../shared/device/make_mpi_bundle.sh,
# unpacked), whose bin/ holds bench_train and bench_allreduce built for the target CPU
# (e.g. -march=x86-64-v4). Written for the 16-core device machine, which has no Boost.MPI:
# carry this script with pytorch_ddp_scaling.py and pytorch_reference.py (the network) beside
# it. benchmarks/LOG.md ("Measured on 16 cores") says how the first numbers were made.
set -euo pipefail
bundle=${1:?usage: device_scaling.sh BUNDLE [--procs LIST] [--steps N]}
shift
procs="1 2 4 8 16"
steps=60
while [[ $# -gt 0 ]]; do
  case $1 in
    --procs) procs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "device_scaling.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
echo "{\"machine\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\",\"cpus\":$(nproc),\"avx512bw\":$(grep -qw avx512bw /proc/cpuinfo && echo true || echo false)}"
(
  # shellcheck disable=SC1091
  . "$bundle/env.sh"
  for p in $procs; do
    for sync in after overlapped; do
      mpirun --bind-to core -np "$p" "$bundle/bin/bench_train" --threads 1 --batch 32 --steps "$steps" --reps 5 \
        --sync "$sync" --no-inference
    done
  done
  for p in $procs; do
    [[ $p == 1 ]] && continue
    timeout 60 mpirun --bind-to core -np "$p" "$bundle/bin/bench_allreduce" 2>/dev/null | grep '"elements":1[01][0-9][0-9][0-9][0-9],' || true
  done
) | tee /tmp/staticnet_scaling.jsonl
"${PYTHON:-python3}" "$here/pytorch_ddp_scaling.py" --procs "$(tr ' ' ',' <<<"$procs")" --steps "$steps" | tee /tmp/pytorch_scaling.jsonl
"${PYTHON:-python3}" - <<'EOF'
import json
s = [json.loads(l) for l in open("/tmp/staticnet_scaling.jsonl") if '"bench":"train"' in l]
t = [json.loads(l) for l in open("/tmp/pytorch_scaling.jsonl")]
rows = []
for p in sorted({r["ranks"] for r in s}):
    ours = max(r["images_per_s"] for r in s if r["ranks"] == p)
    theirs = max(r["images_per_s"] for r in t if r["procs"] == p)
    rows.append({"ranks": p, "staticnet": ours, "pytorch_best": theirs, "ratio": round(ours / theirs, 2)})
base_s = rows[0]["staticnet"]; base_t = rows[0]["pytorch_best"]
for r in rows:
    r["staticnet_efficiency"] = round(r["staticnet"] / (base_s * r["ranks"]), 3)
    r["pytorch_efficiency"] = round(r["pytorch_best"] / (base_t * r["ranks"]), 3)
print(json.dumps({"summary": rows}))
EOF
