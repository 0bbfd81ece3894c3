//! The `profiles` task of one partition: records deduplicated and held by event time,
//! profiles flushed once per interval, placements as of event time, and the task's stores.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use fitstream_contracts::records::{ClickEvent, PurchaseEvent};
use fitstream_contracts::{EventTime, ProfileFeatures, SegmentAssignment, SegmentModel};
use fitstream_runtime::deadletter::Reason;
use fitstream_runtime::metrics::METRICS;
use fitstream_runtime::state::{DedupStore, Held, Keyed, Store, Value};
use fitstream_runtime::task::{Ctx, Gate, Record, Rejection, Task};
use serde::{Deserialize, Serialize};

use super::{ProfilerApp, RESERVED_PREFIXES, bump};
use crate::lookup::Known;
use crate::models::{KnownModel, ModelArrival, ModelTable, Placed};
use crate::products::{TopProducts, count_order};
use crate::store::ProfileStore;

/// The task's bookkeeping (the `meta` store).
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
    /// The segmenter's progress: every model with a cutoff up to it is known (kept here, not
    /// only on the models topic, where its marker is compacted away in time).
    progress: EventTime,
    /// The watermark of the latest advance: every record before it is applied.
    #[serde(default = "no_time")]
    advanced_to: i64,
    /// The latest event time applied.
    #[serde(default = "no_time")]
    applied_until: i64,
    /// The latest last-event time of the profiles emitted.
    #[serde(default = "no_time")]
    emitted_until: i64,
}

fn no_time() -> i64 {
    i64::MIN
}

impl Meta {
    /// Every record up to this event time is in the state: the latest watermark, capped at
    /// the latest record applied (an ended run is as of its last record, not the end of time).
    fn as_of(&self) -> Option<EventTime> {
        (self.applied_until != i64::MIN)
            .then(|| EventTime(self.advanced_to.min(self.applied_until)))
    }
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            flushed_interval: i64::MIN,
            reassigned_version: 0,
            assigned_until: i64::MIN,
            progress: EventTime::MIN,
            advanced_to: i64::MIN,
            applied_until: i64::MIN,
            emitted_until: i64::MIN,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Input {
    Click(ClickEvent),
    Purchase(PurchaseEvent),
}

impl Input {
    fn customer(&self) -> &str {
        match self {
            Input::Click(c) => &c.customer_id,
            Input::Purchase(p) => &p.customer_id,
        }
    }
}

/// The `profiles` stage of one partition.
pub struct ProfileTask {
    app: ProfilerApp,
    store: ProfileStore,
    dedup: DedupStore,
    models: ModelTable,
    meta: Value<Meta>,
    /// Records admitted and not applied yet, by (event time, arrival): applied in that order
    /// when the watermark passes them.
    held: Held<Input>,
    /// Profiles emitted and not placed yet, by (last event time, customer), with their
    /// features: placed in that order once the segmenter's progress passes them.
    queue: Keyed<(EventTime, Box<str>), ProfileFeatures>,
    /// Entries of each customer in `queue` (derived from it).
    queued: HashMap<Box<str>, u32>,
    /// The features each customer was last placed with, for the customers whose state moved
    /// on since (None: never placed). A customer not in it was placed with its current state.
    base: Keyed<Box<str>, Option<ProfileFeatures>>,
    /// What sells in each category (units by product), for the lookup API.
    products: Keyed<String, TopProducts>,
    /// The partition of this task.
    partition: i32,
    /// Categories of `products` changed since the view last had them.
    products_changed: BTreeSet<String>,
    /// Restored: the whole state goes to the view at the next commit.
    publish_all: bool,
}

impl ProfileTask {
    /// A task with empty state (of partition 0).
    pub fn new(app: ProfilerApp) -> ProfileTask {
        ProfileTask::of_partition(app, 0)
    }

