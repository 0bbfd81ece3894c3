//! The lookup API's view: who a customer is right now, from committed state only.
//!
//! Kafka Streams answers such questions with interactive queries over its local state stores,
//! which hold what a transaction that may still abort wrote. Here a task publishes into the
//! view only what is durable ([`fitstream_runtime::task::Task::committed`]): after the Kafka
//! transaction that carried its checkpoint committed, or the state was restored from the
//! changelog, or an embedded run checkpointed. Between a checkpoint and its commit nothing is
//! processed, so the task's state then is exactly what it checkpointed. A revoked task takes
//! its partition out of the view ([`fitstream_runtime::task::Task::revoked`]).
//!
//! An answer ([`Answer`]) holds:
//! - the profile (features in original units) as of the partition's committed state;
//! - the segment (id, and label and description in the model version that placed the
//!   partition's customers: the newest version the task reassigned everybody with);
//! - `as_of`: every record of the customer's partition up to this event time is in it (the
//!   task's watermark when it last applied records, capped at the latest event time applied);
//! - next-best products ([`next_best`]).
//!
//! Per partition the view is `restoring` (assigned, its state not whole yet), `ready`, or
//! absent (another instance's: [`http`] forwards there, see [`endpoints`]).

pub mod endpoints;
pub mod http;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use fitstream_contracts::{CustomerProfile, EventTime, SegmentModel};
use serde::{Deserialize, Serialize};

use crate::products::{ProductCount, TopProducts, segment_key};
use crate::state::{CategoryInterner, CustomerState, LAST_ORDER_PRODUCTS, just_bought};

/// Next-best products per answer at most.
pub const NEXT_BEST: usize = 5;
/// Model versions whose labels the view keeps.
const MODEL_VERSIONS: usize = 64;

/// What the view keeps of one customer.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    /// The customer's partition.
    pub partition: i32,
    /// The profile.
    pub profile: CustomerProfile,
    /// Top categories with their counts, and the categorised clicks they are out of.
    pub categories: Vec<(String, u32)>,
    /// Categorised clicks.
    pub categorised: u32,
    /// Current segment.
    pub segment: Option<i32>,
    /// Fingerprints of the products of its latest order.
    last_order: [u32; LAST_ORDER_PRODUCTS],
}

impl Known {
    /// The view of a customer's state.
    pub fn of(
        partition: i32,
        id: &str,
        state: &CustomerState,
        interner: &CategoryInterner,
    ) -> Known {
        Known {
            partition,
            profile: state.profile(id, interner),
            categories: state
                .top_categories(interner)
                .into_iter()
                .map(|(n, c)| (n.to_owned(), c))
                .collect(),
            categorised: state.categorised(),
            segment: state.segment(),
            last_order: state.last_order(),
        }
    }

    fn affinity(&self, category: Option<&str>) -> f64 {
        let Some(category) = category else {
            return 0.0;
        };
        let count = self
            .categories
            .iter()
            .find(|(n, _)| n == category)
            .map_or(0, |(_, c)| *c);
        if self.categorised == 0 {
            0.0
        } else {
            f64::from(count) / f64::from(self.categorised)
        }
    }
}

/// A partition's committed state beyond its customers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionState {
    /// Every record up to this event time is in the state.
    pub as_of: Option<EventTime>,
    /// The model version the partition's customers were placed with (0: none yet).
    pub model_version: i64,
    /// What each segment bought, by [`segment_key`].
    pub products: Arc<BTreeMap<String, TopProducts>>,
}

/// Where a partition stands in this instance.
#[derive(Clone, Debug, PartialEq)]
pub enum Partition {
    /// Assigned; its state is being restored.
    Restoring,
    /// Its committed state is in the view.
    Ready(PartitionState),
}

/// A segment's label and description in one model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentAnswer {
    /// Segment id (stable across model versions).
    pub id: i32,
    /// Label in the model version.
    pub label: Option<String>,
    /// Description in the model version.
    pub description: Option<String>,
    /// The model version that placed the customer's partition.
    pub model_version: i64,
}

