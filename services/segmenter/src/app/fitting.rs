//! The `fit` stage: profiles held by event time, the bottom-k sample, refits at every
//! event-time boundary in order, progress markers, and the task's stores.

use std::collections::BTreeSet;

use fitstream_contracts::{EventTime, ProfileFeatures, SegmentModel};
use fitstream_runtime::deadletter::Reason;
use fitstream_runtime::metrics::METRICS;
use fitstream_runtime::partition::partition_for;
use fitstream_runtime::state::{self, Changes, Held, StateError, Store, StoreKey, Value, codec};
use fitstream_runtime::task::{Ctx, Gate, Record, Rejection, Task};
use serde::{Deserialize, Serialize};

use super::forward::SampledProfile;
use super::{MODEL_KEY, PROGRESS_KEY, SAMPLE_KEY, SegmenterApp, bump};
use crate::error::FitErrorClass;
use crate::fit::{FitOutcome, SampleRow, fit};
use crate::reservoir::{ReservoirOffer, ReservoirSample};

/// The fitting task's schedule (the `meta` store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FitMeta {
    /// The latest refit boundary passed, or the start of the schedule (`i64::MIN`: no
    /// profile applied yet).
    boundary: i64,
    /// The latest profile time applied.
    max_seen: EventTime,
    /// The latest profile time received (held or applied).
    max_received: EventTime,
    /// The sample changed since the last fit.
    unfitted: bool,
    /// The latest progress step reported (`i64::MIN`: none; `i64::MAX`: the end of time).
    progress_sent: i64,
}

impl Default for FitMeta {
    fn default() -> Self {
        FitMeta {
            boundary: i64::MIN,
            max_seen: EventTime::MIN,
            max_received: EventTime::MIN,
            unfitted: false,
            progress_sent: i64::MIN,
        }
    }
}

type SampleItem = (ProfileFeatures, Vec<String>);

/// The sample with the customers who entered or left it since the previous checkpoint: a
/// store whose departures are written before the arrivals, so that a restore replaying them
/// in this order never exceeds the capacity.
struct Sample {
    rows: ReservoirSample<SampleItem>,
    /// Customers whose row changed since the last checkpoint.
    changed: BTreeSet<String>,
    /// Customers who left the sample since the last checkpoint.
    evicted: BTreeSet<String>,
}

impl Sample {
    /// Offers a customer's row; false when the sample did not take it.
    fn offer(&mut self, customer: &str, item: SampleItem) -> bool {
        match self.rows.offer(customer, item) {
            ReservoirOffer::Rejected => return false,
            ReservoirOffer::Updated | ReservoirOffer::Inserted => {}
            ReservoirOffer::Replaced { evicted } => {
                self.changed.remove(&evicted);
                self.evicted.insert(evicted);
            }
        }
        self.evicted.remove(customer);
        self.changed.insert(customer.to_owned());
        true
    }
}

impl Store for Sample {
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        for customer in std::mem::take(&mut self.evicted) {
            out.delete(customer.as_bytes());
        }
        for customer in std::mem::take(&mut self.changed) {
            if let Some(item) = self.rows.get(&customer) {
                out.put(customer.as_bytes(), item)?;
            }
        }
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let customer = String::from_bytes(key)?;
        match value {
            Some(v) => {
                self.rows.offer(&customer, state::decode(v)?);
            }
            None => {
                self.rows.remove(&customer);
            }
        }
        Ok(())
    }
}

/// The first multiple of `every` at or after `t`.
fn boundary_at_or_after(t: i64, every: i64) -> i64 {
    let floor = t.div_euclid(every).saturating_mul(every);
    if floor < t {
        floor.saturating_add(every)
    } else {
        floor
    }
}

/// The `fit` stage of one partition of the repartition topic (only one receives profiles).
pub struct FitTask {
    app: SegmenterApp,
    sample: Sample,
    meta: Value<FitMeta>,
    model: Value<Option<SegmentModel>>,
    /// Profiles received and not applied yet, by (event time, arrival number): applied in
    /// that order when the watermark passes them.
    held: Held<SampledProfile>,
    /// Whether this task's partition is the one [`SAMPLE_KEY`] goes to: it alone fits, and
    /// it alone reports progress.
    fitter: bool,
}

