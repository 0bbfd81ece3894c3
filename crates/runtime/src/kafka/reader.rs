//! Reading whole topics, `read_committed`, from the beginning until they go idle: for `tail`,
//! tests and reconciliation. Not a processing loop (see the driver for that).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;

use super::{KafkaConfig, KafkaError};

/// A record as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Record timestamp, ms.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where a read starts when its group has no committed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The earliest offset.
    Beginning,
    /// The end: only records written after the read joined.
    End,
}

/// How a read goes.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// The read ends when no record arrived for this long after the last one.
    pub idle: Duration,
    /// The read ends after this long in any case.
    pub limit: Duration,
    /// Where to start without a committed offset.
    pub start: Start,
    /// A consumer group whose committed offsets the read resumes from and commits to; None:
    /// a throwaway group of its own.
    pub group: Option<String>,
}

/// Reads `topics` with a throwaway group from the earliest offset, committed records only,
/// calling `each` per record, until no record arrived for `idle` after the last one, or
/// `limit` passed. Joining the group and the first fetch may take longer than `idle`: before
/// the first record, a read whose partitions hold nothing past where it starts (empty, or a
/// named group that read them all) ends `idle` after they are assigned, and one whose
/// partitions hold nothing readable (only aborted transactions) a minute after that.
pub fn read_until_idle(
    config: &KafkaConfig,
    topics: &[&str],
    idle: Duration,
    limit: Duration,
    mut each: impl FnMut(ConsumedRecord),
) -> Result<u64, KafkaError> {
    let options = ReadOptions {
        idle,
        limit,
        start: Start::Beginning,
        group: None,
    };
    read(config, topics, &options, |r| {
        each(r);
        ControlFlow::Continue(())
    })
}

/// The prefix of a reader's throwaway group (`tail`, the console): the readers' group ACL.
pub const READER_GROUP_PREFIX: &str = "fitstream-reader-";

/// [`read_until_idle`] with a start, a group, and an early end: the read stops at the record
/// for which `each` breaks (a record it could not take). With a group, the records taken are
/// committed to it, and a later read of the group resumes after them.
pub fn read(
    config: &KafkaConfig,
    topics: &[&str],
    options: &ReadOptions,
    mut each: impl FnMut(ConsumedRecord) -> ControlFlow<()>,
) -> Result<u64, KafkaError> {
    // A group of its own per read unless named: readers in one process must not share
    // partitions.
    let group = options
        .group
        .clone()
        .unwrap_or_else(|| format!("{READER_GROUP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    let reset = match options.start {
        Start::Beginning => "earliest",
        Start::End => "latest",
    };
    // A TLS or SASL failure, or no broker at all, is said now, not after waiting for records.
    drop(super::admin::connect(
        config,
        options
            .limit
            .min(Duration::from_millis(config.unavailable_limit_ms)),
    )?);
    let consumer: BaseConsumer = config
        .client()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset)
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .create()?;
    consumer.subscribe(topics)?;
    let (idle, limit) = (options.idle, options.limit);
    let started = Instant::now();
    let mut last: Option<Instant> = None;
    // When the partitions were assigned, and whether any of them holds records.
    let mut assigned: Option<(Instant, bool)> = None;
    let mut count = 0;
    let wait_after_assignment = idle.saturating_add(Duration::from_secs(60));
    loop {
        let done = match (last, assigned) {
            (Some(l), _) => l.elapsed() >= idle,
            (None, Some((at, false))) => at.elapsed() >= idle,
            (None, Some((at, true))) => at.elapsed() >= wait_after_assignment,
            (None, None) => started.elapsed() >= wait_after_assignment,
        };
        if done || started.elapsed() >= limit {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Some(Instant::now());
                count += 1;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_owned(),
                                    x.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let flow = each(ConsumedRecord {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    timestamp: m.timestamp().to_millis(),
                    headers,
                });
                if flow.is_break() {
                    break;
                }
                if options.group.is_some() {
                    consumer.store_offset_from_message(&m)?;
                }
            }
            Some(Err(e)) => return Err(super::classify_read_error(e, config, &group, topics)),
            None if last.is_none() && assigned.is_none() => {
                if let Ok(tpl) = consumer.assignment()
                    && tpl.count() > 0
                {
                    match readable(&consumer, &tpl, options) {
                        Ok(any) => assigned = Some((Instant::now(), any)),
                        // Asked again at the next poll, within the read's limit.
                        Err(e) if transient(&e) => {
                            tracing::debug!("asking where the assigned partitions start: {e}")
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            None => {}
        }
    }
    if options.group.is_some() && count > 0 {
        // Nothing stored yet (the first record was not taken) is not an error.
        match consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            ))
            | Ok(()) => {}
            Err(e) => return Err(super::classify_read_error(e, config, &group, topics)),
        }
    }
    Ok(count)
}

/// Whether any partition of `tpl` holds a record past where this read starts in it: from
/// the end, nothing already there will come; a named group that read before starts where
/// it committed, and only what came since will.
fn readable(
    consumer: &BaseConsumer,
    tpl: &rdkafka::TopicPartitionList,
    options: &ReadOptions,
) -> Result<bool, rdkafka::error::KafkaError> {
    if options.start == Start::End {
        return Ok(false);
    }
    let committed = match options.group {
        Some(_) => Some(consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))?),
        None => None,
    };
    let mut any = false;
    for e in tpl.elements() {
        let (low, high) =
            consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10))?;
        let from = committed
            .as_ref()
            .and_then(|c| c.find_partition(e.topic(), e.partition()))
            .and_then(|c| c.offset().to_raw())
            .filter(|o| *o >= 0)
            .map_or(low, |o| o.max(low));
        any |= high > from;
    }
    Ok(any)
}

/// Errors of a broker call that the same call may not meet a moment later: a topic created
/// a moment ago whose partitions have no leader yet (`NotLeaderForPartition` in CI on
/// 2026-12-07, reading output topics a starting planner had just created), a coordinator
/// moving or loading, a request that timed out.
fn transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::UnknownTopicOrPartition
                | C::UnknownLeaderEpoch
                | C::FencedLeaderEpoch
                | C::NotCoordinator
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::RequestTimedOut
                | C::OperationTimedOut
                | C::BrokerNotAvailable
        )
    )
}

#[cfg(test)]
mod tests {
    use rdkafka::error::KafkaError as RdError;
    use rdkafka::types::RDKafkaErrorCode as C;

    use super::transient;

    #[test]
    fn a_partition_without_its_leader_yet_is_asked_again_and_a_refusal_ends_the_read() {
        // What fetch_watermarks returned in CI for an output topic a planner had just created.
        assert!(transient(&RdError::MetadataFetch(C::NotLeaderForPartition)));
        assert!(transient(&RdError::MetadataFetch(C::LeaderNotAvailable)));
        assert!(transient(&RdError::MetadataFetch(C::OperationTimedOut)));
        assert!(!transient(&RdError::MetadataFetch(
            C::TopicAuthorizationFailed
        )));
        assert!(!transient(&RdError::MetadataFetch(
            C::SaslAuthenticationFailed
        )));
        assert!(!transient(&RdError::Canceled));
    }
}
