#!/usr/bin/env bash
# Elastic restarts under staticnet-run (CTest elastic:*), with tests/checkpoint_job.cpp.
#
#   elastic.sh MODE STATICNET_RUN MPIEXEC CHECKPOINT_JOB
#
# MODE restarts: a deterministic 3-rank job is killed (kill -9 of one rank) twice; before
#   the first kill the hostfile loses a slot, as if a host had failed. The launcher must
#   restart it on its own, from its newest checkpoint, the second time on 2 ranks, and the
#   job must end with bitwise the parameters of the same job never interrupted.
# MODE gives_up: a job that fails on every attempt (bad data) stops after --max-restarts
#   restarts, with the rank's message as the reason.
# MODE repeated: with a generous --max-restarts, the same failure without progress stops the
#   job after --max-repeats attempts instead of looping.
# MODE dead_host: a hostfile host that cannot start a process is probed, reported and left out.
set -euo pipefail
mode=$1 runner=$2 mpiexec=$3 job=$4
work=$(mktemp -d)
trap 'pkill -9 -f "^$job .*$work" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "---- launcher log"; cat "$work/log" 2>/dev/null || true; exit 1; }

# The newest checkpoint's step count (its file name carries it), 0 when none yet.
newest_step() {
  local f
  f=$(ls "$work/ckpt" 2>/dev/null | grep '^checkpoint-.*\.snckpt$' | sort | tail -1 || true)
  [ -n "$f" ] && echo $((10#${f:11:12})) || echo 0
}
wait_for_step() {  # up to 60 s
  for _ in $(seq 600); do
    [ "$(newest_step)" -ge "$1" ] && return 0
    kill -0 "$launcher" 2>/dev/null || fail "the job ended before step $1"
    sleep 0.1
  done
  fail "no checkpoint at step $1 within 60 s"
}
kill_a_rank() {
  local victim
  victim=$(pgrep -f -n "^$job .*--checkpoint $work/ckpt" || true)
  [ -n "$victim" ] || fail "no rank to kill"
  echo "   kill -9 of rank pid $victim at step $(newest_step)"
  kill -9 "$victim"
}

case "$mode" in
restarts)
  echo "1. the job, uninterrupted, on 3 ranks"
  "$mpiexec" -np 3 "$job" --dir "$work/ref" --out "$work/ref.params" --deterministic
  echo "2. the same job under staticnet-run, killed twice"
  echo "localhost slots=3" >"$work/hosts"
  "$runner" --np 3 --min-np 2 --hostfile "$work/hosts" --checkpoint "$work/ckpt" --max-restarts 3 --restart-delay 0.2 \
    --mpirun "$mpiexec" -- "$job" --out "$work/out.params" --deterministic --step-delay-ms 40 >"$work/log" 2>&1 &
  launcher=$!
  wait_for_step 20
  echo "localhost slots=2" >"$work/hosts"  # a host lost: 2 ranks from now on
  kill_a_rank
  wait_for_step 55
  kill_a_rank
  wait "$launcher" || fail "staticnet-run reported failure (status $?)"
  grep -E "^staticnet-run: " "$work/log"
  grep -q "attempt 1: 3 ranks, from the start" "$work/log" || fail "the first attempt did not start on 3 ranks"
  grep -q "attempt 2: 2 ranks, resuming from checkpoint-" "$work/log" || fail "the first restart was not on 2 ranks from a checkpoint"
  grep -q "attempt 3: 2 ranks, resuming from checkpoint-" "$work/log" || fail "the second restart was not on 2 ranks from a checkpoint"
  grep -q "restart 2 of 3 .*because .*signal 9" "$work/log" || fail "the restart does not say that a rank was killed"
  grep -q "the job finished after 2 restarts" "$work/log" || fail "the job did not finish after 2 restarts"
  cmp "$work/ref.params" "$work/out.params" || fail "the parameters differ from the uninterrupted run's"
  echo "PASS: killed twice, restarted on fewer ranks, bitwise the uninterrupted run's parameters"
  ;;
gives_up)
  status=0
  "$runner" --np 2 --checkpoint "$work/ckpt" --max-restarts 2 --max-repeats 0 --restart-delay 0 --mpirun "$mpiexec" \
    -- "$job" --out "$work/out.params" --bad-label >"$work/log" 2>&1 || status=$?
  grep -E "^staticnet-run: " "$work/log"
  [ "$status" = 1 ] || fail "exit status $status, expected 1"
  [ "$(grep -c 'attempt [0-9] failed: rank .*label 9 of sample 5' "$work/log")" = 3 ] || fail "expected 3 attempts failing on label 9 of sample 5"
  tail -1 "$work/log" | grep -q "gave up after 2 restarts (--max-restarts 2); the last attempt failed: rank .*label 9 of sample 5" ||
    fail "the last line does not give up with the reason"
  echo "PASS: stopped after 2 restarts, naming the cause"
  ;;
repeated)
  status=0
  "$runner" --np 2 --checkpoint "$work/ckpt" --max-restarts 50 --restart-delay 0 --mpirun "$mpiexec" \
    -- "$job" --out "$work/out.params" --bad-label >"$work/log" 2>&1 || status=$?
  grep -E "^staticnet-run: " "$work/log"
  [ "$status" = 1 ] || fail "exit status $status, expected 1"
  tail -1 "$work/log" | grep -q "failed the same way 3 times in a row without a newer checkpoint: rank .*label 9 of sample 5" ||
    fail "the last line does not stop the repeated failure"
  echo "PASS: the same failure three times stops the job"
  ;;
dead_host)
  # A host of the hostfile that cannot start a process is left out; the job runs on the rest.
  printf "no-such-host.invalid slots=4\nlocalhost slots=2\n" >"$work/hosts"
  "$runner" --np 4 --min-np 2 --hostfile "$work/hosts" --checkpoint "$work/ckpt" --max-restarts 0 --probe-timeout 20 \
    --mpirun "$mpiexec" -- "$job" --out "$work/out.params" >"$work/log" 2>&1 || fail "staticnet-run reported failure"
  grep -E "^staticnet-run: " "$work/log"
  grep -q "host no-such-host.invalid does not answer" "$work/log" || fail "the dead host was not reported"
  grep -q "attempt 1: 2 ranks, from the start" "$work/log" || fail "the job did not run on the 2 slots left"
  [ -s "$work/out.params" ] || fail "no parameters written"
  echo "PASS: the dead host left out, the job ran on the 2 slots left"
  ;;
*) echo "unknown mode $mode"; exit 2 ;;
esac
