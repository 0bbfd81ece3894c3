//! Assignment: where each partition resumes, the tasks of the assigned partitions restored
//! from their changelog partitions, and the global tables replayed to them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{Driver, now_ms};
use crate::host::TaskHost;
use crate::kafka::{KafkaConfig, KafkaError};
use crate::metrics::METRICS;
use crate::state::StateError;
use crate::task::{Ctx, WatermarkSource};

impl Driver<'_> {
    /// A consumer of the group's offsets and the partitions' ends, outside the group.
    pub(super) fn probe(&self) -> Result<BaseConsumer, KafkaError> {
        Ok(self
            .config
            .kafka
            .client()
            .set("group.id", self.topology.group_id())
            .set("isolation.level", "read_committed")
            .create()?)
    }

    pub(super) fn assign(&mut self, assignment: &[(String, i32)]) -> Result<(), KafkaError> {
        self.stats.rebalances += 1;
        let now = now_ms();
        // Where each partition resumes (committed offset, else the start): with the broker's
        // end offsets this tells a backlog from a quiet partition (`refresh_backlog`).
        let probe = self.probe()?;
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in assignment {
            tpl.add_partition(topic, *p);
        }
        let committed = probe.committed_offsets(tpl, Duration::from_secs(30))?;
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                self.positions
                    .entry((e.topic().to_owned(), e.partition()))
                    .or_insert(o);
            }
        }
        for (topic, p) in assignment {
            let st = self
                .topology
                .stage_of(topic)
                .map(|i| &self.topology.stages[i]);
            let by_event_time = st.is_some_and(|s| {
                s.watermark == WatermarkSource::EventTime || s.tables.contains(topic)
            });
            if by_event_time {
                let (low, high) = probe.fetch_watermarks(topic, *p, Duration::from_secs(30))?;
                self.starts.insert((topic.clone(), *p), low);
                if st.is_some_and(|s| s.tables.contains(topic)) {
                    self.table_ends.insert((topic.clone(), *p), high);
                }
                if self.config.bounded && self.ends_taken {
                    self.end_offsets.insert((topic.clone(), *p), high);
                }
            }
        }
        let mut wanted: BTreeMap<(usize, i32), ()> = BTreeMap::new();
        for (topic, p) in assignment {
            if let Some(stage) = self.topology.stage_of(topic) {
                wanted.insert((stage, *p), ());
            }
        }
        for (stage_idx, p) in wanted.into_keys() {
            let started = Instant::now();
            let stage = &self.topology.stages[stage_idx];
            // A bounded run's watermarks never move with the wall clock: the end of its input
            // closes everything, and its outputs do not depend on how fast it ran.
            let mut rules = self.config.watermark.clone();
            rules.advance_when_idle &= !self.config.bounded;
            let mut slot = TaskHost::new(self.topology, stage_idx, p, rules, now);
            let changelog = self.topology.changelog_topic(stage);
            let restored = restore(&self.config.kafka, &changelog, p, |key, value| {
                slot.restore(key, value, now)
            })?;
            slot.restored(now).map_err(|e| KafkaError::Topic {
                topic: changelog.clone(),
                message: format!("restore of partition {p}: {e}"),
            })?;
            self.stats.restored += restored;
            METRICS
                .restore_seconds
                .with_label_values(&[&stage.name])
                .set(started.elapsed().as_secs_f64());
            tracing::info!(stage = %stage.name, partition = p, restored, "task restored");
            let mut ctx = Ctx::default();
            for (topic, key, value) in &self.global_log {
                if stage.globals.iter().any(|g| g == topic) {
                    slot.task
                        .global(topic, key.as_deref(), value.as_deref(), &mut ctx);
                }
            }
            for (topic, wm) in &self.global_progress {
                if stage.globals.iter().any(|g| g == topic) {
                    slot.task.global_progress(topic, *wm, &mut ctx);
                }
            }
            self.slots.insert((stage_idx, p), slot);
            if !ctx.is_empty() {
                self.begin()?;
            }
            self.route(stage_idx, p, ctx)?;
        }
        Ok(())
    }
}

/// Reads changelog partition `p` from the beginning to its end, committed records only.
fn restore(
    config: &KafkaConfig,
    topic: &str,
    p: i32,
    mut apply: impl FnMut(&[u8], Option<&[u8]>) -> Result<(), StateError>,
) -> Result<u64, KafkaError> {
    let consumer: BaseConsumer = config
        .client()
        .set(
            "group.id",
            format!("fitstream-restore-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
    if high <= low {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut n = 0;
    let limit = Duration::from_millis(config.restore_timeout_ms);
    let deadline = Instant::now() + limit;
    loop {
        // All or nothing: a task never runs on part of its state.
        if Instant::now() >= deadline {
            return Err(KafkaError::Timeout(format!(
                "restore of {topic} partition {p}: {n} records read in {} s, the end offset {high} not reached (kafka.restore_timeout_ms)",
                limit.as_secs()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                n += 1;
                if let Some(k) = m.key() {
                    apply(k, m.payload()).map_err(|e| KafkaError::Topic {
                        topic: topic.into(),
                        message: format!("restore of partition {p} at offset {}: {e}", m.offset()),
                    })?;
                }
                if m.offset() + 1 >= high {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                // The end may be a transaction marker, which is never delivered: compare the
                // position instead.
                let at = consumer
                    .position()?
                    .find_partition(topic, p)
                    .map(|e| e.offset());
                if let Some(Offset::Offset(o)) = at
                    && o >= high
                {
                    break;
                }
            }
        }
    }
    Ok(n)
}