/// One recommended product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Product id.
    pub product_id: String,
    /// Category, if known.
    pub category: Option<String>,
    /// Score (see [`next_best`]).
    pub score: f64,
    /// Why: `segment` (the segment buys it), `segment+category` (and the customer likes its
    /// category), `popular` (bought by other segments in the customer's categories).
    pub because: String,
}

/// The answer about one customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Customer id.
    pub customer_id: String,
    /// Every record of the customer's partition up to this event time is in the answer
    /// (RFC 3339), null before any record.
    pub as_of: Option<String>,
    /// The same in milliseconds since the epoch.
    pub as_of_ms: Option<i64>,
    /// The partition of the customer id (of the input topics).
    pub partition: i32,
    /// The profile: counts and features in original units.
    pub profile: CustomerProfile,
    /// The segment; null before the customer was placed.
    pub segment: Option<SegmentAnswer>,
    /// Products to show next.
    pub next_best_products: Vec<Recommendation>,
}

/// What the view says about a customer id.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The customer.
    Found(Box<Answer>),
    /// No such customer in the partition's committed state (as of this time).
    Unknown {
        /// The partition.
        partition: i32,
        /// As of.
        as_of: Option<EventTime>,
    },
    /// The partition is being restored here.
    Restoring(i32),
    /// The partition is not this instance's.
    Elsewhere(i32),
}

/// The committed view of every task of one profiler instance.
#[derive(Debug)]
pub struct Lookup {
    partitions: i32,
    customers: DashMap<Box<str>, Arc<Known>>,
    tasks: RwLock<BTreeMap<i32, Partition>>,
    models: RwLock<BTreeMap<i64, Arc<SegmentModel>>>,
}

impl Lookup {
    /// An empty view over input topics of `partitions` partitions.
    pub fn new(partitions: i32) -> Lookup {
        Lookup {
            partitions: partitions.max(1),
            customers: DashMap::new(),
            tasks: RwLock::default(),
            models: RwLock::default(),
        }
    }

    /// The partition of a customer id (the producers' key partitioner).
    pub fn partition_of(&self, id: &str) -> i32 {
        fitstream_runtime::partition::partition_for(id.as_bytes(), self.partitions)
    }

    /// Partition `p` is assigned here; its state is being restored.
    pub fn assigning(&self, p: i32) {
        if let Ok(mut t) = self.tasks.write() {
            t.insert(p, Partition::Restoring);
        }
    }

    /// Committed state of partition `p`: these customers changed, and the partition stands
    /// at `state` (`products` None: unchanged).
    pub fn publish(
        &self,
        p: i32,
        customers: Vec<(Box<str>, Known)>,
        as_of: Option<EventTime>,
        model_version: i64,
        products: Option<Arc<BTreeMap<String, TopProducts>>>,
    ) {
        for (id, known) in customers {
            self.customers.insert(id, Arc::new(known));
        }
        if let Ok(mut t) = self.tasks.write() {
            let products = products.unwrap_or_else(|| match t.get(&p) {
                Some(Partition::Ready(s)) => s.products.clone(),
                _ => Arc::default(),
            });
            t.insert(
                p,
                Partition::Ready(PartitionState {
                    as_of,
                    model_version,
                    products,
                }),
            );
        }
    }

    /// Partition `p` is no longer this instance's: its customers leave the view.
    pub fn revoke(&self, p: i32) {
        if let Ok(mut t) = self.tasks.write() {
            t.remove(&p);
        }
        self.customers.retain(|_, k| k.partition != p);
    }

    /// A model version arrived (labels and descriptions for the answers).
    pub fn model(&self, model: &SegmentModel) {
        if let Ok(mut m) = self.models.write() {
            m.entry(model.version)
                .or_insert_with(|| Arc::new(model.clone()));
            while m.len() > MODEL_VERSIONS {
                m.pop_first();
            }
        }
    }

