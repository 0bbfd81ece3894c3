//! The profiler as a topology for the drivers (Kafka or embedded): one stage, `profiles`.
//!
//! The stage reads the clickstream and the purchases (co-partitioned by customer id) and the
//! segment-models topic as a global table, and writes customer profiles (compacted, keyed by
//! customer id) and segment assignments (compacted, keyed by customer id).
//!
//! # Per record
//! 1. `admit` decodes and validates (bad bytes go to the dead-letter topic with the codec's
//!    reason). Customer ids starting with `\0` or `__fitstream.` are refused (`validation`):
//!    those prefixes name internal changelog entries.
//! 2. `process`: a record older than the watermark minus the deduplication retention (24 h) is
//!    refused as `late`: its id may have been forgotten, so counting it could count a
//!    duplicate twice. Then deduplication by event id (clicks) or order id (purchases) within
//!    the retention ([`fitstream_runtime::state::DedupStore`]); a duplicate is dropped and counted. The record is then
//!    *held* by (event time, arrival).
//! 3. `advance`: held records the watermark has passed are applied to their customers' compact
//!    state ([`crate::state`]) in event-time order, and the customers are flagged.
//!
//! # Emission: once per customer per interval of event time
//! Flagged customers are emitted when the records being applied enter a new `emit_interval_ms`
//! interval (default one minute of event time), when the watermark does, and at the end of
//! time: each one's profile, queued for placement. A flush therefore holds exactly the records
//! before the start of its interval, whatever how the watermark stepped (a replay moves it
//! record by record, Kafka in batches, and two input topics interleave as they are fetched):
//! the profile versions are the same in both run modes (tested, and on the broker). Output is
//! never a function of commit timing. Customers come out in order of their last event (then
//! id), so a partition of the profiles topic stays in event-time order even when one flush
//! spans hours (a backlog): its readers' watermarks (the segmenter's) see no record far ahead.
//!
//! # Assignment (as-of join with the model table, waiting for the segmenter)
//! A profile of last event `t` can only be placed with the model valid at `t` once no model
//! with a cutoff up to `t` can still come. The segmenter reports its progress on the
//! segment-models topic (a marker, [`fitstream_runtime::task::Task::global_progress`]); a model is progress up to its
//! cutoff too. Queued profiles and new model versions are then handled in event-time order up
//! to the progress:
//! - a queued profile is placed with the latest model whose cutoff is <= `t` (none before the
//!   first model), but never with a version older than the newest one that already reassigned
//!   everybody, so that a lagging partition cannot move a customer back to an older model;
//! - a new model version reassigns every customer at its cutoff, with the features of the
//!   customer's last placed profile: the state may have moved on (records after the cutoff
//!   already applied), so the first change after a placement keeps the placed features aside
//!   (`base`) until the next placement. Quiet customers thus follow the current model too.
//! - A [`fitstream_contracts::SegmentAssignment`] is emitted only when the segment id changes (with the previous
//!   id and the distance); `fitstream_assignments_changed_total` counts them.
//! - Its event time (valid from) is the time above, but never earlier than the task's
//!   previous assignment: a partition of the assignments topic is in event-time order, so a
//!   reader knows the table is complete up to just before its latest record (the planner's
//!   as-of join of buyers with their segment relies on it).
//!
//! # State and restore
//! The task's state is in stores the runtime checkpoints and restores
//! ([`fitstream_runtime::state`]): `customers` (the [`crate::store::ProfileStore`], one entry per customer
//! changed since the previous checkpoint), `dedup` (the runtime's deduplication store),
//! `held` (records waiting for the watermark), `place` (profiles waiting for their
//! placement), `base` (features kept aside), `products` (what sells in each category, for the
//! lookup API: [`crate::products`]) and `meta` (last flushed interval, newest reassigning
//! version, latest assignment time, the segmenter's progress, the latest watermark and event
//! time applied). Never a snapshot of everything: the state grows with the customers. After a
//! restore the driver replays the model topic and the latest progress, where versions already
//! applied change nothing. Restored and uninterrupted runs emit the same records (tested).
//!
//! # Lookup API
//! With [`ProfilerApp::lookup`] set, a task publishes its committed state to the view
//! ([`crate::lookup`]) when the runtime says it is durable (`Task::committed`): the customers
//! its checkpoint wrote (all of them after a restore), the categories whose products changed,
//! the model version and the time it is as of; a revoked task takes its partition out.
//!
//! Delivery: exactly once comes from the driver (outputs, changelog and offsets in one
//! transaction); this task's outputs are a function of its input and the model records.

