#!/usr/bin/env bash
# fitstream's planner against its Kafka Streams peer (issue 15), in one run on one broker.
#
# 1. Throughput: one input of about 1M records, produced once, then one after the other, each
#    reading the whole input to its end: the transactional passthrough (the ceiling of any
#    exactly-once service: cli/examples/passthrough.rs), fitstream's planner (release build,
#    `run planner --until-end`) and the peer (`--until-end`). For each: wall seconds,
#    records/s, CPU seconds (user + sys of the process, from /usr/bin/time, which reads them
#    from the kernel like /proc), records per CPU-second, peak RSS. The peer runs with the
#    smallest -Xmx that works without GC thrash: tried upwards from 64m (each a full run of the
#    same input; thrash = killed, out of memory, slower than twice the 512m run, or GC pauses
#    over 10 % of the wall time, from -Xlog:gc); the table says which.
# 2. Both outputs are compared as the differential test does.
# 3. Latency at a fixed live rate (VKS_LATENCY_RATE records/s for VKS_LATENCY_SECONDS of wall
#    time, default 5,000/s for 120 s, time compressed 50x so windows close during the run),
#    each engine alone and running live: p50/p99 from the moment the engine's time (fitstream's
#    watermark, the peer's stream time) passes a window's end + grace to its build order being
#    visible to a read_committed consumer (cli/examples/latency.rs says exactly how).
#
# The last line is
#   fitstream/kafka-streams: records per cpu-second R, peak memory M, outputs equal|differ
#
# Settings (environment): FITSTREAM_TEST_BOOTSTRAP (default 127.0.0.1:9092); VKS_RATE,
# VKS_SECONDS, VKS_CUSTOMERS, VKS_SEED (the simulated input; default 100 events/s over 3.5 h:
# about 1.12M records once the simulator's defects are taken out); VKS_PARTITIONS (default 1:
# the input on which both must agree, see bench/kafka-streams/README.md); VKS_THREADS (the
# peer's stream threads, default: cores); VKS_XMX (a fixed heap: no search);
# VKS_LATENCY_RATE, VKS_LATENCY_SECONDS (0 skips the latency runs); VKS_FITSTREAM_TOML (lines
# appended to fitstream's configuration file, e.g. to try librdkafka settings under
# [kafka.properties]). Not part of CI.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
rate="${VKS_RATE:-100}" seconds="${VKS_SECONDS:-12600}" customers="${VKS_CUSTOMERS:-20000}" seed="${VKS_SEED:-15}"
partitions="${VKS_PARTITIONS:-1}" threads="${VKS_THREADS:-$(nproc)}"
latency_rate="${VKS_LATENCY_RATE:-5000}" latency_seconds="${VKS_LATENCY_SECONDS:-120}"

work="$(mktemp -d "${TMPDIR:-/tmp}/vs-kafka-streams.XXXXXX")"
prefix="vks-$(date +%s)-$$"
engine_pid=""
cleanup() {
  # A live engine of a latency run never outlives the script.
  [ -z "$engine_pid" ] || kill -TERM "$engine_pid" 2>/dev/null || true
  bash deploy/kafka.sh topics --delete --topic ".*$prefix.*" >/dev/null 2>&1 || true
  [ "${VKS_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
say() { printf '== %s\n' "$*" >&2; }

say "build: fitstream, the passthrough and the latency probe (cargo, release) and the Kafka Streams peer (Maven)"
cargo build --release -q -j 2 -p fitstream --bin fitstream --example passthrough --example latency
FITSTREAM="${CARGO_TARGET_DIR:-$REPO/target}/release/fitstream"
EXAMPLES="${CARGO_TARGET_DIR:-$REPO/target}/release/examples"
jar="$(bash bench/kafka-streams/build.sh)"
# shellcheck source=kafka-streams/harness.sh
source bench/kafka-streams/harness.sh

say "input: $rate events/s for $seconds s, $customers customers, seed $seed; $partitions partition(s)"
kd_configs "$work" "$prefix" "$partitions"
[ -z "${VKS_FITSTREAM_TOML:-}" ] || printf '\n%s\n' "$VKS_FITSTREAM_TOML" >>"$work/fitstream.toml"
kd_input "$work/input.jsonl" "$rate" "$seconds" "$customers" "$seed"
records=$(wc -l <"$work/input.jsonl")
"$FITSTREAM" --config "$work/fitstream.toml" topics create >/dev/null
"$FITSTREAM" --config "$work/peer.toml" topics create >/dev/null
"$FITSTREAM" --config "$work/fitstream.toml" produce --input "$work/input.jsonl" >&2

# measure NAME COMMAND...: runs it under /usr/bin/time; appends "NAME wall user sys maxrss_kb"
# to runs (unless NAME starts with "try-"); returns the command's status.
measure() {
  local name=$1 status=0
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || status=$?
  if [ "$status" != 0 ]; then
    echo "$name failed ($status); its stderr ends:" >&2
    tail -5 "$work/$name.err" >&2
    return "$status"
  fi
  case $name in try-*) ;; *) echo "$name $(cat "$work/$name.time")" >>"$work/runs" ;; esac
}

