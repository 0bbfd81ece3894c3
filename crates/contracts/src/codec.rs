//! The wire format: Confluent Schema Registry framing around Avro binary.
//!
//! A value is `0x00`, a 4-byte big-endian schema id, then the Avro binary datum written with
//! that schema. Decoding checks the length before reading the header, resolves the writer
//! schema by id (cached), reads the datum with schema resolution into the reader's schema,
//! converts it to the Rust record and validates its content. Each failure is a typed
//! [`DecodeError`] whose [`DecodeError::reason`] is the dead-letter reason.

use std::io::Cursor;
use std::sync::{Arc, LazyLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use dashmap::DashMap;

use crate::avro::RecordError;
use crate::records::{ClickEvent, Contract, PurchaseEvent};
use crate::registry::{Registry, RegistryConfig, RegistryError};
use crate::schemas::SchemaKind;
use crate::validate::{self, ValidationError};

/// The Confluent framing's magic byte.
pub const MAGIC: u8 = 0x00;
/// Bytes before the Avro datum.
pub const HEADER_LEN: usize = 5;
/// The producers' `message.max.bytes` (librdkafka's default, set explicitly on every
/// producer): the largest record, key, value and headers included, a producer sends.
pub const PRODUCER_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// Default largest value accepted, in bytes, read or written: below
/// [`PRODUCER_MAX_MESSAGE_BYTES`] with room for a key and headers, so every record the codec
/// writes fits a produce request.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 900_000;
const _: () = assert!(DEFAULT_MAX_VALUE_BYTES + 64 * 1024 <= PRODUCER_MAX_MESSAGE_BYTES);
/// The most memory one Avro string, bytes or collection may ask for while decoding (the
/// `apache_avro` allocation limit, process-wide, set by the first [`Codec`]). Above any value
/// the codec accepts, so a length prefix can never ask for more than a value could hold; a
/// crafted length or count is refused before anything is allocated. Its default, 512 MiB, let
/// a 70-byte record ask for 679 MB.
pub const AVRO_MAX_ALLOCATION_BYTES: usize = 2 * 1024 * 1024;

/// Why bytes could not become a record. Each variant maps to a dead-letter reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Too short, or not starting with the magic byte.
    #[error("bad framing: {0}")]
    Framing(String),
    /// Larger than the configured limit.
    #[error("value of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Value length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The schema id is unknown to the registry (or not pinned).
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// The writer schema cannot be read as the reader schema.
    #[error("schema id {id} cannot be read as {reader:?}: {message}")]
    IncompatibleSchema {
        /// Writer schema id.
        id: u32,
        /// Expected record.
        reader: SchemaKind,
        /// Why.
        message: String,
    },
    /// The Avro datum is corrupt.
    #[error("avro: {0}")]
    Avro(String),
    /// The datum lacks a field or has a wrong type.
    #[error("record: {0}")]
    Record(#[from] RecordError),
    /// The content breaks a rule.
    #[error("validation: {0}")]
    Validation(#[from] ValidationError),
    /// The registry could not be asked (retryable).
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl DecodeError {
    /// The dead-letter reason (`fitstream.error.reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Framing(_) | DecodeError::Avro(_) => "decode",
            DecodeError::TooLarge { .. } => "too-large",
            DecodeError::UnknownSchemaId(_)
            | DecodeError::IncompatibleSchema { .. }
            | DecodeError::Record(_) => "schema",
            DecodeError::Validation(_) => "validation",
            DecodeError::Registry(_) => "registry",
        }
    }

    /// Whether retrying later may succeed (the record must not be dead-lettered then).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeError::Registry(RegistryError::Unreachable(_)))
    }
}

/// Why a record could not be encoded: a bug or a configuration error, or a record too large
/// to be written (its service dead-letters it).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Larger than the codec's limit: no producer could send it.
    #[error("encoded value of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The record does not fit its schema.
    #[error("record: {0}")]
    Record(#[from] RecordError),
    /// Avro refused the value.
    #[error("avro: {0}")]
    Avro(String),
    /// The registry refused or could not be reached.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Prefixes an Avro datum with the Confluent header.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = header(schema_id, datum.len());
    out.extend_from_slice(datum);
    out
}

