//! Input records (simulated or replayed) written to the input topics, encoded with the
//! Confluent framing, keyed by customer id, record timestamp = event time.

use fitstream_contracts::Codec;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::kafka::KafkaError;
use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};
use fitstream_simulator::{InputRecord, InputTopic};

/// The topic name of an input record under `topics`.
pub fn topic_name(topics: &TopicsConfig, topic: InputTopic) -> &str {
    match topic {
        InputTopic::Clickstream => &topics.clickstream,
        InputTopic::Purchases => &topics.purchases,
    }
}

/// The Kafka record for an input record.
pub fn to_out_record(
    codec: &Codec,
    topics: &TopicsConfig,
    record: &InputRecord,
) -> Result<OutRecord, KafkaError> {
    let topic = topic_name(topics, record.topic()).to_owned();
    let value = record.encode_value(codec, &topic)?;
    Ok(OutRecord {
        key: record.key().map(<[u8]>::to_vec),
        value: Some(value),
        timestamp: record.event_time().map(|t| t.millis()),
        headers: Vec::new(),
        partition: None,
        topic,
    })
}

/// Record timestamps as fitstream's producers set them: the event time, and for a record
/// that has none (a row that is not a record, written as raw bytes) the event time of the
/// record before it in the input. A task with several inputs takes records in the order of
/// these timestamps ([`fitstream_runtime::merge`]), so `produce` and `replay` stamp the
/// same way and both modes take such a record at the same point.
#[derive(Debug, Default)]
pub struct Stamps {
    last: i64,
}

impl Stamps {
    /// Sets `r`'s timestamp when it has none; returns it.
    pub fn stamp(&mut self, r: &mut OutRecord) -> i64 {
        match r.timestamp {
            Some(t) => self.last = t,
            None => r.timestamp = Some(self.last),
        }
        self.last
    }
}

/// Writes every record, then flushes; returns how many were written. `progress` is called
/// after each record with the running count.
pub fn produce(
    writer: &mut TopicWriter,
    codec: &Codec,
    topics: &TopicsConfig,
    records: impl IntoIterator<Item = InputRecord>,
    mut progress: impl FnMut(u64),
) -> Result<u64, KafkaError> {
    let mut n = 0;
    let mut stamps = Stamps::default();
    for record in records {
        let mut r = to_out_record(codec, topics, &record)?;
        stamps.stamp(&mut r);
        writer.send(&r)?;
        n += 1;
        progress(n);
    }
    writer.flush()?;
    Ok(n)
}
