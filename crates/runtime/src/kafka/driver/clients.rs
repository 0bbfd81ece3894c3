//! The driver's Kafka clients and their settings: the transactional producer, the group
//! member that consumes the inputs, and the reader of the global tables.

use std::sync::Arc;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::ThreadedProducer;
use rdkafka::{Offset, TopicPartitionList};

use super::{DriverConfig, GroupProtocol};
use crate::kafka::repeats::Quiet;
use crate::kafka::{KafkaError, admin};

/// The producer of every output, changelog and marker, with the transactional id
/// `<group>-<instance>` (its previous incarnation is fenced when it is initialised).
pub(super) fn transactional_producer(
    config: &DriverConfig,
    group: &str,
    instance: &str,
) -> Result<Arc<ThreadedProducer<Quiet>>, KafkaError> {
    Ok(Arc::new(
        config
            .kafka
            .client()
            .set("transactional.id", format!("{group}-{instance}"))
            .set(
                "transaction.timeout.ms",
                config.kafka.transaction_timeout_ms.to_string(),
            )
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "100000")
            .create_with_context(Quiet::default())?,
    ))
}

/// The settings of the group member that consumes the inputs: offsets committed in the
/// transactions only, read_committed, statistics for the lag, and an assignment that keeps
/// co-partitioned inputs together.
pub(super) fn group_consumer(config: &DriverConfig, group: &str) -> ClientConfig {
    let mut client = config.kafka.member_client();
    client
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        // Statistics carry each partition's end offset: consumer lag, and backlog vs idleness.
        .set("statistics.interval.ms", "1000")
        // Small fetches per partition keep co-partitioned inputs close in event time, which
        // keeps buffered join state small during a backlog.
        .set("max.partition.fetch.bytes", "65536");
    // librdkafka's prefetch, unless `kafka.properties` sets it: its default keeps up to
    // 100,000 records per input partition queued (about 50 MiB of the planner's 216 in the
    // Kafka Streams comparison) and, once over that, waits 1 s before fetching again. A
    // tenth of it, refilled after 10 ms, was faster there (docs/BENCHMARKS.md).
    for (key, value) in [
        ("queued.min.messages", "10000"),
        ("fetch.queue.backoff.ms", "10"),
    ] {
        if client.get(key).is_none() {
            client.set(key, value);
        }
    }
    // Co-partitioned inputs (the same partition of clickstream and purchases) go to the
    // same member: the `range` assignor, the broker's under KIP-848 (sticky: a rebalance
    // moves only what changes owner), the eager client-side one under the classic protocol.
    match config.kafka.group_protocol {
        GroupProtocol::Consumer => {
            client
                .set("group.protocol", "consumer")
                .set("group.remote.assignor", "range");
        }
        GroupProtocol::Classic => {
            client.set("partition.assignment.strategy", "range");
        }
    }
    if let Some(id) = &config.kafka.group_instance_id {
        client.set("group.instance.id", id);
    }
    client
}

/// A reader of the global tables `globals`, whole, from the beginning, outside the group
/// (every instance reads all of them); none without global tables.
pub(super) fn globals_reader(
    config: &DriverConfig,
    globals: &[String],
    group: &str,
    instance: &str,
) -> Result<Option<BaseConsumer<Quiet>>, KafkaError> {
    if globals.is_empty() {
        return Ok(None);
    }
    let c: BaseConsumer<Quiet> = config
        .kafka
        .client()
        .set("group.id", format!("{group}-globals-{instance}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create_with_context(Quiet::default())?;
    let mut tpl = TopicPartitionList::new();
    for g in globals {
        for p in 0..admin::partition_count(&config.kafka, g)?.max(1) {
            tpl.add_partition_offset(g, p, Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    Ok(Some(c))
}
