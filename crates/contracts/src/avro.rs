//! Small helpers to build and read `apache_avro::types::Value`s by field name.
//!
//! Records convert to and from Avro values by hand rather than through serde, so that logical
//! types (decimal, timestamp-millis) and unions are exactly what the schemas say.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use rust_decimal::Decimal;

use crate::time::EventTime;

/// Why an Avro value could not become a record.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    /// The value is not an Avro record.
    #[error("{record}: expected an Avro record")]
    NotARecord {
        /// Record being read.
        record: &'static str,
    },
    /// A field the record needs is absent.
    #[error("{record}: missing field `{field}`")]
    MissingField {
        /// Record being read.
        record: &'static str,
        /// Field name.
        field: String,
    },
    /// A field has another Avro type than expected.
    #[error("{record}: field `{field}` should be {expected}, found {found}")]
    WrongType {
        /// Record being read.
        record: &'static str,
        /// Field name.
        field: String,
        /// Expected Avro type.
        expected: &'static str,
        /// What was found (debug form, shortened).
        found: String,
    },
    /// A decimal does not fit 128 bits or the schema's scale.
    #[error("{record}: field `{field}` holds a decimal out of range")]
    DecimalRange {
        /// Record being read or written.
        record: &'static str,
        /// Field name.
        field: String,
    },
}

/// Builds an Avro record value from `(name, value)` pairs in schema order.
pub fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A `["null", T]` union holding `value` or null.
pub fn nullable(value: Option<Value>) -> Value {
    match value {
        Some(v) => Value::Union(1, Box::new(v)),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

/// A string.
pub fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// A `timestamp-millis`.
pub fn time(t: EventTime) -> Value {
    Value::TimestampMillis(t.0)
}

/// A map of strings.
pub fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// An array of strings.
pub fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

/// An array of doubles.
pub fn doubles(items: &[f64]) -> Value {
    Value::Array(items.iter().map(|d| Value::Double(*d)).collect())
}

/// A `decimal` with the given scale (two's complement, big-endian, minimal length).
///
/// Rounds half-even to the scale; errors when the unscaled value does not fit 128 bits.
pub fn decimal(d: Decimal, scale: u32) -> Result<Value, RecordError> {
    let mut scaled = d;
    scaled.rescale(scale);
    if scaled.scale() != scale {
        return Err(RecordError::DecimalRange {
            record: "",
            field: String::new(),
        });
    }
    let bytes = scaled.mantissa().to_be_bytes();
    // Strip redundant sign bytes, keeping one that carries the sign.
    let mut start = 0;
    while start < bytes.len() - 1 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok(Value::Decimal(apache_avro::Decimal::from(&bytes[start..])))
}

/// Reads the named fields of one Avro record, by name, in any order.
pub struct Fields {
    record: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    /// Starts reading `value`, a record of type `record`.
    pub fn new(record: &'static str, value: Value) -> Result<Fields, RecordError> {
        match unwrap_union(value) {
            Value::Record(fields) => Ok(Fields { record, fields }),
            _ => Err(RecordError::NotARecord { record }),
        }
    }

    fn take(&mut self, field: &str) -> Result<Value, RecordError> {
        self.fields
            .iter_mut()
            .find(|(k, _)| k == field)
            .map(|(_, v)| unwrap_union(std::mem::replace(v, Value::Null)))
            .ok_or_else(|| RecordError::MissingField {
                record: self.record,
                field: field.to_owned(),
            })
    }

    fn wrong(&self, field: &str, expected: &'static str, found: &Value) -> RecordError {
        let mut found = format!("{found:?}");
        found.truncate(60);
        RecordError::WrongType {
            record: self.record,
            field: field.to_owned(),
            expected,
            found,
        }
    }

    /// A string field.
    pub fn string(&mut self, field: &str) -> Result<String, RecordError> {
        match self.take(field)? {
            Value::String(s) | Value::Enum(_, s) => Ok(s),
            other => Err(self.wrong(field, "string", &other)),
        }
    }

    /// A `["null", "string"]` field.
    pub fn opt_string(&mut self, field: &str) -> Result<Option<String>, RecordError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(self.wrong(field, "string or null", &other)),
        }
    }

    /// An enum field, as its symbol.
    pub fn symbol(&mut self, field: &str) -> Result<String, RecordError> {
        self.string(field)
    }

    /// An `int` or `long` field.
    pub fn long(&mut self, field: &str) -> Result<i64, RecordError> {
        match self.take(field)? {
            Value::Long(n) => Ok(n),
            Value::Int(n) => Ok(i64::from(n)),
            other => Err(self.wrong(field, "long", &other)),
        }
    }

    /// An `int` field.
    pub fn int(&mut self, field: &str) -> Result<i32, RecordError> {
        match self.take(field)? {
            Value::Int(n) => Ok(n),
            other => Err(self.wrong(field, "int", &other)),
        }
    }

    /// A `["null", "int"]` field.
    pub fn opt_int(&mut self, field: &str) -> Result<Option<i32>, RecordError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(n)),
            other => Err(self.wrong(field, "int or null", &other)),
        }
    }

    /// A `["null", "long"]` field.
    pub fn opt_long(&mut self, field: &str) -> Result<Option<i64>, RecordError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::Long(n) => Ok(Some(n)),
            Value::Int(n) => Ok(Some(i64::from(n))),
            other => Err(self.wrong(field, "long or null", &other)),
        }
    }

    /// A `double` field.
    pub fn double(&mut self, field: &str) -> Result<f64, RecordError> {
        match self.take(field)? {
            Value::Double(d) => Ok(d),
            Value::Float(d) => Ok(f64::from(d)),
            other => Err(self.wrong(field, "double", &other)),
        }
    }

    /// A `boolean` field.
    pub fn boolean(&mut self, field: &str) -> Result<bool, RecordError> {
        match self.take(field)? {
            Value::Boolean(b) => Ok(b),
            other => Err(self.wrong(field, "boolean", &other)),
        }
    }

    /// A `timestamp-millis` field.
    pub fn time(&mut self, field: &str) -> Result<EventTime, RecordError> {
        match self.take(field)? {
            Value::TimestampMillis(ms) | Value::Long(ms) => Ok(EventTime(ms)),
            other => Err(self.wrong(field, "timestamp-millis", &other)),
        }
    }

    /// A `["null", timestamp-millis]` field.
    pub fn opt_time(&mut self, field: &str) -> Result<Option<EventTime>, RecordError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::TimestampMillis(ms) | Value::Long(ms) => Ok(Some(EventTime(ms))),
            other => Err(self.wrong(field, "timestamp-millis or null", &other)),
        }
    }

    /// A `decimal` field of the given scale.
    pub fn decimal(&mut self, field: &str, scale: u32) -> Result<Decimal, RecordError> {
        let value = self.take(field)?;
        self.decimal_of(field, value, scale)
    }

    /// A `["null", decimal]` field of the given scale.
    pub fn opt_decimal(&mut self, field: &str, scale: u32) -> Result<Option<Decimal>, RecordError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            value => self.decimal_of(field, value, scale).map(Some),
        }
    }

    fn decimal_of(&self, field: &str, value: Value, scale: u32) -> Result<Decimal, RecordError> {
        let range = || RecordError::DecimalRange {
            record: self.record,
            field: field.to_owned(),
        };
        let bytes: Vec<u8> = match value {
            Value::Decimal(d) => Vec::<u8>::try_from(d).map_err(|_| range())?,
            Value::Bytes(b) => b,
            other => return Err(self.wrong(field, "decimal", &other)),
        };
        if bytes.is_empty() || bytes.len() > 16 {
            return Err(range());
        }
        let fill = if bytes[0] & 0x80 != 0 { 0xFF } else { 0x00 };
        let mut wide = [fill; 16];
        wide[16 - bytes.len()..].copy_from_slice(&bytes);
        Decimal::try_from_i128_with_scale(i128::from_be_bytes(wide), scale).map_err(|_| range())
    }

    /// A `map` of strings.
    pub fn string_map(&mut self, field: &str) -> Result<BTreeMap<String, String>, RecordError> {
        match self.take(field)? {
            Value::Map(map) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    other => Err(self.wrong(field, "map of strings", &other)),
                })
                .collect(),
            other => Err(self.wrong(field, "map", &other)),
        }
    }

    /// An `array` field's items.
    pub fn array(&mut self, field: &str) -> Result<Vec<Value>, RecordError> {
        match self.take(field)? {
            Value::Array(items) => Ok(items),
            other => Err(self.wrong(field, "array", &other)),
        }
    }

    /// An `array` of strings.
    pub fn strings(&mut self, field: &str) -> Result<Vec<String>, RecordError> {
        self.array(field)?
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(self.wrong(field, "array of strings", &other)),
            })
            .collect()
    }

    /// An `array` of doubles.
    pub fn doubles(&mut self, field: &str) -> Result<Vec<f64>, RecordError> {
        self.array(field)?
            .into_iter()
            .map(|v| match v {
                Value::Double(d) => Ok(d),
                other => Err(self.wrong(field, "array of doubles", &other)),
            })
            .collect()
    }

    /// A nested record field.
    pub fn record(&mut self, field: &str, record: &'static str) -> Result<Fields, RecordError> {
        let value = self.take(field)?;
        Fields::new(record, value)
    }
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

