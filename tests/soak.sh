#!/usr/bin/env bash
# A soak of the Kafka-equals-embedded tests (issue 13, part 1): `bash tests/soak.sh N` runs
# them N times (default 20) against the test broker, kill -9 ones included: the planner's
# (uninterrupted, three kills, a second instance), the profiler's, the whole pipeline's
# (`run all` + tail against replay), and with FITSTREAM_SOAK_FAULTS=1 the fault scenarios of
# tests/faults.sh too. Every run's log is kept under target/soak/<time>/run-<i>.log; a failed
# run's log is named run-<i>.FAILED.log. Ends with the line `soak: K/N runs passed`.
# With FITSTREAM_SOAK_RELEASE=1 the tests and the services they start are release builds,
# as in production: a run took 260 s on 2026-12-07 (601 s before the segmentation test closed
# its input with clicks instead of waiting for the wall clock). Kills and faults come at a
# share of the input committed, not after a time, so that they land mid-run at either speed.
# Not part of CI (a run takes several minutes).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
n="${1:-20}"
jobs="${FITSTREAM_TEST_JOBS:-2}"
logs="${CARGO_TARGET_DIR:-$REPO/target}/soak/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
bash deploy/kafka.sh status >/dev/null 2>&1 || bash deploy/kafka.sh start
export FITSTREAM_TEST_BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
tests=(--test kafka_planner --test kafka_profiler --test kafka_replay --test kafka_segmentation)
[ "${FITSTREAM_SOAK_RELEASE:-0}" = 1 ] && tests+=(--release)
cargo test -q -j "$jobs" -p fitstream "${tests[@]}" --no-run

passed=0
for i in $(seq 1 "$n"); do
  log="$logs/run-$i.log"
  started=$(date +%s)
  ok=1
  cargo test -q -j "$jobs" -p fitstream "${tests[@]}" -- --test-threads "$jobs" >"$log" 2>&1 || ok=0
  if [ "$ok" = 1 ] && [ "${FITSTREAM_SOAK_FAULTS:-0}" = 1 ]; then
    bash tests/faults.sh >>"$log" 2>&1 || ok=0
  fi
  if [ "$ok" = 1 ]; then
    passed=$((passed + 1))
    echo "soak: run $i passed in $(($(date +%s) - started)) s"
  else
    mv "$log" "$logs/run-$i.FAILED.log"
    echo "soak: run $i FAILED in $(($(date +%s) - started)) s: $logs/run-$i.FAILED.log"
    grep -E "panicked at|^---- " "$logs/run-$i.FAILED.log" | head -5
  fi
done
echo "soak: $passed/$n runs passed (logs: $logs)"
[ "$passed" = "$n" ]
