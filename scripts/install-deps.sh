#!/usr/bin/env bash
# Installs the Debian 12 packages staticnet needs, if any is missing (needs root or sudo).
set -euo pipefail
# libcli11-dev (command lines of the tools and examples) and nlohmann-json3-dev (a test) are
# for our own programs only: the library needs neither. python3-onnx and python3-opencv check
# exported ONNX files in a test (tests/onnx/check_interop.py). libstb-dev (stb_image) lets the
# example and staticnet-shard read image folders; python3-numpy and python3-pil run
# scripts/make_image_folders.py, which the image-folder tests use. libc++-19-dev: the test suite
# builds the unit tests with clang 19 and its own standard library too.
packages=(cmake g++ make pkg-config libxtensor-dev libxsimd-dev libboost-mpi-dev libboost-serialization-dev
          catch2 openmpi-bin libopenmpi-dev zlib1g-dev dataset-fashion-mnist iproute2
          clang libclang-rt-14-dev clang-19 libc++-19-dev libc++abi-19-dev libcli11-dev nlohmann-json3-dev python3-onnx python3-opencv
          python3-crc32c python3-protobuf protobuf-compiler chromium  # the watch:* tests: TensorBoard files, report page
          libstb-dev python3-numpy python3-pil)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "staticnet: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
