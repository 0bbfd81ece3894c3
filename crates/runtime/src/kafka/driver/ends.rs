//! Where inputs end and how far behind they are: bounded runs end at their end offsets,
//! consumer lag tells a backlog from a quiet partition, and records that will never be
//! delivered (aborted transactions, commit markers) are neither.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fitstream_contracts::EventTime;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::context::{DriverContext, Ends, PartitionEnd};
use super::{Driver, now_ms};
use crate::kafka::KafkaError;
use crate::metrics::METRICS;
use crate::task::WatermarkSource;

/// How often the consumer's positions are taken ([`Driver::refresh_polled`]).
const POLLED_EVERY: Duration = Duration::from_millis(50);

impl Driver<'_> {
    /// Bounded runs: finishes the watermark of every event-time task whose input partitions
    /// are all read to their end offsets. Returns true when every task of the assignment is
    /// finished: never while one is still restoring (a restart restores them one by one, and
    /// one already at its end finishes while another still restores).
    pub(super) fn finish_ended(&mut self) -> bool {
        if !self.config.bounded || self.slots.is_empty() || !self.ends_taken {
            return false;
        }
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        let mut all = self.restoring.is_none();
        for (stage, p) in keys {
            let st = &self.topology.stages[stage];
            if st.watermark == WatermarkSource::EventTime {
                let inputs: Vec<(String, i32)> = st
                    .inputs
                    .iter()
                    .chain(&st.tables)
                    .map(|t| (t.clone(), p))
                    .collect();
                let ended = inputs.iter().all(|key| self.read_to_end(key));
                let fresh = self
                    .slots
                    .get(&(stage, p))
                    .is_some_and(|s| !s.watermarks.is_finished());
                if ended && fresh {
                    let how: Vec<String> = inputs
                        .iter()
                        .map(|key| {
                            format!(
                                "{}/{}: processed {:?}, polled {:?}, end {:?}",
                                key.0,
                                key.1,
                                self.processed(key),
                                self.polled.get(key),
                                self.end_offsets.get(key)
                            )
                        })
                        .collect();
                    tracing::info!(
                        stage = %st.name,
                        partition = p,
                        "the task's inputs are read to their end: {}",
                        how.join("; ")
                    );
                    if let Some(slot) = self.slots.get_mut(&(stage, p)) {
                        slot.watermarks.finish();
                    }
                }
            }
            all &= self
                .slots
                .get(&(stage, p))
                .is_some_and(|s| s.current == EventTime::MAX);
        }
        all
    }

    /// Whether a bounded input partition is read to its end offset: every record before it
    /// processed. A transactional topic ends with a commit marker, which is never delivered:
    /// the partition has ended too once the consumer passed the marker in its queue and no
    /// record before it waits in the driver ([`Driver::refresh_polled`]).
    pub(super) fn read_to_end(&mut self, key: &(String, i32)) -> bool {
        let end = self.end_offsets.get(key).copied().unwrap_or(0);
        ended(
            self.processed(key),
            self.polled.get(key).copied(),
            end,
            self.holds(key),
        )
    }

    /// Bounded runs: whether the record at `offset` of an input partition is at or past the
    /// end offset the run took. It is the next run's: not processed, its position not moved
    /// (said once per partition). A task finishes when every record before its end is
    /// processed; one that came after would meet a watermark at the end of time.
    pub(super) fn past_end(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        if !self.config.bounded || !self.ends_taken {
            return false;
        }
        let key = (topic.to_owned(), partition);
        let Some(&end) = self.end_offsets.get(&key) else {
            return false;
        };
        if offset < end {
            return false;
        }
        if self.past_end_told.insert(key) {
            tracing::warn!(
                partition = %format!("{topic}/{partition}"),
                offset,
                end,
                "a record past the end offset this bounded run took: left for the next run"
            );
        }
        true
    }

    /// Pauses the input partitions with records past a bounded run's end offsets
    /// ([`Driver::past_end`]): nothing more of them is fetched and dropped in this run.
    pub(super) fn pause_past_end(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
    ) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for key in &self.past_end_told {
            if self.past_end_paused.insert(key.clone()) {
                tpl.add_partition(&key.0, key.1);
            }
        }
        if tpl.count() > 0 {
            consumer.pause(&tpl)?;
        }
        Ok(())
    }

    /// The next offset of `key` the driver will process: past the last record it processed,
    /// or where the partition starts (its log start, when retention deleted records past the
    /// committed offset: nothing before it will come).
    fn processed(&self, key: &(String, i32)) -> Option<i64> {
        match (self.positions.get(key), self.starts.get(key)) {
            (Some(&p), Some(&s)) => Some(p.max(s)),
            (p, s) => p.or(s).copied(),
        }
    }

    /// Whether records of `key` that the consumer passed are not processed yet: waiting in
    /// the task's merge, or to be read again (the partition is paused, or was, with a record
    /// delivered after the pause).
    fn holds(&self, key: &(String, i32)) -> bool {
        if self.paused.contains(key) || self.rewind.contains_key(key) {
            return true;
        }
        let Some(stage) = self.topology.stage_of(&key.0) else {
            return false;
        };
        let Some(input) = self.topology.stages[stage]
            .inputs
            .iter()
            .position(|t| *t == key.0)
        else {
            return false;
        };
        self.merges
            .get(&(stage, key.1))
            .is_some_and(|m| m.len(input) > 0)
    }

    /// Takes librdkafka's application position of every assigned partition (at most every
    /// [`POLLED_EVERY`]): the offset after the last message the driver polled, commit
    /// markers and aborted records included. Those are never delivered, but the consumer
    /// passes them in its queue in their place, so a position past a marker means every
    /// record before it was polled, whatever the wall clock did meanwhile (a fit that blocked
    /// the loop, other partitions' records ahead in the queue). A seek or an assignment
    /// change forgets it ([`Driver::forget_polled`]).
    pub(super) fn refresh_polled(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
    ) -> Result<(), KafkaError> {
        if self.polled_at.is_some_and(|t| t.elapsed() < POLLED_EVERY) {
            return Ok(());
        }
        self.polled.clear();
        for e in consumer.position()?.elements() {
            if let Offset::Offset(o) = e.offset() {
                self.polled.insert((e.topic().to_owned(), e.partition()), o);
            }
        }
        self.polled_at = Some(Instant::now());
        Ok(())
    }

    /// The consumer's positions are no longer known: a partition was sought, assigned or
    /// revoked.
    pub(super) fn forget_polled(&mut self) {
        self.polled.clear();
        self.polled_at = None;
    }

    /// Bounded runs with several instances: whether every input partition this instance does
    /// not hold is done for the group (its committed offset at its end, or nothing after it
    /// that a read_committed reader gets). A partition that another instance gave up and
    /// nobody holds yet (a static member that left keeps its partitions until its session
    /// expires) keeps this instance running: it is the one to finish it once the group gives
    /// it the partition. Checked every 2 s at most.
    pub(super) fn others_done(&mut self) -> Result<bool, KafkaError> {
        if self
            .others_checked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return Ok(false);
        }
        self.others_checked = Some(Instant::now());
        let held: BTreeSet<(String, i32)> = self
            .slots
            .keys()
            .flat_map(|&(stage, p)| {
                let st = &self.topology.stages[stage];
                st.inputs
                    .iter()
                    .chain(&st.tables)
                    .map(move |t| (t.clone(), p))
            })
            .collect();
        let mut others = TopicPartitionList::new();
        for topic in self.topology.input_topics() {
            for p in 0..self.partitions_of(&topic)? {
                if !held.contains(&(topic.clone(), p)) {
                    others.add_partition(&topic, p);
                }
            }
        }
        if others.count() == 0 {
            return Ok(true);
        }
        let probe = self.probe()?;
        let wait = self.config.kafka.broker_wait(Duration::from_secs(30));
        let committed = probe.committed_offsets(others, wait)?;
        for e in committed.elements() {
            let (topic, p) = (e.topic(), e.partition());
            let (low, high) = probe.fetch_watermarks(topic, p, wait)?;
            // The end the run took (`take_end_offsets`): records appended since are the
            // next run's, which the instance holding the partition does not read either
            // (`past_end`). An input timed by markers has none: only this run's own upstream
            // tasks write it, and it ends with their last markers. Its high watermark is not
            // kept as an end, or `past_end` would drop records written after it once this
            // instance is given the partition.
            let high = self
                .end_offsets
                .get(&(topic.to_owned(), p))
                .copied()
                .unwrap_or(high);
            let at = match e.offset() {
                Offset::Offset(o) => o.max(low),
                _ => low,
            };
            // Short of the end: done if what is left is never delivered (a transaction's
            // marker, aborted records). Whoever held the partition ended on the same rule
            // (`read_to_end`), so two finished instances never wait for each other.
            if at >= high || !self.delivers(topic, p, at)? {
                continue;
            }
            if self.others_told.insert((topic.to_owned(), p)) {
                tracing::info!(
                    partition = %format!("{topic}/{p}"),
                    committed = at,
                    end = high,
                    "the bounded run waits for a partition no instance finished: it is this one's once the group gives it"
                );
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether a read_committed reader of `topic`/`p` from `offset` gets a record within 3 s.
    /// (A partition whose records wait behind a transaction still open, e.g. a killed
    /// writer's until its transaction times out, looks done here: noted in the docs.)
    fn delivers(&self, topic: &str, p: i32, offset: i64) -> Result<bool, KafkaError> {
        let reader = self.probe()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))?;
        reader.assign(&tpl)?;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Some(Ok(_)) = reader.poll(Duration::from_millis(100)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A client for end offsets: high watermarks, as a read_uncommitted client is told them.
    pub(super) fn end_probe(&self) -> Result<BaseConsumer, KafkaError> {
        Ok(self
            .config
            .kafka
            .client()
            .set("isolation.level", "read_uncommitted")
            .create()?)
    }

    /// Bounded runs: the end offsets of every event-time input partition, held or not, taken
    /// at once: as the run starts, or for a chained run once its upstream finished. Each is
    /// the high watermark, everything appended so far. Not the last stable offset a
    /// read_committed client is told: the upstream's last commit returned once its records
    /// were appended, but the broker writes the transaction's commit markers after that, so
    /// for a moment the last stable offset is still at the start of that transaction, and its
    /// records would come after the end (found by the soak: the profiler's last 218 profiles
    /// of a partition, forwarded at the end of time).
    ///
    /// One snapshot for every partition, taken once per run, is what lets instances of one
    /// run started at different times end together while their input is still written: the
    /// instance started first has the lowest end of every partition, finds the others'
    /// partitions done and leaves, and the last one finishes what it left. (Ends taken per
    /// partition as it was assigned or first checked were not ordered so: each instance could
    /// wait for the other's partition past the end the other took.)
    pub(super) fn take_end_offsets(&mut self) -> Result<(), KafkaError> {
        let probe = self.end_probe()?;
        let wait = self.config.kafka.broker_wait(Duration::from_secs(30));
        for topic in self.topology.input_topics() {
            if !self.topology.ends_by_event_time(&topic) {
                continue;
            }
            for p in 0..self.partitions_of(&topic)? {
                let (_, high) = probe.fetch_watermarks(&topic, p, wait)?;
                self.end_offsets.entry((topic.clone(), p)).or_insert(high);
            }
        }
        tracing::info!(
            partitions = self.end_offsets.len(),
            "the bounded run's input end offsets are taken"
        );
        self.ends_taken = true;
        Ok(())
    }

    /// Records of `key` (an input partition) not processed yet that will come: its lag from
    /// what the driver processed, or from where the consumer is when nothing it passed waits
    /// in the driver (past commit markers and aborted records, which never come).
    pub(super) fn waiting(
        &mut self,
        key: &(String, i32),
        end: Option<PartitionEnd>,
    ) -> Option<i64> {
        let processed = self.processed(key)?;
        let table_end = self.table_ends.get(key).copied();
        let end_offset = end.map(|e| e.end).max(table_end)?;
        let at = match self.polled.get(key) {
            Some(&polled) if !self.holds(key) => processed.max(polled),
            _ => processed,
        };
        Some((end_offset - at).max(0))
    }

    /// Consumer lag per input partition (its last stable offset, from librdkafka's statistics,
    /// minus the driver's position), and idleness for quiet partitions only, not slow ones: an
    /// event-time input partition more than one record behind has records waiting (behind
    /// other partitions' in the consumer's queue, or not fetched yet), so it stays in the
    /// watermark however long since its last record. One record of slack: on a transactional
    /// topic the last offset is a commit marker, which is never delivered.
    pub(super) fn refresh_backlog(&mut self, ends: &Ends) {
        if self.last_backlog_check.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last_backlog_check = Instant::now();
        let Ok(ends) = ends.lock() else {
            return;
        };
        let now = now_ms();
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            let inputs = self.topology.stages[stage].inputs.clone();
            for (input, topic) in inputs.into_iter().enumerate() {
                let key = (topic.clone(), p);
                let Some(lag) = self.waiting(&key, ends.get(&key).copied()) else {
                    continue;
                };
                METRICS
                    .consumer_lag
                    .with_label_values(&[&topic, &p.to_string()])
                    .set(lag);
                if lag > 1
                    && let Some(slot) = self.slots.get_mut(&(stage, p))
                {
                    slot.records_coming(input, now);
                }
            }
        }
    }
}

