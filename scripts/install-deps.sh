#!/usr/bin/env bash
# Installs the Debian 12 packages staticnet needs, if any is missing (needs root or sudo),
# and says which it installs and why.
#
#   bash scripts/install-deps.sh            # everything: training and the test suite
#   bash scripts/install-deps.sh --train    # what building and training the examples needs
#   bash scripts/install-deps.sh --list [--train]   # print the packages and their reasons, install nothing
#
# scripts/train.sh asks for --train (no clang, OpenCV or ONNX); scripts/test.sh for everything.
set -euo pipefail
set_name=full list_only=0
for a in "$@"; do
  case "$a" in
    --train) set_name=train;;
    --list) list_only=1;;
    *) echo "install-deps.sh: unknown option '$a' (use --train, --list or nothing)" >&2; exit 2;;
  esac
done
# "package|why", one per line. The library itself needs only xtensor, xsimd and zlib (and
# Boost.MPI for staticnet::mpi); the rest serves our own programs and tests.
train_packages=(
  "cmake|builds the examples"
  "g++|compiles them"
  "make|CMake's build tool"
  "pkg-config|finds stb_image"
  "libxtensor-dev|tensors (the library)"
  "libxsimd-dev|SIMD kernels (the library)"
  "zlib1g-dev|gzip'ed IDX files and CRC-32 of shards and checkpoints"
  "libboost-mpi-dev|data-parallel training (NP=2 bash scripts/train.sh)"
  "libboost-serialization-dev|Boost.MPI needs it"
  "openmpi-bin|mpirun"
  "libopenmpi-dev|MPI headers"
  "libcli11-dev|the examples' command lines"
  "libstb-dev|image folders (--train-dir, staticnet-shard --image-dir)"
  "dataset-fashion-mnist|the training data (/usr/share/datasets/fashion-mnist)"
)
test_packages=(
  "catch2|the unit tests"
  "nlohmann-json3-dev|a test reads history files back as JSON"
  "iproute2|the two-host MPI test (network namespaces)"
  "clang|compile-fail tests under clang 14, the fuzzers"
  "libclang-rt-14-dev|the fuzzers' runtime"
  "clang-19|the unit tests built with clang 19"
  "libc++-19-dev|the unit tests built with clang 19 and its own standard library"
  "libc++abi-19-dev|libc++'s ABI library"
  "python3-onnx|checks exported ONNX files (onnx.checker)"
  "python3-opencv|runs exported ONNX files (OpenCV's dnn)"
  "python3-torch|exports PyTorch's ResNets for the import test (onnx:import_pytorch_resnets)"
  "python3-torchvision|torchvision's ResNet-18 for that test"
  "python3-numpy|scripts/make_image_folders.py (image-folder tests)"
  "python3-pil|scripts/make_image_folders.py (image-folder tests)"
  "python3-crc32c|reads TensorBoard event files back (watch:tensorboard_readback)"
  "python3-protobuf|decodes their Event and Summary messages"
  "protobuf-compiler|compiles TensorBoard's message definitions for that test"
  "chromium|renders the report page (watch:report_chromium)"
)
entries=("${train_packages[@]}")
[ "$set_name" = train ] || entries+=("${test_packages[@]}")
if [ "$list_only" = 1 ]; then
  for e in "${entries[@]}"; do printf '%-28s %s\n' "${e%%|*}" "${e#*|}"; done
  exit 0
fi
missing=()
for e in "${entries[@]}"; do
  p=${e%%|*}
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
    echo "staticnet: will install $p: ${e#*|}" >&2
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
what="training and the tests"; [ "$set_name" = train ] && what="training"
echo "staticnet: installing ${#missing[@]} packages for ${what}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