mod task;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fitstream_contracts::Codec;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::task::{Stage, Topology, WatermarkSource};
use serde::{Deserialize, Serialize};

pub use self::task::ProfileTask;

/// Customer id prefixes refused: reserved for the runtime's own keys and headers.
pub const RESERVED_PREFIXES: [&str; 2] = ["\0", "__fitstream."];

/// Settings of the profiler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilerConfig {
    /// Changed profiles are emitted when the watermark enters a new interval of this many
    /// milliseconds of event time: at most one profile per customer per interval.
    pub emit_interval_ms: i64,
    /// Event and order ids are remembered this long in event time (duplicates within it are
    /// dropped); older records are refused as late.
    pub dedup_retention_ms: i64,
    /// Model versions kept for the as-of join.
    pub model_versions: usize,
}

impl Default for ProfilerConfig {
    fn default() -> Self {
        ProfilerConfig {
            emit_interval_ms: 60_000,
            dedup_retention_ms: 24 * 3_600_000,
            model_versions: 48,
        }
    }
}

/// Counters over every task of the profiler.
#[derive(Debug, Default)]
pub struct ProfilerCounters {
    /// Click events counted.
    pub clicks: AtomicU64,
    /// Orders counted.
    pub purchases: AtomicU64,
    /// Duplicates dropped.
    pub duplicates: AtomicU64,
    /// Records refused as late.
    pub late: AtomicU64,
    /// Profiles emitted.
    pub profiles: AtomicU64,
    /// Assignments emitted (segment changes).
    pub assignments: AtomicU64,
    /// Model versions received and usable.
    pub models: AtomicU64,
    /// Model records that could not be used.
    pub models_refused: AtomicU64,
}

/// A snapshot of [`ProfilerCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProfilerStats {
    /// Click events counted.
    pub clicks: u64,
    /// Orders counted.
    pub purchases: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Records refused as late.
    pub late: u64,
    /// Profiles emitted.
    pub profiles: u64,
    /// Assignments emitted.
    pub assignments: u64,
    /// Model versions received.
    pub models: u64,
    /// Model records refused.
    pub models_refused: u64,
}

impl ProfilerCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> ProfilerStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProfilerStats {
            clicks: r(&self.clicks),
            purchases: r(&self.purchases),
            duplicates: r(&self.duplicates),
            late: r(&self.late),
            profiles: r(&self.profiles),
            assignments: r(&self.assignments),
            models: r(&self.models),
            models_refused: r(&self.models_refused),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Everything the profiler's tasks share.
#[derive(Clone)]
pub struct ProfilerApp {
    /// Application name (consumer group `fitstream-<name>`).
    pub name: String,
    /// Settings.
    pub config: ProfilerConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Wire codec (writers prepared for the output topics).
    pub codec: Codec,
    /// Counters over every task.
    pub counters: Arc<ProfilerCounters>,
    /// Partitions of the inputs.
    pub partitions: i32,
    /// A bounded run chained with the segmenter (`run all --until-end`): a task has settled
    /// only once the segmenter reported the end of time and every profile is placed.
    pub await_segmenter_at_end: bool,
    /// The lookup API's view, fed with each task's committed state (None: no API).
    pub lookup: Option<Arc<crate::lookup::Lookup>>,
}

impl ProfilerApp {
    /// An application named `name` with fresh counters, partitions as configured for topics.
    pub fn new(
        name: impl Into<String>,
        config: ProfilerConfig,
        topics: TopicsConfig,
        codec: Codec,
    ) -> ProfilerApp {
        let partitions = topics.partitions;
        ProfilerApp {
            name: name.into(),
            config,
            topics,
            codec,
            counters: Arc::new(ProfilerCounters::default()),
            partitions,
            await_segmenter_at_end: false,
            lookup: None,
        }
    }

    /// Output topics (for writer registration).
    pub fn output_topics(&self) -> Vec<String> {
        vec![
            self.topics.profiles.clone(),
            self.topics.segment_assignments.clone(),
        ]
    }

