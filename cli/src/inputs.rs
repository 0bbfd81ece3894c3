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
    for record in records {
        writer.send(&to_out_record(codec, topics, &record)?)?;
        n += 1;
        progress(n);
    }
    writer.flush()?;
    Ok(n)
}
