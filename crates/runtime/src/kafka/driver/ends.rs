//! Where inputs end and how far behind they are: bounded runs end at their end offsets,
//! consumer lag tells a backlog from a quiet partition, and records that will never be
//! delivered (aborted transactions, commit markers) are neither.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fitstream_contracts::EventTime;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::context::{Ends, PartitionEnd, UNDELIVERABLE_AFTER};
use super::{Driver, now_ms};
use crate::kafka::KafkaError;
use crate::metrics::METRICS;
use crate::task::WatermarkSource;

impl Driver<'_> {
    /// Bounded runs: finishes the watermark of every event-time task whose input partitions
    /// are all read to their end offsets. Returns true when every task is finished.
    pub(super) fn finish_ended(&mut self, ends: &Ends) -> bool {
        if !self.config.bounded || self.slots.is_empty() || !self.ends_taken {
            return false;
        }
        let Ok(stats) = ends.lock() else {
            return false;
        };
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        let mut all = true;
        for (stage, p) in keys {
            let st = &self.topology.stages[stage];
            if st.watermark == WatermarkSource::EventTime {
                let inputs: Vec<(String, i32)> = st
                    .inputs
                    .iter()
                    .chain(&st.tables)
                    .map(|t| (t.clone(), p))
                    .collect();
                let ended = inputs
                    .iter()
                    .all(|key| self.read_to_end(key, stats.get(key).copied()));
                if ended && let Some(slot) = self.slots.get_mut(&(stage, p)) {
                    slot.watermarks.finish();
                }
            }
            all &= self
                .slots
                .get(&(stage, p))
                .is_some_and(|s| s.current == EventTime::MAX);
        }
        all
    }

    /// Whether a bounded input partition is read to its end offset. A transactional topic
    /// ends with a commit marker, which is never delivered: one offset short, with the fetcher
    /// past the end and nothing delivered for [`UNDELIVERABLE_AFTER`], is the end too.
    pub(super) fn read_to_end(&mut self, key: &(String, i32), stats: Option<PartitionEnd>) -> bool {
        let end = self.end_offsets.get(key).copied().unwrap_or(0);
        let position = self
            .positions
            .get(key)
            .or_else(|| self.starts.get(key))
            .copied();
        match ended(position, end, self.paused.contains(key)) {
            Ended::Yes => true,
            Ended::No => false,
            Ended::IfMarker(position) => self.undeliverable(key, position, end, stats),
        }
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

    /// Chained bounded runs: the end offsets of every event-time input partition, now that the
    /// upstream service finished.
    pub(super) fn take_end_offsets(&mut self) -> Result<(), KafkaError> {
        let probe = self.probe()?;
        let keys: Vec<(String, i32)> = self.starts.keys().cloned().collect();
        for (topic, p) in keys {
            let (_, high) = probe.fetch_watermarks(
                &topic,
                p,
                self.config.kafka.broker_wait(Duration::from_secs(30)),
            )?;
            self.end_offsets.insert((topic, p), high);
        }
        tracing::info!(
            partitions = self.end_offsets.len(),
            "upstream finished: input end offsets taken"
        );
        self.ends_taken = true;
        Ok(())
    }

    /// Whether the records of `key` from `position` to `end` will never be delivered: the
    /// fetcher is past `end` and the driver's position has not moved for
    /// [`UNDELIVERABLE_AFTER`] (aborted transactions, commit markers).
    pub(super) fn undeliverable(
        &mut self,
        key: &(String, i32),
        position: i64,
        end: i64,
        stats: Option<PartitionEnd>,
    ) -> bool {
        let now = Instant::now();
        let since = match self.progress.get(key) {
            Some((p, at)) if *p == position => *at,
            _ => {
                self.progress.insert(key.clone(), (position, now));
                now
            }
        };
        never_delivered(stats, end, now.duration_since(since))
    }

    /// Records of `key` (an input partition) not processed yet that will come: its lag, and
    /// zero when the lag is only records that are never delivered (the fetcher is past the
    /// end and nothing came for [`UNDELIVERABLE_AFTER`]: aborted transactions, markers).
    pub(super) fn waiting(
        &mut self,
        key: &(String, i32),
        end: Option<PartitionEnd>,
    ) -> Option<i64> {
        let position = *self.positions.get(key).or_else(|| self.starts.get(key))?;
        let table_end = self.table_ends.get(key).copied();
        let end_offset = end.map(|e| e.end).max(table_end)?;
        let stats_end = end.map_or(end_offset, |e| e.end);
        let undeliverable = self.undeliverable(key, position, stats_end, end);
        Some(records_to_come(position, end_offset, undeliverable))
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

/// Whether a bounded input partition has ended, as far as offsets tell.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Yes,
    No,
    /// One offset short of the end from this position: ended if that offset is a commit
    /// marker, which is never delivered.
    IfMarker(i64),
}

/// A partition at `position` (None: nothing committed and no start known) with end offset
/// `end`: at or past the end it has ended; only the last offset may be a marker; a paused
/// partition is not read at all.
fn ended(position: Option<i64>, end: i64, paused: bool) -> Ended {
    let Some(position) = position else {
        return if end == 0 { Ended::Yes } else { Ended::No };
    };
    if position >= end {
        Ended::Yes
    } else if end - position > 1 || paused {
        Ended::No
    } else {
        Ended::IfMarker(position)
    }
}

/// Whether the records up to `end` will never be delivered: the fetcher is past `end` and
/// the position has not moved for [`UNDELIVERABLE_AFTER`].
fn never_delivered(stats: Option<PartitionEnd>, end: i64, unmoved_for: Duration) -> bool {
    stats.is_some_and(|s| s.fetched >= end) && unmoved_for >= UNDELIVERABLE_AFTER
}

/// Records still to come from `position` to `end_offset`: the lag, or none when more than a
/// marker's slack of it will never be delivered.
fn records_to_come(position: i64, end_offset: i64, undeliverable: bool) -> i64 {
    let lag = (end_offset - position).max(0);
    if lag > 1 && undeliverable { 0 } else { lag }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_ends_at_its_end_offset_or_one_marker_short() {
        assert_eq!(ended(Some(10), 10, false), Ended::Yes);
        assert_eq!(ended(Some(11), 10, false), Ended::Yes);
        assert_eq!(ended(Some(9), 10, false), Ended::IfMarker(9));
        assert_eq!(
            ended(Some(8), 10, false),
            Ended::No,
            "two records can't be markers"
        );
        assert_eq!(
            ended(Some(9), 10, true),
            Ended::No,
            "a paused partition is not read"
        );
        assert_eq!(ended(None, 0, false), Ended::Yes, "an empty partition");
        assert_eq!(ended(None, 3, false), Ended::No);
    }

    #[test]
    fn records_are_never_delivered_only_with_the_fetcher_past_the_end_for_a_while() {
        let at = |fetched| Some(PartitionEnd { end: 10, fetched });
        assert!(never_delivered(at(10), 10, UNDELIVERABLE_AFTER));
        assert!(
            !never_delivered(at(9), 10, UNDELIVERABLE_AFTER),
            "not fetched yet"
        );
        let just_before = UNDELIVERABLE_AFTER - Duration::from_millis(1);
        assert!(!never_delivered(at(10), 10, just_before), "maybe in flight");
        assert!(
            !never_delivered(None, 10, UNDELIVERABLE_AFTER),
            "no statistics yet"
        );
    }

    #[test]
    fn a_lag_of_undeliverable_records_is_no_backlog() {
        assert_eq!(records_to_come(5, 10, false), 5);
        assert_eq!(records_to_come(5, 10, true), 0);
        assert_eq!(records_to_come(9, 10, true), 1, "a marker's slack stays");
        assert_eq!(records_to_come(12, 10, false), 0);
    }
}