    /// The topology: one stage, `profiles`.
    pub fn topology(&self) -> Topology {
        let app = self.clone();
        Topology {
            name: self.name.clone(),
            stages: vec![Stage {
                name: "profiles".into(),
                inputs: vec![
                    self.topics.clickstream.clone(),
                    self.topics.purchases.clone(),
                ],
                tables: Vec::new(),
                repartitions: vec![],
                watermark: WatermarkSource::EventTime,
                globals: vec![self.topics.segment_models.clone()],
                factory: Box::new(move |p| Box::new(ProfileTask::of_partition(app.clone(), p))),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::{
        ClickEvent, CustomerProfile, EventTime, ModelSegment, PurchaseEvent, SegmentAssignment,
        SegmentModel, samples,
    };
    use fitstream_runtime::deadletter::Reason;
    use fitstream_runtime::state;
    use fitstream_runtime::task::{Ctx, Gate, Record, Rejection, Task};
    use fitstream_runtime::watermark::{WatermarkConfig, Watermarks};

    use super::*;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_767_571_200_000;

    fn app() -> ProfilerApp {
        ProfilerApp::new(
            "profiler",
            ProfilerConfig::default(),
            TopicsConfig::default(),
            Codec::pinned(),
        )
    }

    fn click(customer: &str, id: &str, t: i64) -> ClickEvent {
        ClickEvent {
            event_id: id.into(),
            customer_id: customer.into(),
            event_time: EventTime(t),
            ..samples::click()
        }
    }

    /// An order of one modest line: the sample's second line (a billion) would drown the
    /// order count in the distances to the centroids.
    fn order(customer: &str, id: &str, t: i64) -> PurchaseEvent {
        PurchaseEvent {
            order_id: id.into(),
            customer_id: customer.into(),
            event_time: EventTime(t),
            lines: vec![samples::purchase_line()],
            ..samples::purchase()
        }
    }

    /// Two segments in an unscaled space: 1 at the origin, 2 at `orders` orders.
    fn model(version: i64, cutoff: i64, orders: f64) -> SegmentModel {
        let mut far = vec![0.0; 10];
        far[1] = orders;
        SegmentModel {
            version,
            cutoff_event_time: EventTime(cutoff),
            log1p_features: vec![],
            means: vec![0.0; 10],
            scales: vec![1.0; 10],
            segments: vec![
                ModelSegment {
                    segment_id: 1,
                    label: "browsers".into(),
                    centroid: vec![0.0; 10],
                    description: None,
                },
                ModelSegment {
                    segment_id: 2,
                    label: "buyers".into(),
                    centroid: far,
                    description: None,
                },
            ],
            ..samples::model()
        }
    }

    struct Driven {
        task: ProfileTask,
        app: ProfilerApp,
        watermark: EventTime,
    }

    impl Driven {
        fn new() -> Driven {
            let app = app();
            Driven {
                task: ProfileTask::new(app.clone()),
                app,
                watermark: EventTime::MIN,
            }
        }

        /// Admits and processes; the watermark follows the record when it moves forward.
        fn push(&mut self, topic: &str, bytes: &[u8]) -> (Result<(), Rejection>, Ctx) {
            let mut ctx = Ctx::default();
            let record = Record {
                topic,
                partition: 0,
                offset: 0,
                key: None,
                value: Some(bytes),
            };
            // One input partition whose watermark is the latest event time (no skew rule).
            let mut watermarks = Watermarks::new(WatermarkConfig {
                max_future_skew_ms: i64::MAX,
                max_history_gap_ms: i64::MAX,
                ..WatermarkConfig::default()
            });
            if self.watermark > EventTime::MIN {
                watermarks.observe("input/0".to_owned(), self.watermark, 0);
            }
            let mut gate = Gate::new(Some(&mut watermarks), "input", 0, self.watermark, 0, false);
            let result = self.task.process(&record, &mut gate, &mut ctx);
            let t = watermarks.current(0);
            if t > self.watermark {
                self.watermark = t;
                self.task.advance(t, &mut ctx);
            }
            (result, ctx)
        }

        fn click(&mut self, c: &ClickEvent) -> (Result<(), Rejection>, Ctx) {
            let bytes = self
                .app
                .codec
                .encode(&self.app.topics.clickstream, c)
                .expect("encodes");
            let topic = self.app.topics.clickstream.clone();
            self.push(&topic, &bytes)
        }

        fn order(&mut self, o: &PurchaseEvent) -> (Result<(), Rejection>, Ctx) {
            let bytes = self
                .app
                .codec
                .encode(&self.app.topics.purchases, o)
                .expect("encodes");
            let topic = self.app.topics.purchases.clone();
            self.push(&topic, &bytes)
        }

        fn model(&mut self, m: &SegmentModel) -> Ctx {
            let bytes = self
                .app
                .codec
                .encode(&self.app.topics.segment_models, m)
                .expect("encodes");
            let mut ctx = Ctx::default();
            let topic = self.app.topics.segment_models.clone();
            self.task
                .global(&topic, Some(b"current"), Some(&bytes), &mut ctx);
            ctx
        }

        fn progress(&mut self, t: i64) -> Ctx {
            let mut ctx = Ctx::default();
            let topic = self.app.topics.segment_models.clone();
            self.task.global_progress(&topic, EventTime(t), &mut ctx);
            ctx
        }

        fn profiles(&self, ctx: &Ctx) -> Vec<CustomerProfile> {
            ctx.emits
                .iter()
                .filter(|e| e.topic == self.app.topics.profiles)
                .map(|e| {
                    self.app
                        .codec
                        .decode(&e.topic, e.value.as_deref().unwrap_or_default())
                        .expect("a profile")
                })
                .collect()
        }

        fn assignments(&self, ctx: &Ctx) -> Vec<SegmentAssignment> {
            ctx.emits
                .iter()
                .filter(|e| e.topic == self.app.topics.segment_assignments)
                .map(|e| {
                    self.app
                        .codec
                        .decode(&e.topic, e.value.as_deref().unwrap_or_default())
                        .expect("an assignment")
                })
                .collect()
        }
    }

    #[test]
    fn a_record_at_the_dedup_horizon_counts_and_an_older_one_is_late() {
        let mut d = Driven::new();
        assert!(d.click(&click("a", "e1", T0 + 24 * H)).0.is_ok());
        assert!(
            d.click(&click("a", "e2", T0)).0.is_ok(),
            "exactly 24 h behind"
        );
        let (r, _) = d.click(&click("a", "e3", T0 - 1));
        assert_eq!(r.map_err(|r| r.reason), Err(Reason::Late));
        assert_eq!(d.app.counters.snapshot().late, 1);
        assert_eq!(d.app.counters.snapshot().clicks, 2);
    }

    #[test]
    fn duplicates_within_the_retention_are_dropped_and_counted() {
        let mut d = Driven::new();
        d.click(&click("a", "x", T0)).0.expect("accepted");
        let (r, ctx) = d.click(&click("a", "x", T0));
        assert!(r.is_ok());
        assert_eq!(ctx.duplicates, 1);
        // An order id equal to an event id is not a duplicate of it.
        let (_, ctx) = d.order(&order("a", "x", T0));
        assert_eq!(ctx.duplicates, 0);
        let s = d.app.counters.snapshot();
        assert_eq!((s.clicks, s.purchases, s.duplicates), (1, 1, 1));
    }

    #[test]
    fn profiles_come_out_once_per_interval_in_event_time_order() {
        let mut d = Driven::new();
        let (_, first) = d.click(&click("b", "e1", T0));
        assert!(
            d.profiles(&first).is_empty(),
            "held until the watermark passes it"
        );
        let mut quiet = Vec::new();
        for (i, c) in ["c", "a", "c"].iter().enumerate() {
            let (_, ctx) = d.click(&click(
                c,
                &format!("e{}", i + 2),
                T0 + 1_000 * (i as i64 + 1),
            ));
            quiet.extend(d.profiles(&ctx));
        }
        assert!(quiet.is_empty(), "nothing until the next minute");
        let (_, ctx) = d.click(&click("b", "e9", T0 + 60_000));
        let ids: Vec<String> = d
            .profiles(&ctx)
            .into_iter()
            .map(|p| p.customer_id)
            .collect();
        // The minute's records, by last event: b (T0), a (T0+2s), c (T0+3s).
        assert_eq!(ids, vec!["b", "a", "c"]);
        let mut end = Ctx::default();
        d.task.advance(EventTime::MAX, &mut end);
        let last: Vec<CustomerProfile> = d.profiles(&end);
        assert_eq!(last.len(), 1, "the record at the watermark, at the end");
        assert_eq!(
            (last[0].customer_id.as_str(), last[0].last_event_time),
            ("b", EventTime(T0 + 60_000))
        );
    }

    #[test]
    fn assignments_wait_for_the_segmenter_and_follow_the_model_valid_at_their_time() {
        let mut d = Driven::new();
        d.click(&click("a", "e1", T0)).0.expect("accepted");
        let (_, ctx) = d.click(&click("a", "e2", T0 + 60_000));
        assert_eq!(d.profiles(&ctx).len(), 1, "the first minute is flushed");
        assert!(d.assignments(&ctx).is_empty(), "no model yet");
        assert!(
            d.progress(T0 + H / 2).emits.is_empty(),
            "placed with no model"
        );

        // v1 (cutoff T0 + 1 h) arrives: everybody placed is assigned, at its cutoff.
        let ctx = d.model(&model(1, T0 + H, 1.0));
        let a = d.assignments(&ctx);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].segment_id, a[0].previous_segment_id), (1, None));
        assert_eq!(a[0].event_time, EventTime(T0 + H));
        assert!(d.model(&model(1, T0 + H, 1.0)).emits.is_empty(), "known");

        // One order at T0 + 2 h: closer to segment 2 of v1. Its profile is flushed once the
        // watermark passes it, and waits until the segmenter is there too.
        d.order(&order("a", "o1", T0 + 2 * H)).0.expect("accepted");
        let (_, ctx) = d.click(&click("a", "e3", T0 + 2 * H + 60_000));
        assert_eq!(d.profiles(&ctx).len(), 1);
        assert!(d.assignments(&ctx).is_empty(), "the segmenter is at 1 h");
        let ctx = d.progress(T0 + 2 * H);
        let a = d.assignments(&ctx);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].segment_id, a[0].previous_segment_id), (2, Some(1)));
        assert_eq!(
            (a[0].model_version, a[0].event_time),
            (1, EventTime(T0 + 2 * H))
        );

