//! The embedded driver: a topology in one process over in-memory records, no broker.
//!
//! Records are partitioned exactly as on Kafka (murmur2 of the key), each partition of each
//! stage has its own task and watermarks, repartition topics are delivered in memory with the
//! same watermark markers, and dead letters get the same headers. Deterministic: the same
//! input in the same order gives the same output. The end of the input ([`Embedded::finish`])
//! moves every watermark to the end of time, closing every window.
//!
//! A bounded input whose records are announced first ([`Embedded::announce`], then
//! [`Embedded::push_at`] with each record's timestamp) is taken as the Kafka driver takes a
//! bounded run: a task with several inputs takes their records in event-time order
//! ([`crate::merge`]), knowing from the announced counts when an input has ended. Records
//! pushed with [`Embedded::push`] are taken in the order they come.

use std::collections::BTreeMap;

use fitstream_contracts::EventTime;

use crate::deadletter::DeadLetter;
use crate::host::{TaskHost, account, count_dead_letter, targets};
use crate::merge::Merge;
use crate::metrics::METRICS;
use crate::partition::partition_for;
use crate::state::StateError;
use crate::task::{Ctx, EmitKind, Record, Task, Topology, WatermarkSource};
use crate::watermark::WatermarkConfig;

/// A record the topology produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Produced {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Record timestamp (event time of the output).
    pub timestamp: i64,
    /// Headers (dead letters).
    pub headers: Vec<(String, String)>,
}

impl Produced {
    /// The watermark of a progress marker (see [`Ctx::emit_progress`]); None for a record.
    pub fn progress(&self) -> Option<EventTime> {
        crate::task::progress_of(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())))
    }

    /// A record as read back from Kafka, in the same shape (to compare the two drivers).
    pub fn from_consumed(r: crate::kafka::reader::ConsumedRecord) -> Produced {
        Produced {
            topic: r.topic,
            partition: r.partition,
            key: r.key,
            value: r.value,
            timestamp: r.timestamp.unwrap_or(0),
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
        }
    }
}

/// How the records of one topic ended in a service: each record read has exactly one
/// outcome (used by the task, dropped as a duplicate, or dead-lettered with a reason).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcomes {
    /// Records read.
    pub read: u64,
    /// Records the task took (into its state or an output).
    pub used: u64,
    /// Records dropped as duplicates of one already taken.
    pub duplicates: u64,
    /// Records dead-lettered, by reason.
    pub dead: BTreeMap<String, u64>,
}

impl Outcomes {
    /// Whether every record read has its outcome.
    pub fn accounted(&self) -> bool {
        self.read == self.used + self.duplicates + self.dead.values().sum::<u64>()
    }
}

/// Settings of an embedded run.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Partitions of every input and repartition topic.
    pub partitions: i32,
    /// Partitions of output topics (to report the partition a record would land on).
    pub output_partitions: i32,
    /// Output topics with another partition count (the segment-models topic has one).
    pub topic_partitions: BTreeMap<String, i32>,
    /// Watermark rules (replays: `advance_when_idle` off).
    pub watermark: WatermarkConfig,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Service name in dead-letter headers.
    pub service: String,
}

/// A topology running in memory.
pub struct Embedded {
    topology: Topology,
    config: EmbeddedConfig,
    slots: BTreeMap<(usize, i32), TaskHost>,
    /// The next offset per topic and partition (looked up by `&str`: no key is allocated
    /// per record).
    offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    out: Vec<Produced>,
    outcomes: BTreeMap<String, Outcomes>,
    /// Records of each input partition announced and not pushed yet (a bounded input), by
    /// topic and partition.
    announced: BTreeMap<String, BTreeMap<i32, u64>>,
    /// Records waiting for event-time order, per task of a stage with several inputs.
    merges: BTreeMap<(usize, i32), Merge<Waiting>>,
}

/// A pushed record waiting in a task's merge.
#[derive(Debug)]
struct Waiting {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

impl Embedded {
    /// Creates every task of every stage.
    pub fn new(topology: Topology, config: EmbeddedConfig) -> Embedded {
        let mut slots = BTreeMap::new();
        for stage in 0..topology.stages.len() {
            for p in 0..config.partitions {
                let host = TaskHost::new(&topology, stage, p, config.watermark.clone(), 0);
                slots.insert((stage, p), host);
            }
        }
        Embedded {
            topology,
            config,
            slots,
            offsets: BTreeMap::new(),
            out: Vec::new(),
            outcomes: BTreeMap::new(),
            announced: BTreeMap::new(),
            merges: BTreeMap::new(),
        }
    }

    /// Announces a record of a bounded input that [`push_at`](Self::push_at) will feed
    /// later: once every record is announced, a task with several inputs knows when each
    /// has ended, as the Kafka driver knows from end offsets.
    pub fn announce(&mut self, topic: &str, key: Option<&[u8]>) {
        let partition = self.partition_of(key);
        *self
            .announced
            .entry(topic.to_owned())
            .or_default()
            .entry(partition)
            .or_default() += 1;
    }

