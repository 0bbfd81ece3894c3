# Shared by tests/kafka-streams-diff.sh (the differential test) and bench/vs-kafka-streams.sh:
# one input on which fitstream's planner and the Kafka Streams peer must agree, both engines
# run on it against one broker, their outputs read back (read_committed) and compared.
# Source it; it defines functions and needs REPO (the repository root), FITSTREAM (the
# binary) and BOOTSTRAP.

# kd_configs DIR PREFIX PARTITIONS: DIR/fitstream.toml (fitstream's topics under PREFIX) and
# DIR/peer.toml (the same, with the peer's output topics under PREFIX-ks, to decode them).
kd_configs() {
  local dir=$1 prefix=$2 partitions=$3 out
  for side in fitstream peer; do
    out=$prefix
    [ "$side" = peer ] && out="$prefix-ks"
    cat >"$dir/$side.toml" <<TOML
application_suffix = "-$prefix"

[kafka]
bootstrap_servers = "$BOOTSTRAP"

[topics]
clickstream = "$prefix.iob.clickstream.v1"
purchases = "$prefix.iob.purchases.v1"
profiles = "$prefix.iob.customer-profiles.v1"
segment_models = "$prefix.iob.segment-models.v1"
segment_assignments = "$prefix.marketing.segment-assignments.v1"
segment_profiles = "$prefix.marketing.segment-profiles.v1"
cart_abandonment = "$out.marketing.cart-abandonment.v1"
build_orders = "$out.factory.{plant}.build-orders.v1"
dead_letter = "$prefix.iob.dead-letter.v1"
partitions = $partitions
# Input records carry event times of early 2026: no time-based deletion while a run reads them.
retention_ms = -1

[watermark]
# A replay: the end of the input closes the windows, not the wall clock.
advance_when_idle = false

[registry]
# No schema registry here: fitstream's own schema ids, on purpose.
pinned_ids = true
TOML
  done
}

# kd_input OUT RATE SECONDS CUSTOMERS SEED: the agreed input as JSON lines for `fitstream produce`:
# simulated behaviour without its deliberate defects (malformed records, duplicates, late and
# out-of-order records), in event-time order, then one flush purchase (customer, order and SKU
# `zz-flush`) 40 min of event time after the last record: past every build window's end + grace
# (at most 20 min) and every cart's join window + grace (35 min), within fitstream's 1 h skew
# limit. The segment-assignments topic stays empty: every buyer is "unassigned".
kd_input() {
  local out=$1 rate=$2 seconds=$3 customers=$4 seed=$5
  "$FITSTREAM" simulate --rate "$rate" --seconds "$seconds" --customers "$customers" --seed "$seed" \
    --out "$out.sim" >/dev/null
  python3 - "$out.sim" "$out" <<'PY'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
seen, records = set(), []
for n, line in enumerate(open(src)):
    r = json.loads(line)
    if "value" not in r:          # a deliberately malformed record (raw bytes)
        continue
    v = r["value"]
    ident = (r["topic"], v.get("event_id") or v.get("order_id"))
    if ident in seen:             # a deliberate duplicate
        continue
    seen.add(ident)
    records.append((v["event_time"], n, r))
records.sort(key=lambda x: (x[0], x[1]))   # event-time order (late and out-of-order records put back)
# Moved by whole days (windows stay aligned) to end a day or more before now: topics'
# time-based retention (the engines' internal topics, 7 days of output topics) keeps them.
import time
DAY = 86_400_000
shift = (int(time.time() * 1000) - records[-1][0] - DAY) // DAY * DAY
for _, _, r in records:
    r["timestamp"] += shift
    r["value"]["event_time"] += shift
last = records[-1][0] + shift
flush_t = last + 40 * 60_000
flush = {"key": "zz-flush", "partition": None, "timestamp": flush_t, "topic": "iob.purchases.v1",
         "value": {"currency": "EUR", "customer_id": "zz-flush", "event_time": flush_t, "order_id": "zz-flush",
                   "region": "", "session_id": "zz-flush",
                   "lines": [{"category": None, "options": {}, "product_id": "zz-flush", "quantity": 1,
                              "sku": "zz-flush", "unit_price": "0.00"}]}}
with open(dst, "w") as f:
    for _, _, r in records:
        f.write(json.dumps(r) + "\n")
    f.write(json.dumps(flush) + "\n")
print(f"input: {len(records)} records in event-time order + 1 flush record", file=sys.stderr)
PY
  rm -f "$out.sim"
}

