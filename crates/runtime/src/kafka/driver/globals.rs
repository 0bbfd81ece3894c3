//! Global tables: topics every task of a stage reads whole (the segment model), outside the
//! group; a task created later first receives every record seen so far.

use fitstream_contracts::EventTime;

use super::Driver;
use crate::kafka::KafkaError;
use crate::task::{self, Ctx, Topology};

/// A record of a global table: topic, key, value.
pub(super) type GlobalRecord = (String, Option<Vec<u8>>, Option<Vec<u8>>);

pub(super) fn driver_globals(topology: &Topology) -> Vec<String> {
    let mut g: Vec<String> = topology
        .stages
        .iter()
        .flat_map(|s| s.globals.iter().cloned())
        .collect();
    g.sort();
    g.dedup();
    g
}

impl Driver<'_> {
    pub(super) fn global(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), KafkaError> {
        self.global_log.push((
            topic.to_owned(),
            key.map(<[u8]>::to_vec),
            value.map(<[u8]>::to_vec),
        ));
        self.each_global_reader(topic, |task, ctx| task.global(topic, key, value, ctx))
    }

    pub(super) fn global_progress(
        &mut self,
        topic: &str,
        watermark: EventTime,
    ) -> Result<(), KafkaError> {
        self.global_progress.insert(topic.to_owned(), watermark);
        self.each_global_reader(topic, |task, ctx| {
            task.global_progress(topic, watermark, ctx)
        })
    }

    /// Runs `f` on every task of the stages that read `topic` as a global table, routing what
    /// it emits.
    pub(super) fn each_global_reader(
        &mut self,
        topic: &str,
        mut f: impl FnMut(&mut dyn task::Task, &mut Ctx),
    ) -> Result<(), KafkaError> {
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            if !self.topology.stages[stage]
                .globals
                .iter()
                .any(|g| g == topic)
            {
                continue;
            }
            let mut ctx = Ctx::default();
            if let Some(slot) = self.slots.get_mut(&(stage, p)) {
                f(slot.task.as_mut(), &mut ctx);
            }
            if !ctx.is_empty() {
                self.begin()?;
            }
            self.route(stage, p, ctx)?;
        }
        Ok(())
    }
}
