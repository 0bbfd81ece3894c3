//! The segmenter as a topology for the drivers (Kafka or embedded): profiles in, segment
//! models and segment profiles out.
//!
//! # One fitter, whatever the partitions
//! Each task of a stage handles one partition, so a stage reading the profiles topic directly
//! would fit one model per partition and publish them all under the same key. Instead:
//! - `forward` reads the profiles topic (any number of partitions), checks each profile and
//!   forwards its features to a repartition topic under one constant key
//!   ([`SAMPLE_KEY`]), so every profile lands on a single partition of it.
//! - `fit` reads that topic. Only the task of the partition [`SAMPLE_KEY`] hashes to ever
//!   receives a profile; the others stay empty and never fit. Its watermark is the minimum
//!   over the `forward` tasks' watermark markers, i.e. over every profiles partition.
//!
//! This runs correctly with any number of instances and partitions (one of them fits); the
//! product runs one active instance, and the fitting task restores its sample from the
//! changelog when it moves.
//!
//! # Sample
//! The fitting task keeps a [`crate::reservoir::ReservoirSample`] (bottom-k by a seeded hash of the customer
//! id) of the latest profile of at most `fit.sample_capacity` customers. Which customers it
//! holds depends only on the set of customers seen, not on how many versions of each came nor
//! in which order. Rows are sorted by customer id before each fit, so the model does not
//! depend on slot order (which a restore changes).
//!
//! # Refits at event-time boundaries, the same in both run modes
//! Profiles are not applied on arrival: they are held by (event time, arrival) and applied in
//! that order when the watermark passes them. Boundaries are multiples of `refit_every_ms`
//! (default one hour of event time); the schedule starts at the first boundary at or after the
//! first profile. Each boundary `B` the watermark reaches is handled in order, after every
//! profile before `B` and before any at or after it: when the sample changed since the last
//! fit and holds at least `min_sample_size` customers, the task fits
//! ([`fit()`](crate::fit())) with the previous model as warm start and `cutoff_event_time = B`.
//! At the end of time (end of a replay) the remaining profiles are applied, the boundaries
//! they pass are handled, and a last fit has cutoff = one millisecond after the latest profile time (progress may have promised up to that time). A fit that fails
//! (or a sample too small) keeps the previous model; the next boundary after new profiles tries
//! again (a fit is deterministic: the same sample would fail the same way).
//!
//! So the models depend on the profiles and their event times only, never on how the
//! watermark stepped (a replay moves it record by record, Kafka in jumps) nor on how the
//! partitions of the profiles topic interleaved (tested).
//!
//! Each fit publishes the [`fitstream_contracts::SegmentModel`] on the segment-models topic (key `current`) and
//! one [`SegmentProfile`](fitstream_contracts::SegmentProfile) per segment, retired ones
//! included, on the segment-profiles topic (key = segment id in decimal), with the cutoff as
//! event time. Gauges
//! `fitstream_model_version`, `fitstream_segments` and `fitstream_model_quality` follow.
//!
//! # Progress
//! Readers that join with the model as of event time (the profiler) must know when no model
//! with an earlier cutoff can come any more. The fitting task reports its watermark on the
//! segment-models topic each time it enters a new step of `progress_every_ms` (default ten
//! seconds; never past the latest profile received) and at the end of time: a progress marker ([`fitstream_runtime::task::Ctx::emit_progress`]), key
//! [`PROGRESS_KEY`], no value, after the models it covers. Only the task of the sample key's
//! partition reports (the other tasks of the stage never get a profile).
//!
//! # Fit duration
//! Tasks never read a clock. The app carries a [`FitStopwatch`] that wraps each fit: the
//! binary passes [`FitSecondsHistogram`], which observes the wall-clock duration in
//! `fitstream_model_fit_seconds`; tests and replays pass [`NoStopwatch`]. Nothing the task
//! emits depends on it.
//!
//! # State and restore
//! The fitting task's stores ([`fitstream_runtime::state`]): `sample` (per sampled customer,
//! its features and top categories; a tombstone when it leaves the sample, written before the
//! arrivals so that a restore never exceeds the capacity), `held` (profiles waiting for the
//! watermark), `meta` (schedule, latest profile time, progress) and `model` (the model in use,
//! for warm start, version and ids). A restore offers the rows to a fresh sample, which gives exactly the
//! uninterrupted run's sample (a bottom-k sample never takes back a customer it dropped), so a
//! restored task publishes what the uninterrupted one does (tested).

