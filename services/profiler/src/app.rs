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
//!    the retention ([`crate::dedup`]); a duplicate is dropped and counted. Then the counts of
//!    the customer's compact state ([`crate::state`]) change and the customer is flagged.
//!
//! # Emission: once per customer per interval of event time
//! Flagged customers are emitted when the watermark enters a new `emit_interval_ms` interval
//! (default one minute of event time) and when it reaches the end of time: each one's
//! profile, then its assignment when the segment changed. Output is a function of the input
//! and the watermark only, never of commit timing; emitting at checkpoints would make the
//! number of profile versions depend on the commit interval (and the embedded driver does not
//! route what a checkpoint emits). Customers come out in order of their last event (then id), so a
//! partition of the profiles topic stays in event-time order even when one flush spans hours
//! (a backlog): its readers' watermarks (the segmenter's) see no record far ahead.
//!
//! # Assignment (as-of join with the model table)
//! - A profile flushed at event time `t` (its last event) is assigned with the latest model
//!   whose cutoff is <= `t`, but never with a version older than the newest one that already
//!   reassigned everybody (below), so that a late record cannot move a customer back to an
//!   older model.
//! - A new newest model version moves every customer in state: each is reassigned with it on
//!   arrival (`global`), with event time max(cutoff, last event, start of the current emission
//!   interval). Quiet customers thus follow the current model too, as marketing expects.
//! - A [`SegmentAssignment`] is emitted only when the segment id changes (with the previous
//!   id and the distance); `fitstream_assignments_changed_total` counts them.
//! - Its event time (valid from) is the time above, but never earlier than the task's
//!   previous assignment: a partition of the assignments topic is in event-time order, so a
//!   reader knows the table is complete up to just before its latest record (the planner's
//!   as-of join of buyers with their segment relies on it).
//!
//! # State and restore
//! At each checkpoint the changelog gets, per customer changed since the previous checkpoint,
//! key = customer id and value = bincode of its [`StoredCustomer`]; the deduplication entries
//! ([`crate::dedup`]); and `\0meta` (last flushed interval, newest reassigning version) when it
//! changed. Never a snapshot of everything: the state grows with the customers. `restore`
//! reads them back; the driver then replays the model topic, where versions already applied
//! change nothing. Restored and uninterrupted runs emit the same records (tested).
//!
//! Delivery: exactly once comes from the driver (outputs, changelog and offsets in one
//! transaction); this task is deterministic given its input, watermarks and model records.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fitstream_contracts::records::{ClickEvent, PurchaseEvent};
use fitstream_contracts::topics::TopicsConfig;
use fitstream_contracts::{Codec, EventTime, SegmentAssignment, SegmentModel};
use fitstream_runtime::deadletter::Reason;
use fitstream_runtime::metrics::METRICS;
use fitstream_runtime::task::{
    Admitted, Ctx, Record, Rejection, Stage, Task, Topology, WatermarkSource,
};
use serde::{Deserialize, Serialize};

use crate::dedup::DedupLog;
use crate::models::{KnownModel, ModelArrival, ModelTable, Placed};
use crate::state::StoredCustomer;
use crate::store::ProfileStore;

/// Changelog key of the task's own bookkeeping.
pub const META_KEY: &[u8] = b"\0meta";
/// Customer id prefixes refused because they name internal changelog entries.
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
                factory: Box::new(move |_| Box::new(ProfileTask::new(app.clone()))),
            }],
        }
    }
}

/// Bookkeeping written to the changelog under [`META_KEY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// Emission interval of the last flush (`i64::MAX` after the end of time).
    flushed_interval: i64,
    /// The newest model version that reassigned every customer (0: none yet).
    reassigned_version: i64,
    /// Event time of the latest assignment emitted: assignments of a task are stamped in
    /// non-decreasing event time, so a reader of one partition knows the table is complete up
    /// to just before its latest record (the planner's as-of join relies on it).
    assigned_until: i64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            flushed_interval: i64::MIN,
            reassigned_version: 0,
            assigned_until: i64::MIN,
        }
    }
}