    /// The task of partition `partition`, with empty state; assigned in the lookup view.
    pub fn of_partition(app: ProfilerApp, partition: i32) -> ProfileTask {
        let mut store = ProfileStore::new();
        if let Some(lookup) = &app.lookup {
            store.track_checkpointed();
            lookup.assigning(partition);
        }
        ProfileTask {
            store,
            products: Keyed::default(),
            partition,
            products_changed: BTreeSet::new(),
            publish_all: false,
            dedup: DedupStore::new(app.config.dedup_retention_ms),
            models: ModelTable::new(app.config.model_versions),
            meta: Value::default(),
            held: Held::new(),
            queue: Keyed::default(),
            queued: HashMap::new(),
            base: Keyed::default(),
            app,
        }
    }

    /// The customers of this task.
    pub fn store(&self) -> &ProfileStore {
        &self.store
    }

    /// The deduplication memory of this task.
    pub fn dedup(&self) -> &DedupStore {
        &self.dedup
    }

    /// The model for a profile whose last event is at `t` (see the module doc).
    fn model_for(&self, t: EventTime) -> Option<Arc<KnownModel>> {
        let floor = self.meta.reassigned_version;
        match self.models.as_of(t, false) {
            Some(m) if m.version >= floor => Some(m.clone()),
            // Behind a version that already moved everybody (or one no longer kept).
            _ if floor > 0 => self
                .models
                .version(floor)
                .or_else(|| self.models.newest())
                .cloned(),
            // Before the first model: no segment yet.
            _ => None,
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
            Err(e) => ctx.reject_output(topic, Some(customer.as_bytes().to_vec()), &e),
        }
    }

    /// Applies a held record to its customer's state. The first change after a placement
    /// keeps the features it was placed with (`base`), for a model that takes effect before
    /// the next placement.
    fn apply_record(&mut self, input: Input) {
        let customer = input.customer();
        if !self.base.contains_key(customer) {
            let placed = self.store.get(customer).map(|s| s.features());
            self.base.insert(customer.into(), placed);
        }
        let t = match &input {
            Input::Click(c) => c.event_time,
            Input::Purchase(p) => p.event_time,
        };
        self.meta.applied_until = self.meta.applied_until.max(t.0);
        match input {
            Input::Click(c) => self.store.click(&c),
            Input::Purchase(p) => {
                count_order(&p, &mut self.products, &mut self.products_changed);
                self.store.purchase(&p);
            }
        }
    }

