//! A profiler task restored from its changelog after a crash emits exactly what an
//! uninterrupted task emits, and ends with the same changelog.
//!
//! The harness drives one task through the runtime's [`TaskHost`], as both drivers do: records
//! delivered, the watermark ticked after each, a checkpoint every few records, models
//! delivered through `global`. A crash happens some records after a checkpoint: everything
//! since that checkpoint (outputs and changelog) is lost, as an aborted transaction is; a
//! fresh host restores the committed changelog (the task's stores and its watermarks),
//! receives the models seen so far again (the driver replays its global table), then the input
//! is read again from the checkpoint. Models that arrived after the checkpoint are delivered
//! again at the same place of the input (on Kafka they could arrive earlier or later: the
//! global table is read asynchronously).

use std::collections::BTreeMap;

use fitstream::pipeline::{SegmentationPipeline, encode_input};
use fitstream_contracts::Codec;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_profiler::app::{ProfilerApp, ProfilerConfig};
use fitstream_runtime::deadletter::Reason;
use fitstream_runtime::embedded::EmbeddedConfig;
use fitstream_runtime::host::TaskHost;
use fitstream_runtime::state::Change;
use fitstream_runtime::task::{Ctx, Emit, Record};
use fitstream_runtime::watermark::WatermarkConfig;
use fitstream_segmenter::app::{SegmenterApp, SegmenterConfig};
use fitstream_simulator::{SimConfig, Simulator};

enum Step {
    Input {
        topic: String,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
    },
    Model(Vec<u8>),
}

fn topics() -> TopicsConfig {
    TopicsConfig {
        partitions: 1,
        ..TopicsConfig::default()
    }
}

fn watermark_config() -> WatermarkConfig {
    WatermarkConfig {
        advance_when_idle: false,
        ..WatermarkConfig::default()
    }
}

/// A day of a small shop, with the models the segmenter publishes on it, in order.
fn script() -> Vec<Step> {
    let sim = SimConfig {
        customers: 300,
        seconds: 86_400,
        rate: 0.3,
        ..SimConfig::default()
    };
    let codec = Codec::pinned();
    let topics = topics();
    let profiler = ProfilerApp::new(
        "profiler",
        ProfilerConfig::default(),
        topics.clone(),
        codec.clone(),
    );
    let segmenter = SegmenterApp::new(
        "segmenter",
        SegmenterConfig {
            refit_every_ms: 2 * 3_600_000,
            min_sample_size: 30,
            ..SegmenterConfig::default()
        },
        topics.clone(),
        codec.clone(),
    );
    let mut pipeline = SegmentationPipeline::new(
        &profiler,
        &segmenter,
        EmbeddedConfig {
            partitions: 1,
            output_partitions: 1,
            topic_partitions: Default::default(),
            watermark: watermark_config(),
            dead_letter_topic: topics.dead_letter.clone(),
            service: "profiler".into(),
        },
    );
    let mut steps = Vec::new();
    for record in Simulator::new(sim).expect("valid") {
        let input = encode_input(&codec, &topics, &record).expect("encodes");
        pipeline.push(&input.topic, input.key.as_deref(), &input.value);
        steps.push(Step::Input {
            topic: input.topic,
            key: input.key,
            value: input.value,
        });
        for p in pipeline.drain() {
            if p.topic == topics.segment_models
                && let Some(v) = p.value
            {
                steps.push(Step::Model(v));
            }
        }
    }
    steps
}

/// What a run leaves: outputs in order, dead letters (step, reason), the changelog's final
/// content, and the changelog entries written.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    emits: Vec<Emit>,
    dead: Vec<(usize, Reason)>,
    changelog: BTreeMap<Vec<u8>, Vec<u8>>,
    entries: usize,
}

impl Outcome {
    fn commit(&mut self, changes: Vec<Change>) {
        self.entries += changes.len();
        for (k, v) in changes {
            match v {
                Some(v) => self.changelog.insert(k, v),
                None => self.changelog.remove(&k),
            };
        }
    }
}

struct Harness {
    host: TaskHost,
    topics: TopicsConfig,
}

impl Harness {
    fn new() -> Harness {
        let topics = topics();
        let app = ProfilerApp::new(
            "profiler",
            ProfilerConfig::default(),
            topics.clone(),
            Codec::pinned(),
        );
        let host = TaskHost::new(&app.topology(), 0, 0, watermark_config(), 0);
        Harness { host, topics }
    }

    fn step(&mut self, i: usize, step: &Step, out: &mut Outcome) {
        match step {
            Step::Model(v) => {
                let mut ctx = Ctx::default();
                self.host.task.global(
                    &self.topics.segment_models,
                    Some(b"current"),
                    Some(v),
                    &mut ctx,
                );
                out.emits.extend(ctx.emits);
            }
            Step::Input { topic, key, value } => {
                let record = Record {
                    topic,
                    partition: 0,
                    offset: i as i64,
                    key: key.as_deref(),
                    value: Some(value),
                };
                let (ctx, dead) = self.host.deliver(&record, "profiler", 0, false);
                if let Some(dl) = dead {
                    out.dead.push((i, dl.reason));
                }
                out.emits.extend(ctx.emits);
                if let Some(ctx) = self.host.tick(0) {
                    out.emits.extend(ctx.emits);
                }
            }
        }
    }