say "transactional passthrough --until-end"
RUST_LOG=warn measure passthrough "$EXAMPLES/passthrough" --config "$work/fitstream.toml" \
  --to "$prefix.passthrough" --until-end
say "fitstream run planner --until-end"
RUST_LOG=warn measure fitstream "$FITSTREAM" --config "$work/fitstream.toml" run planner --until-end \
  --metrics-listen 127.0.0.1:0

# peer NAME HEAP [TIMEOUT_S]: the peer over the whole input with -XmxHEAP, its own application id
# and output topics, GC pauses logged to $work/NAME.gc.
peer() {
  local name=$1 heap=$2 limit=${3:-0} out="$prefix-$1"
  measure "$name" timeout -s KILL "$limit" java "-Xmx$heap" "-Xlog:gc:file=$work/$name.gc" -jar "$jar" \
    --bootstrap "$BOOTSTRAP" --application-id "$prefix-$name" \
    --clickstream "$prefix.iob.clickstream.v1" --purchases "$prefix.iob.purchases.v1" \
    --cart-abandonment "$out.marketing.cart-abandonment.v1" \
    --build-orders "$out.factory.{plant}.build-orders.v1" \
    --plants deploy/plants.toml --threads "$threads" --state-dir "$work/$name-state" --until-end
}
# gc_share NAME: GC pause seconds over wall seconds of a peer run.
gc_share() {
  python3 - "$work/$1.gc" "$work/$1.time" <<'PY'
import re, sys
pauses = sum(float(m.group(1)) for line in open(sys.argv[1]) if "Pause" in line
             for m in [re.search(r"([0-9.]+)ms$", line.strip())] if m)
wall = float(open(sys.argv[2]).read().split()[0])
print(f"{pauses / 1000 / wall:.3f}")
PY
}

if [ -n "${VKS_XMX:-}" ]; then
  xmx=$VKS_XMX
  say "Kafka Streams peer --until-end (-Xmx$xmx, $threads threads)"
  peer try-fixed "$xmx"
  cp "$work/try-fixed.time" "$work/kafka-streams.time"
  echo "kafka-streams $(cat "$work/kafka-streams.time")" >>"$work/runs"
  heap_note="-Xmx$xmx (fixed by VKS_XMX)"
else
  say "Kafka Streams peer: the reference run with -Xmx512m"
  peer try-512m 512m
  ref_wall=$(cut -d' ' -f1 "$work/try-512m.time")
  limit=$(python3 -c "print(int(2 * $ref_wall) + 30)")
  xmx=""
  for heap in 64m 96m 128m 192m 256m 384m; do
    say "Kafka Streams peer with -Xmx$heap (killed after ${limit} s)"
    if peer "try-$heap" "$heap" "$limit"; then
      share=$(gc_share "try-$heap")
      wall=$(cut -d' ' -f1 "$work/try-$heap.time")
      say "  -Xmx$heap: ${wall} s, GC pauses ${share} of the wall time"
      if python3 -c "import sys; sys.exit(0 if $share <= 0.10 and $wall <= 2 * $ref_wall else 1)"; then
        xmx=$heap
        break
      fi
    fi
  done
  if [ -z "$xmx" ]; then
    xmx=512m
  fi
  cp "$work/try-$xmx.time" "$work/kafka-streams.time"
  echo "kafka-streams $(cat "$work/kafka-streams.time")" >>"$work/runs"
  heap_note="-Xmx$xmx: the smallest of 64m 96m 128m 192m 256m 384m 512m without GC thrash (GC pauses $(gc_share "try-$xmx") of the wall time)"