    /// Emits every flagged customer's profile and queues it for placement.
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
                Err(e) => ctx.reject_output(topic, Some(id.as_bytes().to_vec()), &e),
            }
            // Queued for placement at its time, or at the latest profile emitted before it
            // if that is later (a late record changed a customer whose last event is
            // older): the segmenter, reading this partition, takes it at that time too, so
            // whether a model's cutoff falls before or after this version is the same in
            // both services and in both run modes, whenever the model arrives.
            let key = (t.max(EventTime(self.meta.emitted_until)), id);
            self.meta.emitted_until = self.meta.emitted_until.max(t.0);
            if self.queue.insert(key.clone(), profile.features).is_none() {
                *self.queued.entry(key.1).or_default() += 1;
            }
        }
    }

    /// The features `customer` was last placed with (None: never placed).
    fn placed_features(&self, customer: &str) -> Option<ProfileFeatures> {
        match self.base.get(customer) {
            Some(placed) => placed.clone(),
            None => self.store.get(customer).map(|s| s.features()),
        }
    }

    /// Places what the segmenter's progress allows, in event-time order: each queued profile
    /// with the model valid at its time, and each new model version, at its cutoff, for
    /// every customer with the features they had then.
    fn place(&mut self, ctx: &mut Ctx) {
        // A model is published once the segmenter's watermark passed its cutoff, after every
        // earlier version: receiving it is progress too.
        let progress = self
            .meta
            .progress
            .max(self.models.latest_cutoff().unwrap_or(EventTime::MIN));
        loop {
            let next_entry = self.queue.first_key_value().map(|((t, _), _)| *t);
            let next_model = self
                .models
                .next_after(self.meta.reassigned_version)
                .cloned();
            match (next_model, next_entry) {
                (Some(m), entry) if entry.is_none_or(|t| m.cutoff <= t) && m.cutoff <= progress => {
                    self.reassign_all(&m, ctx);
                    self.meta.reassigned_version = m.version;
                }
                (_, Some(t)) if t <= progress => self.place_first(ctx),
                _ => break,
            }
        }
    }

    /// Places the first queued profile.
    fn place_first(&mut self, ctx: &mut Ctx) {
        let Some(((t, id), features)) = self.queue.pop_first() else {
            return;
        };
        let left = match self.queued.get_mut(&id) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            self.queued.remove(&id);
        }
        // Placed with these features; the current state is them unless it moved on.
        let moved_on = left > 0 || self.store.get(&id).is_some_and(|s| s.is_pending());
        if moved_on {
            self.base.insert(id.clone(), Some(features.clone()));
        } else {
            self.base.remove(&id);
        }
        if let Some(model) = self.model_for(t) {
            let placed = model.place(&features);
            self.apply(&id, placed, t, ctx);
        }
    }

    /// Reassigns every placed customer with a new model version, at its cutoff.
    fn reassign_all(&mut self, model: &KnownModel, ctx: &mut Ctx) {
        for id in self.store.ids() {
            let Some(features) = self.placed_features(&id) else {
                continue;
            };
            let placed = model.place(&features);
            self.apply(&id, placed, model.cutoff, ctx);
        }
    }

    fn model_record(&mut self, value: &[u8]) {
        let topic = &self.app.topics.segment_models;
        let model: SegmentModel = match self.app.codec.decode(topic, value) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("segment model record refused: {e}");
                bump(&self.app.counters.models_refused);
                return;
            }
        };
        if let Some(lookup) = &self.app.lookup {
            lookup.model(&model);
        }
        match self.models.insert(&model) {
            Ok(ModelArrival::Newest | ModelArrival::Older) => bump(&self.app.counters.models),
            Ok(ModelArrival::Known) => {}
            Err(e) => {
                tracing::warn!(version = model.version, "segment model unusable: {e}");
                bump(&self.app.counters.models_refused);
            }
        }
    }
}

