#!/usr/bin/env bash
# The profiler's lookup API under load while the profiler processes input (issue 19).
#
# One simulated input (LB_SECONDS_OF_INPUT of event time at LB_RATE events/s) is produced
# three times, into three sets of topics. On each set the profiler and the segmenter run live as two
# processes (release build, the profiler with `--api`), starting from nothing with the whole
# input as their backlog:
#   - run 1, queries: once the profiler holds its partitions, oha (bench/oha.sh) asks for
#     customers at a fixed rate (LB_QPS requests/s for LB_QUERY_SECONDS, LB_CONNECTIONS
#     connections) drawn from the input's customer ids (some are not profiled yet: 404s);
#   - run 2, no queries: the same, without the load;
#   - run 3, no API: the profiler without `--api` (what keeping the lookup view costs).
# The profiler's throughput in each run is the growth of fitstream_records_in_total over the
# same window (from LB_WARMUP seconds after it holds its partitions, for LB_QUERY_SECONDS):
# its /metrics, read before and after. The script fails if the backlog ran out inside the
# window (the window would then measure idleness).
#
# The last lines are
#   lookup: Q requests/s offered, A answered/s, 200: n, 404: n, other: n; latency p50 X ms, p99 Y ms
#   profiler: R1 records/s with queries, R2 without: R1/R2 of it; R3 without the API (...)
#   cpu without the API: profiler P records per cpu-second, segmenter S profiles per cpu-second
# (user + system time of each process over run 3's window, from /proc/PID/stat).
#
# Settings (environment): FITSTREAM_TEST_BOOTSTRAP (default 127.0.0.1:9092), LB_RATE (20),
# LB_SECONDS_OF_INPUT (172800), LB_QPS (2000), LB_QUERY_SECONDS (20), LB_WARMUP (3),
# LB_CONNECTIONS (16), LB_PARTITIONS (3). Needs the broker (deploy/kafka.sh start). Not in CI.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
rate="${LB_RATE:-20}" input_seconds="${LB_SECONDS_OF_INPUT:-172800}"
qps="${LB_QPS:-2000}" query_seconds="${LB_QUERY_SECONDS:-20}" warmup="${LB_WARMUP:-3}"
connections="${LB_CONNECTIONS:-16}" partitions="${LB_PARTITIONS:-3}"

