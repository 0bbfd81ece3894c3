//! Event-time order across a task's input partitions ([`crate::merge`]): a record of a task
//! with several inputs waits in the task's merge until it is the earliest the task can take.
//! An empty input holds the others back while it will bring more: in a bounded run until it
//! is read to its end; live while the broker shows records not fetched yet, for at most
//! `kafka.max_task_idle_ms` (then the task goes on without it, counted in
//! `fitstream_enforced_order_total`). A partition whose queue passes [`PAUSE_AT`] records is
//! paused until it drains below [`RESUME_BELOW`], which bounds the memory this takes; the
//! consumer then resumes after the records already waiting. Waiting records are neither
//! processed nor committed: a rebalance or a restart drops them and they are read again.

use std::time::{Duration, Instant};

use fitstream_contracts::EventTime;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};

use super::Driver;
use super::context::{DriverContext, Ends};
use crate::host::TaskHost;
use crate::kafka::KafkaError;
use crate::merge::{Merge, merges};
use crate::metrics::METRICS;
use crate::task::Record;

/// Records waiting in one partition's queue at which it is paused.
pub(super) const PAUSE_AT: usize = 4_096;
/// Records waiting below which a paused partition resumes.
pub(super) const RESUME_BELOW: usize = 1_024;
/// A wait for an empty input this long is logged with the state of every input.
const LONG_WAIT: Duration = Duration::from_secs(30);

/// A record waiting for its turn, copied out of the consumer's buffer.
#[derive(Debug)]
pub(super) struct Waiting {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    marker: Option<(String, Option<EventTime>)>,
}