/// The Confluent header of `schema_id`, in a buffer with room for `datum` more bytes.
fn header(schema_id: u32, datum: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + datum);
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out
}

/// Splits a framed value into schema id and datum, checking the length first.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Framing(format!(
            "{} bytes, shorter than the 5-byte header",
            bytes.len()
        )));
    }
    if bytes[0] != MAGIC {
        return Err(DecodeError::Framing(format!(
            "magic byte is {:#04x}, not 0x00",
            bytes[0]
        )));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

/// Encodes and decodes fitstream records on named topics.
///
/// Cheap to clone; clones share caches.
#[derive(Clone)]
pub struct Codec {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    max_value_bytes: usize,
    limits: validate::Limits,
    /// The writer id of each output topic's values (by topic: no subject string to build per
    /// record).
    writer_ids: DashMap<String, u32>,
    writer_schemas: DashMap<u32, WriterSchema>,
    /// Ids the registry server does not know. A producer registers a schema before it writes
    /// with its id, so such an id stays unknown: it is not asked about again.
    unknown_ids: DashMap<u32, ()>,
}

/// The schema a value was written with, by id.
#[derive(Clone)]
enum WriterSchema {
    /// One of fitstream's own schemas (pinned, registered by this codec, or the registry's
    /// text of an identical schema): read with that kind's prepared reader.
    Own(SchemaKind),
    /// Another schema (another producer's version): read by schema resolution.
    Other(Arc<Schema>),
}

impl WriterSchema {
    fn of(schema: Schema) -> WriterSchema {
        match SchemaKind::ALL.into_iter().find(|k| *k.schema() == schema) {
            Some(kind) => WriterSchema::Own(kind),
            None => WriterSchema::Other(Arc::new(schema)),
        }
    }
}

/// Each schema's datum reader and writer, with the schema's names resolved once
/// (`apache_avro::from_avro_datum` and `to_avro_datum` resolve them again for every record).
struct Prepared {
    reader: GenericDatumReader<'static>,
    writer: GenericDatumWriter<'static>,
}

fn prepared(kind: SchemaKind) -> &'static Prepared {
    static ALL: LazyLock<Vec<Prepared>> = LazyLock::new(|| {
        SchemaKind::ALL
            .into_iter()
            .map(|k| Prepared {
                reader: GenericDatumReader::builder(k.schema())
                    .build()
                    .unwrap_or_else(|e| panic!("{k:?}: schema names do not resolve: {e}")),
                writer: GenericDatumWriter::builder(k.schema())
                    .build()
                    .unwrap_or_else(|e| panic!("{k:?}: schema names do not resolve: {e}")),
            })
            .collect()
    });
    &ALL[kind as usize]
}

/// A record type whose content is checked on decode.
pub trait Validated {
    /// Checks content rules within `limits`.
    fn check(&self, limits: &validate::Limits) -> Result<(), ValidationError> {
        let _ = limits;
        Ok(())
    }
}

impl Validated for ClickEvent {
    fn check(&self, limits: &validate::Limits) -> Result<(), ValidationError> {
        validate::click_within(self, limits)
    }
}
impl Validated for PurchaseEvent {
    fn check(&self, limits: &validate::Limits) -> Result<(), ValidationError> {
        validate::purchase_within(self, limits)
    }
}
impl Validated for crate::records::CustomerProfile {}
impl Validated for crate::records::SegmentModel {}
impl Validated for crate::records::SegmentAssignment {}
impl Validated for crate::records::SegmentProfile {}
impl Validated for crate::records::CartAbandonment {}
impl Validated for crate::records::BuildOrder {}

/// The subject of a topic's values (TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

impl Codec {
    /// A codec over `registry`, with the default field limits.
    pub fn new(registry: Registry, max_value_bytes: usize) -> Codec {
        Codec::with_limits(registry, max_value_bytes, validate::Limits::default())
    }

    /// A codec over `registry` that checks input records within `limits`.
    pub fn with_limits(
        registry: Registry,
        max_value_bytes: usize,
        limits: validate::Limits,
    ) -> Codec {
        let avro = apache_avro::util::max_allocation_bytes(AVRO_MAX_ALLOCATION_BYTES);
        if avro != AVRO_MAX_ALLOCATION_BYTES {
            tracing::warn!("the Avro allocation limit was already set to {avro} bytes");
        }
        Codec {
            inner: Arc::new(Inner {
                registry,
                max_value_bytes,
                limits,
                writer_ids: DashMap::new(),
                writer_schemas: DashMap::new(),
                unknown_ids: DashMap::new(),
            }),
        }
    }

