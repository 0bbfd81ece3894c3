//! The consumer's context: rebalance callbacks (an eager revocation aborts, an incremental one
//! waits for the loop; assigned inputs paused until restored) and librdkafka's statistics (each
//! partition's end, for lag and bounded ends).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::kafka::repeats::Quiet;
use crate::metrics::METRICS;

#[derive(Default)]
pub(super) struct RebalanceState {
    /// The producer failed inside a callback: the driver must restart.
    pub(super) broken: Option<String>,
    /// Eager rebalance (classic protocol): every partition was revoked.
    pub(super) revoked: bool,
    /// Partitions assigned since the loop last looked: the whole assignment (eager), or the
    /// ones added (incremental).
    pub(super) assigned: Option<Vec<(String, i32)>>,
    /// Incremental rebalance: partitions to give up, not unassigned yet. The loop commits
    /// what every task did so far (the tasks that stay keep their state, so nothing may be
    /// aborted), drops the revoked partitions' tasks, then unassigns them, which tells the
    /// coordinator they are free.
    pub(super) revoking: Option<Revoking>,
}

/// An incremental revocation waiting for the loop.
pub(super) struct Revoking {
    pub(super) partitions: Vec<(String, i32)>,
    /// The group took the partitions away already (session timeout, fenced epoch): nothing
    /// of the open transaction can commit.
    pub(super) lost: bool,
}

impl Revoking {
    /// Gives the partitions up (`incremental_unassign`), once the driver is done with them.
    pub(super) fn unassign<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
    ) -> rdkafka::error::KafkaResult<()> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in &self.partitions {
            tpl.add_partition(topic, *p);
        }
        consumer.incremental_unassign(&tpl)
    }
}

/// `tpl`'s partitions.
pub(super) fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Per input partition, as of librdkafka's latest statistics: the end a read_committed
/// consumer can reach (last stable offset).
pub(super) type Ends = Arc<Mutex<HashMap<(String, i32), PartitionEnd>>>;

#[derive(Clone, Copy, Debug)]
pub(super) struct PartitionEnd {
    pub(super) end: i64,
}

pub(super) struct DriverContext {
    pub(super) state: Arc<Mutex<RebalanceState>>,
    pub(super) ends: Ends,
    /// Stream inputs of stages that read a table: paused as soon as they are assigned, until
    /// the task's table partitions are read to their end (`Driver::pace_tables`).
    pub(super) table_streams: Vec<String>,
    pub(super) producer: Arc<ThreadedProducer<Quiet>>,
    pub(super) in_txn: Arc<AtomicBool>,
    /// When statistics last showed a broker up (wall-clock milliseconds).
    pub(super) broker_up_ms: Arc<std::sync::atomic::AtomicI64>,
    /// Messages received as of the previous statistics (the counter moves by the difference).
    pub(super) rxmsgs: std::sync::atomic::AtomicI64,
    /// Set when the consumer is about to close: the loop no longer handles revocations, so
    /// an incremental one is carried out in the callback ([`Closing`]).
    pub(super) closing: AtomicBool,
    /// The client's errors and the loop's poll errors, each logged at most every few seconds.
    pub(super) quiet: Quiet,
}

/// The group consumer, closed within [`Member::CLOSE_LIMIT`] when dropped. rust-rdkafka's
/// drop closes the consumer and polls until librdkafka says it is closed, with no limit: in
/// CI on 2026-12-07 a frozen instance that came back (a zombie), was fenced and restarted,
/// waited there for good at the end of its run, all its work done. Past the limit the close
/// goes on in a thread of its own, and the driver goes on (to a restart, or the exit).
pub(super) struct Member(Option<BaseConsumer<DriverContext>>);

impl Member {
    const CLOSE_LIMIT: Duration = Duration::from_secs(10);

    pub(super) fn new(consumer: BaseConsumer<DriverContext>) -> Member {
        Member(Some(consumer))
    }
}