/// Attaches the record and field name to a decimal conversion error.
pub fn decimal_field(
    record: &'static str,
    field: &str,
    d: Decimal,
    scale: u32,
) -> Result<Value, RecordError> {
    decimal(d, scale).map_err(|_| RecordError::DecimalRange {
        record,
        field: field.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(d: Decimal, scale: u32) -> Decimal {
        let v = decimal(d, scale).expect("encode");
        let mut f = Fields::new("T", record(vec![("x", v)])).expect("record");
        f.decimal("x", scale).expect("decode")
    }

    #[test]
    fn decimals_roundtrip_with_sign_and_minimal_bytes() {
        for s in [
            "0",
            "1.5",
            "-1.5",
            "127",
            "128",
            "-128",
            "-129",
            "99999999999.99",
            "0.01",
        ] {
            let d: Decimal = s.parse().expect("decimal");
            assert_eq!(roundtrip(d, 2), d, "{s}");
        }
        let Value::Decimal(d) = decimal("1.27".parse().expect("d"), 2).expect("enc") else {
            panic!("not a decimal")
        };
        assert_eq!(Vec::<u8>::try_from(d).expect("bytes"), vec![127]);
        let Value::Decimal(d) = decimal("1.28".parse().expect("d"), 2).expect("enc") else {
            panic!("not a decimal")
        };
        assert_eq!(Vec::<u8>::try_from(d).expect("bytes"), vec![0, 128]);
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let mut f = Fields::new("T", record(vec![("a", Value::Int(1))])).expect("record");
        assert!(matches!(f.string("a"), Err(RecordError::WrongType { .. })));
        assert!(matches!(
            f.string("b"),
            Err(RecordError::MissingField { .. })
        ));
    }
}
