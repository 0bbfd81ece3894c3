//! Every topic of the product: names (all configurable), keys, values and settings.
//!
//! The same [`TopicSpec`]s drive topic provisioning in code (`fitstream topics create`) and are
//! checked against the Strimzi `KafkaTopic` manifests under `k8s/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schemas::SchemaKind;

/// Topic names and their default settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Click events from the collectors.
    pub clickstream: String,
    /// Purchases from the collectors.
    pub purchases: String,
    /// Customer profiles (compacted; the profiler's output and feature store).
    pub profiles: String,
    /// Fitted segment models (compacted; the segmenter's output, the profiler's table).
    pub segment_models: String,
    /// Segment assignments for marketing (compacted).
    pub segment_assignments: String,
    /// Segment profiles for marketing (compacted).
    pub segment_profiles: String,
    /// Cart-abandonment audiences for marketing.
    pub cart_abandonment: String,
    /// Build orders per plant; `{plant}` is replaced by the plant id.
    pub build_orders: String,
    /// Records that could not be processed, with headers saying why.
    pub dead_letter: String,
    /// Partitions of every topic (inputs are co-partitioned by customer id).
    pub partitions: i32,
    /// Replication factor (3 in production, 1 on a single broker).
    pub replication_factor: i32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `retention.ms` of event topics.
    pub retention_ms: i64,
    /// `retention.ms` of the dead-letter topic.
    pub dead_letter_retention_ms: i64,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            clickstream: "iob.clickstream.v1".into(),
            purchases: "iob.purchases.v1".into(),
            profiles: "iob.customer-profiles.v1".into(),
            segment_models: "iob.segment-models.v1".into(),
            segment_assignments: "marketing.segment-assignments.v1".into(),
            segment_profiles: "marketing.segment-profiles.v1".into(),
            cart_abandonment: "marketing.cart-abandonment.v1".into(),
            build_orders: "factory.{plant}.build-orders.v1".into(),
            dead_letter: "iob.dead-letter.v1".into(),
            partitions: 6,
            replication_factor: 1,
            min_insync_replicas: 1,
            retention_ms: 7 * 24 * 3_600_000,
            dead_letter_retention_ms: 30 * 24 * 3_600_000,
        }
    }
}

/// Who writes and reads a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicRole {
    /// Written by collectors, read by fitstream.
    Input,
    /// A compacted table: latest value per key.
    Table,
    /// An event stream other teams read.
    Output,
    /// The dead-letter topic.
    DeadLetter,
}

/// What a topic is and how it is configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`, `min.insync.replicas`, ...).
    pub configs: BTreeMap<String, String>,
    /// Role.
    pub role: TopicRole,
    /// Value schema; None for the dead-letter topic (original bytes).
    pub value: Option<SchemaKind>,
}

impl TopicsConfig {
    /// The same settings with every topic name prefixed (`<prefix>.<name>`): separate
    /// pipelines or tests on one cluster.
    pub fn with_prefix(&self, prefix: &str) -> TopicsConfig {
        let p = |name: &str| format!("{prefix}.{name}");
        TopicsConfig {
            clickstream: p(&self.clickstream),
            purchases: p(&self.purchases),
            profiles: p(&self.profiles),
            segment_models: p(&self.segment_models),
            segment_assignments: p(&self.segment_assignments),
            segment_profiles: p(&self.segment_profiles),
            cart_abandonment: p(&self.cart_abandonment),
            build_orders: p(&self.build_orders),
            dead_letter: p(&self.dead_letter),
            ..self.clone()
        }
    }

    /// The build-orders topic of a plant.
    pub fn build_orders_topic(&self, plant: &str) -> String {
        self.build_orders.replace("{plant}", plant)
    }

    /// If `topic` is a plant's build-orders topic, that plant.
    pub fn plant_of(&self, topic: &str) -> Option<String> {
        let (prefix, suffix) = self.build_orders.split_once("{plant}")?;
        let plant = topic.strip_prefix(prefix)?.strip_suffix(suffix)?;
        (!plant.is_empty()).then(|| plant.to_owned())
    }