impl std::ops::Deref for Member {
    type Target = BaseConsumer<DriverContext>;

    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .expect("a member has its consumer until dropped")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else {
            return;
        };
        match crate::kafka::within("consumer-close", Self::CLOSE_LIMIT, move || drop(consumer)) {
            Ok(Some(())) => {}
            Ok(None) => tracing::warn!(
                "the group consumer did not close within {:?}: its close goes on in the background",
                Self::CLOSE_LIMIT
            ),
            Err(e) => tracing::warn!("no thread to close the group consumer: {e}"),
        }
    }
}

/// Marks the consumer as closing when dropped, and carries out a revocation still pending:
/// declared after the consumer, it is dropped before it, however the run ends.
pub(super) struct Closing<'c>(pub(super) &'c BaseConsumer<DriverContext>);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let context = self.0.context();
        context.closing.store(true, Ordering::SeqCst);
        // A revocation the loop did not carry out (it ended first, e.g. on a lost
        // assignment): librdkafka's close waits for its unassign, which would never come.
        let pending = context
            .state
            .lock()
            .ok()
            .and_then(|mut s| s.revoking.take());
        if let Some(r) = pending
            && let Err(e) = r.unassign(self.0)
        {
            tracing::warn!("giving up the revoked partitions at close failed: {e}");
        }
    }
}

impl ClientContext for DriverContext {
    /// librdkafka's global errors at a bounded rate: with the brokers gone, the same one
    /// comes at every poll.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.quiet.global_error(&error, reason);
    }

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
                    ends.insert((topic.clone(), p), PartitionEnd { end });
                }
            }
        }
    }
}

impl ConsumerContext for DriverContext {
    /// librdkafka's rebalance, as rdkafka's default does it, except an incremental
    /// revocation: that one waits for the loop (see [`RebalanceState::revoking`]), which
    /// unassigns the partitions once their tasks are committed and dropped.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    tracing::error!("taking the assigned partitions failed: {e}");
                    self.break_with(format!("assign: {e}"));
                    return;
                }
                // Every input waits for its task's restore (and a stream of a stage with a
                // table, for the table too): the loop restores between polls and resumes them.
                if tpl.count() > 0
                    && let Err(e) = consumer.pause(tpl)
                {
                    tracing::warn!(
                        "pausing the assigned inputs until their state is restored: {e}"
                    );
                }
                if let Ok(mut s) = self.state.lock() {
                    s.assigned
                        .get_or_insert_with(Vec::new)
                        .extend(partitions(tpl));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                if cooperative && !self.closing.load(Ordering::SeqCst) =>
            {
                let lost = consumer.assignment_lost();
                if let Ok(mut s) = self.state.lock() {
                    let r = s.revoking.get_or_insert_with(|| Revoking {
                        partitions: Vec::new(),
                        lost: false,
                    });
                    r.partitions.extend(partitions(tpl));
                    r.lost |= lost;
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Eager, or the consumer closing (the loop is gone; a clean stop committed
                // already): uncommitted work belongs to partitions we may lose: abort it; it
                // is redone by whoever owns them next, from the committed offsets and
                // changelogs.
                if self.in_txn.swap(false, Ordering::SeqCst) {
                    if let Err(e) = self.producer.abort_transaction(Duration::from_secs(30)) {
                        tracing::error!("abort on revocation failed: {e}");
                        self.break_with(e.to_string());
                    }
                    METRICS.transactions.with_label_values(&["aborted"]).inc();
                }
                let given_up = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = given_up {
                    tracing::error!("giving up the revoked partitions failed: {e}");
                    self.break_with(format!("unassign: {e}"));
                }
                if let Ok(mut s) = self.state.lock() {
                    s.revoked = true;
                    s.assigned = None;
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!("rebalance error: {code}");
            }
        }
    }
}

impl DriverContext {
    /// The driver must restart (its producer or its assignment is in a state it cannot
    /// continue from).
    fn break_with(&self, why: String) {
        if let Ok(mut s) = self.state.lock() {
            s.broken = Some(why);
        }
    }
}