impl FitTask {
    pub(super) fn new(app: SegmenterApp, partition: i32) -> FitTask {
        let sample = ReservoirSample::new(app.config.fit.sample_capacity, app.config.sample_seed);
        let fitter = partition == partition_for(SAMPLE_KEY, app.partitions);
        FitTask {
            app,
            sample: Sample {
                rows: sample,
                changed: BTreeSet::new(),
                evicted: BTreeSet::new(),
            },
            meta: Value::default(),
            model: Value::default(),
            held: Held::new(),
            fitter,
        }
    }

    /// The sample as fit rows, sorted by customer id.
    fn rows(&self) -> Vec<SampleRow> {
        let mut rows: Vec<SampleRow> = self
            .sample
            .rows
            .iter()
            .map(|(c, (f, cats))| (c.to_owned(), f.clone(), cats.clone()))
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// Applies a held profile to the sample; the first one starts the refit schedule at the
    /// first boundary at or after it.
    fn apply(&mut self, row: SampledProfile) {
        let every = self.app.config.refit_every_ms.max(1);
        let t = row.event_time;
        if self.meta.boundary == i64::MIN {
            self.meta.boundary = boundary_at_or_after(t.0, every);
        }
        self.meta.max_seen = self.meta.max_seen.max(t);
        let customer = row.customer_id;
        if !self
            .sample
            .offer(&customer, (row.features, row.top_categories))
        {
            return;
        }
        self.meta.unfitted = true;
    }

    /// Reports progress on the segment-models topic when the watermark entered a new step of
    /// `progress_every_ms` (and at the end of time): every model with a cutoff up to the
    /// watermark has been published.
    fn report_progress(&mut self, watermark: EventTime, ctx: &mut Ctx) {
        if !self.fitter {
            return;
        }
        // Never past the latest profile received: a watermark that moved on with the wall
        // clock (idle inputs) must not promise anything about times no profile reached yet.
        let watermark = if watermark == EventTime::MAX {
            watermark
        } else {
            watermark.min(self.meta.max_received)
        };
        let step = if watermark == EventTime::MAX {
            i64::MAX
        } else {
            watermark
                .0
                .div_euclid(self.app.config.progress_every_ms.max(1))
        };
        if step > self.meta.progress_sent {
            self.meta.progress_sent = step;
            ctx.emit_progress(
                &self.app.topics.segment_models,
                PROGRESS_KEY.to_vec(),
                watermark,
            );
        }
    }

    fn refit(&mut self, cutoff: EventTime, ctx: &mut Ctx) {
        // One attempt per change of the sample: a fit is a deterministic function of the
        // sample and the previous model, so one that failed would fail again until new
        // profiles come (and a jump of the watermark over days tries once, not per hour).
        self.meta.unfitted = false;
        let cfg = &self.app.config;
        if self.sample.rows.len() < cfg.min_sample_size.max(cfg.fit.k_min) {
            bump(&self.app.counters.fits_skipped);
            tracing::info!(
                sample = self.sample.rows.len(),
                "refit skipped: sample smaller than min_sample_size"
            );
            return;
        }
        let rows = self.rows();
        let previous = self.model.as_ref();
        let mut result = None;
        self.app
            .stopwatch
            .measure(&mut || result = Some(fit(&rows, previous, cutoff, &cfg.fit)));
        match result {
            Some(Ok(outcome)) => self.publish(outcome, cutoff, ctx),
            Some(Err(e)) => {
                bump(&self.app.counters.fit_failures);
                match e.class() {
                    FitErrorClass::NeedsMoreData => tracing::info!("refit postponed: {e}"),
                    FitErrorClass::Config => tracing::error!("refit impossible: {e}"),
                    FitErrorClass::BadData => tracing::warn!("refit failed: {e}"),
                }
            }
            None => tracing::error!("the fit stopwatch did not run the fit"),
        }
    }

    fn publish(&mut self, outcome: FitOutcome, cutoff: EventTime, ctx: &mut Ctx) {
        let topics = &self.app.topics;
        match self
            .app
            .codec
            .encode(&topics.segment_models, &outcome.model)
        {
            Ok(bytes) => ctx.emit(
                &topics.segment_models,
                Some(MODEL_KEY.to_vec()),
                bytes,
                cutoff,
            ),
            Err(e) => {
                ctx.reject_output(&topics.segment_models, Some(MODEL_KEY.to_vec()), &e);
                bump(&self.app.counters.fit_failures);
                return;
            }
        }
        for p in &outcome.profiles {
            match self.app.codec.encode(&topics.segment_profiles, p) {
                Ok(bytes) => ctx.emit(
                    &topics.segment_profiles,
                    Some(p.segment_id.to_string().into_bytes()),
                    bytes,
                    cutoff,
                ),
                Err(e) => ctx.reject_output(
                    &topics.segment_profiles,
                    Some(p.segment_id.to_string().into_bytes()),
                    &e,
                ),
            }
        }
        METRICS.model_version.set(outcome.model.version);
        METRICS.segments.set(outcome.k as i64);
        METRICS.model_quality.set(outcome.quality);
        bump(&self.app.counters.fits);
        tracing::info!(
            version = outcome.model.version,
            k = outcome.k,
            quality = outcome.quality,
            warm = outcome.warm_started,
            sample = outcome.model.sample_size,
            cutoff = %cutoff,
            "segment model published"
        );
        *self.model = Some(outcome.model);
        self.meta.unfitted = false;
    }
}

impl Task for FitTask {
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        _ctx: &mut Ctx,
    ) -> Result<(), Rejection> {
        let row: SampledProfile = codec::decode(record.value.unwrap_or_default())
            .map_err(|e| Rejection::new(Reason::Decode, format!("sampled profile: {e}")))?;
        gate.at(row.event_time)?;
        bump(&self.app.counters.profiles);
        self.meta.max_received = self.meta.max_received.max(row.event_time);
        self.held.hold(row.event_time, row);
        Ok(())
    }

