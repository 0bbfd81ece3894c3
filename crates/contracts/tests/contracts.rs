//! The Rust records and the `.avsc` files agree, values survive the wire, and every kind of
//! malformed input is rejected with its dead-letter reason.

use apache_avro::Schema;
use apache_avro::types::Value;
use fitstream_contracts::codec::{self, DecodeError};
use fitstream_contracts::records::*;
use fitstream_contracts::samples;
use fitstream_contracts::{Codec, SchemaKind};

/// Compares the shape of a value built by a Rust type with its schema, field by field, in
/// both directions: a field only in the schema or only in the type is a drift.
fn assert_same_shape(path: &str, value: &Value, schema: &Schema) {
    match (value, schema) {
        (Value::Record(fields), Schema::Record(rs)) => {
            let from_type: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            let from_schema: Vec<&str> = rs.fields.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(from_type, from_schema, "fields of {path} drifted");
            for ((name, v), f) in fields.iter().zip(&rs.fields) {
                assert_same_shape(&format!("{path}.{name}"), v, &f.schema);
            }
        }
        (Value::Union(i, inner), Schema::Union(u)) => {
            let variant = &u.variants()[*i as usize];
            assert_same_shape(path, inner, variant);
        }
        (Value::Array(items), Schema::Array(a)) => {
            for item in items {
                assert_same_shape(&format!("{path}[]"), item, &a.items);
            }
        }
        _ => assert!(
            value.validate(schema),
            "{path}: {value:?} does not fit {schema:?}"
        ),
    }
}

fn check<T: Contract + codec::Validated + PartialEq + std::fmt::Debug>(topic: &str, record: T) {
    let value = record.to_avro().expect("to_avro");
    assert_same_shape(&format!("{:?}", T::KIND), &value, T::KIND.schema());
    assert!(
        value.validate(T::KIND.schema()),
        "{:?} sample does not validate",
        T::KIND
    );
    let codec = Codec::pinned();
    let bytes = codec.encode(topic, &record).expect("encode");
    assert_eq!(bytes[0], 0);
    let back: T = codec.decode(topic, &bytes).expect("decode");
    assert_eq!(back, record);
}

#[test]
fn records_match_their_schemas_and_roundtrip() {
    check("iob.clickstream.v1", samples::click());
    check("iob.clickstream.v1", samples::bare_click());
    check("iob.purchases.v1", samples::purchase());
    check("iob.customer-profiles.v1", samples::profile());
    check("iob.segment-models.v1", samples::model());
    check("marketing.segment-assignments.v1", samples::assignment());
    check("marketing.segment-profiles.v1", samples::segment_profile());
    check("marketing.cart-abandonment.v1", samples::abandonment());
    check("factory.berlin.build-orders.v1", samples::build_order());
}

#[test]
fn a_type_with_a_field_the_schema_lacks_is_caught() {
    // The drift check itself must be able to fail: add a field to a value by hand.
    let mut value = samples::assignment().to_avro().expect("to_avro");
    if let Value::Record(fields) = &mut value {
        fields.push(("extra".into(), Value::Int(1)));
    }
    let schema = SchemaKind::SegmentAssignment.schema();
    let caught =
        std::panic::catch_unwind(|| assert_same_shape("SegmentAssignment", &value, schema));
    assert!(caught.is_err());
}

fn reason<T: Contract + codec::Validated + std::fmt::Debug>(
    topic: &str,
    bytes: &[u8],
) -> &'static str {
    match Codec::pinned().decode::<T>(topic, bytes) {
        Ok(v) => panic!("decoded {v:?}"),
        Err(e) => e.reason(),
    }
}

const CLICKS: &str = "iob.clickstream.v1";
const PURCHASES: &str = "iob.purchases.v1";