/// Whether a bounded input partition with end offset `end` has ended: the driver processed
/// every record before the end (`processed`: its next offset; None: nothing committed and
/// no start known, so only an empty partition), or the consumer's position is at the end
/// (`polled`: past the commit marker that ends a transactional topic) and none of the
/// records it passed is `held` in the driver unprocessed. Wall time plays no part: a record
/// fetched and still in the consumer's queue, however long, is not the end.
fn ended(processed: Option<i64>, polled: Option<i64>, end: i64, held: bool) -> bool {
    match processed {
        Some(p) if p >= end => true,
        None if end == 0 => true,
        _ => !held && polled.is_some_and(|p| p >= end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_ends_once_every_record_before_its_end_is_processed() {
        assert!(ended(Some(10), None, 10, false));
        assert!(ended(Some(11), None, 10, true), "processed past the end");
        assert!(ended(None, None, 0, false), "an empty partition");
        assert!(!ended(None, None, 3, false));
        assert!(!ended(Some(9), None, 10, false), "position unknown");
    }

    #[test]
    fn a_commit_marker_at_the_end_is_passed_by_the_consumer_not_delivered() {
        // Records 0..=8 processed, offset 9 a commit marker the consumer passed.
        assert!(ended(Some(9), Some(10), 10, false));
        // An aborted transaction at the end: its records and marker passed likewise.
        assert!(ended(Some(4), Some(10), 10, false));
        assert!(ended(None, Some(10), 10, false));
    }

    /// The release soak's run 12: the last offset of a profiles partition was a record,
    /// fetched (librdkafka's fetcher past the end) while the driver's loop was busy with a
    /// fit for more than 5 s. The old rule took a position one short of the end, unmoved for
    /// 5 s with the fetcher past the end, for a commit marker: it finished the task's
    /// watermark, and the record then came at the end of time. Now only the consumer's
    /// position decides, which passes a marker in the queue where the record was.
    #[test]
    fn a_record_still_in_the_consumers_queue_is_not_the_end() {
        assert!(
            !ended(Some(9), Some(9), 10, false),
            "offset 9 not polled yet"
        );
        assert!(!ended(Some(9), None, 10, false));
        assert!(
            !ended(Some(5), Some(10), 10, true),
            "polled, but waiting in the task's merge or to be read again"
        );
    }
}