mod fitting;
mod forward;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use fitstream_contracts::Codec;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::metrics::METRICS;
use fitstream_runtime::task::{Stage, Topology, WatermarkSource};
use serde::{Deserialize, Serialize};

pub use self::fitting::FitTask;
pub use self::forward::{ForwardTask, SampledProfile};
use crate::fit::FitConfig;

/// The key every forwarded profile carries, so that one task receives them all.
pub const SAMPLE_KEY: &[u8] = b"segmenter-sample";
/// Key of the model on the segment-models topic.
pub const MODEL_KEY: &[u8] = b"current";
/// Key of the fitting task's progress markers on the segment-models topic.
pub const PROGRESS_KEY: &[u8] = b"__fitstream.progress";

/// Settings of the segmenter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmenterConfig {
    /// How models are fitted (k range, runs, quality metric, warm start, sample capacity).
    pub fit: FitConfig,
    /// Refit when the watermark passes a multiple of this many milliseconds of event time.
    pub refit_every_ms: i64,
    /// Fewest customers in the sample for a fit (at least `fit.k_min` in any case).
    pub min_sample_size: usize,
    /// Seed of the sample's priorities.
    pub sample_seed: u64,
    /// The fitting task reports its progress (a marker on the segment-models topic) each time
    /// its watermark enters a new step of this many milliseconds of event time.
    pub progress_every_ms: i64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            fit: FitConfig::default(),
            refit_every_ms: 3_600_000,
            min_sample_size: 100,
            sample_seed: 7,
            progress_every_ms: 10_000,
        }
    }
}

/// Measures fits from outside the task, which never reads a clock.
pub trait FitStopwatch: Send + Sync {
    /// Runs `fit`, measuring it.
    fn measure(&self, fit: &mut dyn FnMut());
}

/// Measures nothing (tests, replays).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStopwatch;

impl FitStopwatch for NoStopwatch {
    fn measure(&self, fit: &mut dyn FnMut()) {
        fit();
    }
}

/// Observes each fit's wall-clock duration in `fitstream_model_fit_seconds`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FitSecondsHistogram;

impl FitStopwatch for FitSecondsHistogram {
    fn measure(&self, fit: &mut dyn FnMut()) {
        let started = Instant::now();
        fit();
        METRICS
            .model_fit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Counters over every task of the segmenter.
#[derive(Debug, Default)]
pub struct SegmenterCounters {
    /// Profiles received by the fitting task.
    pub profiles: AtomicU64,
    /// Models published.
    pub fits: AtomicU64,
    /// Fits that failed (the previous model stays).
    pub fit_failures: AtomicU64,
    /// Boundaries passed with too small a sample.
    pub fits_skipped: AtomicU64,
}

/// A snapshot of [`SegmenterCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SegmenterStats {
    /// Profiles received by the fitting task.
    pub profiles: u64,
    /// Models published.
    pub fits: u64,
    /// Fits that failed.
    pub fit_failures: u64,
    /// Boundaries passed with too small a sample.
    pub fits_skipped: u64,
}

impl SegmenterCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> SegmenterStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SegmenterStats {
            profiles: r(&self.profiles),
            fits: r(&self.fits),
            fit_failures: r(&self.fit_failures),
            fits_skipped: r(&self.fits_skipped),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Everything the segmenter's tasks share.
#[derive(Clone)]
pub struct SegmenterApp {
    /// Application name (consumer group `fitstream-<name>`).
    pub name: String,
    /// Settings.
    pub config: SegmenterConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Wire codec (writers prepared for the output topics).
    pub codec: Codec,
    /// Counters over every task.
    pub counters: Arc<SegmenterCounters>,
    /// Partitions of the profiles topic (and of the repartition topic).
    pub partitions: i32,
    /// Wraps each fit (the fit-duration metric).
    pub stopwatch: Arc<dyn FitStopwatch>,
}

impl SegmenterApp {
    /// An application named `name` with fresh counters, no stopwatch, partitions as
    /// configured for topics.
    pub fn new(
        name: impl Into<String>,
        config: SegmenterConfig,
        topics: TopicsConfig,
        codec: Codec,
    ) -> SegmenterApp {
        let partitions = topics.partitions;
        SegmenterApp {
            name: name.into(),
            config,
            topics,
            codec,
            counters: Arc::new(SegmenterCounters::default()),
            partitions,
            stopwatch: Arc::new(NoStopwatch),
        }
    }

