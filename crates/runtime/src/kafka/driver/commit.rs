//! The commit: markers and every task's checkpoint go into the transaction that carries the
//! input offsets; a failed checkpoint or commit aborts it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fitstream_contracts::EventTime;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::Driver;
use super::context::DriverContext;
use crate::kafka::KafkaError;
use crate::metrics::METRICS;
use crate::task;

impl Driver<'_> {
    pub(super) fn commit(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
    ) -> Result<(), KafkaError> {
        // Markers and checkpoints go into the transaction that carries the offsets.
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        let mut entries = 0;
        let mut bytes = 0;
        // Tasks that checkpointed: told once the transaction committed.
        let mut checkpointed: Vec<(usize, i32)> = Vec::new();
        for (stage, p) in keys {
            let repartitions = self.topology.stages[stage].repartitions.clone();
            let source = format!("{}/{p}", self.topology.stages[stage].name);
            let Some(slot) = self.slots.get_mut(&(stage, p)) else {
                continue;
            };
            let due = if repartitions.is_empty() {
                None
            } else {
                slot.marker_due()
            };
            let inputs = self.topology.stages[stage].inputs.len();
            let send_idle = !repartitions.is_empty() && slot.idle_marker_due(inputs);
            if !self.in_txn.load(Ordering::SeqCst) && due.is_none() && !send_idle {
                continue;
            }
            // A store that cannot write its state fails the commit: the transaction is
            // aborted (nothing of it becomes visible, the offsets stay) and the run ends.
            let changes = match slot.checkpoint() {
                Ok(changes) => changes,
                Err(e) => {
                    self.abort();
                    return Err(e.into());
                }
            };
            checkpointed.push((stage, p));
            let (e, b) = slot.task.state_size();
            entries += e;
            bytes += b;
            let changelog = self.topology.changelog_topic(&self.topology.stages[stage]);
            for (k, v) in changes {
                self.send(&changelog, p, Some(&k), v.as_deref(), None, &[])?;
            }
            let send_marker = due.is_some();
            let current = due.unwrap_or(EventTime::MIN);
            if send_marker || send_idle {
                let headers = if send_marker {
                    task::marker_headers(&source, current)
                } else {
                    task::idle_marker_headers(&source)
                };
                for topic in repartitions {
                    let n = self.partitions_of(&topic)?;
                    for q in 0..n {
                        // No record timestamp: a watermark may be the end of time, which brokers refuse.
                        self.send(&topic, q, None, None, None, &headers)?;
                    }
                }
            }
        }
        METRICS
            .state_entries
            .with_label_values(&[&self.service])
            .set(entries as i64);
        METRICS
            .state_bytes
            .with_label_values(&[&self.service])
            .set(bytes as i64);
        if !self.in_txn.load(Ordering::SeqCst) {
            return Ok(());
        }
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &self.positions {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        let metadata = consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::Timeout("no group metadata".into()))?;
        let offsets = if tpl.count() == 0 {
            Ok(())
        } else {
            crate::kafka::send_offsets_bounded(
                &self.producer,
                tpl,
                metadata,
                self.wait(Duration::from_secs(30)),
            )
        };
        let result = offsets.and_then(|_| {
            crate::kafka::wait_delivered(&self.producer, self.wait(Duration::from_secs(60)));
            Ok(self
                .producer
                .commit_transaction(self.wait(Duration::from_secs(60)))?)
        });
        match result {
            Ok(()) => {
                for key in checkpointed {
                    if let Some(slot) = self.slots.get_mut(&key) {
                        slot.task.committed();
                    }
                }
                self.in_txn.store(false, Ordering::SeqCst);
                self.stats.commits += 1;
                METRICS.transactions.with_label_values(&["committed"]).inc();
                METRICS
                    .transaction_commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(())
            }
            Err(e) => {
                // Still marked open: aborted here, or it would hold back read_committed
                // readers of every topic it wrote until the coordinator timed it out.
                self.abort();
                Err(e)
            }
        }
    }

    /// How long a broker call may wait: `normal`, capped by `kafka.unavailable_limit_ms`
    /// and, while draining on SIGTERM, by what is left of `kafka.shutdown_timeout_ms`.
    pub(super) fn wait(&self, normal: Duration) -> Duration {
        let w = self.config.kafka.broker_wait(normal);
        match self.draining {
            Some(until) => w.min(until.saturating_duration_since(Instant::now())),
            None => w,
        }
    }

    /// Aborts the open transaction (its records are never visible to read_committed readers,
    /// its offsets are not committed).
    pub(super) fn abort(&mut self) {
        if self.in_txn.swap(false, Ordering::SeqCst) {
            METRICS.transactions.with_label_values(&["aborted"]).inc();
            if let Err(e) = self
                .producer
                .abort_transaction(self.wait(Duration::from_secs(30)))
            {
                tracing::warn!("aborting the transaction failed: {e}");
            }
        }
    }
}
