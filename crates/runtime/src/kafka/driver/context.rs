//! The consumer's context: rebalance callbacks (abort on revocation, pause table streams on
//! assignment) and librdkafka's statistics (each partition's end, for lag and bounded ends).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::statistics::Statistics;

use crate::metrics::METRICS;

#[derive(Default)]
pub(super) struct RebalanceState {
    /// The producer failed inside a callback: the driver must restart.
    pub(super) broken: Option<String>,
    pub(super) revoked: bool,
    pub(super) assigned: Option<Vec<(String, i32)>>,
}

/// Per input partition, as of librdkafka's latest statistics: the end a read_committed
/// consumer can reach (last stable offset), and the fetcher's next offset (past records it
/// fetched, and past aborted records and commit markers, which are never delivered).
pub(super) type Ends = Arc<Mutex<HashMap<(String, i32), PartitionEnd>>>;

#[derive(Clone, Copy, Debug)]
pub(super) struct PartitionEnd {
    pub(super) end: i64,
    pub(super) fetched: i64,
}

/// How long a partition whose fetcher is at the end may show a lag without delivering
/// anything before the lag counts as records that will never come (aborted transactions).
pub(super) const UNDELIVERABLE_AFTER: Duration = Duration::from_secs(5);

pub(super) struct DriverContext {
    pub(super) state: Arc<Mutex<RebalanceState>>,
    pub(super) ends: Ends,
    /// Stream inputs of stages that read a table: paused as soon as they are assigned, until
    /// the task's table partitions are read to their end (`Driver::pace_tables`).
    pub(super) table_streams: Vec<String>,
    pub(super) producer: Arc<ThreadedProducer<DefaultProducerContext>>,
    pub(super) in_txn: Arc<AtomicBool>,
    /// When statistics last showed a broker up (wall-clock milliseconds).
    pub(super) broker_up_ms: Arc<std::sync::atomic::AtomicI64>,
    /// Messages received as of the previous statistics (the counter moves by the difference).
    pub(super) rxmsgs: std::sync::atomic::AtomicI64,
}

impl ClientContext for DriverContext {
    fn stats(&self, statistics: Statistics) {
        if statistics.brokers.values().any(|b| b.state == "UP") {
            self.broker_up_ms
                .store(super::now_ms(), std::sync::atomic::Ordering::SeqCst);
        }
        crate::metrics::METRICS.observe_client(&statistics, &self.rxmsgs);
        let Ok(mut ends) = self.ends.lock() else {
            return;
        };
        for (topic, t) in statistics.topics {
            for (p, part) in t.partitions {
                let end = if part.ls_offset >= 0 {
                    part.ls_offset
                } else {
                    part.hi_offset
                };
                if p >= 0 && end >= 0 {
                    let fetched = part.next_offset;
                    ends.insert((topic.clone(), p), PartitionEnd { end, fetched });
                }
            }
        }
    }
}

impl ConsumerContext for DriverContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Uncommitted work belongs to partitions we may lose: abort it; it is redone by
            // whoever owns them next, from the committed offsets and changelogs.
            if self.in_txn.swap(false, Ordering::SeqCst) {
                if let Err(e) = self.producer.abort_transaction(Duration::from_secs(30)) {
                    tracing::error!("abort on revocation failed: {e}");
                    if let Ok(mut s) = self.state.lock() {
                        s.broken = Some(e.to_string());
                    }
                }
                METRICS.transactions.with_label_values(&["aborted"]).inc();
            }
            if let Ok(mut s) = self.state.lock() {
                s.revoked = true;
                s.assigned = None;
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // Every input waits for its task's restore (and a stream of a stage with a
            // table, for the table too): the loop restores between polls and resumes them.
            if tpl.count() > 0
                && let Err(e) = consumer.pause(tpl)
            {
                tracing::warn!("pausing the assigned inputs until their state is restored: {e}");
            }
        }
        if let Rebalance::Assign(tpl) = rebalance
            && let Ok(mut s) = self.state.lock()
        {
            s.assigned = Some(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect(),
            );
        }
    }
}