    /// The repartition topic between the stages.
    pub fn repartition_topic(&self) -> String {
        format!("fitstream-{}-sample-repartition", self.name)
    }

    /// Output topics (for writer registration).
    pub fn output_topics(&self) -> Vec<String> {
        vec![
            self.topics.segment_models.clone(),
            self.topics.segment_profiles.clone(),
        ]
    }

    /// The topology: `forward`, then `fit`.
    pub fn topology(&self) -> Topology {
        let forward = self.clone();
        let fitter = self.clone();
        let repartition = self.repartition_topic();
        Topology {
            name: self.name.clone(),
            stages: vec![
                Stage {
                    name: "forward".into(),
                    inputs: vec![self.topics.profiles.clone()],
                    tables: Vec::new(),
                    repartitions: vec![repartition.clone()],
                    watermark: WatermarkSource::EventTime,
                    globals: vec![],
                    factory: Box::new(move |_| Box::new(ForwardTask::new(forward.clone()))),
                },
                Stage {
                    name: "fit".into(),
                    inputs: vec![repartition],
                    tables: Vec::new(),
                    repartitions: vec![],
                    watermark: WatermarkSource::Markers {
                        upstream_tasks: self.partitions,
                    },
                    globals: vec![],
                    factory: Box::new(move |p| Box::new(FitTask::new(fitter.clone(), p))),
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use fitstream_runtime::embedded::{Embedded, EmbeddedConfig, Produced};
    use fitstream_runtime::task::EmitKind;
    use fitstream_runtime::watermark::WatermarkConfig;

    use sha2::{Digest, Sha256};

    use std::collections::BTreeSet;

    use fitstream_contracts::{CustomerProfile, EventTime, ProfileFeatures, SegmentModel, samples};
    use fitstream_runtime::partition::partition_for;
    use fitstream_runtime::state::{self, codec};
    use fitstream_runtime::task::{Ctx, Gate, Record, Task};

    use super::*;
    use crate::synthetic::population;

    const HOUR: i64 = 3_600_000;
    const START: i64 = 1_767_571_200_000;

    fn app(partitions: i32) -> SegmenterApp {
        let topics = TopicsConfig {
            partitions,
            ..TopicsConfig::default()
        };
        SegmenterApp::new(
            "segmenter",
            SegmenterConfig::default(),
            topics,
            Codec::pinned(),
        )
    }

    fn embedded(app: &SegmenterApp) -> Embedded {
        Embedded::new(
            app.topology(),
            EmbeddedConfig {
                partitions: app.partitions,
                output_partitions: app.partitions,
                topic_partitions: Default::default(),
                watermark: WatermarkConfig {
                    advance_when_idle: false,
                    ..WatermarkConfig::default()
                },
                dead_letter_topic: app.topics.dead_letter.clone(),
                service: "segmenter".into(),
            },
        )
    }

    /// A profile as the segmenter reads it: customer, features and last event time.
    fn profile(id: &str, features: ProfileFeatures, t: i64) -> CustomerProfile {
        CustomerProfile {
            customer_id: id.to_owned(),
            last_event_time: EventTime(t),
            features,
            ..samples::profile()
        }
    }

    fn models(out: &[Produced], app: &SegmenterApp) -> Vec<SegmentModel> {
        out.iter()
            .filter(|p| p.topic == app.topics.segment_models && p.progress().is_none())
            .map(|p| {
                app.codec
                    .decode(&p.topic, p.value.as_deref().unwrap_or_default())
                    .expect("a model")
            })
            .collect()
    }

    /// Profiles of 600 synthetic customers over three hours, through `partitions` partitions.
    fn run(partitions: i32) -> (SegmenterApp, Vec<Produced>) {
        let app = app(partitions);
        let mut e = embedded(&app);
        let customers = population(600, 3, 1.0);
        for (i, c) in customers.iter().enumerate() {
            let t = START + (i as i64) * 3 * HOUR / 600;
            let p = profile(&c.customer_id, c.features.clone(), t);
            let bytes = app.codec.encode(&app.topics.profiles, &p).expect("encodes");
            e.push(&app.topics.profiles, Some(c.customer_id.as_bytes()), &bytes);
        }
        e.finish().expect("every store checkpoints");
        (app.clone(), e.drain())
    }

    #[test]
    fn one_task_fits_at_boundaries_and_at_the_end_whatever_the_partitions() {
        let (app, out) = run(4);
        let m = models(&out, &app);
        // Boundaries: the first one passed starts the schedule; +1 h and +2 h fit; the end fits.
        let cutoffs: Vec<i64> = m.iter().map(|m| m.cutoff_event_time.0 - START).collect();
        assert_eq!(
            m.iter().map(|m| m.version).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(cutoffs[..2], [HOUR, 2 * HOUR]);
        assert!(cutoffs[2] > 2 * HOUR);
        assert!(m.iter().all(|m| m.segments.len() >= 3));
        assert_eq!(m[2].sample_size, 600);
        let profiles = out
            .iter()
            .filter(|p| p.topic == app.topics.segment_profiles)
            .count();
        assert!(profiles >= m.iter().map(|m| m.segments.len()).sum::<usize>());
        assert!(out.iter().all(|p| p.topic != app.topics.dead_letter));

        // Only the task of the sample key's partition fitted: versions 1, 2, 3 once each.
        let fitted_on: BTreeSet<i32> = out
            .iter()
            .filter(|p| p.topic == app.topics.segment_models)
            .map(|p| p.partition)
            .collect();
        assert_eq!(fitted_on.len(), 1);

        // It reported its progress once per ten seconds of event time, each marker after every
        // model whose cutoff it covers, and last the end of time.
        let mut published = 0;
        let mut progress = Vec::new();
        for p in out.iter().filter(|p| p.topic == app.topics.segment_models) {
            match p.progress() {
                Some(wm) => {
                    let due = m.iter().filter(|m| m.cutoff_event_time <= wm).count();
                    assert!(
                        published >= due,
                        "{published} models out at {wm}, {due} due"
                    );
                    assert_eq!(p.key.as_deref(), Some(PROGRESS_KEY));
                    assert_eq!(p.value, None);
                    progress.push(wm);
                }
                None => published += 1,
            }
        }
        assert!(
            progress
                .windows(2)
                .all(|w| w[0].0 / 10_000 < w[1].0 / 10_000)
        );
        assert_eq!(progress.last(), Some(&EventTime::MAX));
        assert!(progress.len() > 100, "{} progress markers", progress.len());
    }

    #[test]
    fn bad_profiles_are_dead_lettered() {
        let app = app(2);
        let mut e = embedded(&app);
        let f = ProfileFeatures {
            monetary: f64::NAN,
            ..ProfileFeatures::default()
        };
        let bytes = app
            .codec
            .encode(&app.topics.profiles, &profile("c", f, START))
            .expect("encodes");
        e.push(&app.topics.profiles, Some(b"c"), &bytes);
        e.push(&app.topics.profiles, Some(b"d"), b"not avro");
        let out = e.drain();
        let reasons: Vec<&str> = out
            .iter()
            .flat_map(|p| &p.headers)
            .filter(|(k, _)| k == "fitstream.error.reason")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(reasons, vec!["validation", "decode"]);
    }

    /// Feeds serialized rows to a task, advancing the watermark to `wm(i)` after row `i`
    /// (when it returns Some), then to the end of time; returns every emit but progress.
    fn fit_run(
        app: &SegmenterApp,
        rows: &[SampledProfile],
        wm: impl Fn(usize) -> Option<i64>,
    ) -> Vec<fitstream_runtime::task::Emit> {
        let topic = app.repartition_topic();
        let mut task = FitTask::new(app.clone(), partition_for(SAMPLE_KEY, app.partitions));
        let mut ctx = Ctx::default();
        for (i, row) in rows.iter().enumerate() {
            let v = codec::encode(row).expect("serializes");
            let r = Record {
                topic: &topic,
                partition: 0,
                offset: i as i64,
                key: Some(SAMPLE_KEY),
                value: Some(&v),
            };
            task.process(&r, &mut Gate::open(EventTime::MIN), &mut ctx)
                .expect("processes");
            if let Some(w) = wm(i) {
                task.advance(EventTime(w), &mut ctx);
            }
        }
        task.advance(EventTime::MAX, &mut ctx);
        ctx.emits.retain(|e| e.kind != EmitKind::Progress);
        ctx.emits
    }

    /// `n` customers' profiles into the fitting task, `step_ms` apart from [`START`].
    fn feed_population(task: &mut FitTask, topic: &str, n: usize, step_ms: i64, ctx: &mut Ctx) {
        for (i, c) in population(n, 3, 1.0).iter().enumerate() {
            let v = codec::encode(&SampledProfile {
                customer_id: c.customer_id.clone(),
                features: c.features.clone(),
                top_categories: c.top_categories.clone(),
                event_time: EventTime(START + i as i64 * step_ms),
            })
            .expect("serializes");
            let r = Record {
                topic,
                partition: 0,
                offset: i as i64,
                key: Some(SAMPLE_KEY),
                value: Some(&v),
            };
            task.process(&r, &mut Gate::open(EventTime::MIN), ctx)
                .expect("processes");
        }
    }

    /// A profile dated at the end of time (the forwarding task dates a profile behind its
    /// watermark at the watermark, which is the end of time once a bounded run's input
    /// ended): advancing to the end of time ends. The schedule's next boundary saturated at
    /// `i64::MAX`, which that profile's time reached, so `advance` jumped back to the same
    /// boundary forever (a soak run's `run all --until-end` spun there for 12 minutes).
    #[test]
    fn a_profile_at_the_end_of_time_ends_the_schedule() {
        let app = app(1);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let topic = app.repartition_topic();
            let mut task = FitTask::new(app.clone(), partition_for(SAMPLE_KEY, app.partitions));
            let mut ctx = Ctx::default();
            feed_population(&mut task, &topic, 150, 60_000, &mut ctx);
            let c = &population(1, 3, 1.0)[0];
            let v = codec::encode(&SampledProfile {
                customer_id: "at-the-end".into(),
                features: c.features.clone(),
                top_categories: c.top_categories.clone(),
                event_time: EventTime::MAX,
            })
            .expect("serializes");
            let r = Record {
                topic: &topic,
                partition: 0,
                offset: 150,
                key: Some(SAMPLE_KEY),
                value: Some(&v),
            };
            task.process(&r, &mut Gate::open(EventTime::MIN), &mut ctx)
                .expect("processes");
            task.advance(EventTime::MAX, &mut ctx);
            let models = ctx
                .emits
                .iter()
                .filter(|e| e.topic == app.topics.segment_models && e.kind != EmitKind::Progress)
                .count();
            done.send(models).ok();
        });
        let models = finished
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("advancing to the end of time ended");
        assert!(models >= 1, "{models} models");
    }

    #[test]
    fn progress_never_passes_the_latest_profile_and_a_failed_fit_waits_for_new_profiles() {
        let app = app(1);
        let topic = app.repartition_topic();
        let mut task = FitTask::new(app.clone(), partition_for(SAMPLE_KEY, app.partitions));
        let mut ctx = Ctx::default();
        // 50 customers: fewer than min_sample_size (100), every fit is skipped.
        feed_population(&mut task, &topic, 50, 60_000, &mut ctx);
        let last = EventTime(START + 49 * 60_000);
        // The watermark moves on with the wall clock, two days past the last profile.
        let skipped = app.counters.snapshot().fits_skipped;
        task.advance(EventTime(START + 48 * HOUR), &mut ctx);
        let progress: Vec<EventTime> = ctx
            .emits
            .iter()
            .filter(|e| e.kind == EmitKind::Progress)
            .map(|e| e.event_time)
            .collect();
        assert_eq!(
            progress,
            vec![last],
            "progress up to the latest profile only"
        );
        assert_eq!(
            app.counters.snapshot().fits_skipped - skipped,
            1,
            "one attempt for one sample, not one per hour"
        );
        task.advance(EventTime::MAX, &mut ctx);
        assert_eq!(app.counters.snapshot().fits_skipped - skipped, 1);
        assert_eq!(
            ctx.emits
                .iter()
                .rfind(|e| e.kind == EmitKind::Progress)
                .map(|e| e.event_time),
            Some(EventTime::MAX)
        );
    }

    /// The progress a task reports promises that no model with a cutoff at or before it
    /// will come. The last fit at the end of the input took the latest profile as its cutoff,
    /// which progress had often reached already: a profiler that placed a profile of that
    /// time with the previous model on the promise met the end's model with the same cutoff
    /// later, or earlier, as the two services' timing went (one assignment in 5,100 differed
    /// between `replay` and `run all --until-end` of the REES46 excerpt). The end's cutoff is
    /// now after the promise.
    #[test]
    fn no_model_comes_with_a_cutoff_the_progress_already_passed() {
        let app = app(1);
        let topic = app.repartition_topic();
        let mut task = FitTask::new(app.clone(), partition_for(SAMPLE_KEY, app.partitions));
        let mut ctx = Ctx::default();
        // 300 customers over an hour and a half: a fit at the first hour's boundary, then
        // the watermark stops short of the next one, past the latest profile.
        feed_population(&mut task, &topic, 300, 18_000, &mut ctx);
        task.advance(EventTime(START + 2 * HOUR - 60_000), &mut ctx);
        task.advance(EventTime::MAX, &mut ctx);
        let mut promised = EventTime::MIN;
        let mut models = 0;
        for e in &ctx.emits {
            if e.kind == EmitKind::Progress {
                promised = promised.max(e.event_time);
            } else if e.topic == app.topics.segment_models {
                models += 1;
                assert!(
                    e.event_time > promised,
                    "a model with cutoff {} after progress {promised}",
                    e.event_time
                );
            }
        }
        assert!(
            models >= 2,
            "a model at the boundary and one at the end: {models}"
        );
        assert_eq!(promised, EventTime::MAX);
    }

    #[test]
    fn models_depend_on_the_profiles_not_on_watermark_steps_or_arrival_order() {
        let mut config = SegmenterConfig::default();
        config.fit.sample_capacity = 150;
        let app = SegmenterApp { config, ..app(1) };
        // 300 customers over six hours, each with an early version of its profile and the
        // real one 20 minutes later: twice the sample's capacity, so customers are evicted.
        let customers = population(300, 5, 1.0);
        let mut rows = Vec::new();
        for (i, c) in customers.iter().enumerate() {
            let t = START + i as i64 * 6 * HOUR / 300;
            let early = ProfileFeatures {
                frequency: c.features.frequency * 0.5,
                ..c.features.clone()
            };
            for (features, at) in [(early, t), (c.features.clone(), t + HOUR / 3)] {
                rows.push(SampledProfile {
                    customer_id: c.customer_id.clone(),
                    features,
                    top_categories: c.top_categories.clone(),
                    event_time: EventTime(at),
                });
            }
        }
        rows.sort_by_key(|r| r.event_time);
        // In order, the watermark following every profile.
        let stepwise = fit_run(&app, &rows, |i| Some(rows[i].event_time.0));
        // Interleaved differently within each half hour (as two partitions of the profiles
        // topic may arrive), the watermark moving in jumps of three hours.
        let half = HOUR / 2;
        let mut shuffled = rows.clone();
        shuffled.sort_by_key(|r| {
            let window = (r.event_time.0 - START) / half;
            let mut h = Sha256::new();
            h.update(r.customer_id.as_bytes());
            (window, h.finalize().to_vec())
        });
        let jumps = fit_run(&app, &shuffled, |i| {
            let t = shuffled[i].event_time.0;
            let window_start = START + (t - START) / half * half;
            ((t - START) % (3 * HOUR) > 3 * HOUR - half).then_some(window_start)
        });
        let models = |emits: &[fitstream_runtime::task::Emit]| -> Vec<SegmentModel> {
            emits
                .iter()
                .filter(|e| e.topic == app.topics.segment_models)
                .map(|e| {
                    app.codec
                        .decode(&e.topic, e.value.as_deref().unwrap_or_default())
                        .expect("a model")
                })
                .collect()
        };
        let m = models(&stepwise);
        assert!(m.len() >= 5, "{} models", m.len());
        assert!(m.iter().all(|m| m.sample_size <= 150));
        let summary = |m: &[SegmentModel]| -> Vec<(i64, EventTime, i64)> {
            m.iter()
                .map(|m| (m.version, m.cutoff_event_time, m.sample_size))
                .collect()
        };
        assert_eq!(summary(&m), summary(&models(&jumps)));
        assert!(
            stepwise == jumps,
            "same versions and cutoffs, other contents"
        );
    }

    #[test]
    fn a_restored_fitting_task_publishes_what_the_uninterrupted_one_does() {
        let app = app(1);
        let customers = population(300, 5, 1.0);
        let rows: Vec<Vec<u8>> = customers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                codec::encode(&SampledProfile {
                    customer_id: c.customer_id.clone(),
                    features: c.features.clone(),
                    top_categories: c.top_categories.clone(),
                    event_time: EventTime(START + i as i64 * 60_000),
                })
                .expect("serializes")
            })
            .collect();
        let topic = app.repartition_topic();
        let feed = |task: &mut FitTask, rows: &[Vec<u8>], from: usize, out: &mut Vec<_>| {
            for (i, v) in rows.iter().enumerate() {
                let mut ctx = Ctx::default();
                let r = Record {
                    topic: &topic,
                    partition: 0,
                    offset: (from + i) as i64,
                    key: Some(SAMPLE_KEY),
                    value: Some(v),
                };
                let t = codec::decode::<SampledProfile>(v)
                    .expect("a sampled profile")
                    .event_time;
                task.process(&r, &mut Gate::open(t), &mut ctx)
                    .expect("processes");
                task.advance(t, &mut ctx);
                out.extend(ctx.emits);
            }
        };
        let mut whole = FitTask::new(app.clone(), partition_for(SAMPLE_KEY, app.partitions));
        let mut expected = Vec::new();
        feed(&mut whole, &rows, 0, &mut expected);
        let mut ctx = Ctx::default();
        whole.advance(EventTime::MAX, &mut ctx);
        expected.extend(ctx.emits);

        let mut first = FitTask::new(app.clone(), partition_for(SAMPLE_KEY, app.partitions));
        let mut got = Vec::new();
        feed(&mut first, &rows[..170], 0, &mut got);
        let mut changelog = Vec::new();
        state::checkpoint(&mut first, &mut changelog).expect("checkpoints");
        let mut restored = FitTask::new(app.clone(), partition_for(SAMPLE_KEY, app.partitions));
        for (k, v) in &changelog {
            state::restore(&mut restored, k, v.as_deref()).expect("restores");
        }
        state::restored(&mut restored).expect("restored");
        feed(&mut restored, &rows[170..], 170, &mut got);
        let mut ctx = Ctx::default();
        restored.advance(EventTime::MAX, &mut ctx);
        got.extend(ctx.emits);
        assert!(expected.len() > 10);
        assert_eq!(got, expected);
    }
}
