//! Deliberately bad input bytes, for dead-letter testing.
//!
//! Each [`Defect`] turns a well-formed record into an [`InputRecord::Raw`] whose value the
//! real decoder ([`fitstream_contracts::Codec::decode`]) rejects, always with the same
//! dead-letter reason ([`Defect::reason`], equal to `DecodeError::reason()`):
//!
//! | defect | bytes | topic | reason |
//! | --- | --- | --- | --- |
//! | `Truncated` | a valid value cut to two thirds of its length | the record's | `decode` |
//! | `BadMagic` | a valid value whose first byte is `0x01` | the record's | `decode` |
//! | `UnknownSchemaId` | a valid datum framed with schema id 999999 | the record's | `schema` |
//! | `WrongSchema` | a PurchaseEvent datum with the PurchaseEvent id | clickstream | `schema` |
//! | `MissingField` | a ClickEvent datum without `event_time`, ClickEvent id | clickstream | `decode` |
//! | `NegativeQuantity` | a valid PurchaseEvent with a line of quantity -1 | purchases | `validation` |
//! | `AbsurdTimestamp` | a valid event at 1970-01-01T00:00:00Z | the record's | `validation` |
//! | `Oversized` | a valid event padded beyond the codec's 900,000-byte limit | the record's | `too-large` |
//! | `NotAvro` | the record as JSON text, unframed | the record's | `decode` |
//!
//! `MissingField` is `decode`, not `schema`: the datum is read with the writer schema its id
//! names, and the reader runs out of bytes where `event_time` should be.
//!
//! Avro maps are written in the order of apache-avro's `HashMap`, which differs from run to
//! run; so that the same record always gives the same bad bytes, the Avro-based defects keep
//! only the first option of each options map (bad bytes need no second option).
//!
//! The ids in the framing are those of the codec passed in; with a schema registry whose ids
//! differ from the pinned defaults, encode with a codec prepared for both input topics.
//! `Oversized` values exceed the codec's limit (900,000 bytes) by a few bytes, within
//! librdkafka's default `message.max.bytes` (1,000,000) and the broker's default
//! `max.message.bytes` (1,048,588).

use std::collections::BTreeMap;
use std::fmt;

use apache_avro::Schema;
use apache_avro::types::Value;
use fitstream_contracts::codec::{self, DEFAULT_MAX_VALUE_BYTES};
use fitstream_contracts::records::Contract;
use fitstream_contracts::{
    ClickEvent, ClickEventType, Codec, EncodeError, EventTime, Options, PurchaseEvent,
    PurchaseLine, SchemaKind,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::record::{InputRecord, InputTopic};

/// A schema id that no registry configuration of fitstream pins.
pub const UNKNOWN_SCHEMA_ID: u32 = 999_999;

/// What is wrong with a [`InputRecord::Raw`] value (see the module doc for the bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Defect {
    /// A valid value cut short. Reason `decode`.
    Truncated,
    /// A valid value with a wrong magic byte. Reason `decode`.
    BadMagic,
    /// A valid datum framed with a schema id nobody knows. Reason `schema`.
    UnknownSchemaId,
    /// A PurchaseEvent (with its own schema id) on the clickstream topic. Reason `schema`.
    WrongSchema,
    /// A ClickEvent datum that lacks `event_time`, framed with the ClickEvent id. Reason
    /// `decode`.
    MissingField,
    /// A well-formed PurchaseEvent with a negative quantity. Reason `validation`.
    NegativeQuantity,
    /// A well-formed event dated 1970. Reason `validation`.
    AbsurdTimestamp,
    /// A well-formed event larger than the codec's limit (1 MiB). Reason `too-large`.
    Oversized,
    /// JSON text instead of framed Avro. Reason `decode`.
    NotAvro,
}

