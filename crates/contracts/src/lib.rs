//! fitstream's data contracts.
//!
//! The Avro schemas in `schemas/` at the repository root are the source of truth; this crate
//! embeds them, defines the Rust records that match them (a test fails when the two drift),
//! and implements the wire format every fitstream topic uses: Confluent Schema Registry
//! framing (`0x00`, 4-byte big-endian schema id, Avro binary).
//!
//! Layout:
//! - [`time`]: event time in milliseconds since the Unix epoch.
//! - [`schemas`]: the embedded `.avsc` files and the compatibility level of each.
//! - [`avro`]: helpers to build and read Avro values by field name, with typed
//!   [`avro::RecordError`]s.
//! - [`records`]: one Rust type per schema, a file per subject: input events (`ClickEvent`,
//!   `PurchaseEvent`), profiles (`CustomerProfile`), segments (`SegmentAssignment`,
//!   `SegmentModel`, `SegmentProfile`), marketing (`CartAbandonment`) and the factory
//!   (`BuildOrder`).
//! - [`samples`]: fully populated example records for tests and documentation.
//! - [`validate`]: content rules (ids, prices, quantities, currencies, timestamps) whose
//!   violation sends a record to the dead-letter topic with reason `validation`.
//! - [`codec`]: framing, encoding and decoding with typed errors ([`codec::DecodeError`]).
//! - [`registry`]: where schema ids come from: pinned in configuration, or a registry's REST
//!   API (register and resolve, cached).
//! - [`topics`]: every topic of the product with its key, value and settings.
//! - [`avro`]: helpers to build and read Avro values by field name (records convert by hand).
//! - [`samples`]: fully populated example records, for tests and documentation.

pub mod avro;
pub mod codec;
pub mod records;
pub mod registry;
pub mod samples;
pub mod schemas;
pub mod time;
pub mod topics;
pub mod validate;

pub use codec::{Codec, DecodeError, EncodeError};
pub use records::*;
pub use schemas::SchemaKind;
pub use time::EventTime;
