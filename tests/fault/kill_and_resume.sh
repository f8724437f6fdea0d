#!/usr/bin/env bash
# The fault test: a 2-rank job is killed (kill -9 of one rank) in the middle of an epoch,
# resumed from its last checkpoint, and must end with the same parameters, bit for bit, as
# the same job never interrupted.
#
#   kill_and_resume.sh MPIEXEC CHECKPOINT_JOB
set -euo pipefail
mpiexec=$1 job=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { "$mpiexec" -np 2 "$job" "$@"; }

echo "1. the uninterrupted job"
run --dir "$work/a" --out "$work/a.params"

echo "2. the same job, killed in its third epoch"
run --dir "$work/b" --out "$work/b.params" --step-delay-ms 40 &
launcher=$!
for _ in $(seq 600); do  # wait (up to 60 s) for a checkpoint past the first epochs
  n=$(ls "$work/b" 2>/dev/null | grep -c '^checkpoint-' || true)
  newest=$(ls "$work/b" 2>/dev/null | grep '^checkpoint-' | sort | tail -1 || true)
  [ -n "$newest" ] && [ "${newest:11:12}" -ge 000000000040 ] && break
  sleep 0.1
done
victim=$(pgrep -f -n "checkpoint_job --dir $work/b" || true)
[ -n "$victim" ] || { echo "FAIL: no rank to kill"; exit 1; }
echo "   killing rank pid $victim after $(ls "$work/b" | grep '^checkpoint-' | sort | tail -1)"
kill -9 "$victim"
if wait "$launcher"; then echo "FAIL: the killed job reported success"; exit 1; fi
[ ! -e "$work/b.params" ] || { echo "FAIL: the killed job finished"; exit 1; }

echo "3. resumed from the last checkpoint"
run --dir "$work/b" --out "$work/b.params" --resume
if cmp "$work/a.params" "$work/b.params"; then
  echo "PASS: the resumed job ends with bitwise the parameters of the uninterrupted one"
else
  echo "FAIL: the parameters differ"; exit 1
fi