    /// The value schema of a topic, if it is one of the product's topics.
    pub fn kind_of(&self, topic: &str) -> Option<SchemaKind> {
        let named = [
            (&self.clickstream, SchemaKind::ClickEvent),
            (&self.purchases, SchemaKind::PurchaseEvent),
            (&self.profiles, SchemaKind::CustomerProfile),
            (&self.segment_models, SchemaKind::SegmentModel),
            (&self.segment_assignments, SchemaKind::SegmentAssignment),
            (&self.segment_profiles, SchemaKind::SegmentProfile),
            (&self.cart_abandonment, SchemaKind::CartAbandonment),
        ];
        named
            .into_iter()
            .find(|(name, _)| name.as_str() == topic)
            .map(|(_, kind)| kind)
            .or_else(|| self.plant_of(topic).map(|_| SchemaKind::BuildOrder))
    }

    /// Every topic of the product, with one build-orders topic per plant.
    pub fn specs(&self, plants: &[String]) -> Vec<TopicSpec> {
        use TopicRole::*;
        let mut specs = vec![
            self.spec(&self.clickstream, Input, Some(SchemaKind::ClickEvent)),
            self.spec(&self.purchases, Input, Some(SchemaKind::PurchaseEvent)),
            self.spec(&self.profiles, Table, Some(SchemaKind::CustomerProfile)),
            self.spec(&self.segment_models, Table, Some(SchemaKind::SegmentModel)),
            self.spec(
                &self.segment_assignments,
                Table,
                Some(SchemaKind::SegmentAssignment),
            ),
            self.spec(
                &self.segment_profiles,
                Table,
                Some(SchemaKind::SegmentProfile),
            ),
            self.spec(
                &self.cart_abandonment,
                Output,
                Some(SchemaKind::CartAbandonment),
            ),
        ];
        for plant in plants {
            specs.push(self.spec(
                &self.build_orders_topic(plant),
                Output,
                Some(SchemaKind::BuildOrder),
            ));
        }
        specs.push(self.spec(&self.dead_letter, DeadLetter, None));
        specs
    }

    fn spec(&self, name: &str, role: TopicRole, value: Option<SchemaKind>) -> TopicSpec {
        let mut configs = BTreeMap::new();
        configs.insert(
            "min.insync.replicas".into(),
            self.min_insync_replicas.to_string(),
        );
        match role {
            TopicRole::Table => {
                configs.insert("cleanup.policy".into(), "compact".into());
            }
            TopicRole::DeadLetter => {
                configs.insert("cleanup.policy".into(), "delete".into());
                configs.insert(
                    "retention.ms".into(),
                    self.dead_letter_retention_ms.to_string(),
                );
            }
            TopicRole::Input | TopicRole::Output => {
                configs.insert("cleanup.policy".into(), "delete".into());
                configs.insert("retention.ms".into(), self.retention_ms.to_string());
            }
        }
        // The models topic has one key; one partition keeps every reader's view ordered.
        let partitions = if value == Some(SchemaKind::SegmentModel) {
            1
        } else {
            self.partitions
        };
        TopicSpec {
            name: name.to_owned(),
            partitions,
            replication_factor: self.replication_factor,
            configs,
            role,
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plant_topics_round_trip_and_tables_are_compacted() {
        let t = TopicsConfig::default();
        let name = t.build_orders_topic("berlin");
        assert_eq!(name, "factory.berlin.build-orders.v1");
        assert_eq!(t.plant_of(&name).as_deref(), Some("berlin"));
        assert_eq!(t.plant_of("factory..build-orders.v1"), None);
        assert_eq!(t.kind_of(&name), Some(SchemaKind::BuildOrder));
        let specs = t.specs(&["berlin".into()]);
        assert_eq!(specs.len(), 9);
        let prefixed = t.with_prefix("x");
        assert_eq!(
            prefixed.build_orders_topic("berlin"),
            "x.factory.berlin.build-orders.v1"
        );
        assert_eq!(
            prefixed.kind_of("x.iob.clickstream.v1"),
            Some(SchemaKind::ClickEvent)
        );
        for s in &specs {
            let compacted = s.configs["cleanup.policy"] == "compact";
            assert_eq!(compacted, s.role == TopicRole::Table, "{}", s.name);
        }
    }
}