# kd_read DIR: reads both engines' outputs (read_committed) into DIR/{fitstream,peer}.jsonl.
kd_read() {
  local dir=$1 side topic plant
  for side in fitstream peer; do
    : >"$dir/$side.jsonl"
    topic=$(sed -n 's/^cart_abandonment = "\(.*\)"$/\1/p' "$dir/$side.toml")
    "$FITSTREAM" --config "$dir/$side.toml" tail "$topic" --until-idle 3 --out "$dir/$side.part" >/dev/null
    cat "$dir/$side.part" >>"$dir/$side.jsonl"
    for plant in berlin lyon porto; do
      topic=$(sed -n 's/^build_orders = "\(.*\)"$/\1/p' "$dir/$side.toml" | sed "s/{plant}/$plant/")
      "$FITSTREAM" --config "$dir/$side.toml" tail "$topic" --until-idle 3 --out "$dir/$side.part" >/dev/null
      cat "$dir/$side.part" >>"$dir/$side.jsonl"
    done
    rm -f "$dir/$side.part"
  done
}

# kd_compare DIR: Released units per (SKU, window) and the set of abandoned carts (source event
# ids) of DIR/fitstream.jsonl and DIR/peer.jsonl, the flush SKU left out. Prints a summary;
# exit status 0 when equal (and not empty), 1 when they differ.
kd_compare() {
  python3 - "$1/fitstream.jsonl" "$1/peer.jsonl" <<'PY'
import json, sys
from collections import defaultdict
from decimal import Decimal

def read(path):
    released, abandoned, errors = defaultdict(Decimal), set(), 0
    for line in open(path):
        r = json.loads(line)
        v = r.get("value") or {}
        if "error" in v:
            errors += 1
        elif "source_event_id" in v:
            abandoned.add(v["source_event_id"])
        elif v.get("request_state") == "Released" and v.get("material_definition_id") != "zz-flush":
            released[(v["material_definition_id"], v["window_start"])] += Decimal(str(v["quantity"]))
    return dict(released), abandoned, errors

(fr, fa, fe), (pr, pa, pe) = read(sys.argv[1]), read(sys.argv[2])
print(f"fitstream:     {len(fr)} Released (SKU, window)s, {sum(fr.values())} units, {len(fa)} abandoned carts, {fe} undecodable")
print(f"kafka-streams: {len(pr)} Released (SKU, window)s, {sum(pr.values())} units, {len(pa)} abandoned carts, {pe} undecodable")
problems = []
for k in sorted(set(fr) | set(pr)):
    if fr.get(k) != pr.get(k):
        problems.append(f"Released {k[0]} window {k[1]}: fitstream {fr.get(k)}, kafka-streams {pr.get(k)}")
for c in sorted(fa - pa):
    problems.append(f"abandoned cart {c}: only fitstream")
for c in sorted(pa - fa):
    problems.append(f"abandoned cart {c}: only kafka-streams")
if fe or pe:
    problems.append(f"undecodable output records: fitstream {fe}, kafka-streams {pe}")
if not fr or not fa:
    problems.append("the input exercised nothing (no Released window or no abandoned cart)")
for p in problems[:20]:
    print("  " + p)
if len(problems) > 20:
    print(f"  ... and {len(problems) - 20} more")
print("outputs equal" if not problems else f"outputs differ ({len(problems)} differences)")
sys.exit(1 if problems else 0)
PY
}
