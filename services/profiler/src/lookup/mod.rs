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

use crate::products::TopProducts;
use crate::state::{CategoryInterner, CustomerState, just_bought};

/// Next-best products per answer at most.
pub const NEXT_BEST: usize = 5;
/// Model versions whose labels the view keeps.
const MODEL_VERSIONS: usize = 64;

/// Category counters summed by (partition, segment).
type Interests = BTreeMap<(i32, i32), BTreeMap<Arc<str>, u64>>;

/// What the view keeps of one customer: a copy of its committed state (counts and sums, 120
/// bytes) and its top categories by name (names shared across the view); the profile is
/// made from them when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    /// The customer's partition.
    pub partition: i32,
    state: CustomerState,
    /// Top categories with their counts, most clicked first.
    categories: Box<[(Arc<str>, u32)]>,
}

impl Known {
    /// The view of a customer's state (its category names copied; [`Lookup::publish`] shares
    /// them).
    pub fn of(partition: i32, state: &CustomerState, interner: &CategoryInterner) -> Known {
        Known {
            partition,
            state: state.clone(),
            categories: state
                .top_categories(interner)
                .into_iter()
                .map(|(n, c)| (Arc::from(n), c))
                .collect(),
        }
    }

    /// Current segment.
    pub fn segment(&self) -> Option<i32> {
        self.state.segment()
    }

    /// The customer's profile.
    pub fn profile(&self, customer_id: &str) -> CustomerProfile {
        let top = self.categories.iter().map(|(n, _)| n.to_string()).collect();
        self.state.profile_with(customer_id, top)
    }

