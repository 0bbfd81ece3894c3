//! The planner as a topology of two stages for the drivers (Kafka or embedded).
//!
//! `carts` reads the clickstream and purchases (co-partitioned by customer) and writes
//! abandonments and demand events; `windows` reads the demand events, repartitioned by plant
//! and SKU, and writes build orders. Their state is in stores the runtime checkpoints and
//! restores: the carts stage's open join (carts and purchases, about `cart_window + grace`
//! of them), segment versions per customer and the deduplication ids entry by entry, its
//! records waiting for their segment as a snapshot; the windows stage's open windows as one
//! snapshot (`build window + grace` of demand).

use std::sync::Arc;

use fitstream_contracts::records::{ClickEvent, PurchaseEvent, SegmentAssignment};
use fitstream_contracts::topics::TopicsConfig;
use fitstream_contracts::{Codec, EventTime};
use fitstream_runtime::deadletter::Reason;
use fitstream_runtime::state::{Store, codec};
use fitstream_runtime::task::{
    Ctx, Gate, Record, Rejection, Stage, Task, Topology, WatermarkSource,
};

use crate::planner::{
    CartStage, DemandEvent, Output, PlannerConfig, PlannerCounters, Rejected, WindowStage,
};
use crate::routing::Routing;

/// Everything the planner's tasks share.
#[derive(Clone)]
pub struct PlannerApp {
    /// Application name (consumer group `fitstream-<name>`).
    pub name: String,
    /// Settings.
    pub config: PlannerConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Wire codec (writers prepared for the output topics).
    pub codec: Codec,
    /// Plant routing.
    pub routing: Arc<Routing>,
    /// Counters over every task.
    pub counters: Arc<PlannerCounters>,
    /// Partitions of the inputs (and of the repartition topic).
    pub partitions: i32,
}

impl PlannerApp {
    /// The repartition topic between the stages.
    pub fn repartition_topic(&self) -> String {
        format!("fitstream-{}-demand-repartition", self.name)
    }

    /// Output topics (for writer registration): abandonments and every plant's build orders.
    pub fn output_topics(&self) -> Vec<String> {
        let mut t = vec![self.topics.cart_abandonment.clone()];
        t.extend(
            self.routing
                .plant_ids()
                .iter()
                .map(|p| self.topics.build_orders_topic(p)),
        );
        t
    }

    /// The topology.
    pub fn topology(&self) -> Topology {
        let carts = self.clone();
        let windows = self.clone();
        let repartition = self.repartition_topic();
        Topology {
            name: self.name.clone(),
            stages: vec![
                Stage {
                    name: "carts".into(),
                    inputs: vec![
                        self.topics.clickstream.clone(),
                        self.topics.purchases.clone(),
                    ],
                    tables: vec![self.topics.segment_assignments.clone()],
                    repartitions: vec![repartition.clone()],
                    watermark: WatermarkSource::EventTime,
                    globals: vec![],
                    factory: Box::new(move |_| Box::new(CartTask::new(carts.clone()))),
                },
                Stage {
                    name: "windows".into(),
                    inputs: vec![repartition],
                    tables: Vec::new(),
                    repartitions: vec![],
                    watermark: WatermarkSource::Markers {
                        upstream_tasks: self.partitions,
                    },
                    globals: vec![],
                    factory: Box::new(move |_| Box::new(WindowTask::new(windows.clone()))),
                },
            ],
        }
    }

    fn emit_outputs(&self, outputs: Vec<Output>, ctx: &mut Ctx) {
        for o in outputs {
            match o {
                Output::Abandonment(a) => {
                    match self.codec.encode(&self.topics.cart_abandonment, &a) {
                        Ok(bytes) => ctx.emit(
                            &self.topics.cart_abandonment,
                            Some(a.customer_id.into_bytes()),
                            bytes,
                            a.window_closed_at,
                        ),
                        Err(e) => ctx.reject_output(
                            &self.topics.cart_abandonment,
                            Some(a.customer_id.into_bytes()),
                            &e,
                        ),
                    }
                }
                Output::BuildOrder { plant, order } => {
                    let topic = self.topics.build_orders_topic(&plant);
                    match self.codec.encode(&topic, &order) {
                        Ok(bytes) => {
                            fitstream_runtime::metrics::METRICS
                                .build_orders
                                .with_label_values(&[order.request_state.symbol()])
                                .inc();
                            ctx.emit(
                                &topic,
                                Some(order.material_definition_id.clone().into_bytes()),
                                bytes,
                                order.window_end,
                            )
                        }
                        Err(e) => ctx.reject_output(
                            &topic,
                            Some(order.material_definition_id.into_bytes()),
                            &e,
                        ),
                    }
                }
            }
        }
    }
}

enum CartInput {
    Click(ClickEvent),
    Purchase(PurchaseEvent),
    Assignment(SegmentAssignment),
}

