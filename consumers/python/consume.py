#!/usr/bin/env python3
"""Reads one of fitstream's topics and prints each record as one JSON object per line.

The way any team subscribes to fitstream's outputs (docs/consumers.md):

- read_committed: fitstream writes in transactions; aborted records must stay unseen;
- values are Confluent-framed Avro (magic byte 0, a 4-byte big-endian schema id, then Avro
  binary); the schema comes from the repository's schemas/ directory by topic, so no schema
  registry is needed (with one, look the id up there instead);
- progress markers (a key, no value, the `fitstream.watermark` header) say "everything up to
  this event time is published" and are skipped here (--markers prints them);
- a record without a value on a compacted topic is a tombstone: the key was deleted;
- dead letters (iob.dead-letter.v1) are not Avro: their value is the original bytes and their
  headers say why.

    python3 consume.py --bootstrap 127.0.0.1:9092 --topic factory.berlin.build-orders.v1
    python3 consume.py --topic marketing.cart-abandonment.v1 --from-end --group my-team
    python3 consume.py --topic factory.berlin.build-orders.v1 --registry http://registry:8081

With --registry (fitstream run with a schema registry), values are decoded by Confluent's own
AvroDeserializer, which looks each schema id up in the registry (--registry-user,
--registry-password and --registry-ca for one with basic authentication and its own CA).

Dependencies: confluent-kafka (with its Avro and schema-registry extras) and fastavro
(requirements.txt).
"""

import argparse
import base64
import datetime
import decimal
import io
import json
import os
import struct
import sys
import time

import fastavro
from confluent_kafka import Consumer, KafkaError

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas")

# Topic name -> schema file, by the part of the name that says what the topic holds (the
# default names, or any prefixed copy of them).
KINDS = [
    ("build-orders", "build-order.avsc"),
    ("cart-abandonment", "cart-abandonment.avsc"),
    ("customer-profiles", "customer-profile.avsc"),
    ("segment-models", "segment-model.avsc"),
    ("segment-assignments", "segment-assignment.avsc"),
    ("segment-profiles", "segment-profile.avsc"),
    ("clickstream", "click-event.avsc"),
    ("purchases", "purchase-event.avsc"),
]
WATERMARK_HEADER = "fitstream.watermark"


def schema_for(topic):
    if "dead-letter" in topic:
        return None
    for part, file in KINDS:
        if part in topic:
            with open(os.path.join(SCHEMAS, file)) as f:
                return fastavro.parse_schema(json.load(f))
    raise SystemExit(f"no schema for topic {topic!r}")


def plain(value):
    """Avro values as JSON: decimals as strings, times as ISO 8601, bytes as base64."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def decode(schema, raw):
    if len(raw) < 5 or raw[0] != 0:
        raise ValueError("not Confluent-framed Avro (magic byte 0 + 4-byte schema id)")
    (schema_id,) = struct.unpack(">I", raw[1:5])
    return schema_id, fastavro.schemaless_reader(io.BytesIO(raw[5:]), schema)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--topic", required=True)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="the default without --group")
    start.add_argument("--from-end", action="store_true", help="only records written from now on")
    p.add_argument("--group", help="a consumer group to resume from and commit to")
    p.add_argument("--idle", type=float, default=5.0, help="stop after this many seconds without a record")
    p.add_argument("--markers", action="store_true", help="print progress markers too")
    p.add_argument("--registry", help="a Confluent-compatible schema registry's URL")
    p.add_argument("--registry-user")
    p.add_argument("--registry-password")
    p.add_argument("--registry-ca", help="a PEM file of the registry's CA")
    args = p.parse_args()

    schema = schema_for(args.topic)
    registry_decode = None
    if args.registry and schema is not None:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        conf = {"url": args.registry}
        if args.registry_user:
            conf["basic.auth.user.info"] = f"{args.registry_user}:{args.registry_password or ''}"
        if args.registry_ca:
            conf["ssl.ca.location"] = args.registry_ca
        deserializer = AvroDeserializer(SchemaRegistryClient(conf))

        def registry_decode(m):
            (schema_id,) = struct.unpack(">I", m.value()[1:5])
            return schema_id, deserializer(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group or f"consume-py-{os.getpid()}-{time.time_ns()}",
        "isolation.level": "read_committed",
        "auto.offset.reset": "latest" if args.from_end else "earliest",
        "enable.auto.commit": bool(args.group),
    })
    # The idle time counts from the assignment: joining a new group alone can take longer
    # (the broker's group.initial.rebalance.delay.ms is 3 s by default).
    assigned = []
    consumer.subscribe([args.topic], on_assign=lambda c, parts: assigned.append(time.monotonic()))
    started = time.monotonic()
    last = None
    try:
        while True:
            now = time.monotonic()
            if last is None and assigned:
                last = assigned[0]
            if last is None and now - started > 60:
                raise SystemExit(f"no partitions of {args.topic} assigned within 60 s")
            if last is not None and now - last >= args.idle:
                break
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise SystemExit(f"consumer error: {m.error()}")
            last = time.monotonic()
            headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (m.headers() or [])}
            key = m.key().decode("utf-8", "replace") if m.key() is not None else None
            out = {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                   "key": key, "timestamp": m.timestamp()[1]}
            if WATERMARK_HEADER in headers:
                if not args.markers:
                    continue
                out["progress_marker"] = headers[WATERMARK_HEADER]
            elif m.value() is None:
                out["tombstone"] = True
            elif schema is None:
                out["headers"] = headers
                out["value_hex"] = m.value().hex()
            elif registry_decode is not None:
                schema_id, value = registry_decode(m)
                out["schema_id"] = schema_id
                out["value"] = plain(value)
            else:
                schema_id, value = decode(schema, m.value())
                out["schema_id"] = schema_id
                out["value"] = plain(value)
            print(json.dumps(out, sort_keys=True), flush=True)
    except BrokenPipeError:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
