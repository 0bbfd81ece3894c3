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
//! route what a checkpoint emits). Customers come out in id order.
//!
//! # Assignment (as-of join with the model table)
//! - A profile flushed at event time `t` (its last event) is assigned with the latest model
//!   whose cutoff is <= `t`, but never with a version older than the newest one that already
//!   reassigned everybody (below), so that a late record cannot move a customer back to an
//!   older model.
//! - A new newest model version moves every customer in state: each is reassigned with it on
//!   arrival (`global`), with event time max(cutoff, last event). Quiet customers thus follow
//!   the current model too, as marketing expects.
//! - A [`SegmentAssignment`] is emitted only when the segment id changes (with the previous
//!   id and the distance); `fitstream_assignments_changed_total` counts them.
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
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            flushed_interval: i64::MIN,
            reassigned_version: 0,
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
        let assignment = SegmentAssignment {
            customer_id: customer.to_owned(),
            segment_id: placed.segment_id,
            segment_label: placed.label,
            model_version: placed.version,
            distance: placed.distance,
            previous_segment_id: previous,
            event_time,
        };
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
        for id in self.store.take_pending() {
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

    /// Reassigns every customer with a new newest model.
    fn reassign_all(&mut self, model: &KnownModel, ctx: &mut Ctx) {
        for id in self.store.ids() {
            let Some(state) = self.store.get(&id) else {
                continue;
            };
            let placed = model.place(&state.features());
            let t = model.cutoff.max(state.last_event_time());
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