    /// A codec with pinned default ids and the default size limit (embedded mode, tests).
    pub fn pinned() -> Codec {
        Codec::new(
            Registry::from_config(&RegistryConfig::default()),
            DEFAULT_MAX_VALUE_BYTES,
        )
    }

    /// This codec with another value limit (the same registry, ids and field limits): what
    /// a producer with a larger limit writes, for tests of oversized input.
    pub fn with_max_value_bytes(&self, max_value_bytes: usize) -> Codec {
        self.rebuilt(max_value_bytes, self.inner.limits.clone())
    }

    /// This codec with input records checked within `limits` instead.
    pub fn limited(&self, limits: validate::Limits) -> Codec {
        self.rebuilt(self.inner.max_value_bytes, limits)
    }

    /// A codec with these settings and this one's registry, writer ids and schemas.
    fn rebuilt(&self, max_value_bytes: usize, limits: validate::Limits) -> Codec {
        let codec = Codec::with_limits(self.inner.registry.clone(), max_value_bytes, limits);
        for e in self.inner.writer_ids.iter() {
            codec.inner.writer_ids.insert(e.key().clone(), *e.value());
        }
        for e in self.inner.writer_schemas.iter() {
            codec
                .inner
                .writer_schemas
                .insert(*e.key(), e.value().clone());
        }
        codec
    }

    /// The registry behind this codec.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Makes sure `topic` has a writer id for `kind` (registers it with a registry server), so
    /// that a registry that refuses the schema stops a service at start, not at its first
    /// output.
    pub async fn prepare_writer(&self, topic: &str, kind: SchemaKind) -> Result<u32, EncodeError> {
        if let Some(id) = self.inner.writer_ids.get(topic) {
            return Ok(*id);
        }
        let id = self
            .inner
            .registry
            .register(&value_subject(topic), kind)
            .await?;
        self.inner.writer_ids.insert(topic.to_owned(), id);
        self.inner
            .writer_schemas
            .entry(id)
            .or_insert(WriterSchema::Own(kind));
        Ok(id)
    }

    /// Encodes a record for `topic`.
    pub fn encode<T: Contract>(&self, topic: &str, record: &T) -> Result<Vec<u8>, EncodeError> {
        let id = match self.inner.writer_ids.get(topic) {
            Some(id) => *id,
            // Registered on first use (the registry's id of an identical schema when there
            // is one), then cached; services register theirs at start.
            None => {
                let id = self
                    .inner
                    .registry
                    .register_blocking(&value_subject(topic), T::KIND)?;
                self.inner.writer_ids.insert(topic.to_owned(), id);
                self.inner
                    .writer_schemas
                    .entry(id)
                    .or_insert(WriterSchema::Own(T::KIND));
                id
            }
        };
        let mut out = header(id, 128);
        prepared(T::KIND)
            .writer
            .write_value(&mut out, record.to_avro()?)
            .map_err(|e| EncodeError::Avro(e.to_string()))?;
        let max = self.inner.max_value_bytes;
        if out.len() > max {
            return Err(EncodeError::TooLarge {
                len: out.len(),
                max,
            });
        }
        Ok(out)
    }

    /// Decodes a record from `topic`. With a registry server, an id not seen before is looked
    /// up once (`GET /schemas/ids/{id}`) and cached: records of another producer, written
    /// with another version of the schema, are read by schema resolution. An id the registry
    /// does not know is [`DecodeError::UnknownSchemaId`]; a registry that cannot be reached
    /// is [`DecodeError::Registry`].
    pub fn decode<T: Contract + Validated>(
        &self,
        topic: &str,
        bytes: &[u8],
    ) -> Result<T, DecodeError> {
        let record: T = self.decode_unchecked(topic, bytes)?;
        record.check(&self.inner.limits)?;
        Ok(record)
    }

