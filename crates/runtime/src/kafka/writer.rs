//! Writing records to topics with an idempotent producer (at-least-once for inputs written by
//! tools; the processing loop uses transactions instead). The partition is chosen by
//! [`crate::partition::partition_for`], as Kafka's Java client would.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaError};
use crate::partition::partition_for;

/// One record to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutRecord {
    /// Topic.
    pub topic: String,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (None: a tombstone).
    pub value: Option<Vec<u8>>,
    /// Record timestamp, ms (fitstream sets it to the event time).
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Explicit partition; None: by key among the topic's partitions.
    pub partition: Option<i32>,
}

/// Builds the headers of a record.
pub fn owned_headers(headers: &[(String, Vec<u8>)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        },
    )
}

/// An idempotent producer for tools (produce, simulate, tests).
pub struct TopicWriter {
    producer: ThreadedProducer<DefaultProducerContext>,
    partitions: std::collections::HashMap<String, i32>,
    config: KafkaConfig,
}

impl TopicWriter {
    /// Connects.
    pub fn new(config: &KafkaConfig) -> Result<TopicWriter, KafkaError> {
        let producer = config
            .client()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "200000")
            .create()?;
        Ok(TopicWriter {
            producer,
            partitions: Default::default(),
            config: config.clone(),
        })
    }

    fn partitions_of(&mut self, topic: &str) -> Result<i32, KafkaError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let n = super::admin::partition_count(&self.config, topic)?;
        if n == 0 {
            return Err(KafkaError::Topic {
                topic: topic.into(),
                message: "does not exist".into(),
            });
        }
        self.partitions.insert(topic.to_owned(), n);
        Ok(n)
    }

    /// Queues a record, waiting while the local queue is full (back-pressure).
    pub fn send(&mut self, record: &OutRecord) -> Result<(), KafkaError> {
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for(k, self.partitions_of(&record.topic)?),
            (None, None) => 0,
        };
        loop {
            let mut r: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&record.topic).partition(partition);
            if let Some(k) = &record.key {
                r = r.key(k.as_slice());
            }
            if let Some(v) = &record.value {
                r = r.payload(v.as_slice());
            }
            if let Some(ts) = record.timestamp {
                r = r.timestamp(ts);
            }
            if !record.headers.is_empty() {
                r = r.headers(owned_headers(&record.headers));
            }
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    _,
                )) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self) -> Result<(), KafkaError> {
        super::wait_delivered(&self.producer, Duration::from_secs(60));
        self.producer.flush(Duration::from_secs(60))?;
        Ok(())
    }
}
