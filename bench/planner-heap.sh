#!/usr/bin/env bash
# Where the planner's memory goes on the Kafka Streams comparison's input: heaptrack over
# `fitstream run planner --until-end` (release build with glibc's malloc, which heaptrack sees:
# the `system-allocator` feature) on the input `bench/vs-kafka-streams.sh` produces (same
# settings and defaults: VKS_RATE, VKS_SECONDS, VKS_CUSTOMERS, VKS_SEED, VKS_PARTITIONS), then
# the heap at its peak by the deepest frames of fitstream's own code that allocated it:
#   planner-heap: records N, peak heap H MB
#   <MB>  <frames, innermost first>      (the ten largest)
# Needs the broker (bash deploy/kafka.sh start) and heaptrack (installed when missing). Not part
# of CI. The planner runs several times slower under heaptrack.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
rate="${VKS_RATE:-100}" seconds="${VKS_SECONDS:-12600}" customers="${VKS_CUSTOMERS:-20000}" seed="${VKS_SEED:-15}"
partitions="${VKS_PARTITIONS:-1}"
if ! command -v heaptrack >/dev/null; then
  echo "installing heaptrack (Debian package)" >&2
  apt-get update -qq && apt-get install -y -qq heaptrack
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/planner-heap.XXXXXX")"
prefix="heap-$(date +%s)-$$"
cleanup() {
  bash deploy/kafka.sh topics --delete --topic ".*$prefix.*" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# A target directory of its own: the usual release binary (mimalloc) stays as it is.
heap_target="${CARGO_TARGET_DIR:-$REPO/target}/heap"
cargo build --release -q -j 2 -p fitstream --bin fitstream --features system-allocator \
  --target-dir "$heap_target"
FITSTREAM="$heap_target/release/fitstream"
# shellcheck source=kafka-streams/harness.sh
source bench/kafka-streams/harness.sh
kd_configs "$work" "$prefix" "$partitions"
kd_input "$work/input.jsonl" "$rate" "$seconds" "$customers" "$seed"
records=$(wc -l <"$work/input.jsonl")
"$FITSTREAM" --config "$work/fitstream.toml" topics create >/dev/null
"$FITSTREAM" --config "$work/fitstream.toml" produce --input "$work/input.jsonl" >&2

RUST_LOG=warn heaptrack -o "$work/heap" "$FITSTREAM" --config "$work/fitstream.toml" \
  run planner --until-end --metrics-listen 127.0.0.1:0 >"$work/planner.log" 2>&1 || {
  tail -20 "$work/planner.log"
  exit 1
}
heaptrack_print -f "$work"/heap.*zst --print-peaks 0 --print-allocators 0 \
  --print-temporary 0 --print-leaks 0 -s 0 -F "$work/peak.txt" \
  --flamegraph-cost-type peak >/dev/null
python3 bench/heap-peaks.py "$work/peak.txt" "planner-heap: records $records"