    /// [`Codec::decode`] without the content rules: what a record that broke them said (for
    /// reconciling dead letters with their input).
    pub fn decode_unchecked<T: Contract>(
        &self,
        topic: &str,
        bytes: &[u8],
    ) -> Result<T, DecodeError> {
        if bytes.len() > self.inner.max_value_bytes {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: self.inner.max_value_bytes,
            });
        }
        let (id, datum) = unframe(bytes)?;
        let writer = self.writer_schema(topic, T::KIND, id)?;
        let mut cursor = Cursor::new(datum);
        let value = match writer {
            WriterSchema::Own(kind) if kind == T::KIND => prepared(kind)
                .reader
                .read_value(&mut cursor)
                .map_err(|e| DecodeError::Avro(e.to_string()))?,
            other => {
                let writer = match &other {
                    WriterSchema::Own(kind) => kind.schema(),
                    WriterSchema::Other(schema) => schema.as_ref(),
                };
                let reader = T::KIND.schema();
                let incompatible = |message: String| DecodeError::IncompatibleSchema {
                    id,
                    reader: T::KIND,
                    message,
                };
                apache_avro::schema_compatibility::SchemaCompatibility::can_read(writer, reader)
                    .map_err(|e| incompatible(e.to_string()))?;
                let value = GenericDatumReader::builder(writer)
                    .build()
                    .and_then(|r| r.read_value(&mut cursor))
                    .map_err(|e| DecodeError::Avro(e.to_string()))?;
                resolve_by_name(value, reader).map_err(incompatible)?
            }
        };
        if (cursor.position() as usize) != datum.len() {
            return Err(DecodeError::Avro(format!(
                "{} trailing bytes after the datum",
                datum.len() - cursor.position() as usize
            )));
        }
        Ok(T::from_avro(value)?)
    }

    fn writer_schema(
        &self,
        topic: &str,
        reader: SchemaKind,
        id: u32,
    ) -> Result<WriterSchema, DecodeError> {
        if let Some(s) = self.inner.writer_schemas.get(&id) {
            return Ok(s.clone());
        }
        match self
            .inner
            .registry
            .pinned_kind(&value_subject(topic), reader, id)
        {
            Some(kind) => {
                self.inner
                    .writer_schemas
                    .insert(id, WriterSchema::Own(kind));
                Ok(WriterSchema::Own(kind))
            }
            None if self.inner.registry.is_pinned() || self.inner.unknown_ids.contains_key(&id) => {
                Err(DecodeError::UnknownSchemaId(id))
            }
            None => {
                let Some(text) = self.inner.registry.schema_text_blocking(id)? else {
                    self.inner.unknown_ids.insert(id, ());
                    return Err(DecodeError::UnknownSchemaId(id));
                };
                let schema =
                    Schema::parse_str(&text).map_err(|e| DecodeError::IncompatibleSchema {
                        id,
                        reader,
                        message: format!("the registry's schema does not parse: {e}"),
                    })?;
                let schema = WriterSchema::of(schema);
                self.inner.writer_schemas.insert(id, schema.clone());
                Ok(schema)
            }
        }
    }
}

/// Fills the reader's top-level fields from a value written with an older or newer schema:
/// fields both have are taken as written, fields only the reader has take their default, and
/// fields only the writer has are dropped. (apache-avro's own resolution rejects decimals
/// whose byte length is shorter than their precision needs, which is every small price.)
fn resolve_by_name(
    value: apache_avro::types::Value,
    reader: &Schema,
) -> Result<apache_avro::types::Value, String> {
    use apache_avro::types::Value;
    let (Value::Record(mut written), Schema::Record(rs)) = (value, reader) else {
        return Err("writer or reader is not a record".into());
    };
    let mut out = Vec::with_capacity(rs.fields.len());
    for field in &rs.fields {
        let value = match written.iter().position(|(n, _)| *n == field.name) {
            Some(i) => written.swap_remove(i).1,
            None => {
                let default = field.default.clone().ok_or_else(|| {
                    format!("field `{}` is missing and has no default", field.name)
                })?;
                Value::try_from(default)
                    .and_then(|v| v.resolve(&field.schema))
                    .map_err(|e| format!("default of `{}`: {e}", field.name))?
            }
        };
        out.push((field.name.clone(), value));
    }
    Ok(Value::Record(out))
}
