#!/usr/bin/env bash
# ARM64 (AArch64, NEON): cross-builds a subset of the unit tests with Debian's cross compiler
# and runs them under qemu-user. scripts/test.sh runs it.
#
#   bash scripts/test-arm64.sh            the subset below (CI: about 7 minutes on 2 cores)
#   bash scripts/test-arm64.sh --all      every single-process unit test program (long)
#
# The subset covers every SIMD kernel on its NEON path: the GEMM micro-kernels, im2col,
# Winograd, the direct convolution, batch normalisation, pooling and the element-wise maps
# (test_kernels, test_layers), residual blocks against PyTorch's numbers (test_residual), the
# model's training steps with their thread-count bitwise checks (test_model), the IDX reader
# and batch loader (test_data), and the thread pool (test_thread_pool: its wait loop has an
# ARM path). Code under qemu runs several times slower than native and the build is the
# cost: the rest of the suite is the same C++ above these kernels.
#
# CXX=clang++-19 builds with clang (--target=aarch64-linux-gnu) instead of
# aarch64-linux-gnu-g++. JOBS=N sets the build jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
programs=(test_kernels test_layers test_residual test_model test_data test_thread_pool)
case "${1:-}" in
  --all) programs=(test_kernels test_layers test_residual test_model test_io test_data test_sources test_shards
                   test_stream test_checkpoint test_callbacks test_thread_pool) ;;
  "") ;;
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "test-arm64.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
jobs=${JOBS:-$(nproc)}

bash scripts/install-deps.sh
# The cross toolchain, the emulator and the target's zlib (the one library with code that
# the tests link; everything else they use is header-only).
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if ! installed crossbuild-essential-arm64 || ! installed qemu-user || ! installed zlib1g-dev:arm64; then
  echo "test-arm64: installing the ARM64 cross compiler, qemu-user and zlib1g-dev:arm64 (for this script only)" >&2
  export DEBIAN_FRONTEND=noninteractive
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends crossbuild-essential-arm64 qemu-user >/dev/null
  # --no-remove: zlib1g-dev:arm64 must never replace the host's packages.
  $sudo apt-get install -y -qq --no-install-recommends --no-remove zlib1g-dev:arm64 >/dev/null
fi

compiler=(-DCMAKE_CXX_FLAGS=-march=armv8.2-a)
build=build-arm64
if [[ ${CXX:-} == clang* ]]; then
  compiler=(-DCMAKE_CXX_COMPILER="$CXX" "-DCMAKE_CXX_FLAGS=--target=aarch64-linux-gnu -mcpu=neoverse-n1")
  build=build-arm64-clang
fi
start=$SECONDS
# pkg-config must not hand the host's libraries (stb) to the target's link.
PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig \
  cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
  "${compiler[@]}" -DSTATICNET_NATIVE=OFF -DSTATICNET_MPI=OFF -DSTATICNET_BUILD_EXAMPLES=OFF \
  -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TOOLS=OFF -DSTATICNET_CHECK_HEADERS=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target "${programs[@]}"
file "$build/tests/${programs[0]}" | grep -q "ARM aarch64" || { echo "test-arm64: $build/tests/${programs[0]} is not an AArch64 program" >&2; exit 1; }
echo "test-arm64: built ${programs[*]} for AArch64 in $((SECONDS - start)) s"
start=$SECONDS
# Catch's tests are named "<program>:<test case>"; CTest runs each under qemu
# (CMAKE_CROSSCOMPILING_EMULATOR in the toolchain file).
pattern="^($(IFS='|'; echo "${programs[*]}")):"
(cd "$build" && ctest --output-on-failure --no-tests=error -j "$jobs" -L unit -R "$pattern")
echo "test-arm64: passed under qemu-aarch64 in $((SECONDS - start)) s"
