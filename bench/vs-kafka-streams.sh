#!/usr/bin/env bash
# fitstream's planner against its Kafka Streams peer (issue 15): one input of about 1M records,
# produced once, then on the same broker one after the other: fitstream's planner (release build,
# `run planner --until-end`) and the peer (`--until-end`), each reading the whole input to its
# end. For each: wall seconds, records/s, CPU seconds (user + sys of the process, from
# /usr/bin/time, which reads them from the kernel like /proc), records per CPU-second, peak RSS.
# Then both outputs are compared as the differential test does, and the last line is
#   fitstream/kafka-streams: records per cpu-second R, peak memory M, outputs equal|differ
#
# Not measured yet (issue 15 asks for them): the transactional passthrough (it exists only
# inside `cargo bench --bench pipeline`, not as a process to measure), the latency at a fixed
# live rate, and a search for the smallest workable -Xmx (the heap is VKS_XMX, default 512m).
#
# Settings (environment): FITSTREAM_TEST_BOOTSTRAP (default 127.0.0.1:9092); VKS_RATE,
# VKS_SECONDS, VKS_CUSTOMERS, VKS_SEED (the simulated input; default 100 events/s over 3.5 h:
# about 1.12M records once the simulator's defects are taken out); VKS_PARTITIONS (default 1: the input on which both must agree, see
# bench/kafka-streams/README.md); VKS_THREADS (the peer's stream threads, default: cores);
# VKS_XMX (default 512m). Not part of CI.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
rate="${VKS_RATE:-100}" seconds="${VKS_SECONDS:-12600}" customers="${VKS_CUSTOMERS:-20000}" seed="${VKS_SEED:-15}"
partitions="${VKS_PARTITIONS:-1}" threads="${VKS_THREADS:-$(nproc)}" xmx="${VKS_XMX:-512m}"

work="$(mktemp -d "${TMPDIR:-/tmp}/vs-kafka-streams.XXXXXX")"
prefix="vks-$(date +%s)-$$"
cleanup() {
  bash deploy/kafka.sh topics --delete --topic ".*$prefix.*" >/dev/null 2>&1 || true
  [ "${VKS_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
say() { printf '== %s\n' "$*" >&2; }

say "build: fitstream (cargo, release) and the Kafka Streams peer (Maven)"
cargo build --release -q -j 2 -p fitstream --bin fitstream
FITSTREAM="${CARGO_TARGET_DIR:-$REPO/target}/release/fitstream"
jar="$(bash bench/kafka-streams/build.sh)"
# shellcheck source=kafka-streams/harness.sh
source bench/kafka-streams/harness.sh

say "input: $rate events/s for $seconds s, $customers customers, seed $seed; $partitions partition(s)"
kd_configs "$work" "$prefix" "$partitions"
kd_input "$work/input.jsonl" "$rate" "$seconds" "$customers" "$seed"
records=$(wc -l <"$work/input.jsonl")
"$FITSTREAM" --config "$work/fitstream.toml" topics create >/dev/null
"$FITSTREAM" --config "$work/peer.toml" topics create >/dev/null
"$FITSTREAM" --config "$work/fitstream.toml" produce --input "$work/input.jsonl" >&2

# measure NAME COMMAND...: runs it under /usr/bin/time; appends "NAME wall user sys maxrss_kb".
measure() {
  local name=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
    echo "$name failed; its stderr:" >&2
    tail -20 "$work/$name.err" >&2
    exit 1
  }
  echo "$name $(cat "$work/$name.time")" >>"$work/runs"
}

say "fitstream run planner --until-end"
RUST_LOG=warn measure fitstream "$FITSTREAM" --config "$work/fitstream.toml" run planner --until-end \
  --metrics-listen 127.0.0.1:0
say "Kafka Streams peer --until-end (-Xmx$xmx, $threads threads)"
measure kafka-streams java "-Xmx$xmx" -jar "$jar" --bootstrap "$BOOTSTRAP" --application-id "$prefix-kstreams" \
  --clickstream "$prefix.iob.clickstream.v1" --purchases "$prefix.iob.purchases.v1" \
  --cart-abandonment "$prefix-ks.marketing.cart-abandonment.v1" \
  --build-orders "$prefix-ks.factory.{plant}.build-orders.v1" \
  --plants deploy/plants.toml --threads "$threads" --state-dir "$work/kafka-streams-state" --until-end
cat "$work/kafka-streams.out" >&2

say "outputs compared"
kd_read "$work"
if kd_compare "$work" >"$work/compare" 2>&1; then equal="outputs equal"; else equal="outputs differ"; fi
cat "$work/compare" >&2

python3 - "$work/runs" "$records" "$equal" <<'PY'
import sys
runs, records, equal = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
print(f"input: {records} records (the flush record included)")
print(f"{'engine':<15} {'wall s':>8} {'records/s':>10} {'cpu s':>8} {'records/cpu-s':>14} {'peak RSS MiB':>13}")
for line in open(runs):
    name, wall, user, sys_, rss = line.split()
    wall, cpu, rss = float(wall), float(user) + float(sys_), int(rss) / 1024
    rows[name] = (records / cpu, rss)
    print(f"{name:<15} {wall:>8.1f} {records / wall:>10.0f} {cpu:>8.1f} {records / cpu:>14.0f} {rss:>13.0f}")
f, k = rows["fitstream"], rows["kafka-streams"]
print(f"fitstream/kafka-streams: records per cpu-second {f[0] / k[0]:.2f}, peak memory {f[1] / k[1]:.2f}, {equal}")
PY
