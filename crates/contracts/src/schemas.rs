//! The Avro schemas, embedded from `schemas/*.avsc` at build time.

use std::sync::LazyLock;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// Which Avro record a schema describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SchemaKind {
    /// `iob.clickstream.v1` values.
    ClickEvent,
    /// `iob.purchases.v1` values.
    PurchaseEvent,
    /// `iob.customer-profiles.v1` values.
    CustomerProfile,
    /// `iob.segment-models.v1` values.
    SegmentModel,
    /// `marketing.segment-assignments.v1` values.
    SegmentAssignment,
    /// `marketing.segment-profiles.v1` values.
    SegmentProfile,
    /// `marketing.cart-abandonment.v1` values.
    CartAbandonment,
    /// `factory.<plant>.build-orders.v1` values.
    BuildOrder,
}

/// How strictly a schema must stay compatible with its previous version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compatibility {
    /// New readers read old data (fitstream's own topics).
    Backward,
    /// Both directions, across every version (topics other teams read).
    FullTransitive,
}

impl SchemaKind {
    /// Every schema.
    pub const ALL: [SchemaKind; 8] = [
        SchemaKind::ClickEvent,
        SchemaKind::PurchaseEvent,
        SchemaKind::CustomerProfile,
        SchemaKind::SegmentModel,
        SchemaKind::SegmentAssignment,
        SchemaKind::SegmentProfile,
        SchemaKind::CartAbandonment,
        SchemaKind::BuildOrder,
    ];

    /// File name under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::ClickEvent => "click-event.avsc",
            SchemaKind::PurchaseEvent => "purchase-event.avsc",
            SchemaKind::CustomerProfile => "customer-profile.avsc",
            SchemaKind::SegmentModel => "segment-model.avsc",
            SchemaKind::SegmentAssignment => "segment-assignment.avsc",
            SchemaKind::SegmentProfile => "segment-profile.avsc",
            SchemaKind::CartAbandonment => "cart-abandonment.avsc",
            SchemaKind::BuildOrder => "build-order.avsc",
        }
    }

    /// The schema text as committed.
    pub fn text(self) -> &'static str {
        match self {
            SchemaKind::ClickEvent => include_str!("../../../schemas/click-event.avsc"),
            SchemaKind::PurchaseEvent => include_str!("../../../schemas/purchase-event.avsc"),
            SchemaKind::CustomerProfile => include_str!("../../../schemas/customer-profile.avsc"),
            SchemaKind::SegmentModel => include_str!("../../../schemas/segment-model.avsc"),
            SchemaKind::SegmentAssignment => {
                include_str!("../../../schemas/segment-assignment.avsc")
            }
            SchemaKind::SegmentProfile => include_str!("../../../schemas/segment-profile.avsc"),
            SchemaKind::CartAbandonment => include_str!("../../../schemas/cart-abandonment.avsc"),
            SchemaKind::BuildOrder => include_str!("../../../schemas/build-order.avsc"),
        }
    }

    /// The parsed schema.
    pub fn schema(self) -> &'static Schema {
        static PARSED: LazyLock<Vec<Schema>> = LazyLock::new(|| {
            SchemaKind::ALL
                .iter()
                .map(|k| {
                    Schema::parse_str(k.text())
                        .unwrap_or_else(|e| panic!("schemas/{} does not parse: {e}", k.file_name()))
                })
                .collect()
        });
        &PARSED[self as usize]
    }

    /// The compatibility level other teams rely on.
    pub fn compatibility(self) -> Compatibility {
        match self {
            SchemaKind::SegmentAssignment
            | SchemaKind::SegmentProfile
            | SchemaKind::CartAbandonment
            | SchemaKind::BuildOrder => Compatibility::FullTransitive,
            _ => Compatibility::Backward,
        }
    }

    /// Finds the kind of a schema file name.
    pub fn from_file_name(name: &str) -> Option<SchemaKind> {
        SchemaKind::ALL.into_iter().find(|k| k.file_name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_is_a_record() {
        for kind in SchemaKind::ALL {
            assert!(matches!(kind.schema(), Schema::Record(_)), "{kind:?}");
            assert_eq!(SchemaKind::ALL[kind as usize], kind);
        }
    }

    #[test]
    fn every_file_in_schemas_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("schemas dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".avsc"))
            .collect();
        files.sort();
        let mut embedded: Vec<String> = SchemaKind::ALL
            .iter()
            .map(|k| k.file_name().to_owned())
            .collect();
        embedded.sort();
        assert_eq!(files, embedded);
    }
}