enum Input {
    Click(ClickEvent),
    Purchase(PurchaseEvent),
}

fn rejection(e: fitstream_contracts::DecodeError) -> Rejection {
    Rejection::new(
        Reason::parse(e.reason()).unwrap_or(Reason::Decode),
        e.to_string(),
    )
}

/// The `profiles` stage of one partition.
pub struct ProfileTask {
    app: ProfilerApp,
    store: ProfileStore,
    dedup: DedupLog,
    models: ModelTable,
    meta: Meta,
    meta_changed: bool,
    pending: Option<Input>,
}

impl ProfileTask {
    /// A task with empty state.
    pub fn new(app: ProfilerApp) -> ProfileTask {
        ProfileTask {
            store: ProfileStore::new(),
            dedup: DedupLog::new(app.config.dedup_retention_ms),
            models: ModelTable::new(app.config.model_versions),
            meta: Meta::default(),
            meta_changed: false,
            pending: None,
            app,
        }
    }

    /// The customers of this task.
    pub fn store(&self) -> &ProfileStore {
        &self.store
    }

    /// The deduplication memory of this task.
    pub fn dedup(&self) -> &DedupLog {
        &self.dedup
    }

    /// The model for a profile whose last event is at `t` (see the module doc).
    fn model_for(&self, t: EventTime) -> Option<Arc<KnownModel>> {
        let floor = self.meta.reassigned_version;
        match self.models.as_of(t, false) {
            Some(m) if m.version >= floor => Some(m.clone()),
            _ => self
                .models
                .version(floor)
                .or_else(|| self.models.newest())
                .cloned(),
        }
    }

    /// Records a customer's placement; emits an assignment when the segment changed.
    fn apply(&mut self, customer: &str, placed: Placed, event_time: EventTime, ctx: &mut Ctx) {
        let Some(state) = self.store.get_mut(customer) else {
            return;
        };
        let previous = state.segment();
        if previous == Some(placed.segment_id) {
            return;
        }
        state.set_segment(Some(placed.segment_id));
        self.store.mark_changed(customer);
        let event_time = event_time.max(EventTime(self.meta.assigned_until));
        if event_time.0 > self.meta.assigned_until {
            self.meta.assigned_until = event_time.0;
            self.meta_changed = true;
        }
        let assignment = SegmentAssignment {
            customer_id: customer.to_owned(),
            segment_id: placed.segment_id,
            segment_label: placed.label,
            model_version: placed.version,
            distance: placed.distance,
            previous_segment_id: previous,
            event_time,
        };
        tracing::debug!(
            customer,
            ?previous,
            segment = placed.segment_id,
            version = placed.version,
            "segment assignment"
        );
        let topic = &self.app.topics.segment_assignments;
        match self.app.codec.encode(topic, &assignment) {
            Ok(bytes) => {
                ctx.emit(topic, Some(customer.as_bytes().to_vec()), bytes, event_time);
                METRICS.assignments_changed.inc();
                bump(&self.app.counters.assignments);
            }
            Err(e) => tracing::error!("cannot encode a segment assignment: {e}"),
        }
    }

    /// Emits every flagged customer's profile, and its assignment when it changed.
    fn flush(&mut self, ctx: &mut Ctx) {
        // In event-time order (then id): a flush after a jump of the watermark spans more
        // than its interval, and the profiles topic stays ordered for its readers' watermarks.
        let mut pending: Vec<(EventTime, Box<str>)> = self
            .store
            .take_pending()
            .into_iter()
            .filter_map(|id| Some((self.store.get(&id)?.last_event_time(), id)))
            .collect();
        pending.sort();
        for (_, id) in pending {
            let Some(state) = self.store.get(&id) else {
                continue;
            };
            let profile = state.profile(&id, self.store.interner());
            let t = profile.last_event_time;
            let topic = &self.app.topics.profiles;
            match self.app.codec.encode(topic, &profile) {
                Ok(bytes) => {
                    ctx.emit(topic, Some(id.as_bytes().to_vec()), bytes, t);
                    bump(&self.app.counters.profiles);
                }
                Err(e) => tracing::error!("cannot encode a customer profile: {e}"),
            }
            if let Some(model) = self.model_for(t) {
                let placed = model.place(&profile.features);
                self.apply(&id, placed, t, ctx);
            }
        }
    }