fi
measured=try-$xmx
[ -n "${VKS_XMX:-}" ] && measured=try-fixed
cat "$work/$measured.out" >&2
# The outputs compared are those of the run measured.
sed -i "s/$prefix-ks\./$prefix-$measured./" "$work/peer.toml"

say "outputs compared"
kd_read "$work"
if kd_compare "$work" >"$work/compare" 2>&1; then equal="outputs equal"; else equal="outputs differ"; fi
cat "$work/compare" >&2

# latency_run ENGINE: the engine alone on fresh topics (one partition), running live; the
# probe sends the latency input at the fixed rate and reads its build orders.
latency_run() {
  local engine=$1 lp="$prefix-lat-$1" dir="$work/lat-$1" pid time
  mkdir -p "$dir"
  kd_configs "$dir" "$lp" 1
  # Nobody writes the segment-assignments table here (the peer has none), so no progress
  # marker would tell the planner it is current: purchases would wait the whole segment
  # grace (1 min of event time) for it. A table kept current by the profiler ends that wait
  # at once; this run does the same by not waiting.
  printf '\n[planner]\nsegment_grace_ms = 0\n' >>"$dir/fitstream.toml"
  "$FITSTREAM" --config "$dir/fitstream.toml" topics create >/dev/null
  if [ "$engine" = fitstream ]; then
    time=watermark
    RUST_LOG=warn "$FITSTREAM" --config "$dir/fitstream.toml" run planner \
      --metrics-listen 127.0.0.1:0 >"$dir/engine.log" 2>&1 &
  else
    time=stream-time
    java "-Xmx$xmx" -jar "$jar" --bootstrap "$BOOTSTRAP" --application-id "$lp-ks" \
      --clickstream "$lp.iob.clickstream.v1" --purchases "$lp.iob.purchases.v1" \
      --cart-abandonment "$lp.marketing.cart-abandonment.v1" \
      --build-orders "$lp.factory.{plant}.build-orders.v1" \
      --plants deploy/plants.toml --threads "$threads" --state-dir "$dir/state" >"$dir/engine.log" 2>&1 &
  fi
  pid=$!
  engine_pid=$pid
  sleep 15 # joined its group, tasks assigned
  say "latency: $engine live, $latency_rate records/s for $latency_seconds s"
  "$EXAMPLES/latency" --config "$dir/fitstream.toml" --input "$work/latency-input.jsonl" \
    --rate "$latency_rate" --seconds "$latency_seconds" --time "$time" >"$dir/latency.out" 2>"$dir/latency.err" || {
    echo "the latency probe failed for $engine:" >&2
    tail -n 5 "$dir/latency.err" "$dir/engine.log" >&2
  }
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  engine_pid=""
  cat "$dir/latency.out" >&2
  sed -n "s/^latency: /$engine /p" "$dir/latency.out" >>"$work/latency"
}
: >"$work/latency"
if [ "$latency_seconds" != 0 ]; then
  # 100 events/s of event time sent at the fixed rate: event time runs rate/100 times faster
  # than the wall clock, so windows close every few seconds.
  kd_input "$work/latency-input.jsonl" 100 $((latency_rate * latency_seconds / 100 + 600)) "$customers" "$seed"
  latency_run fitstream
  latency_run kafka-streams
fi

python3 - "$work/runs" "$records" "$equal" "$heap_note" "$work/latency" <<'PY'
import sys
runs, records, equal, heap_note, latency = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = {}
print(f"input: {records} records (the flush record included)")
print(f"{'engine':<15} {'wall s':>8} {'records/s':>10} {'cpu s':>8} {'records/cpu-s':>14} {'peak RSS MiB':>13}")
for line in open(runs):
    name, wall, user, sys_, rss = line.split()
    wall, cpu, rss = float(wall), float(user) + float(sys_), int(rss) / 1024
    rows[name] = (records / cpu, rss)
    print(f"{name:<15} {wall:>8.1f} {records / wall:>10.0f} {cpu:>8.1f} {records / cpu:>14.0f} {rss:>13.0f}")
print(f"kafka-streams heap: {heap_note}")
for line in open(latency):
    print(f"latency after window close, {line.strip()}")
f, k = rows["fitstream"], rows["kafka-streams"]
print(f"fitstream/kafka-streams: records per cpu-second {f[0] / k[0]:.2f}, peak memory {f[1] / k[1]:.2f}, {equal}")
PY
