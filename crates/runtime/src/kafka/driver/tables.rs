//! Tables first: a task's stream partitions are paused while its table partitions have
//! records waiting.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::Driver;
use super::context::{DriverContext, Ends};
use crate::kafka::KafkaError;

impl Driver<'_> {
    /// Tables first, as Kafka Streams bootstraps its tables: a task whose table partitions
    /// have records waiting (more than one past the position; one is a commit marker's
    /// slack) does not read its streams, so a stream record never gives up waiting for a
    /// table version that is already in Kafka. Streams resume when the tables are read.
    pub(super) fn pace_tables(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
        ends: &Ends,
        now: bool,
    ) -> Result<(), KafkaError> {
        if !now && self.last_table_check.elapsed() < Duration::from_millis(50) {
            return Ok(());
        }
        self.last_table_check = Instant::now();
        let Ok(ends) = ends.lock() else {
            return Ok(());
        };
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            let st = &self.topology.stages[stage];
            if st.tables.is_empty() {
                continue;
            }
            let (tables, inputs) = (st.tables.clone(), st.inputs.clone());
            let behind = tables.iter().any(|t| {
                let key = (t.clone(), p);
                self.waiting(&key, ends.get(&key).copied())
                    .is_some_and(|lag| lag > 1)
            });
            for input in &inputs {
                let key = (input.clone(), p);
                let paused = self.paused.contains(&key);
                if behind && !paused {
                    pause.add_partition(input, p);
                    self.paused.insert(key);
                } else if !behind && paused {
                    if let Some(offset) = self.rewind.remove(&key) {
                        consumer.seek(input, p, Offset::Offset(offset), Duration::from_secs(10))?;
                        self.forget_polled();
                    }
                    if !self.order_paused.contains(&key) {
                        resume.add_partition(input, p);
                    }
                    self.paused.remove(&key);
                }
            }
        }
        if pause.count() > 0 {
            consumer.pause(&pause)?;
        }
        if resume.count() > 0 {
            tracing::debug!(partitions = resume.count(), "tables read: streams resume");
            consumer.resume(&resume)?;
        }
        Ok(())
    }
}