    /// The start of the emission interval of the last flush: where the task's event time is
    /// (a model that arrives now takes effect from there).
    fn flushed_at(&self) -> EventTime {
        match self.meta.flushed_interval {
            i64::MIN | i64::MAX => EventTime::MIN,
            i => EventTime(i.saturating_mul(self.app.config.emit_interval_ms.max(1))),
        }
    }

    /// Reassigns every customer with a new newest model.
    fn reassign_all(&mut self, model: &KnownModel, ctx: &mut Ctx) {
        for id in self.store.ids() {
            let Some(state) = self.store.get(&id) else {
                continue;
            };
            let placed = model.place(&state.features());
            let t = model
                .cutoff
                .max(state.last_event_time())
                .max(self.flushed_at());
            self.apply(&id, placed, t, ctx);
        }
    }

    fn model_record(&mut self, value: &[u8], ctx: &mut Ctx) {
        let topic = &self.app.topics.segment_models;
        let model: SegmentModel = match self.app.codec.decode(topic, value) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("segment model record refused: {e}");
                bump(&self.app.counters.models_refused);
                return;
            }
        };
        match self.models.insert(&model) {
            Ok(ModelArrival::Newest) => {
                bump(&self.app.counters.models);
                if model.version > self.meta.reassigned_version
                    && let Some(m) = self.models.version(model.version).cloned()
                {
                    self.reassign_all(&m, ctx);
                    self.meta.reassigned_version = model.version;
                    self.meta_changed = true;
                }
            }
            Ok(ModelArrival::Older) => bump(&self.app.counters.models),
            Ok(ModelArrival::Known) => {}
            Err(e) => {
                tracing::warn!(version = model.version, "segment model unusable: {e}");
                bump(&self.app.counters.models_refused);
            }
        }
    }
}

impl Task for ProfileTask {
    fn admit(&mut self, record: &Record<'_>) -> Result<Admitted, Rejection> {
        let bytes = record.value.unwrap_or_default();
        let codec = &self.app.codec;
        let (input, customer, t) = if record.topic == self.app.topics.clickstream {
            let c: ClickEvent = codec.decode(record.topic, bytes).map_err(rejection)?;
            let (customer, t) = (c.customer_id.clone(), c.event_time);
            (Input::Click(c), customer, t)
        } else if record.topic == self.app.topics.purchases {
            let p: PurchaseEvent = codec.decode(record.topic, bytes).map_err(rejection)?;
            let (customer, t) = (p.customer_id.clone(), p.event_time);
            (Input::Purchase(p), customer, t)
        } else {
            return Ok(Admitted::Skip);
        };
        if RESERVED_PREFIXES.iter().any(|p| customer.starts_with(p)) {
            return Err(Rejection::new(
                Reason::Validation,
                "customer_id: starts with a reserved prefix (\\0 or __fitstream.)",
            ));
        }
        self.pending = Some(input);
        Ok(Admitted::At(t))
    }

    fn process(&mut self, watermark: EventTime, ctx: &mut Ctx) -> Result<(), Rejection> {
        let Some(input) = self.pending.take() else {
            return Ok(());
        };
        let (id, t) = match &input {
            Input::Click(c) => (format!("e:{}", c.event_id), c.event_time),
            Input::Purchase(p) => (format!("o:{}", p.order_id), p.event_time),
        };
        let horizon = watermark.minus(self.dedup.retention_ms());
        if t < horizon {
            bump(&self.app.counters.late);
            return Err(Rejection::new(
                Reason::Late,
                format!(
                    "event time {t} is more than the deduplication retention behind the watermark {watermark}"
                ),
            ));
        }
        if !self.dedup.first_time(&id, t) {
            ctx.duplicates += 1;
            bump(&self.app.counters.duplicates);
            return Ok(());
        }
        match input {
            Input::Click(c) => {
                self.store.click(&c);
                bump(&self.app.counters.clicks);
            }
            Input::Purchase(p) => {
                self.store.purchase(&p);
                bump(&self.app.counters.purchases);
            }
        }
        Ok(())
    }

