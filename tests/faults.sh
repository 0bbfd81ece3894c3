#!/usr/bin/env bash
# Broker and process faults (issue 13, part 5): the `fault_` tests of cli/tests/kafka_planner.rs
# against a broker of their own, so that killing and freezing it disturbs no other test.
# Each scenario runs the planner on the simulator's default input through a fault, then
# compares the read_committed outputs with the embedded run of the same input:
#   - the broker killed (kill -9) mid-run and restarted 5 s later;
#   - the broker frozen (SIGSTOP) for 20 s, past the group's session timeout, then SIGCONT;
#   - a second instance with the first one's group.instance.id (the older one is fenced and
#     stops with a message, the newer one runs to the end);
#   - an instance without group.instance.id frozen mid-run while another takes over, then
#     thawed: a zombie, fenced by the group generation (KIP-447);
#   - a transaction's offsets sent to a frozen broker: the call ends within its bound while
#     the broker is still frozen (librdkafka's own call waits for the broker, librdkafka#5456),
#     and a new producer with the same transactional id commits after the thaw;
# and, with the broker gone for good (once the service runs, and as it starts), a service gives
# up after kafka.unavailable_limit_ms and exits non-zero naming the setting.
#
# The fault broker listens on FITSTREAM_FAULTS_KAFKA_PORT (default 9192; its controller on the
# next port), is installed and started by deploy/kafka.sh like the test broker, and stopped
# at the end. Prints the cargo test summary line.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
port="${FITSTREAM_FAULTS_KAFKA_PORT:-9192}"
jobs="${FITSTREAM_TEST_JOBS:-2}"
broker() {
  KAFKA_PORT="$port" KAFKA_CONTROLLER_PORT="$((port + 1))" \
    KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}" bash deploy/kafka.sh "$@"
}
# The fault broker is this script's own: it starts empty, without the topics of earlier runs.
broker reset
broker start
trap 'broker stop >/dev/null 2>&1 || true' EXIT

log="$(mktemp "${TMPDIR:-/tmp}/faults.XXXXXX.log")"
set +e
FITSTREAM_TEST_BOOTSTRAP="127.0.0.1:$port" FITSTREAM_FAULTS_KAFKA_PORT="$port" \
  cargo test -j "$jobs" -p fitstream --test kafka_planner -- --ignored fault_ \
  --test-threads 1 --nocapture 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e
summary="$(grep -E '^test result:' "$log" | tail -1)"
echo "faults: ${summary:-no test result} (log: $log)"
exit "$status"