#[test]
fn malformed_framing_is_a_decode_error() {
    assert_eq!(reason::<ClickEvent>(CLICKS, &[]), "decode");
    assert_eq!(reason::<ClickEvent>(CLICKS, &[0, 0, 0]), "decode");
    let mut good = Codec::pinned()
        .encode(CLICKS, &samples::click())
        .expect("encode");
    good[0] = 0x7b; // `{`: somebody wrote JSON
    assert_eq!(reason::<ClickEvent>(CLICKS, &good), "decode");
    assert_eq!(
        reason::<ClickEvent>(CLICKS, br#"{"event_id":"x"}"#),
        "decode"
    );
}

#[test]
fn truncated_and_trailing_datums_are_decode_errors() {
    let good = Codec::pinned()
        .encode(CLICKS, &samples::click())
        .expect("encode");
    assert_eq!(
        reason::<ClickEvent>(CLICKS, &good[..good.len() - 3]),
        "decode"
    );
    let mut long = good.clone();
    long.extend_from_slice(&[1, 2, 3]);
    assert_eq!(reason::<ClickEvent>(CLICKS, &long), "decode");
}

#[test]
fn unknown_or_wrong_schemas_are_schema_errors() {
    let good = Codec::pinned()
        .encode(CLICKS, &samples::click())
        .expect("encode");
    let unknown = codec::frame(77, &good[5..]);
    assert_eq!(reason::<ClickEvent>(CLICKS, &unknown), "schema");
    // A purchase on the clickstream topic.
    let purchase = Codec::pinned()
        .encode(PURCHASES, &samples::purchase())
        .expect("encode");
    assert_eq!(reason::<ClickEvent>(CLICKS, &purchase), "schema");
}

#[test]
fn a_datum_missing_a_required_field_is_a_schema_error() {
    // Written by a producer whose schema lacks `event_time` (which has no default), under our
    // ClickEvent id: the datum is shorter than our schema expects.
    let text = SchemaKind::ClickEvent.text();
    let mut json: serde_json::Value = serde_json::from_str(text).expect("json");
    let fields = json["fields"].as_array_mut().expect("fields");
    fields.retain(|f| f["name"] != "event_time");
    let writer = Schema::parse(&json).expect("schema");
    let mut value = samples::bare_click().to_avro().expect("avro");
    if let Value::Record(f) = &mut value {
        f.retain(|(n, _)| n != "event_time");
    }
    #[allow(deprecated)]
    let datum = apache_avro::to_avro_datum(&writer, value).expect("datum");
    let id = fitstream_contracts::registry::default_pinned_id(SchemaKind::ClickEvent);
    let r = reason::<ClickEvent>(CLICKS, &codec::frame(id, &datum));
    assert!(r == "decode" || r == "schema", "{r}");
}

#[test]
fn content_rules_are_validation_errors() {
    let codec = Codec::pinned();
    let mut p = samples::purchase();
    p.lines[0].quantity = -2;
    let bytes = codec.encode(PURCHASES, &p).expect("encode");
    let err = codec
        .decode::<PurchaseEvent>(PURCHASES, &bytes)
        .expect_err("negative quantity");
    assert_eq!(err.reason(), "validation");
    assert!(err.to_string().contains("quantity"), "{err}");

    let mut c = samples::click();
    c.event_time = fitstream_contracts::EventTime(0);
    let bytes = codec.encode(CLICKS, &c).expect("encode");
    assert_eq!(reason::<ClickEvent>(CLICKS, &bytes), "validation");

    let mut c = samples::click();
    c.sku = None;
    let bytes = codec.encode(CLICKS, &c).expect("encode");
    assert_eq!(reason::<ClickEvent>(CLICKS, &bytes), "validation");
}

#[test]
fn huge_values_are_too_large_to_write_and_to_read() {
    let mut c = samples::click();
    c.query = Some("x".repeat(codec::DEFAULT_MAX_VALUE_BYTES));
    let err = Codec::pinned().encode(CLICKS, &c).expect_err("too large");
    assert!(
        matches!(err, codec::EncodeError::TooLarge { len, max } if len > max && max == codec::DEFAULT_MAX_VALUE_BYTES),
        "{err}"
    );
    // What a producer with a larger limit wrote.
    let roomy = Codec::new(
        fitstream_contracts::registry::Registry::from_config(&Default::default()),
        4 * codec::DEFAULT_MAX_VALUE_BYTES,
    );
    let bytes = roomy.encode(CLICKS, &c).expect("encode");
    assert!(bytes.len() < codec::PRODUCER_MAX_MESSAGE_BYTES * 2);
    let err = Codec::pinned()
        .decode::<ClickEvent>(CLICKS, &bytes)
        .expect_err("too large");
    assert!(matches!(err, DecodeError::TooLarge { .. }));
    assert_eq!(err.reason(), "too-large");
}

/// A schema registry serving the two endpoints fitstream uses, on loopback: the real HTTP
/// protocol, with the registry's storage kept in memory.
mod registry_server {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::{Value, json};

    #[derive(Default)]
    pub struct Store {
        pub schemas: Vec<String>,
        pub subjects: HashMap<String, Vec<u32>>,
    }

    pub type Shared = Arc<Mutex<Store>>;

    async fn register(
        State(store): State<Shared>,
        Path(subject): Path<String>,
        Json(body): Json<Value>,
    ) -> Result<Json<Value>, StatusCode> {
        let schema = body["schema"]
            .as_str()
            .ok_or(StatusCode::UNPROCESSABLE_ENTITY)?
            .to_owned();
        let mut s = store
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let id = match s.schemas.iter().position(|x| *x == schema) {
            Some(i) => i as u32 + 1,
            None => {
                s.schemas.push(schema);
                s.schemas.len() as u32
            }
        };
        s.subjects.entry(subject).or_default().push(id);
        Ok(Json(json!({ "id": id })))
    }

    async fn by_id(
        State(store): State<Shared>,
        Path(id): Path<u32>,
    ) -> Result<Json<Value>, StatusCode> {
        let s = store
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let text = s
            .schemas
            .get((id as usize).wrapping_sub(1))
            .ok_or(StatusCode::NOT_FOUND)?;
        Ok(Json(json!({ "schema": text })))
    }

    /// Starts the server on an ephemeral port; returns its URL.
    pub async fn start(store: Shared) -> String {
        let app = Router::new()
            .route("/subjects/{subject}/versions", post(register))
            .route("/schemas/ids/{id}", get(by_id))
            .with_state(store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        format!("http://{addr}")
    }
}

// Multi-threaded: the codec's registry calls block their caller while the stub answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_mode_registers_resolves_and_reads_older_writers() {
    use fitstream_contracts::registry::{Registry, RegistryConfig};
    let store = registry_server::Shared::default();
    let url = registry_server::start(store.clone()).await;
    let registry = Registry::from_config(&RegistryConfig {
        url: Some(url),
        ..RegistryConfig::default()
    });
    let writer = Codec::new(registry.clone(), codec::DEFAULT_MAX_VALUE_BYTES);
    let id = writer
        .prepare_writer(CLICKS, SchemaKind::ClickEvent)
        .await
        .expect("register");
    assert_eq!(
        store.lock().expect("lock").subjects["iob.clickstream.v1-value"],
        vec![id]
    );
    let bytes = writer.encode(CLICKS, &samples::click()).expect("encode");

    // A fresh reader resolves the id over HTTP, once.
    let reader = Codec::new(registry.clone(), codec::DEFAULT_MAX_VALUE_BYTES);
    let back: ClickEvent = reader.decode(CLICKS, &bytes).expect("fetch + decode");
    assert_eq!(back, samples::click());
    // A writer that never prepared registers on its first record.
    let late = Codec::new(registry.clone(), codec::DEFAULT_MAX_VALUE_BYTES);
    let again = late.encode(CLICKS, &samples::click()).expect("encode");
    // The registry's id of the identical schema (map entries may come in another order).
    assert_eq!(again[..5], bytes[..5]);
    assert_eq!(
        reader.decode::<ClickEvent>(CLICKS, &again).expect("decode"),
        samples::click()
    );

    // An older producer without the defaulted `channel` and `region` fields registers its own
    // schema; the current reader fills in the defaults.
    let mut json: serde_json::Value =
        serde_json::from_str(SchemaKind::ClickEvent.text()).expect("json");
    json["fields"]
        .as_array_mut()
        .expect("fields")
        .retain(|f| f["name"] != "channel" && f["name"] != "region");
    let old = Schema::parse(&json).expect("schema");
    let old_id = {
        let mut s = store.lock().expect("lock");
        s.schemas.push(json.to_string());
        s.schemas.len() as u32
    };
    let mut value = samples::click().to_avro().expect("avro");
    if let Value::Record(f) = &mut value {
        f.retain(|(n, _)| n != "channel" && n != "region");
    }
    #[allow(deprecated)]
    let datum = apache_avro::to_avro_datum(&old, value).expect("datum");
    let back: ClickEvent = reader
        .decode(CLICKS, &codec::frame(old_id, &datum))
        .expect("resolve");
    assert_eq!(back.channel, "web");
    assert_eq!(back.region, "");
    assert_eq!(back.event_id, "e-1");

    // An id the registry does not know is a schema error, not a crash.
    let err = reader
        .decode::<ClickEvent>(CLICKS, &codec::frame(999, &datum))
        .expect_err("unknown");
    assert_eq!(err.reason(), "schema");
}