    fn advance(&mut self, watermark: EventTime, ctx: &mut Ctx) {
        self.dedup.expire(watermark);
        let interval = if watermark == EventTime::MAX {
            i64::MAX
        } else {
            watermark
                .0
                .div_euclid(self.app.config.emit_interval_ms.max(1))
        };
        if interval > self.meta.flushed_interval {
            self.flush(ctx);
            self.meta.flushed_interval = interval;
            self.meta_changed = true;
        }
    }

    fn checkpoint(&mut self, ctx: &mut Ctx) {
        for (id, stored) in self.store.take_changed() {
            match bincode::serialize(&stored) {
                Ok(bytes) => ctx.put_state(id.as_bytes(), bytes),
                Err(e) => tracing::error!("cannot serialize a customer state: {e}"),
            }
        }
        ctx.changelog.extend(self.dedup.checkpoint());
        if std::mem::take(&mut self.meta_changed)
            && let Ok(bytes) = bincode::serialize(&self.meta)
        {
            ctx.put_state(META_KEY, bytes);
        }
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        if key == META_KEY {
            self.meta = match value {
                Some(v) => bincode::deserialize(v).map_err(|e| format!("meta: {e}"))?,
                None => Meta::default(),
            };
            return Ok(());
        }
        if DedupLog::owns(key) {
            return self.dedup.restore(key, value);
        }
        let customer = std::str::from_utf8(key).map_err(|e| format!("customer key: {e}"))?;
        match value {
            Some(v) => {
                let stored: StoredCustomer =
                    bincode::deserialize(v).map_err(|e| format!("customer {customer}: {e}"))?;
                self.store.restore(customer, stored)
            }
            None => {
                self.store.remove(customer);
                Ok(())
            }
        }
    }

    fn global(&mut self, topic: &str, _key: Option<&[u8]>, value: Option<&[u8]>, ctx: &mut Ctx) {
        if topic != self.app.topics.segment_models {
            return;
        }
        if let Some(v) = value {
            self.model_record(v, ctx);
        }
    }

    fn state_size(&self) -> (usize, usize) {
        (
            self.store.len() + self.dedup.len(),
            self.store.heap_bytes() + self.store.interner_bytes() + self.dedup.heap_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::{
        ClickEventType, CustomerProfile, ModelSegment, ProfileFeatures, PurchaseLine,
    };
    use rust_decimal::Decimal;

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
            session_id: format!("s-{customer}"),
            event_type: ClickEventType::ProductView,
            product_id: Some("p".into()),
            sku: None,
            options: Default::default(),
            category: Some("skincare".into()),
            price: None,
            query: None,
            channel: "web".into(),
            region: "eu".into(),
            event_time: EventTime(t),
        }
    }

    fn order(customer: &str, id: &str, t: i64) -> PurchaseEvent {
        PurchaseEvent {
            order_id: id.into(),
            customer_id: customer.into(),
            session_id: format!("s-{customer}"),
            event_time: EventTime(t),
            region: "eu".into(),
            currency: "EUR".into(),
            lines: vec![PurchaseLine {
                product_id: "p".into(),
                sku: "p".into(),
                options: Default::default(),
                category: None,
                quantity: 1,
                unit_price: Decimal::new(1000, 2),
            }],
        }
    }