/// The `carts` stage of one partition.
pub struct CartTask {
    app: PlannerApp,
    stage: CartStage,
}

impl CartTask {
    fn new(app: PlannerApp) -> CartTask {
        let stage = CartStage::new(
            app.config.clone(),
            app.routing.clone(),
            app.counters.clone(),
        );
        CartTask { app, stage }
    }

    fn emit(&self, demand: Vec<DemandEvent>, outputs: Vec<Output>, ctx: &mut Ctx) {
        let topic = self.app.repartition_topic();
        for d in demand {
            // Plain derived fields into a growing buffer: encoding cannot fail.
            let bytes = codec::encode(&d).expect("a demand event encodes");
            match &d {
                DemandEvent::Outcome { closed_at, .. } => ctx.broadcast(&topic, bytes, *closed_at),
                DemandEvent::Cart { key, t, .. }
                | DemandEvent::Converted { key, t, .. }
                | DemandEvent::Released { key, t, .. } => {
                    ctx.emit(&topic, Some(key.partition_key()), bytes, *t)
                }
            }
        }
        self.app.emit_outputs(outputs, ctx);
    }
}

impl Task for CartTask {
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), Rejection> {
        let bytes = record.value.unwrap_or_default();
        let codec = &self.app.codec;
        let input = if record.topic == self.app.topics.segment_assignments {
            // A table record: no watermark moves, nothing is late, the gate is not asked.
            let a: SegmentAssignment = codec.decode(record.topic, bytes)?;
            CartInput::Assignment(a)
        } else if record.topic == self.app.topics.clickstream {
            let c: ClickEvent = codec.decode(record.topic, bytes)?;
            gate.at(c.event_time)?;
            CartInput::Click(c)
        } else {
            let p: PurchaseEvent = codec.decode(record.topic, bytes)?;
            gate.at(p.event_time)?;
            CartInput::Purchase(p)
        };
        let (mut demand, mut outputs) = (Vec::new(), Vec::new());
        let r = match input {
            CartInput::Click(c) => self.stage.click(c, &mut demand, &mut outputs),
            CartInput::Purchase(p) => self.stage.purchase(p, &mut demand, &mut outputs),
            CartInput::Assignment(a) => {
                self.stage.assignment(a, &mut demand, &mut outputs);
                Ok(())
            }
        };
        self.emit(demand, outputs, ctx);
        match r {
            Ok(()) => Ok(()),
            Err(Rejected::Duplicate) => {
                ctx.duplicates += 1;
                Ok(())
            }
            Err(Rejected::Late(m)) => Err(Rejection::new(Reason::Late, m)),
        }
    }

    fn advance(&mut self, watermark: EventTime, ctx: &mut Ctx) {
        let (mut demand, mut outputs) = (Vec::new(), Vec::new());
        self.stage.advance(watermark, &mut demand, &mut outputs);
        self.emit(demand, outputs, ctx);
    }

    fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        self.stage.stores()
    }

    fn restored(&mut self) {
        self.stage.restored();
    }

    fn state_size(&self) -> (usize, usize) {
        (self.stage.len(), self.stage.state_bytes())
    }

    fn output_watermark(&self, watermark: EventTime) -> EventTime {
        self.stage.output_watermark(watermark)
    }
}

/// The `windows` stage of one partition.
pub struct WindowTask {
    app: PlannerApp,
    stage: WindowStage,
}

impl WindowTask {
    fn new(app: PlannerApp) -> WindowTask {
        let stage = WindowStage::new(
            app.config.clone(),
            app.routing.clone(),
            app.counters.clone(),
        );
        WindowTask { app, stage }
    }
}

impl Task for WindowTask {
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), Rejection> {
        let event: DemandEvent = codec::decode(record.value.unwrap_or_default())
            .map_err(|e| Rejection::new(Reason::Decode, format!("demand event: {e}")))?;
        let t = match &event {
            DemandEvent::Cart { t, .. }
            | DemandEvent::Converted { t, .. }
            | DemandEvent::Released { t, .. } => *t,
            DemandEvent::Outcome { closed_at, .. } => *closed_at,
        };
        gate.at(t)?;
        let watermark = self.stage.watermark();
        if !self.stage.demand(event.clone()) {
            tracing::warn!(%watermark, ?event, "demand event after its window closed");
            ctx.late += 1;
        }
        Ok(())
    }

    fn advance(&mut self, watermark: EventTime, ctx: &mut Ctx) {
        let mut outputs = Vec::new();
        self.stage.advance(watermark, &mut outputs);
        self.app.emit_outputs(outputs, ctx);
    }

    fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        self.stage.stores()
    }

    fn state_size(&self) -> (usize, usize) {
        (self.stage.len(), self.stage.state_bytes())
    }
}
