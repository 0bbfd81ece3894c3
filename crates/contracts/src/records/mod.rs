//! The records on fitstream's topics, one Rust type per Avro schema.
//!
//! Each type implements [`Contract`]: conversion to and from an Avro value of its schema. The
//! test `records_match_their_schemas_and_roundtrip` (`tests/contracts.rs`) fails when a type
//! and its `.avsc` drift apart.
//!
//! Layout (every name is re-exported here, so `records::ClickEvent` is the path to use):
//! - this file: the [`Contract`] trait and [`Options`], shared by every record.
//! - `events`: the input events, [`ClickEvent`] (with [`ClickEventType`]) and
//!   [`PurchaseEvent`] (with [`PurchaseLine`]).
//! - `profiles`: [`CustomerProfile`] and its [`ProfileFeatures`].
//! - `segments`: [`SegmentAssignment`], [`SegmentModel`] (with [`ModelSegment`]) and
//!   [`SegmentProfile`].
//! - `marketing`: [`CartAbandonment`].
//! - `factory`: [`BuildOrder`] with [`RequestState`], [`ProductionParameter`], [`Location`]
//!   and [`SegmentShare`].

mod events;
mod factory;
mod marketing;
mod profiles;
mod segments;

use std::collections::BTreeMap;

use apache_avro::types::Value;

pub use self::events::{ClickEvent, ClickEventType, PurchaseEvent, PurchaseLine};
pub use self::factory::{BuildOrder, Location, ProductionParameter, RequestState, SegmentShare};
pub use self::marketing::CartAbandonment;
pub use self::profiles::{CustomerProfile, ProfileFeatures};
pub use self::segments::{ModelSegment, SegmentAssignment, SegmentModel, SegmentProfile};
use crate::avro::RecordError;
use crate::schemas::SchemaKind;

/// A record type with an Avro schema in `schemas/`.
pub trait Contract: Sized {
    /// Its schema.
    const KIND: SchemaKind;
    /// Converts to an Avro value of [`Contract::KIND`]'s schema.
    fn to_avro(&self) -> Result<Value, RecordError>;
    /// Reads from an Avro value of [`Contract::KIND`]'s schema.
    fn from_avro(value: Value) -> Result<Self, RecordError>;
}

/// Options chosen for a product (colour, size, ...), sorted by name.
pub type Options = BTreeMap<String, String>;
