# Cross-compiling for 64-bit ARM Linux with Debian's cross compiler, tests run under
# qemu-user (scripts/test-arm64.sh):
#
#   apt-get install crossbuild-essential-arm64 qemu-user
#   dpkg --add-architecture arm64 && apt-get update && apt-get install zlib1g-dev:arm64
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#
# CMAKE_CXX_COMPILER may be overridden (e.g. clang++-19 with --target=aarch64-linux-gnu).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
if(NOT CMAKE_CXX_COMPILER)
  set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
endif()
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# The target's libraries (zlib1g-dev:arm64) are in Debian's multiarch folders of the host;
# the header-only packages (xtensor, xsimd, Catch2, nlohmann-json) and their CMake files are
# architecture-independent, so packages and headers are searched on the host too.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# Debian installs xsimd's and xtensor's CMake files for the build machine's architecture only
# (/usr/lib/x86_64-linux-gnu/cmake), a folder the target's multiarch search skips.
list(APPEND CMAKE_PREFIX_PATH /usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu/cmake)

# Run the test programs (and Catch2's test discovery) under qemu. Trap: zlib1g-dev:arm64
# brings Debian's libc6:arm64, a different build from the cross toolchain's libc; with -L
# alone the loader mixes the two and every pthread_create spins forever, so the toolchain's
# libraries come first on the search path.
find_program(STATICNET_QEMU_AARCH64 qemu-aarch64)
if(STATICNET_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${STATICNET_QEMU_AARCH64} -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib -L /usr/aarch64-linux-gnu)
endif()
