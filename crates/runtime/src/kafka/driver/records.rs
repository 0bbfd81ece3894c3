//! The record path: a record through its task, what the task emits to its topics (in the
//! open transaction, with back-pressure), dead letters, and the watermarks' advances.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fitstream_contracts::EventTime;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::{Driver, now_ms};
use crate::deadletter::DeadLetter;
use crate::host::{account, count_dead_letter, targets};
use crate::kafka::{KafkaError, admin};
use crate::metrics::METRICS;
use crate::partition::partition_for;
use crate::task::{self, Ctx, EmitKind, Record};

/// How long a send may wait for room in a full producer queue (at most
/// `kafka.unavailable_limit_ms`).
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(60);

impl Driver<'_> {
    pub(super) fn begin(&mut self) -> Result<(), KafkaError> {
        if !self.in_txn.load(Ordering::SeqCst) {
            self.producer.begin_transaction()?;
            self.in_txn.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    pub(super) fn partitions_of(&mut self, topic: &str) -> Result<i32, KafkaError> {
        if let Some(n) = self.partition_counts.get(topic) {
            return Ok(*n);
        }
        let n = admin::partition_count(&self.config.kafka, topic)?;
        if n == 0 {
            return Err(KafkaError::Topic {
                topic: topic.into(),
                message: "does not exist".into(),
            });
        }
        self.partition_counts.insert(topic.to_owned(), n);
        Ok(n)
    }

    pub(super) fn send(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: Option<i64>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), KafkaError> {
        self.begin()?;
        if value.is_some_and(|v| v.len() > 900_000) {
            tracing::warn!(
                topic,
                bytes = value.map(<[u8]>::len),
                "record close to the message size limit"
            );
        }
        let mut full_since: Option<Instant> = None;
        loop {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
            if let Some(k) = key {
                r = r.key(k);
            }
            if let Some(v) = value {
                r = r.payload(v);
            }
            if let Some(ts) = timestamp {
                r = r.timestamp(ts);
            }
            if !headers.is_empty() {
                r = r.headers(crate::kafka::writer::owned_headers(headers));
            }
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Back-pressure, bounded: a queue that stays full this long means the
                    // brokers take nothing (the group's poll waits meanwhile); the run ends
                    // and restarts rather than spin past the group's poll interval.
                    let since = *full_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.config.kafka.broker_wait(QUEUE_FULL_LIMIT) {
                        tracing::warn!(
                            topic,
                            waited_s = since.elapsed().as_secs(),
                            "the producer queue stayed full: the brokers take nothing"
                        );
                        return Err(RdError::MessageProduction(RDKafkaErrorCode::QueueFull).into());
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Takes one polled message; false when it is no activity of the run (a record past a
    /// bounded run's end offsets: the run may end meanwhile).
    pub(super) fn handle(&mut self, m: &BorrowedMessage<'_>) -> Result<bool, KafkaError> {
        let topic = m.topic();
        let partition = m.partition();
        let Some(stage) = self.topology.stage_of(topic) else {
            return Ok(true);
        };
        if self.paused.contains(&(topic.to_owned(), partition)) {
            // Fetched before the pause took effect: not processed now, read again on resume.
            self.rewind
                .entry((topic.to_owned(), partition))
                .or_insert(m.offset());
            return Ok(true);
        }
        if !self.slots.contains_key(&(stage, partition)) {
            // Its task is not here: the partition was revoked with this record in flight.
            // Not processed, and its position stays where the task left it.
            return Ok(true);
        }
        if self.past_end(topic, partition, m.offset()) {
            return Ok(false);
        }
        let marker = m.headers().and_then(|h| {
            task::parse_marker(h.iter().map(|x| (x.key, x.value.unwrap_or_default())))
        });
        if self.wait_in_order(stage, m, &marker) {
            return Ok(true);
        }
        let record = Record {
            topic,
            partition,
            offset: m.offset(),
            key: m.key(),
            value: m.payload(),
        };
        self.process(stage, &record, marker)?;
        Ok(true)
    }

    /// One record through its task, in the open transaction: markers to the task's
    /// watermarks, records through the gate and the task, what it emits to its topics.
    pub(super) fn process(
        &mut self,
        stage: usize,
        record: &Record<'_>,
        marker: Option<(String, Option<EventTime>)>,
    ) -> Result<(), KafkaError> {
        let (topic, partition) = (record.topic, record.partition);
        self.positions
            .insert((topic.to_owned(), partition), record.offset + 1);
        self.stats.records += 1;
        self.begin()?;
        METRICS.records_in.with_label_values(&[topic]).inc();
        let Some(slot) = self.slots.get_mut(&(stage, partition)) else {
            return Ok(());
        };
        if let Some((source, watermark)) = marker {
            return match slot.marker(topic, source, watermark, now_ms()) {
                Ok(()) => Ok(()),
                Err(r) => self.dead_letter(&r.dead_letter(record, &self.service, now_ms())),
            };
        }
        let started = Instant::now();
        let (ctx, dead) = slot.deliver(record, &self.service, now_ms(), !self.config.bounded);
        METRICS
            .processing_seconds
            .with_label_values(&[&self.topology.stages[stage].name])
            .observe(started.elapsed().as_secs_f64());
        if let Some(dl) = dead {
            self.dead_letter(&dl)?;
        }
        self.route(stage, partition, ctx)
    }

    pub(super) fn dead_letter(&mut self, dl: &DeadLetter) -> Result<(), KafkaError> {
        count_dead_letter(dl, &self.service);
        let topic = self.config.dead_letter_topic.clone();
        let n = self.partitions_of(&topic)?;
        let partition = dl.key.as_deref().map(|k| partition_for(k, n)).unwrap_or(0);
        let headers: Vec<(String, Vec<u8>)> = dl
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_bytes()))
            .collect();
        self.send(
            &topic,
            partition,
            dl.key.as_deref(),
            dl.value.as_deref(),
            Some(dl.failed_at_ms),
            &headers,
        )
    }

    pub(super) fn route(
        &mut self,
        stage: usize,
        partition: i32,
        ctx: Ctx,
    ) -> Result<(), KafkaError> {
        account(&ctx, &self.service);
        let now = now_ms();
        for r in &ctx.rejected {
            self.dead_letter(&r.dead_letter(&self.service, now))?;
        }
        for e in ctx.emits {
            let n = self.partitions_of(&e.topic)?;
            if e.kind == EmitKind::Progress {
                let source = format!("{}/{partition}", self.topology.stages[stage].name);
                let headers = task::marker_headers(&source, e.event_time);
                for p in targets(&e, n) {
                    self.send(&e.topic, p, e.key.as_deref(), None, None, &headers)?;
                }
                continue;
            }
            if !self.topology.is_repartition(&e.topic)
                && beyond_broker(e.event_time, now, self.config.kafka.output_ahead_limit_ms)
            {
                let message = format!(
                    "output for {} dated {}, more than kafka.output_ahead_limit_ms ({} ms) ahead of the wall clock: the broker would refuse it (message.timestamp.after.max.ms) and the transaction with it",
                    e.topic, e.event_time, self.config.kafka.output_ahead_limit_ms
                );
                tracing::error!(topic = %e.topic, "{message}");
                let source = crate::deadletter::Source {
                    topic: e.topic.clone(),
                    partition: -1,
                    offset: -1,
                };
                let dead = crate::deadletter::DeadLetter::new(
                    e.key.as_deref(),
                    e.value.as_deref(),
                    crate::deadletter::Reason::Future,
                    message,
                    source,
                    &self.service,
                    now,
                );
                self.dead_letter(&dead)?;
                continue;
            }
            for p in targets(&e, n) {
                self.send(
                    &e.topic,
                    p,
                    e.key.as_deref(),
                    e.value.as_deref(),
                    Some(e.event_time.0),
                    &[],
                )?;
            }
            METRICS.records_out.with_label_values(&[&e.topic]).inc();
            if !self.topology.is_repartition(&e.topic)
                && e.event_time > EventTime::MIN
                && e.event_time < EventTime::MAX
            {
                METRICS
                    .event_latency_seconds
                    .with_label_values(&[&e.topic])
                    .observe(((now - e.event_time.0) as f64 / 1000.0).max(0.0));
            }
        }
        Ok(())
    }

    pub(super) fn tick(&mut self) -> Result<(), KafkaError> {
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            self.tick_task(stage, p)?;
        }
        Ok(())
    }

    /// Recomputes one task's watermark; when it moved, the task advances (as the embedded
    /// driver does after every record).
    pub(super) fn tick_task(&mut self, stage: usize, p: i32) -> Result<(), KafkaError> {
        let now = now_ms();
        let Some(slot) = self.slots.get_mut(&(stage, p)) else {
            return Ok(());
        };
        if let Some(merge) = self.merges.get(&(stage, p)) {
            super::order::hold_waiting(slot, merge, now);
        }
        let idle = slot.watermarks.idle(now);
        if idle != slot.idle {
            tracing::info!(
                stage = %self.topology.stages[stage].name,
                partition = p,
                ?idle,
                watermark = %slot.watermarks.current(now),
                "idle inputs changed"
            );
            slot.idle = idle;
        }
        if let Some(ctx) = slot.tick(now) {
            if !ctx.is_empty() {
                self.begin()?;
            }
            self.route(stage, p, ctx)?;
        }
        Ok(())
    }
}

/// Whether an output dated `event_time` is more than `limit_ms` ahead of the wall clock
/// `now_ms`, past what the brokers accept.
fn beyond_broker(event_time: EventTime, now_ms: i64, limit_ms: u64) -> bool {
    let limit = i64::try_from(limit_ms).unwrap_or(i64::MAX);
    event_time.0 > now_ms.saturating_add(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_beyond_the_broker_only_past_the_limit_ahead_of_the_clock() {
        let (now, hour) = (1_000_000, 3_600_000);
        assert!(!beyond_broker(EventTime(now + hour), now, hour as u64));
        assert!(beyond_broker(EventTime(now + hour + 1), now, hour as u64));
        assert!(
            !beyond_broker(EventTime(0), now, hour as u64),
            "the past is fine"
        );
        assert!(beyond_broker(EventTime::MAX, now, hour as u64));
        assert!(!beyond_broker(EventTime::MAX, now, u64::MAX), "no limit");
    }
}