    /// Two segments in an unscaled space: 1 at the origin, 2 at `orders` orders.
    fn model(version: i64, cutoff: i64, orders: f64) -> SegmentModel {
        let mut far = vec![0.0; 10];
        far[1] = orders;
        SegmentModel {
            version,
            cutoff_event_time: EventTime(cutoff),
            feature_names: ProfileFeatures::NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            log1p_features: vec![],
            means: vec![0.0; 10],
            scales: vec![1.0; 10],
            segments: vec![
                ModelSegment {
                    segment_id: 1,
                    label: "browsers".into(),
                    centroid: vec![0.0; 10],
                },
                ModelSegment {
                    segment_id: 2,
                    label: "buyers".into(),
                    centroid: far,
                },
            ],
            quality_metric: "silhouette".into(),
            quality_score: 0.5,
            next_segment_id: 3,
            sample_size: 10,
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
            let result = match self.task.admit(&record) {
                Ok(Admitted::At(t)) => {
                    let r = self.task.process(self.watermark, &mut ctx);
                    if t > self.watermark {
                        self.watermark = t;
                        self.task.advance(t, &mut ctx);
                    }
                    r
                }
                Ok(Admitted::Table(_)) => self.task.process(self.watermark, &mut ctx),
                Ok(Admitted::Skip) => Ok(()),
                Err(r) => Err(r),
            };
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
        assert_eq!(
            d.profiles(&first).len(),
            1,
            "the first watermark opens an interval"
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
        // By last event: a (T0+2s), c (T0+3s), b (T0+60s).
        assert_eq!(ids, vec!["a", "c", "b"]);
        let mut end = Ctx::default();
        d.task.advance(EventTime::MAX, &mut end);
        assert!(d.profiles(&end).is_empty(), "nothing changed since");
    }

    #[test]
    fn assignments_follow_the_as_of_model_and_every_new_model() {
        let mut d = Driven::new();
        let (r, ctx) = d.click(&click("a", "e1", T0));
        r.expect("accepted");
        assert_eq!(d.profiles(&ctx).len(), 1);
        assert!(d.assignments(&ctx).is_empty(), "no model yet");
        // v1 arrives: everybody is assigned, from its cutoff on.
        let ctx = d.model(&model(1, T0 + H, 1.0));
        let a = d.assignments(&ctx);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].segment_id, a[0].previous_segment_id), (1, None));
        assert_eq!(a[0].event_time, EventTime(T0 + H));
        assert_eq!(
            d.model(&model(1, T0 + H, 1.0)).emits.len(),
            0,
            "known model"
        );

        // One order: closer to segment 2 of v1 (at one order). The order opens a new
        // interval, so its own profile is flushed with it, and moved, once.
        let (r, ctx) = d.order(&order("a", "o1", T0 + 2 * H));
        r.expect("accepted");
        let a = d.assignments(&ctx);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].segment_id, a[0].previous_segment_id), (2, Some(1)));
        assert_eq!(a[0].model_version, 1);
        assert_eq!(a[0].event_time, EventTime(T0 + 2 * H));
        let (_, ctx) = d.click(&click("a", "e2", T0 + 2 * H + 60_000));
        assert_eq!(d.profiles(&ctx).len(), 1);
        assert!(d.assignments(&ctx).is_empty(), "same segment: nothing");

        // v2 puts segment 2 at 10 orders: "a" (1 order) goes back to 1 on arrival.
        let ctx = d.model(&model(2, T0 + 3 * H, 10.0));
        let a = d.assignments(&ctx);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].segment_id, a[0].model_version), (1, 2));
        assert_eq!(a[0].event_time, EventTime(T0 + 3 * H));

        // Nine more orders, all before v2's cutoff: the profile is flushed at t < cutoff, and
        // still placed with v2 (never an older version after v2 moved everybody): segment 2
        // of v1 would keep "a" where it is, v2's takes it at 10 orders. Its event time is not
        // before the previous assignment's: the topic's partitions stay in event-time order.
        let mut moved = Vec::new();
        for i in 0..9 {
            let (r, ctx) = d.order(&order("a", &format!("o{}", i + 2), T0 + 2 * H + 120_000));
            r.expect("accepted");
            moved.extend(d.assignments(&ctx));
        }
        let (_, ctx) = d.click(&click("a", "e3", T0 + 2 * H + 180_000));
        moved.extend(d.assignments(&ctx));
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!((moved[0].segment_id, moved[0].model_version), (2, 2));
        assert_eq!(moved[0].event_time, EventTime(T0 + 3 * H));
        assert_eq!(d.app.counters.snapshot().models, 2);
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
