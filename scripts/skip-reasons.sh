#!/usr/bin/env bash
# Prints why each skipped test of the last CTest run in BUILD_DIR was skipped. CTest reports
# a skip (SKIP_RETURN_CODE 77) as "***Skipped" and, even with --output-on-failure, hides the
# test's output; our skipping tests print a line "SKIPPED: <reason>" (or "SKIP: <reason>")
# first, which this finds in Testing/Temporary/LastTest.log.
#
#   bash scripts/skip-reasons.sh [BUILD_DIR]     (default: build)
set -euo pipefail
log="${1:-build}/Testing/Temporary/LastTest.log"
[ -f "$log" ] || { echo "skip-reasons.sh: no CTest log at '$log' (run ctest first)" >&2; exit 2; }
awk '
  / Test: / { sub(/^[0-9]+\/[0-9]+ Test: /, ""); name = $0; next }
  /^SKIP(PED)?: / { sub(/^SKIP(PED)?: /, ""); printf "skipped: %s: %s\n", name, $0 }
' "$log"
