#!/usr/bin/env bash
# The differential test against Kafka Streams (issue 15): fitstream's planner and the Kafka
# Streams peer in bench/kafka-streams/ run on one input on which they must agree (see
# bench/kafka-streams/README.md), on fresh topics of the test broker; Released units per
# (SKU, window) and the set of abandoned carts must be equal. Builds the peer with Maven when
# its jar is out of date, and the fitstream binary with cargo. Ends with the line
# `kafka-streams-diff: 1 passed, 0 failed` (exit 0) or `kafka-streams-diff: 0 passed, 1 failed`.
#
# Settings (environment): FITSTREAM_TEST_BOOTSTRAP (default 127.0.0.1:9092),
# KD_RATE/KD_SECONDS/KD_CUSTOMERS/KD_SEED (the simulated input), KD_PARTITIONS (default 1, see
# the README), KD_KEEP=1 keeps the work directory and the topics.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
jobs="${FITSTREAM_TEST_JOBS:-2}"
rate="${KD_RATE:-4}" seconds="${KD_SECONDS:-10800}" customers="${KD_CUSTOMERS:-300}" seed="${KD_SEED:-15}"
partitions="${KD_PARTITIONS:-1}"

work="$(mktemp -d "${TMPDIR:-/tmp}/kafka-streams-diff.XXXXXX")"
prefix="kd-$(date +%s)-$$"
passed=0
finish() {
  local status=$?
  if [ "$passed" = 1 ] && [ "$status" = 0 ]; then
    echo "kafka-streams-diff: 1 passed, 0 failed"
  else
    echo "kafka-streams-diff: 0 passed, 1 failed (work directory $work)"
    status=1
  fi
  if [ "${KD_KEEP:-0}" != 1 ] && [ "$passed" = 1 ]; then
    bash deploy/kafka.sh topics --delete --topic ".*$prefix.*" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit "$status"
}
trap finish EXIT

step() { printf '\n== kafka-streams-diff: %s\n' "$*"; }

step "build fitstream (cargo) and the Kafka Streams peer (Maven)"
cargo build -q -j "$jobs" -p fitstream --bin fitstream
FITSTREAM="${CARGO_TARGET_DIR:-$REPO/target}/debug/fitstream"
jar="$(bash bench/kafka-streams/build.sh)"
# shellcheck source=../bench/kafka-streams/harness.sh
source bench/kafka-streams/harness.sh

step "input ($rate events/s for $seconds s of event time, $customers customers, seed $seed) to topics $prefix.* ($partitions partition(s))"
kd_configs "$work" "$prefix" "$partitions"
kd_input "$work/input.jsonl" "$rate" "$seconds" "$customers" "$seed"
"$FITSTREAM" --config "$work/fitstream.toml" topics create >/dev/null
"$FITSTREAM" --config "$work/peer.toml" topics create >/dev/null
"$FITSTREAM" --config "$work/fitstream.toml" produce --input "$work/input.jsonl"

step "fitstream run planner --until-end"
start=$(date +%s%N)
RUST_LOG=warn "$FITSTREAM" --config "$work/fitstream.toml" run planner --until-end --metrics-listen 127.0.0.1:0
echo "fitstream planner: $((($(date +%s%N) - start) / 1000000)) ms"

step "Kafka Streams peer --until-end"
java -Xmx512m -jar "$jar" --bootstrap "$BOOTSTRAP" --application-id "$prefix-kstreams" \
  --clickstream "$prefix.iob.clickstream.v1" --purchases "$prefix.iob.purchases.v1" \
  --cart-abandonment "$prefix-ks.marketing.cart-abandonment.v1" \
  --build-orders "$prefix-ks.factory.{plant}.build-orders.v1" \
  --plants deploy/plants.toml --threads 2 --state-dir "$work/kafka-streams-state" --until-end ${KD_PEER_FLAGS:-} \
  2>"$work/kafka-streams.log"
echo "Kafka Streams log (warnings and errors): $work/kafka-streams.log, $(grep -c . "$work/kafka-streams.log") lines"

step "outputs (read_committed) compared"
kd_read "$work"
kd_compare "$work"
passed=1
