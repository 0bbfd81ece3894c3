//! The JSON-lines record format shared by `replay`, `demo` and `tail`: one object per record,
//! `{"topic", "partition", "key", "timestamp", "value"}`, with the value decoded to JSON
//! (dead letters: `{"value_hex", "headers"}` instead, since their bytes are the point).

use fitstream_contracts::records::*;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_contracts::{Codec, DecodeError, SchemaKind};
use serde_json::{Value, json};

/// Decodes a value of `topic` to JSON by the topic's schema.
pub fn decode_value(
    codec: &Codec,
    topics: &TopicsConfig,
    topic: &str,
    bytes: &[u8],
) -> Result<Value, DecodeError> {
    fn j<T: serde::Serialize>(r: T) -> Value {
        serde_json::to_value(r).unwrap_or(Value::Null)
    }
    let Some(kind) = topics.kind_of(topic) else {
        return Ok(json!({ "value_hex": hex::encode(bytes) }));
    };
    Ok(match kind {
        SchemaKind::ClickEvent => j(codec.decode::<ClickEvent>(topic, bytes)?),
        SchemaKind::PurchaseEvent => j(codec.decode::<PurchaseEvent>(topic, bytes)?),
        SchemaKind::CustomerProfile => j(codec.decode::<CustomerProfile>(topic, bytes)?),
        SchemaKind::SegmentModel => j(codec.decode::<SegmentModel>(topic, bytes)?),
        SchemaKind::SegmentAssignment => j(codec.decode::<SegmentAssignment>(topic, bytes)?),
        SchemaKind::SegmentProfile => j(codec.decode::<SegmentProfile>(topic, bytes)?),
        SchemaKind::CartAbandonment => j(codec.decode::<CartAbandonment>(topic, bytes)?),
        SchemaKind::BuildOrder => j(codec.decode::<BuildOrder>(topic, bytes)?),
    })
}

/// One JSON line.
pub fn line(
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    value: Value,
) -> Value {
    json!({
        "topic": topic,
        "partition": partition,
        "key": key.map(|k| String::from_utf8_lossy(k).into_owned()),
        "timestamp": timestamp,
        "value": value,
    })
}
