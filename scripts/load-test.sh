#!/usr/bin/env bash
# The test suite under load: two bounded busy-loop processes keep both cores busy (pinned one per
# core), then the suite runs LOAD_TEST_RUNS times in a row (default 3) through scripts/test.sh;
# every run must pass. The loops are started and stopped by their pid (and end by themselves
# after LOAD_TEST_MAX_SECONDS, default 3 hours, whatever happens to this script). Arguments go
# to pytest (e.g. `bash scripts/load-test.sh tests/platform`). Prints each run's duration and the
# load average; exits non-zero at the first failing run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${LOAD_TEST_RUNS:-3}"
bound="${LOAD_TEST_MAX_SECONDS:-10800}"
pids=()
stop_load() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_load EXIT
cores=$(nproc)
for i in 0 1; do
  core=$((i % cores))
  timeout "$bound" taskset -c "$core" sh -c 'while :; do :; done' &
  pids+=("$!")
done
echo "load: busy loops ${pids[*]} on cores 0 and 1 (bounded to ${bound}s)" >&2
total=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  status=passed
  bash scripts/test.sh "$@" || status=FAILED
  took=$(( $(date +%s) - start ))
  total=$((total + took))
  echo "load-test run $i/$runs: $status in ${took}s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  [ "$status" = passed ] || exit 1
done
echo "load-test: $runs runs passed in a row under load, ${total}s in all"
