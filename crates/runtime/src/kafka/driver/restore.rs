//! Assignment: where each partition resumes, the tasks of the assigned partitions restored
//! from their changelog partitions, and the global tables replayed to them.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::context::{self, DriverContext};
use super::{Driver, now_ms};
use crate::host::TaskHost;
use crate::kafka::KafkaError;
use crate::metrics::METRICS;
use crate::task::Ctx;

impl Driver<'_> {
    /// Drops every task, restored or being restored, telling each it is revoked.
    pub(super) fn revoke_all(&mut self) {
        if let Some(Restoring {
            job: Some(mut job), ..
        }) = self.restoring.take()
        {
            job.slot.task.revoked();
        }
        for slot in self.slots.values_mut() {
            slot.task.revoked();
        }
        self.slots.clear();
        // Records waiting for their turn were never processed nor committed: read again.
        self.merges.clear();
        self.order_wait.clear();
        self.order_told.clear();
        self.order_paused.clear();
    }

    /// A consumer of the group's offsets and the partitions' ends, outside the group.
    pub(super) fn probe(&self) -> Result<BaseConsumer, KafkaError> {
        Ok(self
            .config
            .kafka
            .client()
            .set("group.id", self.topology.group_id())
            .set("isolation.level", "read_committed")
            .create()?)
    }

    /// Incremental revocation: what every task did so far is committed first (the tasks
    /// that stay keep their state, so the open transaction cannot be aborted), then the
    /// revoked partitions' tasks are dropped; the caller unassigns the partitions. A
    /// revocation that takes only some of a task's co-partitioned inputs fails the run (the
    /// `range` assignor never does that).
    pub(super) fn revoke_partitions(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
        partitions: &[(String, i32)],
    ) -> Result<(), KafkaError> {
        self.stats.rebalances += 1;
        self.forget_polled();
        let revoked: BTreeSet<(String, i32)> = partitions.iter().cloned().collect();
        let owned: BTreeSet<(String, i32)> = consumer
            .assignment()
            .map(|tpl| context::partitions(&tpl).into_iter().collect())
            .unwrap_or_default();
        let tasks: BTreeSet<(usize, i32)> = partitions
            .iter()
            .filter_map(|(t, p)| self.topology.stage_of(t).map(|s| (s, *p)))
            .collect();
        for &(stage, p) in &tasks {
            let st = &self.topology.stages[stage];
            if let Some(kept) = st
                .inputs
                .iter()
                .chain(&st.tables)
                .map(|t| (t.clone(), p))
                .find(|key| owned.contains(key) && !revoked.contains(key))
            {
                return Err(KafkaError::Topic {
                    topic: kept.0,
                    message: format!(
                        "partition {p} stays assigned while the other inputs of its task ({} partition {p}) are revoked: the group's assignor does not keep co-partitioned inputs together",
                        st.name
                    ),
                });
            }
        }
        self.commit(consumer)?;
        let mut dropped = 0;
        for key in &tasks {
            if let Some(mut slot) = self.slots.remove(key) {
                slot.task.revoked();
                dropped += 1;
            }
            self.merges.remove(key);
            self.order_wait.remove(key);
            self.order_told.remove(key);
            if let Some(r) = &mut self.restoring {
                r.pending.retain(|k| k != key);
                if r.job.as_ref().is_some_and(|j| (j.stage, j.p) == *key)
                    && let Some(mut job) = r.job.take()
                {
                    job.slot.task.revoked();
                }
                METRICS.restore_pending.set(r.pending.len() as i64);
            }
        }
        for key in &revoked {
            self.positions.remove(key);
            self.paused.remove(key);
            self.rewind.remove(key);
            self.order_paused.remove(key);
            self.past_end_paused.remove(key);
        }
        METRICS.forget_partitions(partitions.iter().map(|(t, p)| (t.as_str(), *p)));
        tracing::info!(
            partitions = %super::listed(partitions),
            tasks = dropped,
            kept = self.slots.len(),
            "partitions revoked: their tasks committed and dropped, the others keep their state"
        );
        Ok(())
    }

    /// Takes newly assigned partitions: where each resumes, and their tasks restored from
    /// their changelog partitions (tasks already here keep their state).
    pub(super) fn assign(&mut self, assignment: &[(String, i32)]) -> Result<(), KafkaError> {
        self.stats.rebalances += 1;
        self.forget_polled();
        let now = now_ms();
        // Where each partition resumes (committed offset, else the start): with the broker's
        // end offsets this tells a backlog from a quiet partition (`refresh_backlog`).
        let probe = self.probe()?;
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in assignment {
            tpl.add_partition(topic, *p);
        }
        let committed =
            probe.committed_offsets(tpl, self.config.kafka.broker_wait(Duration::from_secs(30)))?;
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                self.positions
                    .entry((e.topic().to_owned(), e.partition()))
                    .or_insert(o);
            }
        }
        for (topic, p) in assignment {
            let st = self
                .topology
                .stage_of(topic)
                .map(|i| &self.topology.stages[i]);
            if self.topology.ends_by_event_time(topic) {
                let (low, high) = probe.fetch_watermarks(
                    topic,
                    *p,
                    self.config.kafka.broker_wait(Duration::from_secs(30)),
                )?;
                self.starts.insert((topic.clone(), *p), low);
                if st.is_some_and(|s| s.tables.contains(topic)) {
                    self.table_ends.insert((topic.clone(), *p), high);
                }
                let key = (topic.clone(), *p);
                if self.config.bounded && self.ends_taken && !self.end_offsets.contains_key(&key) {
                    // A partition added since the run took its end offsets (a partition that
                    // comes back keeps its end): everything appended so far, a transaction
                    // still open included, whose outcome the run waits for.
                    let (_, end) = self.end_probe()?.fetch_watermarks(
                        topic,
                        *p,
                        self.config.kafka.broker_wait(Duration::from_secs(30)),
                    )?;
                    self.end_offsets.insert(key, end);
                }
            }
        }
        let mut wanted: BTreeSet<(usize, i32)> = BTreeSet::new();
        for (topic, p) in assignment {
            if let Some(stage) = self.topology.stage_of(topic) {
                wanted.insert((stage, *p));
            }
        }
        // A task already here or under restore (another of its inputs came first) stays.
        wanted.retain(|key| {
            !self.slots.contains_key(key)
                && !self.restoring.as_ref().is_some_and(|r| {
                    r.pending.contains(key)
                        || r.job.as_ref().is_some_and(|j| (j.stage, j.p) == *key)
                })
        });
        let deadline = Instant::now() + Duration::from_millis(self.config.kafka.restore_timeout_ms);
        match &mut self.restoring {
            Some(r) => {
                r.pending.extend(wanted);
                r.deadline = r.deadline.max(deadline);
                METRICS.restore_pending.set(r.pending.len() as i64);
            }
            None => {
                let pending: VecDeque<(usize, i32)> = wanted.into_iter().collect();
                METRICS.restore_pending.set(pending.len() as i64);
                self.restoring = Some(Restoring {
                    pending,
                    job: None,
                    deadline,
                    now,
                });
            }
        }
        Ok(())
    }

    /// Restores for at most `budget`, between two polls of the group's consumer: the group
    /// never waits on a restore past `max.poll.interval.ms`, and every input stays paused
    /// until its task is whole. Returns true when the last task of the assignment is
    /// restored (the caller then resumes the inputs). Past `kafka.restore_timeout_ms` for the
    /// whole assignment it fails: a task never runs on part of its state.
    pub(super) fn restore_step(&mut self, budget: Duration) -> Result<bool, KafkaError> {
        let Some(mut r) = self.restoring.take() else {
            return Ok(false);
        };
        let until = Instant::now() + budget;
        while Instant::now() < until {
            if r.job.is_none() {
                let Some((stage, p)) = r.pending.pop_front() else {
                    return Ok(true);
                };
                r.job = Some(self.start_restore(stage, p, r.now)?);
            }
            let job = r.job.as_mut().expect("a job under way");
            if !job.done && Instant::now() >= r.deadline {
                return Err(KafkaError::Timeout(format!(
                    "restore of {} partition {}: {} records read in {} s, the end offset {} not reached, {} more tasks to restore (kafka.restore_timeout_ms)",
                    job.changelog,
                    job.p,
                    job.n,
                    self.config.kafka.restore_timeout_ms / 1000,
                    job.high,
                    r.pending.len(),
                )));
            }
            if job.step(until, r.now)? {
                let job = r.job.take().expect("a job under way");
                self.finish_restore(job, r.now)?;
                METRICS.restore_pending.set(r.pending.len() as i64);
            }
        }
        self.restoring = Some(r);
        Ok(false)
    }

    fn start_restore(&self, stage_idx: usize, p: i32, now: i64) -> Result<RestoreJob, KafkaError> {
        let stage = &self.topology.stages[stage_idx];
        // A bounded run's watermarks never move with the wall clock: the end of its input
        // closes everything, and its outputs do not depend on how fast it ran.
        let mut rules = self.config.watermark.clone();
        rules.advance_when_idle &= !self.config.bounded;
        let slot = TaskHost::new(self.topology, stage_idx, p, rules, now);
        let changelog = self.topology.changelog_topic(stage);
        let consumer: BaseConsumer = self
            .config
            .kafka
            .client()
            .set(
                "group.id",
                // Under the service's group prefix: the one group ACL a service has.
                format!(
                    "{}-restore-{}",
                    self.topology.group_id(),
                    uuid::Uuid::new_v4().simple()
                ),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .create()?;
        let (low, high) = consumer.fetch_watermarks(
            &changelog,
            p,
            self.config.kafka.broker_wait(Duration::from_secs(30)),
        )?;
        if high > low {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&changelog, p, Offset::Beginning)?;
            consumer.assign(&tpl)?;
        }
        Ok(RestoreJob {
            stage: stage_idx,
            p,
            slot,
            changelog,
            consumer,
            high,
            done: high <= low,
            n: 0,
            started: Instant::now(),
        })
    }

    fn finish_restore(&mut self, job: RestoreJob, now: i64) -> Result<(), KafkaError> {
        let RestoreJob {
            stage: stage_idx,
            p,
            mut slot,
            changelog,
            n,
            started,
            ..
        } = job;
        slot.restored(now).map_err(|e| KafkaError::Topic {
            topic: changelog.clone(),
            message: format!("restore of partition {p}: {e}"),
        })?;
        let stage = &self.topology.stages[stage_idx];
        self.stats.restored += n;
        METRICS
            .restore_seconds
            .with_label_values(&[&stage.name])
            .set(started.elapsed().as_secs_f64());
        tracing::info!(stage = %stage.name, partition = p, restored = n, "task restored");
        let mut ctx = Ctx::default();
        for (topic, key, value) in &self.global_log {
            if stage.globals.iter().any(|g| g == topic) {
                slot.task
                    .global(topic, key.as_deref(), value.as_deref(), &mut ctx);
            }
        }
        for (topic, wm) in &self.global_progress {
            if stage.globals.iter().any(|g| g == topic) {
                slot.task.global_progress(topic, *wm, &mut ctx);
            }
        }
        self.slots.insert((stage_idx, p), slot);
        if !ctx.is_empty() {
            self.begin()?;
        }
        self.route(stage_idx, p, ctx)
    }
    /// Every task of the assignment is whole: its inputs resume where they were (a record
    /// fetched before the pause is read again), except the streams of a stage with a table,
    /// which resume once their table is read (`pace_tables`).
    pub(super) fn resume_restored(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
        table_streams: &[String],
    ) -> Result<(), KafkaError> {
        let mut resume = TopicPartitionList::new();
        let paused: Vec<(String, i32)> = self.paused.iter().cloned().collect();
        for key in paused {
            if table_streams.contains(&key.0) {
                continue;
            }
            if let Some(offset) = self.rewind.remove(&key) {
                consumer.seek(
                    &key.0,
                    key.1,
                    Offset::Offset(offset),
                    Duration::from_secs(10),
                )?;
                self.forget_polled();
            }
            resume.add_partition(&key.0, key.1);
            self.paused.remove(&key);
        }
        if resume.count() > 0 {
            consumer.resume(&resume)?;
        }
        Ok(())
    }
}