    fn advance(&mut self, watermark: EventTime, ctx: &mut Ctx) {
        let every = self.app.config.refit_every_ms.max(1);
        let end = watermark == EventTime::MAX;
        loop {
            let next_row = self.held.first_time().map(|t| t.0);
            if self.meta.boundary != i64::MIN {
                // Boundaries come before the profiles at or after them; at the end of time,
                // only those the profiles reach (the last fit follows below).
                let limit = match next_row {
                    Some(t) if end => t,
                    Some(t) => t.min(watermark.0),
                    None if end => i64::MIN,
                    None => watermark.0,
                };
                // No boundary after the last one before the end of time: a saturated next
                // boundary would be this one again, and the loop would never end (a profile
                // dated at the end of time made `limit` the end of time).
                if let Some(mut next) = self
                    .meta
                    .boundary
                    .checked_add(every)
                    .filter(|n| *n <= limit)
                {
                    if !self.meta.unfitted {
                        // Nothing to fit at any boundary up to the limit: jump to the last.
                        next = limit.div_euclid(every).saturating_mul(every);
                    }
                    self.meta.boundary = next;
                    if self.meta.unfitted {
                        self.refit(EventTime(next), ctx);
                    }
                    continue;
                }
            }
            match self.held.pop_before(watermark) {
                Some((_, row)) => self.apply(row),
                None => break,
            }
        }
        if end && self.meta.unfitted {
            let previous = self.model.as_ref().map(|m| m.cutoff_event_time);
            // Just after the latest profile: progress may have promised up to that profile's
            // time (no model at or before it will come), and a profiler placed profiles of
            // that time on the promise.
            let after = EventTime(self.meta.max_seen.0.saturating_add(1));
            let cutoff = previous.map_or(after, |p| p.max(after));
            self.refit(cutoff, ctx);
        }
        self.report_progress(watermark, ctx);
    }

    fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        vec![
            ("sample", &mut self.sample),
            ("held", &mut self.held),
            ("meta", &mut self.meta),
            ("model", &mut self.model),
        ]
    }

    fn state_size(&self) -> (usize, usize) {
        let per_row = size_of::<SampleItem>() + size_of::<String>() * 2 + 48;
        let entries = self.sample.rows.len() + self.held.len();
        (entries, entries * per_row)
    }
}