    /// The partitions whose committed state is here.
    pub fn ready(&self) -> Vec<i32> {
        self.tasks
            .read()
            .map(|t| {
                t.iter()
                    .filter(|(_, s)| matches!(s, Partition::Ready(_)))
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every partition assigned here and where it stands.
    pub fn partitions(&self) -> BTreeMap<i32, Partition> {
        self.tasks.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Customers in the view.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether the view holds no customer.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// A customer id in the view with a segment (the first in id order among a few), for
    /// examples.
    pub fn example(&self) -> Option<String> {
        self.customers
            .iter()
            .filter(|k| k.segment.is_some())
            .take(100)
            .map(|k| k.key().to_string())
            .min()
    }

    /// Every customer id in the view.
    pub fn ids(&self) -> Vec<String> {
        self.customers.iter().map(|k| k.key().to_string()).collect()
    }

    /// The answer about `id`.
    pub fn get(&self, id: &str) -> Reply {
        let p = self.partition_of(id);
        let state = match self.tasks.read().map(|t| t.get(&p).cloned()) {
            Ok(Some(Partition::Ready(s))) => s,
            Ok(Some(Partition::Restoring)) => return Reply::Restoring(p),
            _ => return Reply::Elsewhere(p),
        };
        let Some(known) = self.customers.get(id).map(|k| k.clone()) else {
            return Reply::Unknown {
                partition: p,
                as_of: state.as_of,
            };
        };
        let segment = known.segment.map(|id| {
            let model = self
                .models
                .read()
                .ok()
                .and_then(|m| m.get(&state.model_version).cloned());
            let s = model
                .as_ref()
                .and_then(|m| m.segments.iter().find(|s| s.segment_id == id));
            SegmentAnswer {
                id,
                label: s.map(|s| s.label.clone()),
                description: s.and_then(|s| s.description.clone()),
                model_version: state.model_version,
            }
        });
        Reply::Found(Box::new(Answer {
            customer_id: id.to_owned(),
            as_of: state.as_of.map(rfc3339),
            as_of_ms: state.as_of.map(|t| t.0),
            partition: p,
            next_best_products: next_best(&known, &state.products),
            profile: known.profile.clone(),
            segment,
        }))
    }
}

fn rfc3339(t: EventTime) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.0.to_string())
}

/// Next-best products for a customer, from what the customer's segment bought in its
/// partition and the customer's category affinity, without the products of its latest
/// order:
///
/// `score = units / segment units × (1 + 2 × affinity(category))`
///
/// where `affinity` is the share of the customer's categorised clicks in the product's
/// category (0 for a category outside its top five). Products its segment did not buy but
/// that other segments bought in the customer's own categories follow at half weight
/// (`popular`). Ties go to the product id; at most [`NEXT_BEST`].
pub fn next_best(known: &Known, products: &BTreeMap<String, TopProducts>) -> Vec<Recommendation> {
    let mine = segment_key(known.segment);
    let mut picks: Vec<Recommendation> = Vec::new();
    let mut consider = |c: &ProductCount, total: u64, own: bool| {
        if just_bought(&known.last_order, &c.product_id)
            || picks.iter().any(|r| r.product_id == c.product_id)
            || total == 0
        {
            return;
        }
        let affinity = known.affinity(c.category.as_deref());
        if !own && affinity == 0.0 {
            return;
        }
        let share = c.units as f64 / total as f64;
        let weight = if own { 1.0 } else { 0.5 };
        let because = match (own, affinity > 0.0) {
            (true, true) => "segment+category",
            (true, false) => "segment",
            (false, _) => "popular",
        };
        picks.push(Recommendation {
            product_id: c.product_id.clone(),
            category: c.category.clone(),
            score: weight * share * (1.0 + 2.0 * affinity),
            because: because.to_owned(),
        });
    };
    if let Some(top) = products.get(&mine) {
        for c in top.ranked() {
            consider(c, top.total, true);
        }
    }
    for (key, top) in products {
        if *key != mine {
            for c in top.ranked() {
                consider(c, top.total, false);
            }
        }
    }
    picks.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.product_id.cmp(&b.product_id))
    });
    picks.truncate(NEXT_BEST);
    picks
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::{ClickEvent, ClickEventType, samples};

    use super::*;

    fn customer(categories: &[(&str, u32)], bought: &[&str]) -> Known {
        let mut interner = CategoryInterner::default();
        let mut s = CustomerState::default();
        let mut n = 0;
        for (c, times) in categories {
            for _ in 0..*times {
                n += 1;
                s.click(
                    &ClickEvent {
                        event_type: ClickEventType::ProductView,
                        category: Some((*c).to_owned()),
                        event_time: EventTime(1_000 + n),
                        ..samples::click()
                    },
                    &mut interner,
                );
            }
        }
        s.purchase(&crate::state::order(10_000, bought));
        s.set_segment(Some(1));
        Known::of(0, "c", &s, &interner)
    }

    fn products() -> BTreeMap<String, TopProducts> {
        let mut seg1 = TopProducts::default();
        seg1.add("lipstick", Some("makeup"), 10);
        seg1.add("serum", Some("skincare"), 6);
        seg1.add("mascara", Some("makeup"), 4);
        let mut seg2 = TopProducts::default();
        seg2.add("cream", Some("skincare"), 8);
        seg2.add("shampoo", Some("hair"), 8);
        BTreeMap::from([("1".to_owned(), seg1), ("2".to_owned(), seg2)])
    }

    #[test]
    fn next_best_follows_the_segment_and_the_customers_categories_not_its_last_order() {
        let known = customer(&[("skincare", 3), ("makeup", 1)], &["lipstick"]);
        let picks = next_best(&known, &products());
        let ids: Vec<&str> = picks.iter().map(|r| r.product_id.as_str()).collect();
        // lipstick was just bought; serum: 6/20 * (1 + 2*0.75) = 0.75; mascara: 4/20 *
        // (1 + 2*0.25) = 0.3; cream, another segment's, in the customer's category:
        // 0.5 * 8/16 * (1 + 1.5) = 0.625; shampoo: a category the customer never clicked.
        assert_eq!(ids, ["serum", "cream", "mascara"]);
        assert_eq!(picks[0].because, "segment+category");
        assert_eq!(picks[1].because, "popular");
        assert!((picks[0].score - 0.75).abs() < 1e-9, "{picks:?}");
    }

    #[test]
    fn answers_come_from_published_partitions_only() {
        let lookup = Lookup::new(3);
        let known = customer(&[("skincare", 1)], &[]);
        let id = "c";
        let p = lookup.partition_of(id);
        assert_eq!(lookup.get(id), Reply::Elsewhere(p));
        lookup.assigning(p);
        assert_eq!(lookup.get(id), Reply::Restoring(p));
        lookup.publish(p, Vec::new(), Some(EventTime(5)), 0, None);
        assert_eq!(
            lookup.get(id),
            Reply::Unknown {
                partition: p,
                as_of: Some(EventTime(5))
            }
        );
        lookup.publish(
            p,
            vec![(
                id.into(),
                Known {
                    partition: p,
                    ..known
                },
            )],
            Some(EventTime(6)),
            0,
            None,
        );
        let Reply::Found(answer) = lookup.get(id) else {
            panic!("published");
        };
        assert_eq!(answer.as_of_ms, Some(6));
        assert_eq!(answer.as_of.as_deref(), Some("1970-01-01T00:00:00.006Z"));
        lookup.revoke(p);
        assert_eq!(lookup.get(id), Reply::Elsewhere(p));
        assert!(lookup.is_empty());
    }
}
