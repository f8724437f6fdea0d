#!/usr/bin/env bash
# Builds the libFuzzer target for the readers (shards, IDX, checkpoints, ONNX) with clang
# (fuzzer, address and undefined-behaviour sanitizers) and runs it for SECONDS on a seed
# corpus it generates (valid shards, raw and gzip IDX files, a checkpoint, weights, an ONNX
# file) plus whatever earlier runs added to the corpus.
#
#   tests/fuzz/run.sh SECONDS
#
# Environment: CXX_FUZZ (default clang++), STATICNET_FUZZ_BUILD (default build-fuzz), the
# folder for the binary, the corpus and crash artifacts. Exits non-zero on a finding; the
# input that caused it is saved under $STATICNET_FUZZ_BUILD/artifacts/.
set -euo pipefail

if [[ $# -ne 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS" >&2
  exit 2
fi
seconds=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${STATICNET_FUZZ_BUILD:-$root/build-fuzz}
cxx=${CXX_FUZZ:-clang++}
if ! command -v "$cxx" >/dev/null; then
  echo "$0: $cxx not found; install clang (apt-get install clang)" >&2
  exit 2
fi

mkdir -p "$build/corpus" "$build/seeds" "$build/artifacts"
binary=$build/fuzz_readers
if [[ ! -x $binary || $binary -ot $root/tests/fuzz/fuzz_readers.cpp ||
      -n $(find "$root/include/staticnet" -newer "$binary" -name '*.hpp' -print -quit) ]]; then
  echo "building $binary"
  images=()
  [[ ${STATICNET_FUZZ_IMAGES:-0} == 1 && -f /usr/include/stb/stb_image.h ]] && images=(-DSTATICNET_FUZZ_IMAGES=1)
  "$cxx" -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=all "${images[@]}" -I"$root/include" "$root/tests/fuzz/fuzz_readers.cpp" -lz -o "$binary"
fi

STATICNET_FUZZ_SEED_DIR=$build/seeds "$binary"
# PyTorch's graphs too: a Pad whose pads a constant subgraph computes, batch norms kept as nodes.
cp "$root/tests/onnx/fixtures/zero_pad.onnx" "$root/tests/onnx/fixtures/small_torch.onnx" "$build/seeds/"
# One process: the machines this runs on are shared. -rss_limit_mb catches runaway allocations.
status=0
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -artifact_prefix="$build/artifacts/" -print_final_stats=1 "$build/corpus" "$build/seeds" || status=$?
# The target's scratch folders (libFuzzer exits without running atexit handlers).
for dir in /dev/shm/staticnet_fuzz_readers_* "${TMPDIR:-/tmp}"/staticnet_fuzz_readers_*; do
  [[ -d $dir && ! -e /proc/${dir##*_} ]] && rm -rf "$dir"
done
exit "$status"