work="$(mktemp -d "${TMPDIR:-/tmp}/lookup-bench.XXXXXX")"
prefix="lookup-$(date +%s)-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash deploy/kafka.sh topics --delete --topic ".*$prefix.*" >/dev/null 2>&1 || true
  [ "${LB_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
say() { printf '== %s\n' "$*" >&2; }

say "build: fitstream (release) and oha"
cargo build --release -q -j 2 -p fitstream --bin fitstream
FITSTREAM="${CARGO_TARGET_DIR:-$REPO/target}/release/fitstream"
OHA="$(bash bench/oha.sh)"

config() {
  local set=$1
  cat >"$work/$set.toml" <<TOML
application_suffix = "-$prefix-$set"

[kafka]
bootstrap_servers = "$BOOTSTRAP"

[topics]
clickstream = "$prefix-$set.iob.clickstream.v1"
purchases = "$prefix-$set.iob.purchases.v1"
profiles = "$prefix-$set.iob.customer-profiles.v1"
segment_models = "$prefix-$set.iob.segment-models.v1"
segment_assignments = "$prefix-$set.marketing.segment-assignments.v1"
segment_profiles = "$prefix-$set.marketing.segment-profiles.v1"
cart_abandonment = "$prefix-$set.marketing.cart-abandonment.v1"
build_orders = "$prefix-$set.factory.{plant}.build-orders.v1"
dead_letter = "$prefix-$set.iob.dead-letter.v1"
partitions = $partitions
retention_ms = -1

[registry]
pinned_ids = true
TOML
}

say "input: $rate events/s for $input_seconds s of event time"
"$FITSTREAM" simulate --rate "$rate" --seconds "$input_seconds" --out "$work/input.jsonl" >/dev/null
records=$(wc -l <"$work/input.jsonl")
# The ids asked for: the input's customers, in a random order, as URLs.
python3 - "$work/input.jsonl" "$work/urls.txt" "$qps" <<'PY'
import json, random, sys, urllib.parse
ids = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    v = r.get("value")
    if isinstance(v, dict) and v.get("customer_id"):
        ids.add(v["customer_id"])
ids = sorted(ids)
random.Random(19).shuffle(ids)
with open(sys.argv[2], "w") as f:
    for i in ids:
        f.write("http://API/v1/customers/" + urllib.parse.quote(i, safe="") + "\n")
print(f"{len(ids)} customer ids", file=sys.stderr)
PY
for set in queries quiet bare; do
  config "$set"
  FITSTREAM_CONFIG="$work/$set.toml" "$FITSTREAM" topics create >/dev/null
  FITSTREAM_CONFIG="$work/$set.toml" "$FITSTREAM" produce --input "$work/input.jsonl" --format jsonl >/dev/null
done
say "$records records produced into each set of topics"

metric() { # metric PORT NAME: the sum of a counter's series
  curl -fsS "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 ~ "^"n"({|$)" {s += $2} END {printf "%.0f\n", s}'
}

cpu() { # cpu PID: user + system seconds of a process so far
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$1/stat"
}

run() { # run SET MODE(queries|quiet|no-api): prints "records/s"; $work/SET.cpu gets the CPU
  local set=$1 mode=$2 api=$((18000 + RANDOM % 1000)) metrics=$((19000 + RANDOM % 1000))
  local seg_metrics=$((20000 + RANDOM % 1000))
  local api_args=(--api "127.0.0.1:$api")
  [ "$mode" != no-api ] || api_args=()
  FITSTREAM_CONFIG="$work/$set.toml" RUST_LOG=warn "$FITSTREAM" run segmenter \
    --metrics-listen "127.0.0.1:$seg_metrics" 2>"$work/$set-segmenter.log" &
  pids+=($!)
  FITSTREAM_CONFIG="$work/$set.toml" RUST_LOG=warn "$FITSTREAM" run profiler \
    --metrics-listen "127.0.0.1:$metrics" "${api_args[@]}" 2>"$work/$set-profiler.log" &
  pids+=($!)
  local waited=0 ready
  ready() {
    if [ "$mode" = no-api ]; then
      curl -fsS "http://127.0.0.1:$metrics/readyz" >/dev/null 2>&1
    else
      curl -fsS "http://127.0.0.1:$api/v1/status" 2>/dev/null |
        python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if sum(p['state']=='ready' for p in s['partitions'])==$partitions else 1)" 2>/dev/null
    fi
  }
  until ready; do
    sleep 0.2
    waited=$((waited + 1))
    [ "$waited" -lt 600 ] || { echo "the profiler never held its partitions" >&2; exit 1; }
  done
  sleep "$warmup"
  local r0 r1 t0 t1 s0 s1 c0 c1 d0 d1
  local segmenter_pid=${pids[0]} profiler_pid=${pids[1]}
  r0=$(metric "$metrics" fitstream_records_in_total)
  s0=$(metric "$seg_metrics" fitstream_records_in_total)
  c0=$(cpu "$profiler_pid") d0=$(cpu "$segmenter_pid")
  t0=$(date +%s.%N)
  if [ "$mode" = queries ]; then
    sed "s#http://API#http://127.0.0.1:$api#" "$work/urls.txt" >"$work/urls-$set.txt"
    "$OHA" --no-tui --output-format json -q "$qps" --latency-correction -c "$connections" -z "${query_seconds}s" --worker-threads 1 \
      --urls-from-file "$work/urls-$set.txt" >"$work/oha.json"
  else
    sleep "$query_seconds"
  fi
  r1=$(metric "$metrics" fitstream_records_in_total)
  s1=$(metric "$seg_metrics" fitstream_records_in_total)
  c1=$(cpu "$profiler_pid") d1=$(cpu "$segmenter_pid")
  t1=$(date +%s.%N)
  echo "$((r1 - r0)) $(python3 -c "print($c1 - $c0)") $((s1 - s0)) $(python3 -c "print($d1 - $d0)")" >"$work/$set.cpu"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  if [ "$r1" -ge "$records" ]; then
    echo "the backlog ran out inside the window ($r1 of $records records): raise LB_SECONDS_OF_INPUT or LB_RATE" >&2
    exit 1
  fi
  python3 -c "print(f'{($r1 - $r0) / ($t1 - $t0):.0f}')"
}

say "run 1: the profiler with $qps requests/s for $query_seconds s"
with=$(run queries queries)
say "run 2: the profiler with the API, without queries"
without=$(run quiet quiet)
say "run 3: the profiler without the API"
bare=$(run bare no-api)
python3 - "$work/oha.json" "$qps" "$with" "$without" "$bare" "$work/bare.cpu" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
qps, with_q, without, bare = (float(a) for a in sys.argv[2:6])
records, cpu, profiles, seg_cpu = (float(x) for x in open(sys.argv[6]).read().split())
s = o["summary"]
codes = o.get("statusCodeDistribution", {})
other = sum(v for k, v in codes.items() if k not in ("200", "404"))
lat = o["latencyPercentiles"]
print(f"lookup: {qps:.0f} requests/s offered, {s['requestsPerSec']:.0f} answered/s, "
      f"200: {codes.get('200', 0)}, 404: {codes.get('404', 0)}, other: {other}; "
      f"latency p50 {lat['p50'] * 1000:.2f} ms, p99 {lat['p99'] * 1000:.2f} ms")
print(f"profiler: {with_q:.0f} records/s with queries, {without:.0f} without: {with_q / without:.2f} of it; "
      f"{bare:.0f} without the API (the view costs {1 - without / bare:.0%})")
print(f"cpu without the API: profiler {records / cpu:.0f} records per cpu-second ({cpu:.1f} cpu-s), "
      f"segmenter {profiles / seg_cpu:.0f} profiles per cpu-second ({seg_cpu:.1f} cpu-s)")
PY