    fn checkpoint(&mut self, out: &mut Outcome) -> Vec<Change> {
        let changes = self.host.checkpoint().expect("checkpoints");
        out.commit(changes.clone());
        changes
    }

    fn finish(&mut self, out: &mut Outcome) {
        self.host.watermarks.finish();
        if let Some(ctx) = self.host.tick(0) {
            out.emits.extend(ctx.emits);
        }
        self.checkpoint(out);
    }
}

fn uninterrupted(steps: &[Step], every: usize) -> Outcome {
    let mut h = Harness::new();
    let mut out = Outcome::default();
    for (i, s) in steps.iter().enumerate() {
        h.step(i, s, &mut out);
        if (i + 1) % every == 0 {
            h.checkpoint(&mut out);
        }
    }
    h.finish(&mut out);
    out
}

/// Crashes `redo` steps after each checkpoint in `crashes` (indices of steps after which a
/// checkpoint happens), restores and goes on.
fn with_crashes(steps: &[Step], every: usize, crashes: &[usize], redo: usize) -> Outcome {
    let mut h = Harness::new();
    let mut out = Outcome::default();
    let mut log: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut i = 0;
    let mut crashed = Vec::new();
    while i < steps.len() {
        h.step(i, &steps[i], &mut out);
        if (i + 1) % every == 0 {
            log.extend(h.checkpoint(&mut out));
            if crashes.contains(&(i + 1)) && !crashed.contains(&(i + 1)) {
                crashed.push(i + 1);
                // The zombie goes on for a while; its work is aborted.
                let committed_emits = out.emits.len();
                let committed_dead = out.dead.len();
                let mut lost = Outcome::default();
                for (j, s) in steps.iter().enumerate().skip(i + 1).take(redo) {
                    h.step(j, s, &mut lost);
                }
                out.emits.truncate(committed_emits);
                out.dead.truncate(committed_dead);
                // A new task: changelog, then the global table seen so far, then the input
                // from the checkpoint on.
                let mut fresh = Harness::new();
                for (k, v) in &log {
                    fresh.host.restore(k, v.as_deref(), 0).expect("restores");
                }
                fresh.host.restored(0).expect("restored");
                let mut replay = Ctx::default();
                for s in &steps[..=i] {
                    if let Step::Model(v) = s {
                        fresh.host.task.global(
                            &fresh.topics.segment_models,
                            Some(b"current"),
                            Some(v),
                            &mut replay,
                        );
                    }
                }
                assert!(
                    replay.emits.is_empty(),
                    "replaying known models emits nothing"
                );
                h = fresh;
            }
        }
        i += 1;
    }
    h.finish(&mut out);
    out
}

#[test]
fn a_restored_task_emits_what_an_uninterrupted_one_does() {
    let steps = script();
    let models = steps.iter().filter(|s| matches!(s, Step::Model(_))).count();
    let every = 500;
    let expected = uninterrupted(&steps, every);
    let n = steps.len();
    let crashes = [n / 3 / every * every, 2 * n / 3 / every * every];
    let got = with_crashes(&steps, every, &crashes, 400);
    let profiles = expected
        .emits
        .iter()
        .filter(|e| e.topic == TopicsConfig::default().profiles)
        .count();
    eprintln!(
        "{} steps ({models} models), crashes after steps {crashes:?}: {} outputs ({profiles} profiles), {} dead letters, {} changelog keys from {} entries; restored run equal: {}",
        n,
        expected.emits.len(),
        expected.dead.len(),
        expected.changelog.len(),
        expected.entries,
        got.emits == expected.emits && got.changelog == expected.changelog
    );
    assert!(models >= 5, "models arrive during the run");
    assert!(
        expected.dead.iter().any(|d| d.1 == Reason::Decode),
        "malformed input is dead-lettered"
    );
    assert_eq!(got.emits.len(), expected.emits.len());
    assert!(
        got.emits == expected.emits,
        "outputs differ after a restore"
    );
    assert_eq!(got.dead, expected.dead);
    assert!(
        got.changelog == expected.changelog,
        "final changelog differs after a restore"
    );
}

#[test]
fn outputs_do_not_depend_on_the_commit_interval() {
    let steps = script();
    let a = uninterrupted(&steps, 97);
    let b = uninterrupted(&steps, 5_000);
    assert!(a.emits == b.emits);
    assert_eq!(a.dead, b.dead);
    assert!(a.entries > b.entries, "more commits write more entries");
}
