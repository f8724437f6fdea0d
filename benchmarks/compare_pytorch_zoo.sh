#!/usr/bin/env bash
# Training steps of every network of the model zoo (benchmarks/zoo/), staticnet against
# PyTorch at its best, on this machine, now.
#
#   benchmarks/compare_pytorch_zoo.sh [--threads "1 2"] [--rounds 3] [--build DIR] [--networks "a b"]
#                                     [--steps 10] [--reps 3] [--bench PATH]
#
# For each network and thread count it runs bench_zoo and benchmarks/pytorch_zoo.py in both
# of PyTorch's formats (contiguous and channels-last), alternating, --rounds times each, so
# all three see the same machine state; PyTorch at its best is the faster format's median.
# Each row is printed as one JSON line as it is measured; the last line on stdout is one JSON
# object with every row and the smallest ratio:
#   {"machine": ..., "rows": [{"network": "resnet18", "threads": 1, "staticnet": 150.2,
#    "pytorch": 92.7, "pytorch_format": "channels_last", "ratio": 1.62, "staticnet_rss_kb": ...,
#    "pytorch_rss_kb": ...}, ...], "min_ratio": 1.51}
# Batch 32 unless a network's header says otherwise. Needs python3-torch and python3-torchvision.
# --bench runs a bench_zoo built elsewhere (the device machine) instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/common.sh
threads_list="1 2" rounds=3 build=build networks="reference_cnn resnet_example resnet18 resnet20 vgg11_bn mobilenet"
steps=10 reps=3 bench="" python=/usr/bin/python3
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads_list="$2"; shift 2;;
    --rounds) rounds="$2"; shift 2;;
    --build) build="$2"; shift 2;;
    --networks) networks="$2"; shift 2;;
    --steps) steps="$2"; shift 2;;
    --reps) reps="$2"; shift 2;;
    --bench) bench="$2"; shift 2;;
    --python) python="$2"; shift 2;;
    *) echo "compare_pytorch_zoo.sh: unknown option $1" >&2; exit 2;;
  esac
done
if [ -z "$bench" ]; then
  ensure_pytorch
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTATICNET_BUILD_BENCHMARKS=ON >/dev/null
  cmake --build "$build" --target bench_zoo -j "$(nproc)" >/dev/null
  bench="$build/benchmarks/bench_zoo"
fi
rss() { sed -n 's/.*"rss_kb": *\([0-9]*\).*/\1/p' | head -1; }

rows=""
for network in $networks; do
  for threads in $threads_list; do
    ours=() contiguous=() channels_last=() our_rss=0 their_rss=0
    for _ in $(seq "$rounds"); do
      line=$("$bench" --network "$network" --threads "$threads" --steps "$steps" --reps "$reps")
      ours+=("$(field images_per_s <<<"$line")")
      our_rss=$(( $(rss <<<"$line") > our_rss ? $(rss <<<"$line") : our_rss ))
      for format in contiguous channels_last; do
        line=$(OMP_NUM_THREADS="$threads" "$python" benchmarks/pytorch_zoo.py --network "$network" --threads "$threads" \
                 --format "$format" --steps "$steps" --reps "$reps")
        if [ "$format" = contiguous ]; then contiguous+=("$(field images_per_s <<<"$line")")
        else channels_last+=("$(field images_per_s <<<"$line")"); fi
        their_rss=$(( $(rss <<<"$line") > their_rss ? $(rss <<<"$line") : their_rss ))
      done
    done
    s=$(printf '%s\n' "${ours[@]}" | median)
    c=$(printf '%s\n' "${contiguous[@]}" | median)
    l=$(printf '%s\n' "${channels_last[@]}" | median)
    read -r p format < <(awk -v c="$c" -v l="$l" 'BEGIN {if (l > c) print l, "channels_last"; else print c, "contiguous"}')
    ratio=$(awk -v a="$s" -v b="$p" 'BEGIN {printf "%.2f", a / b}')
    row="{\"network\":\"$network\",\"threads\":$threads,\"staticnet\":$s,\"pytorch\":$p,\"pytorch_format\":\"$format\",\"ratio\":$ratio,\"staticnet_rss_kb\":$our_rss,\"pytorch_rss_kb\":$their_rss,\"pytorch_contiguous\":$c,\"pytorch_channels_last\":$l,\"rounds\":$rounds}"
    echo "$row"
    rows="${rows:+$rows,}$row"
  done
done
min_ratio=$(grep -o '"ratio":[0-9.]*' <<<"$rows" | cut -d: -f2 | sort -g | head -1)
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)"
echo "{\"machine\":\"$machine\",\"torch\":\"$("$python" -c 'import torch; print(torch.__version__)')\",\"rows\":[$rows],\"min_ratio\":$min_ratio}"
