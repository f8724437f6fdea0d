#!/usr/bin/env bash
# Compile time of one translation unit (Release flags, the README's one-line build):
#   1. examples/fashion_mnist.cpp (the reference CNN, no residual blocks), for scale,
#   2. examples/fashion_mnist_resnet.cpp (4 residual blocks),
#   3. the same with twice the blocks (-DSTATICNET_RESNET_TWICE_THE_BLOCKS=1, 8 blocks).
# Instantiation is linear in depth when 3 takes at most about 2x of what 2 adds to 1.
#
#   benchmarks/compile_time.sh [--rounds N] [--cxx g++]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 cxx=g++
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2;;
    --cxx) cxx="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-std=c++20 -O3 -march=native -Iinclude -Iexamples -I. -lz -pthread)
seconds() {  # the median wall time of compiling and linking "$@"
  for _ in $(seq "$rounds"); do
    /usr/bin/time -f %e "$cxx" "$@" "${flags[@]}" -o "$out/a.out" 2>&1 >/dev/null | tail -1
  done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
reference=$(seconds examples/fashion_mnist.cpp)
resnet=$(seconds examples/fashion_mnist_resnet.cpp)
twice=$(seconds examples/fashion_mnist_resnet.cpp -DSTATICNET_RESNET_TWICE_THE_BLOCKS=1)
echo "{\"compiler\":\"$($cxx --version | head -1)\",\"rounds\":$rounds,\"fashion_mnist_s\":$reference,\"fashion_mnist_resnet_s\":$resnet,\"resnet_twice_the_blocks_s\":$twice}"