impl Driver<'_> {
    /// Keeps `m` in its task's merge when the task takes several inputs in event-time order;
    /// false when it is processed now.
    pub(super) fn wait_in_order(
        &mut self,
        stage: usize,
        m: &BorrowedMessage<'_>,
        marker: &Option<(String, Option<EventTime>)>,
    ) -> bool {
        let st = &self.topology.stages[stage];
        if !merges(st) || !self.slots.contains_key(&(stage, m.partition())) {
            return false;
        }
        let Some(input) = st.inputs.iter().position(|t| t == m.topic()) else {
            return false;
        };
        let n = st.inputs.len();
        // A record without a timestamp is taken as soon as it is at the front.
        let timestamp = m.timestamp().to_millis().unwrap_or(i64::MIN);
        // A record has come: its input is not idle while it waits.
        if let Some(slot) = self.slots.get_mut(&(stage, m.partition())) {
            slot.records_coming(input, super::now_ms());
        }
        self.merges
            .entry((stage, m.partition()))
            .or_insert_with(|| Merge::new(n))
            .push(
                input,
                timestamp,
                Waiting {
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    marker: marker.clone(),
                },
            );
        true
    }

    /// Processes every waiting record that is a task's earliest, task by task.
    pub(super) fn take_in_order(&mut self, ends: &Ends) -> Result<(), KafkaError> {
        let tasks: Vec<(usize, i32)> = self.merges.keys().copied().collect();
        for (stage, p) in tasks {
            let inputs = self.topology.stages[stage].inputs.clone();
            // A paused input (its table is behind, or its task restores) holds the task.
            if inputs.iter().any(|t| self.paused.contains(&(t.clone(), p))) {
                continue;
            }
            let Some(mut merge) = self.merges.remove(&(stage, p)) else {
                continue;
            };
            let result = self.take_task(stage, p, &inputs, &mut merge, ends);
            self.merges.insert((stage, p), merge);
            result?;
        }
        Ok(())
    }

    fn take_task(
        &mut self,
        stage: usize,
        p: i32,
        inputs: &[String],
        merge: &mut Merge<Waiting>,
        ends: &Ends,
    ) -> Result<(), KafkaError> {
        let mut enforced = false;
        loop {
            let next = merge.pop(|i| {
                let (exhausted, forced) = self.exhausted(stage, &(inputs[i].clone(), p), ends);
                enforced |= forced;
                exhausted
            });
            let Some((i, w)) = next else {
                if merge.is_empty() {
                    self.order_wait.remove(&(stage, p));
                } else {
                    let since = *self
                        .order_wait
                        .entry((stage, p))
                        .or_insert_with(Instant::now);
                    self.tell_long_wait(stage, p, inputs, merge, since);
                }
                return Ok(());
            };
            if enforced {
                METRICS
                    .enforced_order
                    .with_label_values(&[&self.topology.stages[stage].name])
                    .inc();
                enforced = false;
            }
            self.order_wait.remove(&(stage, p));
            self.order_told.remove(&(stage, p));
            let record = Record {
                topic: &inputs[i],
                partition: p,
                offset: w.offset,
                key: w.key.as_deref(),
                value: w.value.as_deref(),
            };
            self.process(stage, &record, w.marker)?;
            // The merge is out of `self.merges` meanwhile: its waiting inputs are not idle.
            if let Some(slot) = self.slots.get_mut(&(stage, p)) {
                hold_waiting(slot, merge, super::now_ms());
            }
            // The watermark moves record by record, as in the embedded driver: whether the
            // next record is late never depends on how many were taken in one go.
            self.tick_task(stage, p)?;
        }
    }

    /// A task that has waited [`LONG_WAIT`] for an empty input says, once per wait, what each
    /// input holds and where it stands (a bounded run waits as long as it takes).
    fn tell_long_wait(
        &mut self,
        stage: usize,
        p: i32,
        inputs: &[String],
        merge: &Merge<Waiting>,
        since: Instant,
    ) {
        if since.elapsed() < LONG_WAIT || !self.order_told.insert((stage, p)) {
            return;
        }
        let state: Vec<String> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let key = (t.clone(), p);
                format!(
                    "{t}/{p}: {} waiting, position {:?}, end {:?}, paused {}, paused for order {}",
                    merge.len(i),
                    self.positions.get(&key),
                    self.end_offsets.get(&key),
                    self.paused.contains(&key),
                    self.order_paused.contains(&key)
                )
            })
            .collect();
        tracing::warn!(
            stage = %self.topology.stages[stage].name,
            partition = p,
            waited_s = since.elapsed().as_secs(),
            "a task waits for an empty input to take its records in event-time order: {}",
            state.join("; ")
        );
    }

    /// Whether the empty input partition `key` of task `(stage, p)` will bring nothing
    /// before the records waiting in the task's other inputs; and whether that is only
    /// because the task waited `kafka.max_task_idle_ms` for it (live runs).
    fn exhausted(&mut self, stage: usize, key: &(String, i32), ends: &Ends) -> (bool, bool) {
        if self.config.bounded {
            // A bounded run waits for every record up to the end offsets, known once taken.
            return (self.ends_taken && self.read_to_end(key), false);
        }
        let stats = ends.lock().ok().and_then(|e| e.get(key).copied());
        if self.waiting(key, stats) == Some(0) {
            return (true, false); // caught up: nothing fetched is missing
        }
        let idle = Duration::from_millis(self.config.kafka.max_task_idle_ms);
        let waited = self
            .order_wait
            .get(&(stage, key.1))
            .is_some_and(|since| since.elapsed() >= idle);
        (waited, waited)
    }

    /// Pauses an input partition whose queue is long and resumes it once drained (unless it
    /// is paused for another reason: its table, its restore).
    pub(super) fn pace_order(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
    ) -> Result<(), KafkaError> {
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for (&(stage, p), merge) in &self.merges {
            for (i, topic) in self.topology.stages[stage].inputs.iter().enumerate() {
                let key = (topic.clone(), p);
                let held = self.order_paused.contains(&key);
                if !held && merge.len(i) >= PAUSE_AT {
                    pause.add_partition(topic, p);
                    self.order_paused.insert(key);
                } else if held && merge.len(i) < RESUME_BELOW {
                    if !self.paused.contains(&key) {
                        resume.add_partition(topic, p);
                    }
                    self.order_paused.remove(&key);
                }
            }
        }
        if pause.count() > 0 {
            consumer.pause(&pause)?;
        }
        if resume.count() > 0 {
            consumer.resume(&resume)?;
        }
        Ok(())
    }
}

/// The inputs of `slot`'s task with records waiting in its merge are not idle
/// ([`TaskHost::records_coming`]).
pub(super) fn hold_waiting(slot: &mut TaskHost, merge: &Merge<Waiting>, now_ms: i64) {
    for input in 0..merge.inputs() {
        if merge.len(input) > 0 {
            slot.records_coming(input, now_ms);
        }
    }
}
