#!/usr/bin/env bash
# The AddressSanitizer + UndefinedBehaviorSanitizer configuration: builds single-process test
# programs with -fsanitize=address,undefined (any report aborts the test) and runs them.
# (The MPI tests are left out: Open MPI itself is not clean under LeakSanitizer.)
#
#   bash scripts/test-sanitizers.sh              every single-process test program (long:
#                                                about 15 min of building on 2 cores)
#   bash scripts/test-sanitizers.sh --ci         the subset that fits CI: kernels, layers,
#                                                data readers and the thread pool
#   bash scripts/test-sanitizers.sh test_x ...   these test programs only
#
# JOBS=N sets the parallel build and test jobs (default: the number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."

# The CI subset (the SIMD kernels, every layer's forward and backward pass, the IDX reader
# and batch loader, and the thread pool under which all of them run) is named in
# tests/CMakeLists.txt: target `sanitizer_ci_tests`, names in sanitizer_ci_programs.txt.
ci=false
programs=()
case "${1:-}" in
  --ci) ci=true ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  -*) echo "test-sanitizers.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  *) programs=("$@") ;;
esac
jobs=${JOBS:-$(nproc)}

bash scripts/install-deps.sh
# -O1 -g1 (line tables only): a report still names file and line, and the programs build
# several times faster than at -O2 -g (test_kernels: 40 s instead of 269 s under load here)
# while their tests run 1.4x longer (7 s instead of 5).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DSTATICNET_SANITIZE=address,undefined \
  -DSTATICNET_BUILD_EXAMPLES=OFF -DSTATICNET_BUILD_BENCHMARKS=OFF -DSTATICNET_BUILD_TOOLS=OFF -DSTATICNET_MPI=OFF >/dev/null
if $ci; then
  cmake --build build-asan -j "$jobs" --target sanitizer_ci_tests
  # Catch's tests are named "<program>:<test case>".
  pattern="^($(tr ';' '|' < build-asan/sanitizer_ci_programs.txt)):"
  cd build-asan && exec ctest --output-on-failure --no-tests=error -j "$jobs" -L unit -R "$pattern"
fi
if [ ${#programs[@]} -eq 0 ]; then
  cmake --build build-asan -j "$jobs"
  cd build-asan && exec ctest --output-on-failure -j "$jobs" -L unit
fi
cmake --build build-asan -j "$jobs" --target "${programs[@]}"
# Catch's tests are named "<program>:<test case>".
pattern="^($(IFS='|'; echo "${programs[*]}")):"
cd build-asan && exec ctest --output-on-failure --no-tests=error -j "$jobs" -L unit -R "$pattern"