    fn affinity(&self, category: Option<&str>) -> f64 {
        let Some(category) = category else {
            return 0.0;
        };
        let count = self
            .categories
            .iter()
            .find(|(n, _)| &**n == category)
            .map_or(0, |(_, c)| *c);
        let categorised = self.state.categorised();
        if categorised == 0 {
            0.0
        } else {
            f64::from(count) / f64::from(categorised)
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
    /// Which brought its category: `category` (the customer clicks on it), `segment` (the
    /// customer's segment does), or `segment+category` (both).
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
    /// What the customers of each segment of each partition click on: the sum of their
    /// category counters, by (partition, segment).
    interests: RwLock<Interests>,
    /// Category names, one copy each.
    names: RwLock<std::collections::HashSet<Arc<str>>>,
    /// What sells in each category of each partition (its task's `products` store).
    products: RwLock<BTreeMap<i32, BTreeMap<Arc<str>, TopProducts>>>,
}

impl Lookup {
    /// An empty view over input topics of `partitions` partitions.
    pub fn new(partitions: i32) -> Lookup {
        Lookup {
            partitions: partitions.max(1),
            customers: DashMap::new(),
            tasks: RwLock::default(),
            models: RwLock::default(),
            interests: RwLock::default(),
            names: RwLock::default(),
            products: RwLock::default(),
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

    /// Committed state of partition `p`: these customers and these categories' products
    /// changed, and the partition stands as of `as_of`, placed with `model_version`.
    pub fn publish(
        &self,
        p: i32,
        customers: Vec<(Box<str>, Known)>,
        as_of: Option<EventTime>,
        model_version: i64,
        products: Vec<(String, TopProducts)>,
    ) {
        if !products.is_empty()
            && let Ok(mut all) = self.products.write()
        {
            let mine = all.entry(p).or_default();
            for (category, top) in products {
                mine.insert(Arc::from(category), top);
            }
        }
        let count = |interests: &mut Interests, k: &Known, add: bool| {
            let Some(segment) = k.segment() else {
                return;
            };
            let mine = interests.entry((k.partition, segment)).or_default();
            for (category, n) in &k.categories {
                let c = mine.entry(category.clone()).or_default();
                *c = if add {
                    c.saturating_add(u64::from(*n))
                } else {
                    c.saturating_sub(u64::from(*n))
                };
            }
            mine.retain(|_, n| *n > 0);
        };
        // In small batches: a reader waits for one batch at most, not for a whole commit.
        let mut customers = customers.into_iter().peekable();
        while customers.peek().is_some() {
            let batch: Vec<(Box<str>, Known)> = customers.by_ref().take(64).collect();
            let Ok(mut interests) = self.interests.write() else {
                break;
            };
            for (id, mut known) in batch {
                self.share_names(&mut known);
                let known = Arc::new(known);
                count(&mut interests, &known, true);
                if let Some(old) = self.customers.insert(id, known) {
                    count(&mut interests, &old, false);
                }
            }
        }
        if let Ok(mut t) = self.tasks.write() {
            t.insert(
                p,
                Partition::Ready(PartitionState {
                    as_of,
                    model_version,
                }),
            );
        }
    }

    /// Makes a customer's category names the view's one copy of each.
    fn share_names(&self, known: &mut Known) {
        let Ok(mut names) = self.names.write() else {
            return;
        };
        for (name, _) in known.categories.iter_mut() {
            match names.get(name) {
                Some(shared) => *name = shared.clone(),
                // Bounded like the tasks' interners: past it a name stays the customer's own.
                None if names.len() < 65_536 => {
                    names.insert(name.clone());
                }
                None => {}
            }
        }
    }

    /// Partition `p` is no longer this instance's: its customers leave the view.
    pub fn revoke(&self, p: i32) {
        if let Ok(mut t) = self.tasks.write() {
            t.remove(&p);
        }
        if let Ok(mut interests) = self.interests.write() {
            interests.retain(|(q, _), _| *q != p);
        }
        if let Ok(mut products) = self.products.write() {
            products.remove(&p);
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
            .filter(|k| k.segment().is_some())
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
        let segment = known.segment().map(|id| {
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
            next_best_products: match (self.interests.read(), self.products.read()) {
                (Ok(i), Ok(products)) => next_best(
                    &known,
                    products.get(&p).unwrap_or(&BTreeMap::new()),
                    known.segment().and_then(|s| i.get(&(p, s))),
                ),
                _ => Vec::new(),
            },
            profile: known.profile(id),
            segment,
        }))
    }
}

fn rfc3339(t: EventTime) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.0.to_string())
}

/// Next-best products for a customer, from its category affinity, what its segment is into
/// and what sells in each category, in its partition, without the products of its latest
/// order:
///
/// `score = (affinity(c) + interest(c)) × units / category's units`
///
/// for a product of category `c`, where `affinity` is the share of the customer's
/// categorised clicks in `c` (0 outside its top five) and `interest` the share of the
/// categorised clicks of its segment's customers (in its partition) in `c`, over the
/// customer's top categories and its segment's five largest. `because` says which of the two
/// brought the category: `category`, `segment`, or `segment+category`. Ties go to the product
/// id; at most [`NEXT_BEST`].
pub fn next_best(
    known: &Known,
    products: &BTreeMap<Arc<str>, TopProducts>,
    segment: Option<&BTreeMap<Arc<str>, u64>>,
) -> Vec<Recommendation> {
    let empty = BTreeMap::new();
    let segment = segment.unwrap_or(&empty);
    let segment_total: u64 = segment.values().sum();
    let interest = |c: &str| {
        if segment_total == 0 {
            0.0
        } else {
            segment.get(c).copied().unwrap_or(0) as f64 / segment_total as f64
        }
    };
    let mut largest: Vec<(&Arc<str>, &u64)> = segment.iter().collect();
    largest.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut categories: Vec<&str> = known.categories.iter().map(|(c, _)| &**c).collect();
    categories.extend(largest.iter().take(5).map(|(c, _)| &***c));
    categories.sort_unstable();
    categories.dedup();
    let last_order = known.state.last_order();
    // Scored by reference; only the picks are copied out.
    let mut scored: Vec<(f64, &str, &str, &'static str)> = Vec::new();
    for c in categories {
        let (a, i) = (known.affinity(Some(c)), interest(c));
        let Some(top) = products.get(c).filter(|t| t.total > 0) else {
            continue;
        };
        let because = match (i > 0.0, a > 0.0) {
            (true, true) => "segment+category",
            (true, false) => "segment",
            _ => "category",
        };
        for p in &top.items {
            if !just_bought(&last_order, &p.product_id) {
                let score = (a + i) * p.units as f64 / top.total as f64;
                scored.push((score, p.product_id.as_str(), c, because));
            }
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut picks: Vec<Recommendation> = Vec::with_capacity(NEXT_BEST);
    for (score, product, category, because) in scored {
        // A product counted under two categories is offered once, at its best score.
        if picks.len() == NEXT_BEST {
            break;
        }
        if picks.iter().any(|r| r.product_id == product) {
            continue;
        }
        picks.push(Recommendation {
            product_id: product.to_owned(),
            category: (!category.is_empty()).then(|| category.to_owned()),
            score,
            because: because.to_owned(),
        });
    }
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
        Known::of(0, &s, &interner)
    }

    fn products() -> BTreeMap<Arc<str>, TopProducts> {
        let top = |items: &[(&str, u64)]| {
            let mut t = TopProducts::default();
            for (p, n) in items {
                t.add(p, *n);
            }
            t
        };
        BTreeMap::from([
            (
                Arc::from("makeup"),
                top(&[("lipstick", 10), ("mascara", 4)]),
            ),
            (Arc::from("skincare"), top(&[("serum", 6), ("cream", 8)])),
            (Arc::from("hair"), top(&[("shampoo", 8)])),
            (Arc::from("nails"), top(&[("polish", 5)])),
        ])
    }

    #[test]
    fn next_best_follows_the_segment_and_the_customers_categories_not_its_last_order() {
        let known = customer(&[("skincare", 3), ("makeup", 1)], &["lipstick"]);
        let segment = BTreeMap::from([(Arc::from("hair"), 6), (Arc::from("skincare"), 2)]);
        let picks = next_best(&known, &products(), Some(&segment));
        let ids: Vec<&str> = picks.iter().map(|r| r.product_id.as_str()).collect();
        // Affinity: skincare 0.75, makeup 0.25; the segment: hair 0.75, skincare 0.25.
        // shampoo (0 + 0.75) * 8/8 = 0.75; cream (0.75 + 0.25) * 8/14; serum 1 * 6/14;
        // mascara 0.25 * 4/14; lipstick was just bought; nails: neither's category.
        assert_eq!(ids, ["shampoo", "cream", "serum", "mascara"]);
        let because: Vec<&str> = picks.iter().map(|r| r.because.as_str()).collect();
        assert_eq!(
            because,
            [
                "segment",
                "segment+category",
                "segment+category",
                "category"
            ]
        );
        assert!((picks[1].score - 8.0 / 14.0).abs() < 1e-9, "{picks:?}");
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
        lookup.publish(p, Vec::new(), Some(EventTime(5)), 0, Vec::new());
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
            Vec::new(),
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

    #[test]
    fn a_commit_replaces_the_categories_it_changed_and_keeps_the_others() {
        let lookup = Lookup::new(1);
        let top = |n| {
            let mut t = TopProducts::default();
            t.add("p", n);
            t
        };
        let units = |l: &Lookup, c: &str| l.products.read().expect("lock")[&0][c].total;
        lookup.publish(
            0,
            Vec::new(),
            None,
            0,
            vec![("a".into(), top(1)), ("b".into(), top(1))],
        );
        lookup.publish(0, Vec::new(), None, 0, vec![("b".into(), top(5))]);
        assert_eq!((units(&lookup, "a"), units(&lookup, "b")), (1, 5));
        lookup.revoke(0);
        assert!(lookup.products.read().expect("lock").is_empty());
    }

    #[test]
    fn a_segments_interests_follow_its_customers_latest_state() {
        let lookup = Lookup::new(1);
        let interests = |l: &Lookup| l.interests.read().expect("lock").clone();
        let first = customer(&[("skincare", 1)], &[]);
        lookup.publish(0, vec![("c".into(), first)], None, 1, Vec::new());
        let later = customer(&[("skincare", 3), ("makeup", 1)], &[]);
        lookup.publish(0, vec![("c".into(), later)], None, 1, Vec::new());
        let want = BTreeMap::from([(Arc::from("makeup"), 1), (Arc::from("skincare"), 3)]);
        assert_eq!(interests(&lookup), BTreeMap::from([((0, 1), want)]));
        lookup.revoke(0);
        assert!(interests(&lookup).is_empty());
    }
}