    /// Feeds an announced input record with its timestamp (the event time its producer
    /// set): a task with several inputs takes it in event-time order across them.
    pub fn push_at(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8], timestamp: i64) {
        let partition = self.partition_of(key);
        let Some(stage) = self.topology.stage_of(topic) else {
            return;
        };
        let st = &self.topology.stages[stage];
        let (Some(input), true) = (
            st.inputs.iter().position(|t| t == topic),
            crate::merge::merges(st),
        ) else {
            return self.deliver(topic, partition, key, Some(value));
        };
        if let Some(n) = self
            .announced
            .get_mut(topic)
            .and_then(|t| t.get_mut(&partition))
        {
            *n = n.saturating_sub(1);
        }
        let n = st.inputs.len();
        self.merges
            .entry((stage, partition))
            .or_insert_with(|| Merge::new(n))
            .push(
                input,
                timestamp,
                Waiting {
                    key: key.map(<[u8]>::to_vec),
                    value: value.to_vec(),
                },
            );
        self.release(stage, partition);
    }

    /// Takes a task's waiting records in event-time order while every input either has a
    /// record waiting or has none announced.
    fn release(&mut self, stage: usize, partition: i32) {
        let Some(mut merge) = self.merges.remove(&(stage, partition)) else {
            return;
        };
        loop {
            let (announced, inputs) = (&self.announced, &self.topology.stages[stage].inputs);
            let next = merge.pop(|i| {
                announced
                    .get(inputs[i].as_str())
                    .and_then(|t| t.get(&partition))
                    .is_none_or(|n| *n == 0)
            });
            let Some((i, w)) = next else {
                break;
            };
            let topic = self.topology.stages[stage].inputs[i].clone();
            self.deliver(&topic, partition, w.key.as_deref(), Some(&w.value));
        }
        self.merges.insert((stage, partition), merge);
    }

    fn partition_of(&self, key: Option<&[u8]>) -> i32 {
        key.map(|k| partition_for(k, self.config.partitions))
            .unwrap_or(0)
    }

    /// How the records of each topic this topology read ended so far.
    pub fn outcomes(&self) -> &BTreeMap<String, Outcomes> {
        &self.outcomes
    }

    /// Feeds one input record (keyed; partitioned like Kafka).
    pub fn push(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) {
        let partition = self.partition_of(key);
        self.deliver(topic, partition, key, Some(value));
    }

    /// Feeds a record of a global table to every task of the stages that read it.
    pub fn push_global(&mut self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.each_global_reader(topic, |task, ctx| task.global(topic, key, value, ctx));
    }

    /// Feeds a progress marker of a global table to every task of the stages that read it.
    pub fn push_global_progress(&mut self, topic: &str, watermark: EventTime) {
        self.each_global_reader(topic, |task, ctx| {
            task.global_progress(topic, watermark, ctx)
        });
    }

    fn each_global_reader(&mut self, topic: &str, mut f: impl FnMut(&mut dyn Task, &mut Ctx)) {
        let stages: Vec<usize> = (0..self.topology.stages.len())
            .filter(|i| self.topology.stages[*i].globals.iter().any(|g| g == topic))
            .collect();
        for stage in stages {
            for p in 0..self.config.partitions {
                let mut ctx = Ctx::default();
                if let Some(slot) = self.slots.get_mut(&(stage, p)) {
                    f(slot.task.as_mut(), &mut ctx);
                }
                self.route(stage, p, ctx);
            }
        }
    }

    /// Records produced so far (drained).
    pub fn drain(&mut self) -> Vec<Produced> {
        std::mem::take(&mut self.out)
    }

    /// The end of the input: every watermark moves to the end of time; then every task
    /// checkpoints, as a Kafka commit would (a store that cannot write its state fails the
    /// run here, as it would abort the transaction there).
    pub fn finish(&mut self) -> Result<(), StateError> {
        // Every input ended: what waits for event-time order is taken first.
        let waiting: Vec<(usize, i32)> = self.merges.keys().copied().collect();
        for (stage, p) in waiting {
            let Some(mut merge) = self.merges.remove(&(stage, p)) else {
                continue;
            };
            let inputs = self.topology.stages[stage].inputs.clone();
            for (i, w) in merge.drain() {
                self.deliver(&inputs[i], p, w.key.as_deref(), Some(&w.value));
            }
        }
        for stage in 0..self.topology.stages.len() {
            for p in 0..self.config.partitions {
                if let Some(slot) = self.slots.get_mut(&(stage, p))
                    && self.topology.stages[stage].watermark == WatermarkSource::EventTime
                {
                    slot.watermarks.finish();
                }
                self.tick(stage, p);
            }
        }
        self.commit()
    }

    /// Every task checkpoints, as a Kafka commit would, and its state is then durable
    /// ([`crate::task::Task::committed`]). The embedded driver keeps no changelog: what a
    /// commit changes is what readers of committed state see (`demo --api`). Outputs do not
    /// depend on when it commits.
    pub fn commit(&mut self) -> Result<(), StateError> {
        for slot in self.slots.values_mut() {
            slot.checkpoint()?;
            slot.task.committed();
        }
        Ok(())
    }

