#!/usr/bin/env bash
# The consumer kit's examples (consumers/, docs/consumers.md) against the test broker: a
# simulated hour goes through `run all --until-end`, then every output topic is read twice,
# by `fitstream tail`, by the Python example and by the Java example, and all must see the
# same records (count, keys, and the fields that identify each: build-order request ids and
# quantities, abandoned carts' source events, profile versions, segment ids and labels).
# Installs the Python example's packages from PyPI into a cache on first use.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BOOTSTRAP="${FITSTREAM_TEST_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
FITSTREAM="${FITSTREAM:-${CARGO_TARGET_DIR:-$REPO/target}/debug/fitstream}"
[ -x "$FITSTREAM" ] || cargo build -q -j 2 -p fitstream --bin fitstream

python="$(bash consumers/python/venv.sh)"

jar="$(bash consumers/java/build.sh)"

work="$(mktemp -d "${TMPDIR:-/tmp}/consumers.XXXXXX")"
prefix="cons-$(date +%s)-$$"
trap 'bash deploy/kafka.sh topics --delete --topic ".*$prefix.*" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# The same configuration as the differential test's (every topic under the prefix, no
# time-based retention), three partitions.
# shellcheck source=../bench/kafka-streams/harness.sh
source bench/kafka-streams/harness.sh
kd_configs "$work" "$prefix" 3
cfg=(--config "$work/fitstream.toml")
"$FITSTREAM" "${cfg[@]}" topics create >/dev/null
"$FITSTREAM" "${cfg[@]}" simulate --bootstrap "$BOOTSTRAP" --seconds 7200 --rate 3 --customers 400 --seed 7 >/dev/null
RUST_LOG=warn "$FITSTREAM" "${cfg[@]}" run all --until-end --metrics-listen 127.0.0.1:0 >/dev/null

failed=0
for topic in customer-profiles segment-models segment-assignments segment-profiles \
  cart-abandonment factory.berlin.build-orders factory.lyon.build-orders \
  factory.porto.build-orders dead-letter; do
  case $topic in
    factory.*) name="$prefix.$topic.v1" ;;
    cart-abandonment | segment-assignments | segment-profiles) name="$prefix.marketing.$topic.v1" ;;
    *) name="$prefix.iob.$topic.v1" ;;
  esac
  "$FITSTREAM" "${cfg[@]}" tail "$name" --until-idle 3 --out "$work/tail.jsonl" >/dev/null
  "$python" consumers/python/consume.py --bootstrap "$BOOTSTRAP" --topic "$name" \
    --idle 3 >"$work/python.jsonl"
  java -jar "$jar" --bootstrap "$BOOTSTRAP" --topic "$name" --idle-seconds 3 >"$work/java.jsonl" 2>"$work/java.err"
  if ! python3 - "$work/tail.jsonl" "$work/python.jsonl" "$work/java.jsonl" "$topic" <<'PY'; then failed=1; fi
import json, sys
from decimal import Decimal

tail_path, py_path, java_path, topic = sys.argv[1:]
def ident(v):
    """The fields that identify a record of the topic, in a form both readers agree on."""
    if "request_id" in v:
        return (v["request_id"], v["request_state"], Decimal(str(v["quantity"])))
    if "source_event_id" in v:
        return (v["source_event_id"], v["customer_id"])
    if "label" in v and "segment_id" in v:
        return (v["segment_id"], v["label"], v["model_version"])
    if "segment_label" in v:
        return (v["customer_id"], v["segment_id"], v["model_version"])
    if "customer_id" in v:
        return (v["customer_id"], v["orders"], v["units"], v["product_views"], v["carts"], v["sessions"])
    if "version" in v:
        return (v["version"], v["sample_size"])
    return json.dumps(v, sort_keys=True)

def read(path, example):
    out = []
    for line in open(path):
        r = json.loads(line)
        if example:
            v = r.get("value")
            if v is None:
                v = {"value_hex": r.get("value_hex")} if "value_hex" in r else None
        else:
            v = r.get("value")
            if isinstance(v, dict) and "value_hex" in v:
                v = {"value_hex": v["value_hex"]}
        out.append((r["key"], None if v is None else ident(v)))
    return sorted(out, key=repr)

t = read(tail_path, False)
if not t:
    print(f"consumers: {topic}: fitstream tail read nothing")
    sys.exit(1)
bad = False
for name, path in (("Python", py_path), ("Java", java_path)):
    e = read(path, True)
    if t != e:
        bad = True
        print(f"consumers: {topic}: tail read {len(t)} records, the {name} example {len(e)}; first differences:")
        for a, b in [(a, b) for a, b in zip(t, e) if a != b][:5]:
            print(f"  tail    {a}\n  example {b}")
if bad:
    sys.exit(1)
print(f"consumers: {topic}: {len(t)} records, the same in fitstream tail and the Python and Java examples")
PY
done
if [ "$failed" = 1 ]; then
  echo "consumers: the examples do not read what fitstream wrote"
  exit 1
fi
echo "consumers: every output topic read the same by the Python and Java examples"