        // v2 (cutoff T0 + 3 h) puts segment 2 at 10 orders: "a" goes back to 1 at its cutoff,
        // placed with the features of its last placed profile (one order), not with the
        // click the watermark has not passed yet.
        let ctx = d.model(&model(2, T0 + 3 * H, 10.0));
        let a = d.assignments(&ctx);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].segment_id, a[0].model_version), (1, 2));
        assert_eq!(a[0].event_time, EventTime(T0 + 3 * H));

        // Nine more orders behind v2's cutoff (a partition that lagged): placed with v2,
        // never an older version after v2 moved everybody, and not before the previous
        // assignment: the topic's partitions stay in event-time order.
        let mut moved = Vec::new();
        for i in 0..9 {
            let (r, ctx) = d.order(&order("a", &format!("o{}", i + 2), T0 + 2 * H + 120_000));
            r.expect("accepted");
            moved.extend(d.assignments(&ctx));
        }
        let (_, ctx) = d.click(&click("a", "e4", T0 + 2 * H + 180_000));
        moved.extend(d.assignments(&ctx));
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!((moved[0].segment_id, moved[0].model_version), (2, 2));
        assert_eq!(moved[0].event_time, EventTime(T0 + 3 * H));
        assert_eq!(d.app.counters.snapshot().models, 2);
    }

    /// An output: key, event time, bytes.
    type Out = (String, i64, Vec<u8>);

    /// Every profile and assignment a task emits for `events`, the watermark following
    /// `watermark(i)` after event `i`, with `models` delivered after the event whose index
    /// they carry and the segmenter's progress after event `i` from `progress(i)`.
    fn outputs(
        events: &[(bool, ClickEvent, PurchaseEvent)],
        watermark: impl Fn(usize) -> Option<i64>,
        models: &[(usize, SegmentModel)],
        progress: impl Fn(usize) -> Option<i64>,
    ) -> (Vec<Out>, Vec<Out>) {
        outputs_restarted(events, watermark, models, progress, None)
    }

    /// [`outputs`], the task checkpointed after every event and, after event `restart`,
    /// replaced by a new one restored from its changelog (then the model records and the
    /// latest progress, as the driver replays them).
    fn outputs_restarted(
        events: &[(bool, ClickEvent, PurchaseEvent)],
        watermark: impl Fn(usize) -> Option<i64>,
        models: &[(usize, SegmentModel)],
        progress: impl Fn(usize) -> Option<i64>,
        restart: Option<usize>,
    ) -> (Vec<Out>, Vec<Out>) {
        let mut d = Driven::new();
        let mut emits = Vec::new();
        let mut changelog: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            std::collections::BTreeMap::new();
        let mut latest_progress = None;
        for (i, (is_click, c, o)) in events.iter().enumerate() {
            let (topic, bytes) = if *is_click {
                let t = d.app.topics.clickstream.clone();
                let b = d.app.codec.encode(&t, c).expect("encodes");
                (t, b)
            } else {
                let t = d.app.topics.purchases.clone();
                let b = d.app.codec.encode(&t, o).expect("encodes");
                (t, b)
            };
            let record = Record {
                topic: &topic,
                partition: 0,
                offset: i as i64,
                key: None,
                value: Some(&bytes),
            };
            let mut ctx = Ctx::default();
            d.task
                .process(&record, &mut Gate::open(d.watermark), &mut ctx)
                .expect("accepted");
            if let Some(w) = watermark(i).filter(|w| EventTime(*w) > d.watermark) {
                d.watermark = EventTime(w);
                d.task.advance(d.watermark, &mut ctx);
            }
            emits.extend(ctx.emits);
            for (_, m) in models.iter().filter(|(at, _)| *at == i) {
                emits.extend(d.model(m).emits);
            }
            if let Some(p) = progress(i) {
                emits.extend(d.progress(p).emits);
                latest_progress = Some(p);
            }
            if restart.is_some() {
                let mut changes = Vec::new();
                state::checkpoint(&mut d.task, &mut changes).expect("checkpoints");
                changelog.extend(changes);
            }
            if restart == Some(i) {
                d.task = ProfileTask::new(d.app.clone());
                for (k, v) in &changelog {
                    state::restore(&mut d.task, k, v.as_deref()).expect("restores");
                }
                state::restored(&mut d.task).expect("restored");
                let mut ctx = Ctx::default();
                for (_, m) in models.iter().filter(|(at, _)| *at <= i) {
                    ctx.emits.extend(d.model(m).emits);
                }
                if let Some(p) = latest_progress {
                    ctx.emits.extend(d.progress(p).emits);
                }
                assert!(ctx.emits.is_empty(), "a restored task emits nothing anew");
            }
        }
        let mut ctx = Ctx::default();
        d.task.advance(EventTime::MAX, &mut ctx);
        d.task
            .global_progress(&d.app.topics.segment_models, EventTime::MAX, &mut ctx);
        emits.extend(ctx.emits);
        let of = |topic: &str| {
            emits
                .iter()
                .filter(|e| e.topic == topic)
                .map(|e| {
                    let key = String::from_utf8_lossy(e.key.as_deref().unwrap_or_default());
                    (
                        key.into_owned(),
                        e.event_time.0,
                        e.value.clone().unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>()
        };
        (
            of(&d.app.topics.profiles),
            of(&d.app.topics.segment_assignments),
        )
    }

    #[test]
    fn outputs_depend_on_event_times_not_on_watermark_steps_arrival_order_or_restarts() {
        // 40 customers over five hours: clicks every 50 s round-robin, an order every 7th.
        let events: Vec<(bool, ClickEvent, PurchaseEvent)> = (0..360)
            .map(|i| {
                let customer = format!("c{}", (i * 7) % 40);
                let t = T0 + i as i64 * 50_000;
                let id = format!("x{i}");
                (
                    i % 7 != 0,
                    click(&customer, &id, t),
                    order(&customer, &id, t),
                )
            })
            .collect();
        let time = |i: usize| events[i].1.event_time.0;
        let m1 = model(1, T0 + H, 1.0);
        let m2 = model(2, T0 + 3 * H, 2.0);
        let first_after = |t: i64| (0..events.len()).find(|&i| time(i) > t).unwrap_or(0);
        // Step by step: the watermark follows every record, the segmenter two minutes
        // behind, each model right when the segmenter passes its cutoff.
        let (p1, a1) = outputs(
            &events,
            |i| Some(time(i)),
            &[
                (first_after(T0 + H + 120_000), m1.clone()),
                (first_after(T0 + 3 * H + 120_000), m2.clone()),
            ],
            |i| Some(time(i) - 120_000),
        );
        // Out of order within each ten minutes (two topics interleaving), the watermark in
        // jumps of an hour, the segmenter's progress every 90 minutes, the models late.
        let mut shuffled = events.clone();
        shuffled.sort_by_key(|(_, c, _)| {
            let t = c.event_time.0 - T0;
            (t / 600_000, (t / 50_000 * 7919) % 13)
        });
        let stime = |i: usize| shuffled[i].1.event_time.0;
        let progress =
            |i: usize| (i % 100 == 99).then_some(T0 + (stime(i) - T0) / 5_400_000 * 5_400_000);
        // A model comes before the segmenter's first progress past its cutoff.
        let before_progress = |cutoff: i64| {
            (0..shuffled.len())
                .find(|&i| progress(i).is_some_and(|p| p >= cutoff))
                .unwrap_or(shuffled.len() - 1)
        };
        let jumps = |i: usize| {
            let window = (stime(i) - T0) / 600_000;
            (window % 6 == 5).then_some(T0 + window * 600_000)
        };
        let (p2, a2) = outputs(
            &shuffled,
            jumps,
            &[
                (before_progress(T0 + H), m1.clone()),
                (before_progress(T0 + 3 * H), m2.clone()),
            ],
            progress,
        );
        assert!(p1.len() > 100, "{} profiles", p1.len());
        assert!(a1.len() > 10, "{} assignments", a1.len());
        let first_difference = |a: &[Out], b: &[Out]| {
            a.iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .map(|i| (i, a[i].0.clone(), a[i].1, b[i].0.clone(), b[i].1))
        };
        assert_eq!(p1.len(), p2.len(), "profiles");
        assert_eq!(first_difference(&p1, &p2), None, "profiles");
        assert_eq!(a1.len(), a2.len(), "assignments");
        assert_eq!(first_difference(&a1, &a2), None, "assignments");

        // Restarted from the changelog (held records, queued profiles and kept-aside features
        // in flight), in either scenario: the same records again.
        for restart in (0..events.len()).step_by(37) {
            let (p3, a3) = outputs_restarted(
                &events,
                |i| Some(time(i)),
                &[
                    (first_after(T0 + H + 120_000), m1.clone()),
                    (first_after(T0 + 3 * H + 120_000), m2.clone()),
                ],
                |i| Some(time(i) - 120_000),
                Some(restart),
            );
            assert_eq!(
                first_difference(&p1, &p3),
                None,
                "profiles, restart {restart}"
            );
            assert_eq!(p1.len(), p3.len());
            assert_eq!(
                first_difference(&a1, &a3),
                None,
                "assignments, restart {restart}"
            );
            assert_eq!(a1.len(), a3.len());
            let (p4, a4) = outputs_restarted(
                &shuffled,
                jumps,
                &[
                    (before_progress(T0 + H), m1.clone()),
                    (before_progress(T0 + 3 * H), m2.clone()),
                ],
                progress,
                Some(restart),
            );
            assert_eq!(
                first_difference(&p1, &p4),
                None,
                "profiles, jumps, restart {restart}"
            );
            assert_eq!(p1.len(), p4.len());
            assert_eq!(
                first_difference(&a1, &a4),
                None,
                "assignments, jumps, restart {restart}"
            );
            assert_eq!(a1.len(), a4.len());
        }
    }

    #[test]
    fn unusable_models_are_counted_and_ignored() {
        let mut d = Driven::new();
        let mut broken = model(1, T0, 1.0);
        broken.segments.clear();
        assert!(d.model(&broken).emits.is_empty());
        let mut ctx = Ctx::default();
        let topic = d.app.topics.segment_models.clone();
        d.task.global(&topic, None, Some(b"junk"), &mut ctx);
        assert_eq!(d.app.counters.snapshot().models_refused, 2);
    }

    #[test]
    fn reserved_customer_ids_are_refused() {
        let mut d = Driven::new();
        for id in ["\0meta", "__fitstream.watermarks"] {
            let (r, _) = d.click(&click(id, "e", T0));
            assert_eq!(r.map_err(|r| r.reason), Err(Reason::Validation), "{id:?}");
        }
    }
}