    /// State entries and bytes over every task.
    pub fn state_size(&self) -> (usize, usize) {
        self.slots
            .values()
            .map(|s| s.task.state_size())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    fn deliver(&mut self, topic: &str, partition: i32, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(stage) = self.topology.stage_of(topic) else {
            return;
        };
        if !self.offsets.contains_key(topic) {
            self.offsets.insert(topic.to_owned(), BTreeMap::new());
        }
        let offset = self
            .offsets
            .get_mut(topic)
            .map(|t| {
                let o = t.entry(partition).or_default();
                *o += 1;
                *o - 1
            })
            .unwrap_or_default();
        METRICS.records_in.with_label_values(&[topic]).inc();
        let record = Record {
            topic,
            partition,
            offset,
            key,
            value,
        };
        let Some(slot) = self.slots.get_mut(&(stage, partition)) else {
            return;
        };
        let (ctx, dead) = slot.deliver(&record, &self.config.service, 0, false);
        if !self.outcomes.contains_key(topic) {
            self.outcomes.insert(topic.to_owned(), Outcomes::default());
        }
        // Counted only: the record's dead letter and emits are routed below in any case.
        if let Some(outcome) = self.outcomes.get_mut(topic) {
            outcome.read += 1;
            match &dead {
                Some(dl) => {
                    *outcome
                        .dead
                        .entry(dl.reason.as_str().to_owned())
                        .or_default() += 1
                }
                None if ctx.duplicates > 0 => outcome.duplicates += 1,
                None => outcome.used += 1,
            }
        }
        if let Some(dl) = dead {
            self.dead_letter(dl);
        }
        self.route(stage, partition, ctx);
        self.tick(stage, partition);
    }

    fn dead_letter(&mut self, dl: DeadLetter) {
        count_dead_letter(&dl, &self.config.service);
        let headers = dl
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        self.out.push(Produced {
            topic: self.config.dead_letter_topic.clone(),
            partition: dl
                .key
                .as_deref()
                .map(|k| partition_for(k, self.config.output_partitions))
                .unwrap_or(0),
            key: dl.key,
            value: dl.value,
            timestamp: 0,
            headers,
        });
    }

    /// Recomputes a task's watermark; advances it and sends markers downstream.
    fn tick(&mut self, stage: usize, partition: i32) {
        let Some(slot) = self.slots.get_mut(&(stage, partition)) else {
            return;
        };
        if let Some(ctx) = slot.tick(0) {
            self.route(stage, partition, ctx);
        }
        if self.topology.stages[stage].repartitions.is_empty() {
            return;
        }
        let Some(slot) = self.slots.get_mut(&(stage, partition)) else {
            return;
        };
        let Some(watermark) = slot.marker_due() else {
            return;
        };
        let source = slot.source();
        let targets = self.topology.stages[stage].repartitions.clone();
        for topic in targets {
            if let Some(down) = self.topology.stage_of(&topic) {
                for q in 0..self.config.partitions {
                    if let Some(d) = self.slots.get_mut(&(down, q))
                        && let Err(r) = d.marker(&topic, source.clone(), Some(watermark), 0)
                    {
                        // Markers between tasks of one topology come from upstream tasks: a
                        // refusal is a topology whose partition counts disagree.
                        tracing::error!(
                            "a marker between embedded tasks was refused: {}",
                            r.message
                        );
                        debug_assert!(false, "{}", r.message);
                    }
                    self.tick(down, q);
                }
            }
        }
    }

    fn route(&mut self, stage: usize, task_partition: i32, ctx: Ctx) {
        account(&ctx, &self.config.service);
        for r in &ctx.rejected {
            self.dead_letter(r.dead_letter(&self.config.service, 0));
        }
        for e in ctx.emits {
            if self.topology.is_repartition(&e.topic) {
                let value = e.value.clone().unwrap_or_default();
                for q in targets(&e, self.config.partitions) {
                    self.deliver(&e.topic, q, e.key.as_deref(), Some(&value));
                }
                continue;
            }
            METRICS.records_out.with_label_values(&[&e.topic]).inc();
            let n = self.config.topic_partitions.get(&e.topic);
            let partitions = n.copied().unwrap_or(self.config.output_partitions);
            let headers: Vec<(String, String)> = if e.kind == EmitKind::Progress {
                let source = format!("{}/{task_partition}", self.topology.stages[stage].name);
                crate::task::marker_headers(&source, e.event_time)
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect()
            } else {
                Vec::new()
            };
            for partition in targets(&e, partitions) {
                self.out.push(Produced {
                    topic: e.topic.clone(),
                    partition,
                    key: e.key.clone(),
                    value: e.value.clone(),
                    timestamp: e.event_time.0,
                    headers: headers.clone(),
                });
            }
        }
    }
}
