#!/bin/bash
# The 3-epoch checks of training from your own data (not in CI: about 4 training runs of 3 epochs each).
#
#   benchmarks/data_sources.sh [--build DIR] [--data DIR] [--epochs N] [--out FILE.jsonl]
#
# 1. Fashion-MNIST as PNG class folders (scripts/make_image_folders.py) trained through
#    `fashion_mnist --train-dir/--test-dir` (bar: test accuracy >= 0.865 after 3 epochs);
# 2. shards made from those folders (`staticnet-shard --image-dir`), trained under
#    `mpirun -np 2` (each rank its shards, loaded as bytes);
# 3. the same shards streamed (`--stream`), under `mpirun -np 2`;
# 4. IDX, one process, for comparison.
# Each run prints one JSON line: the run, its test accuracy, its wall time and the peak
# resident memory of its largest process (/usr/bin/time -v), and whether it met the bar.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build data=/usr/share/datasets/fashion-mnist epochs=3 out=/dev/null
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2;;
    --data) data="$2"; shift 2;;
    --epochs) epochs="$2"; shift 2;;
    --out) out="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
example="$build/examples/fashion_mnist" shard="$build/tools/staticnet-shard"
for p in "$example" "$shard"; do [ -x "$p" ] || { echo "build $p first (with libstb-dev)" >&2; exit 1; }; done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_plm=isolated
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 scripts/make_image_folders.py "$work/folders" --data "$data" >&2
"$shard" --image-dir "$work/folders/train" --shape 28x28x1 --shards 4 --seed 1 --out "$work/shards" >&2

# run NAME COMMAND...: one JSON line with the result of a fashion_mnist --json run.
run() {
  local name="$1"; shift
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time.txt" "$@" --epochs "$epochs" --seed 1 --json > "$work/out.jsonl"
  end=$(date +%s.%N)
  local accuracy rss
  accuracy=$(sed -n 's/.*"test_accuracy":\([0-9.]*\).*/\1/p' "$work/out.jsonl")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
  echo "{\"run\":\"$name\",\"epochs\":$epochs,\"test_accuracy\":$accuracy,\"seconds\":$(echo "$end - $start" | bc),\"max_rss_kb\":$rss,\"meets_0.865\":$(echo "$accuracy >= 0.865" | bc)}"
}

{
  run "image folders, 1 process" "$example" --train-dir "$work/folders/train" --test-dir "$work/folders/test"
  run "shards from folders, mpirun -np 2" mpirun -np 2 "$example" --shards "$work/shards" --data "$data" --threads 1
  run "streamed shards, mpirun -np 2" mpirun -np 2 "$example" --shards "$work/shards" --stream --data "$data" --threads 1
  run "IDX, 1 process" "$example" --data "$data"
} | tee "$out"
