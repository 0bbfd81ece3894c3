//! The transactional passthrough: every record of the input topics copied unchanged to one
//! topic, offsets committed in the same transaction, on the Kafka driver like every service.
//! It does nothing a service does (no decoding, no state, no windows), so its rate is the
//! ceiling of any exactly-once service on the same broker and machine: benchmarks divide by
//! it (`cli/benches/pipeline.rs`, `bench/vs-kafka-streams.sh` through
//! `cli/examples/passthrough.rs`).

use fitstream_contracts::EventTime;

use crate::task::{Ctx, Gate, Record, Rejection, Stage, Task, Topology, WatermarkSource};

/// The copying task.
struct Copy {
    to: String,
}

impl Task for Copy {
    fn process(
        &mut self,
        r: &Record<'_>,
        gate: &mut Gate<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), Rejection> {
        gate.at(EventTime(0))?;
        let value = r.value.unwrap_or_default().to_vec();
        ctx.emit(&self.to, r.key.map(<[u8]>::to_vec), value, EventTime(0));
        Ok(())
    }

    fn advance(&mut self, _: EventTime, _: &mut Ctx) {}
}

/// A topology named `name` (its consumer group and transactional ids) copying `inputs` to
/// `to`, partition by key.
pub fn topology(name: String, inputs: Vec<String>, to: String) -> Topology {
    Topology {
        name,
        stages: vec![Stage {
            name: "copy".into(),
            inputs,
            tables: Vec::new(),
            repartitions: vec![],
            watermark: WatermarkSource::EventTime,
            globals: vec![],
            factory: Box::new(move |_| Box::new(Copy { to: to.clone() })),
        }],
    }
}