impl Task for ProfileTask {
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), Rejection> {
        let bytes = record.value.unwrap_or_default();
        let codec = &self.app.codec;
        let (input, customer, t) = if record.topic == self.app.topics.clickstream {
            let c: ClickEvent = codec.decode(record.topic, bytes)?;
            let (customer, t) = (c.customer_id.clone(), c.event_time);
            (Input::Click(c), customer, t)
        } else if record.topic == self.app.topics.purchases {
            let p: PurchaseEvent = codec.decode(record.topic, bytes)?;
            let (customer, t) = (p.customer_id.clone(), p.event_time);
            (Input::Purchase(p), customer, t)
        } else {
            return Ok(());
        };
        if RESERVED_PREFIXES.iter().any(|p| customer.starts_with(p)) {
            return Err(Rejection::new(
                Reason::Validation,
                "customer_id: starts with a reserved prefix (\\0 or __fitstream.)",
            ));
        }
        let watermark = gate.at(t)?;
        let id = match &input {
            Input::Click(c) => format!("e:{}", c.event_id),
            Input::Purchase(p) => format!("o:{}", p.order_id),
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
        bump(match input {
            Input::Click(_) => &self.app.counters.clicks,
            Input::Purchase(_) => &self.app.counters.purchases,
        });
        self.held.hold(t, input);
        Ok(())
    }

    fn advance(&mut self, watermark: EventTime, ctx: &mut Ctx) {
        self.dedup.expire(watermark);
        if watermark.0 > self.meta.advanced_to {
            self.meta.advanced_to = watermark.0;
        }
        let every = self.app.config.emit_interval_ms.max(1);
        let end = watermark == EventTime::MAX;
        // Held records in event-time order; entering a new interval flushes the previous
        // ones first, so a flush holds exactly the records before its interval's start.
        while let Some((t, input)) = self.held.pop_before(watermark) {
            let interval = t.0.div_euclid(every);
            if interval > self.meta.flushed_interval {
                self.flush(ctx);
                self.meta.flushed_interval = interval;
            }
            self.apply_record(input);
        }
        let interval = if end {
            i64::MAX
        } else {
            watermark.0.div_euclid(every)
        };
        if interval > self.meta.flushed_interval {
            self.flush(ctx);
            self.meta.flushed_interval = interval;
        }
        self.place(ctx);
        if end && !self.queue.is_empty() && !self.app.await_segmenter_at_end {
            tracing::warn!(
                waiting = self.queue.len(),
                progress = %self.meta.progress,
                "end of the input: profiles wait for the segmenter's progress to be placed (`run all --until-end` runs both)"
            );
        }
    }

    fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        vec![
            ("customers", &mut self.store),
            ("dedup", &mut self.dedup),
            ("held", &mut self.held),
            ("place", &mut self.queue),
            ("base", &mut self.base),
            ("products", &mut self.products),
            ("meta", &mut self.meta),
        ]
    }

    fn restored(&mut self) {
        self.queued.clear();
        for (_, id) in self.queue.keys() {
            *self.queued.entry(id.clone()).or_default() += 1;
        }
        self.publish_all = true;
        self.products_changed = self.products.keys().cloned().collect();
    }

    fn committed(&mut self) {
        let Some(lookup) = self.app.lookup.clone() else {
            return;
        };
        let ids = if std::mem::take(&mut self.publish_all) {
            self.store.take_checkpointed();
            self.store.ids()
        } else {
            self.store.take_checkpointed()
        };
        let p = self.partition;
        let customers = ids
            .into_iter()
            .filter_map(|id| {
                let known = Known::of(p, self.store.get(&id)?, self.store.interner());
                Some((id, known))
            })
            .collect();
        let products = std::mem::take(&mut self.products_changed)
            .into_iter()
            .filter_map(|c| {
                let top = self.products.get(&c)?.clone();
                Some((c, top))
            })
            .collect();
        lookup.publish(
            p,
            customers,
            self.meta.as_of(),
            self.meta.reassigned_version,
            products,
        );
    }

    fn revoked(&mut self) {
        if let Some(lookup) = &self.app.lookup {
            lookup.revoke(self.partition);
        }
    }

    fn global(&mut self, topic: &str, _key: Option<&[u8]>, value: Option<&[u8]>, ctx: &mut Ctx) {
        if topic != self.app.topics.segment_models {
            return;
        }
        if let Some(v) = value {
            self.model_record(v);
            self.place(ctx);
        }
    }

    fn settled(&self) -> bool {
        !self.app.await_segmenter_at_end
            || (self.meta.progress == EventTime::MAX && self.queue.is_empty())
    }

    fn global_progress(&mut self, topic: &str, watermark: EventTime, ctx: &mut Ctx) {
        if topic == self.app.topics.segment_models && watermark > self.meta.progress {
            self.meta.progress = watermark;
            self.place(ctx);
        }
    }

    fn state_size(&self) -> (usize, usize) {
        // In flight (records within the watermark's reach, profiles the segmenter has not
        // passed yet, features kept aside meanwhile): an estimate per entry.
        let features = size_of::<ProfileFeatures>();
        let in_flight = self.held.len() * (size_of::<Input>() + 160)
            + self.queue.len() * (features + 64)
            + self.base.len() * (features + 48);
        (
            self.store.len() + self.dedup.len() + self.held.len() + self.queue.len(),
            self.store.heap_bytes()
                + self.store.interner_bytes()
                + self.dedup.heap_bytes()
                + in_flight,
        )
    }
}