/// The restore of an assignment, a task at a time, in steps between polls of the group.
pub(super) struct Restoring {
    /// Tasks not started, in order.
    pending: VecDeque<(usize, i32)>,
    job: Option<RestoreJob>,
    deadline: Instant,
    /// The wall clock at assignment (the tasks' creation time).
    now: i64,
}

/// One task's changelog partition, read from the beginning to its end, committed records
/// only.
struct RestoreJob {
    stage: usize,
    p: i32,
    slot: TaskHost,
    changelog: String,
    consumer: BaseConsumer,
    high: i64,
    done: bool,
    n: u64,
    started: Instant,
}

impl RestoreJob {
    /// Reads until `until`; true once the end offset is reached.
    fn step(&mut self, until: Instant, now: i64) -> Result<bool, KafkaError> {
        let (topic, p, high) = (self.changelog.as_str(), self.p, self.high);
        while !self.done && Instant::now() < until {
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    self.n += 1;
                    METRICS.restore_records.inc();
                    if let Some(k) = m.key() {
                        self.slot
                            .restore(k, m.payload(), now)
                            .map_err(|e| KafkaError::Topic {
                                topic: topic.into(),
                                message: format!(
                                    "restore of partition {p} at offset {}: {e}",
                                    m.offset()
                                ),
                            })?;
                    }
                    if m.offset() + 1 >= high {
                        self.done = true;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    // The end may be a transaction marker, which is never delivered: compare
                    // the position instead.
                    let at = self
                        .consumer
                        .position()?
                        .find_partition(topic, p)
                        .map(|e| e.offset());
                    if let Some(Offset::Offset(o)) = at
                        && o >= high
                    {
                        self.done = true;
                    }
                }
            }
        }
        Ok(self.done)
    }
}