impl Defect {
    /// Every defect.
    pub const ALL: [Defect; 9] = [
        Defect::Truncated,
        Defect::BadMagic,
        Defect::UnknownSchemaId,
        Defect::WrongSchema,
        Defect::MissingField,
        Defect::NegativeQuantity,
        Defect::AbsurdTimestamp,
        Defect::Oversized,
        Defect::NotAvro,
    ];

    /// The dead-letter reason the decoder gives for these bytes (`DecodeError::reason()`).
    pub fn reason(self) -> &'static str {
        match self {
            Defect::Truncated | Defect::BadMagic | Defect::MissingField | Defect::NotAvro => {
                "decode"
            }
            Defect::UnknownSchemaId | Defect::WrongSchema => "schema",
            Defect::NegativeQuantity | Defect::AbsurdTimestamp => "validation",
            Defect::Oversized => "too-large",
        }
    }

    /// The name, as in `"Truncated"`.
    pub fn name(self) -> &'static str {
        match self {
            Defect::Truncated => "Truncated",
            Defect::BadMagic => "BadMagic",
            Defect::UnknownSchemaId => "UnknownSchemaId",
            Defect::WrongSchema => "WrongSchema",
            Defect::MissingField => "MissingField",
            Defect::NegativeQuantity => "NegativeQuantity",
            Defect::AbsurdTimestamp => "AbsurdTimestamp",
            Defect::Oversized => "Oversized",
            Defect::NotAvro => "NotAvro",
        }
    }

    /// Turns `base` (a click or a purchase) into raw bytes with this defect, keyed like `base`.
    ///
    /// Defects that need the other kind of record derive one from `base` (a purchase of the
    /// clicked product, or the checkout click of a purchase). A `Raw` base is returned as it
    /// is. Errors only when `base` itself cannot be encoded.
    pub fn corrupt(self, base: &InputRecord, codec: &Codec) -> Result<InputRecord, EncodeError> {
        if let InputRecord::Raw { .. } = base {
            return Ok(base.clone());
        }
        let key = base.key().map(<[u8]>::to_vec);
        let own_topic = base.topic();
        let trimmed = with_one_option(base);
        let base = if self == Defect::NotAvro {
            base
        } else {
            &trimmed
        };
        let (topic, value) = match self {
            Defect::Truncated => {
                let mut bytes = encode(base, codec)?;
                bytes.truncate(bytes.len() * 2 / 3);
                (own_topic, bytes)
            }
            Defect::BadMagic => {
                let mut bytes = encode(base, codec)?;
                bytes[0] = 0x01;
                (own_topic, bytes)
            }
            Defect::UnknownSchemaId => {
                let mut bytes = encode(base, codec)?;
                bytes[1..codec::HEADER_LEN].copy_from_slice(&UNKNOWN_SCHEMA_ID.to_be_bytes());
                (own_topic, bytes)
            }
            Defect::WrongSchema => {
                let bytes =
                    codec.encode(InputTopic::Purchases.default_name(), &purchase_of(base))?;
                (InputTopic::Clickstream, bytes)
            }
            Defect::MissingField => (
                InputTopic::Clickstream,
                without_event_time(&click_of(base), codec)?,
            ),
            Defect::NegativeQuantity => {
                let mut order = purchase_of(base);
                if let Some(line) = order.lines.first_mut() {
                    line.quantity = -1;
                }
                (
                    InputTopic::Purchases,
                    codec.encode(InputTopic::Purchases.default_name(), &order)?,
                )
            }
            Defect::AbsurdTimestamp => {
                let bytes = match base {
                    InputRecord::Purchase(p) => {
                        let order = PurchaseEvent {
                            event_time: EventTime(0),
                            ..p.clone()
                        };
                        codec.encode(own_topic.default_name(), &order)?
                    }
                    _ => {
                        let click = ClickEvent {
                            event_time: EventTime(0),
                            ..click_of(base)
                        };
                        codec.encode(own_topic.default_name(), &click)?
                    }
                };
                (own_topic, bytes)
            }
            Defect::Oversized => {
                // Written as a producer with a larger limit would: this codec refuses it.
                let codec = &codec.with_max_value_bytes(4 * DEFAULT_MAX_VALUE_BYTES);
                let padding = "x".repeat(DEFAULT_MAX_VALUE_BYTES);
                let bytes = match base {
                    InputRecord::Purchase(p) => {
                        let order = PurchaseEvent {
                            region: padding,
                            ..p.clone()
                        };
                        codec.encode(own_topic.default_name(), &order)?
                    }
                    _ => {
                        let click = ClickEvent {
                            query: Some(padding),
                            ..click_of(base)
                        };
                        codec.encode(own_topic.default_name(), &click)?
                    }
                };
                (own_topic, bytes)
            }
            Defect::NotAvro => {
                let json = match base {
                    InputRecord::Purchase(p) => serde_json::to_vec(p),
                    _ => serde_json::to_vec(&click_of(base)),
                };
                (
                    own_topic,
                    json.map_err(|e| EncodeError::Avro(e.to_string()))?,
                )
            }
        };
        Ok(InputRecord::Raw {
            topic,
            key,
            value,
            defect: self,
        })
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The record with at most one option per options map, so that its Avro bytes are the same
/// in every run (see the module doc).
fn with_one_option(base: &InputRecord) -> InputRecord {
    let first = |options: &Options| {
        options
            .iter()
            .take(1)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    match base {
        InputRecord::Click(c) => InputRecord::Click(ClickEvent {
            options: first(&c.options),
            ..c.clone()
        }),
        InputRecord::Purchase(p) => {
            let mut p = p.clone();
            for line in &mut p.lines {
                line.options = first(&line.options);
            }
            InputRecord::Purchase(p)
        }
        InputRecord::Raw { .. } => base.clone(),
    }
}

fn encode(base: &InputRecord, codec: &Codec) -> Result<Vec<u8>, EncodeError> {
    base.encode_value(codec, base.topic().default_name())
}

/// The click itself, or the checkout click that preceded a purchase.
fn click_of(base: &InputRecord) -> ClickEvent {
    match base {
        InputRecord::Click(c) => c.clone(),
        InputRecord::Purchase(p) => ClickEvent {
            event_id: format!("{}-checkout", p.order_id),
            customer_id: p.customer_id.clone(),
            session_id: p.session_id.clone(),
            event_type: ClickEventType::CheckoutStart,
            product_id: None,
            sku: None,
            options: BTreeMap::new(),
            category: None,
            price: None,
            query: None,
            channel: "web".to_owned(),
            region: p.region.clone(),
            event_time: p.event_time,
        },
        InputRecord::Raw { .. } => ClickEvent {
            event_id: "raw".to_owned(),
            customer_id: "raw".to_owned(),
            session_id: "raw".to_owned(),
            event_type: ClickEventType::PageView,
            product_id: None,
            sku: None,
            options: BTreeMap::new(),
            category: None,
            price: None,
            query: None,
            channel: "web".to_owned(),
            region: String::new(),
            event_time: EventTime::MIN_VALID,
        },
    }
}

/// The purchase itself, or a one-unit purchase of the clicked product.
fn purchase_of(base: &InputRecord) -> PurchaseEvent {
    if let InputRecord::Purchase(p) = base {
        return p.clone();
    }
    let click = click_of(base);
    let product_id = click
        .product_id
        .clone()
        .unwrap_or_else(|| "unknown".to_owned());
    PurchaseEvent {
        order_id: format!("{}-order", click.event_id),
        customer_id: click.customer_id,
        session_id: click.session_id,
        event_time: click.event_time,
        region: click.region,
        currency: "EUR".to_owned(),
        lines: vec![PurchaseLine {
            sku: click.sku.unwrap_or_else(|| product_id.clone()),
            product_id,
            options: click.options,
            category: click.category,
            quantity: 1,
            unit_price: click.price.filter(|p| !p.is_zero()).unwrap_or(Decimal::ONE),
        }],
    }
}

/// A ClickEvent datum written with a copy of the ClickEvent schema that lacks `event_time`,
/// framed with the id the codec uses for real ClickEvents.
fn without_event_time(click: &ClickEvent, codec: &Codec) -> Result<Vec<u8>, EncodeError> {
    let avro = |e: &dyn fmt::Display| EncodeError::Avro(e.to_string());
    let framed = codec.encode(InputTopic::Clickstream.default_name(), click)?;
    let (id, _) = codec::unframe(&framed).map_err(|e| avro(&e))?;

    let mut schema: serde_json::Value =
        serde_json::from_str(SchemaKind::ClickEvent.text()).map_err(|e| avro(&e))?;
    if let Some(fields) = schema
        .get_mut("fields")
        .and_then(serde_json::Value::as_array_mut)
    {
        fields.retain(|f| f.get("name").and_then(serde_json::Value::as_str) != Some("event_time"));
    }
    let schema = Schema::parse(&schema).map_err(|e| avro(&e))?;

    let value = match click.to_avro()? {
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .filter(|(n, _)| n != "event_time")
                .collect(),
        ),
        other => other,
    };
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .map_err(|e| avro(&e))?;
    let datum = writer.write_value_to_vec(value).map_err(|e| avro(&e))?;
    Ok(codec::frame(id, &datum))
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::DecodeError;
    use fitstream_contracts::samples::{click, purchase};

    use super::*;

    /// Decodes raw bytes the way a consumer of their topic would, returning the error.
    fn decode_error(record: &InputRecord) -> DecodeError {
        let InputRecord::Raw { topic, value, .. } = record else {
            panic!("not raw: {record:?}");
        };
        let codec = Codec::pinned();
        let name = topic.default_name();
        let result = match topic {
            InputTopic::Clickstream => codec.decode::<ClickEvent>(name, value).map(|_| ()),
            InputTopic::Purchases => codec.decode::<PurchaseEvent>(name, value).map(|_| ()),
        };
        match result {
            Err(e) => e,
            Ok(()) => panic!("{record:?} decoded"),
        }
    }

    fn check(defect: Defect, base: InputRecord, reason: &str) {
        assert_eq!(defect.reason(), reason);
        let raw = defect.corrupt(&base, &Codec::pinned()).expect("encodes");
        assert_eq!(
            raw.key(),
            base.key(),
            "{defect}: keyed like the record it replaces"
        );
        let err = decode_error(&raw);
        assert_eq!(err.reason(), reason, "{defect}: {err}");
    }

    #[test]
    fn base_records_decode() {
        let codec = Codec::pinned();
        let bytes = codec
            .encode(InputTopic::Clickstream.default_name(), &click())
            .expect("encodes");
        assert_eq!(
            codec
                .decode::<ClickEvent>(InputTopic::Clickstream.default_name(), &bytes)
                .ok(),
            Some(click())
        );
        let bytes = codec
            .encode(InputTopic::Purchases.default_name(), &purchase())
            .expect("encodes");
        assert!(
            codec
                .decode::<PurchaseEvent>(InputTopic::Purchases.default_name(), &bytes)
                .is_ok()
        );
    }

    #[test]
    fn truncated_is_decode() {
        check(Defect::Truncated, InputRecord::Click(click()), "decode");
        check(
            Defect::Truncated,
            InputRecord::Purchase(purchase()),
            "decode",
        );
    }

    #[test]
    fn bad_magic_is_decode() {
        check(Defect::BadMagic, InputRecord::Click(click()), "decode");
        check(
            Defect::BadMagic,
            InputRecord::Purchase(purchase()),
            "decode",
        );
    }

    #[test]
    fn unknown_schema_id_is_schema() {
        check(
            Defect::UnknownSchemaId,
            InputRecord::Click(click()),
            "schema",
        );
        check(
            Defect::UnknownSchemaId,
            InputRecord::Purchase(purchase()),
            "schema",
        );
    }

    #[test]
    fn wrong_schema_is_schema_on_the_clickstream() {
        for base in [
            InputRecord::Click(click()),
            InputRecord::Purchase(purchase()),
        ] {
            let raw = Defect::WrongSchema
                .corrupt(&base, &Codec::pinned())
                .expect("encodes");
            assert_eq!(raw.topic(), InputTopic::Clickstream);
            check(Defect::WrongSchema, base, "schema");
        }
    }

    #[test]
    fn missing_field_is_decode_with_the_click_event_id() {
        for base in [
            InputRecord::Click(click()),
            InputRecord::Purchase(purchase()),
        ] {
            let raw = Defect::MissingField
                .corrupt(&base, &Codec::pinned())
                .expect("encodes");
            let InputRecord::Raw { topic, value, .. } = &raw else {
                panic!("not raw")
            };
            assert_eq!(*topic, InputTopic::Clickstream);
            let (id, _) = codec::unframe(value).expect("framed");
            assert_eq!(
                id,
                fitstream_contracts::registry::default_pinned_id(SchemaKind::ClickEvent)
            );
            check(Defect::MissingField, base, "decode");
        }
    }

    #[test]
    fn negative_quantity_is_validation_on_purchases() {
        for base in [
            InputRecord::Click(click()),
            InputRecord::Purchase(purchase()),
        ] {
            let raw = Defect::NegativeQuantity
                .corrupt(&base, &Codec::pinned())
                .expect("encodes");
            assert_eq!(raw.topic(), InputTopic::Purchases);
            let err = decode_error(&raw);
            assert!(
                matches!(&err, DecodeError::Validation(v) if v.field == "quantity"),
                "{err}"
            );
            check(Defect::NegativeQuantity, base, "validation");
        }
    }

    #[test]
    fn absurd_timestamp_is_validation() {
        for base in [
            InputRecord::Click(click()),
            InputRecord::Purchase(purchase()),
        ] {
            let raw = Defect::AbsurdTimestamp
                .corrupt(&base, &Codec::pinned())
                .expect("encodes");
            let err = decode_error(&raw);
            assert!(
                matches!(&err, DecodeError::Validation(v) if v.field == "event_time"),
                "{err}"
            );
            check(Defect::AbsurdTimestamp, base, "validation");
        }
    }

    #[test]
    fn oversized_is_too_large() {
        for base in [
            InputRecord::Click(click()),
            InputRecord::Purchase(purchase()),
        ] {
            let raw = Defect::Oversized
                .corrupt(&base, &Codec::pinned())
                .expect("encodes");
            let InputRecord::Raw { value, .. } = &raw else {
                panic!("not raw")
            };
            assert!(value.len() > DEFAULT_MAX_VALUE_BYTES);
            check(Defect::Oversized, base, "too-large");
        }
    }

    #[test]
    fn not_avro_is_decode() {
        check(Defect::NotAvro, InputRecord::Click(click()), "decode");
        check(Defect::NotAvro, InputRecord::Purchase(purchase()), "decode");
    }

    #[test]
    fn the_same_record_gives_the_same_bytes() {
        let mut base = click();
        base.options.insert("scent".into(), "citrus".into());
        base.options.insert("zz".into(), "last".into());
        for defect in Defect::ALL {
            let bytes: Vec<InputRecord> = (0..8)
                .map(|_| {
                    defect
                        .corrupt(&InputRecord::Click(base.clone()), &Codec::pinned())
                        .expect("encodes")
                })
                .collect();
            assert!(bytes.windows(2).all(|w| w[0] == w[1]), "{defect}");
        }
    }

    #[test]
    fn names_are_the_debug_names() {
        for d in Defect::ALL {
            assert_eq!(d.name(), format!("{d:?}"));
        }
    }
}
