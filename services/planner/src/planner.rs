//! The planner's two stages.
//!
//! **Stage `carts`** (partitioned by customer, like the inputs):
//! - Add-to-cart events are left records of an interval join with purchase lines of the same
//!   customer and SKU in `[t, t + cart_window]`, grace `cart_grace`. Two carts of one SKU
//!   before one purchase both convert. A cart closed without a match is a CartAbandonment.
//! - Every cart, purchase line and conversion becomes a [`DemandEvent`] on the repartition
//!   topic, keyed by plant and SKU. Each closed cart also becomes an `Outcome`, broadcast to
//!   every partition, from which conversion rates are learned.
//! - Duplicates (same event id or order id within 24 h of event time) are dropped and
//!   counted. A purchase whose build window is already closed is late.
//!
//! **Stage `windows`** (partitioned by plant and SKU):
//! - Released demand: purchase lines by (plant, SKU, options) in the tumbling build window of
//!   the purchase. Forecast demand: carts of the window not converted when it closes, each
//!   weighted by the conversion rate of its (segment, category), smoothed by a Beta prior.
//! - A window is emitted once, when `watermark >= end + build_grace`, as ISA-95
//!   ProductionRequests with deterministic ids (Released and Forecast separately).
//! - Conversion rates at a window's close count only outcomes whose join closed before
//!   `end + grace` in event time: those have certainly arrived from every upstream task, so
//!   the forecast does not depend on how upstream partitions interleave.
//!
//! [`Planner`] runs both stages back to back in one object (tests, simple embedding).
//!
//! Files: `planner/config.rs` ([`PlannerConfig`]), `planner/outputs.rs` (what the stages emit
//! and tell each other, and [`request_id`]), `planner/counters.rs` ([`PlannerCounters`]),
//! `planner/carts.rs` ([`CartStage`]), `planner/windows.rs` ([`WindowStage`]).

mod carts;
mod config;
mod counters;
mod outputs;
mod windows;

use std::sync::Arc;

use fitstream_contracts::EventTime;
use fitstream_contracts::records::*;

pub use self::carts::CartStage;
pub use self::config::PlannerConfig;
pub use self::counters::{PlannerCounters, PlannerStats};
pub use self::outputs::{
    BuildKey, DemandEvent, Output, Rejected, Segment, SegmentVersion, request_id,
};
pub use self::windows::WindowStage;
use crate::routing::Routing;

/// Both stages back to back, one partition, the windows' watermark equal to the carts'.
pub struct Planner {
    carts: CartStage,
    windows: WindowStage,
    counters: Arc<PlannerCounters>,
}

impl Planner {
    /// A planner with empty state.
    pub fn new(config: PlannerConfig, routing: Routing) -> Planner {
        let routing = Arc::new(routing);
        let counters = Arc::new(PlannerCounters::default());
        Planner {
            carts: CartStage::new(config.clone(), routing.clone(), counters.clone()),
            windows: WindowStage::new(config, routing, counters.clone()),
            counters,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PlannerStats {
        self.counters.snapshot()
    }

    fn forward(&mut self, demand: Vec<DemandEvent>) {
        for d in demand {
            self.windows.demand(d);
        }
    }

    /// A click event.
    pub fn click(&mut self, event: ClickEvent, out: &mut Vec<Output>) -> Result<(), Rejected> {
        let mut demand = Vec::new();
        let r = self.carts.click(event, &mut demand, out);
        self.forward(demand);
        r
    }

    /// A purchase.
    pub fn purchase(
        &mut self,
        order: PurchaseEvent,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejected> {
        let mut demand = Vec::new();
        let r = self.carts.purchase(order, &mut demand, out);
        self.forward(demand);
        r
    }

    /// A segment assignment (the table of the buyer's segment).
    pub fn assignment(&mut self, a: SegmentAssignment, out: &mut Vec<Output>) {
        let mut demand = Vec::new();
        self.carts.assignment(a, &mut demand, out);
        self.forward(demand);
    }

    /// The watermark moved.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<Output>) {
        let mut demand = Vec::new();
        self.carts.advance(watermark, &mut demand, out);
        self.forward(demand);
        let downstream = self.carts.output_watermark(watermark);
        self.windows.advance(downstream, out);
    }
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::samples;
    use rust_decimal::Decimal;

    use super::*;

    const MIN: i64 = 60_000;

    fn cart(id: &str, t: EventTime) -> ClickEvent {
        ClickEvent {
            event_id: id.into(),
            event_time: t,
            ..samples::click()
        }
    }

    fn buy(id: &str, t: EventTime) -> PurchaseEvent {
        PurchaseEvent {
            order_id: id.into(),
            event_time: t,
            lines: vec![PurchaseLine {
                quantity: 1,
                ..samples::purchase_line()
            }],
            ..samples::purchase()
        }
    }

    fn run(records: Vec<Result<ClickEvent, PurchaseEvent>>) -> (Vec<Output>, Planner) {
        let mut p = Planner::new(PlannerConfig::default(), Routing::bundled());
        let mut out = Vec::new();
        for r in records {
            let wm = match &r {
                Ok(c) => c.event_time,
                Err(o) => o.event_time,
            };
            let _ = match r {
                Ok(c) => p.click(c, &mut out),
                Err(o) => p.purchase(o, &mut out),
            };
            p.advance(wm, &mut out);
        }
        p.advance(EventTime::MAX, &mut out);
        (out, p)
    }

    fn abandonments(out: &[Output]) -> usize {
        out.iter()
            .filter(|o| matches!(o, Output::Abandonment(_)))
            .count()
    }

    #[test]
    fn a_purchase_exactly_at_the_window_edge_converts_and_one_ms_later_does_not() {
        let t0 = samples::T0;
        let (out, p) = run(vec![Ok(cart("c1", t0)), Err(buy("o1", t0.plus(30 * MIN)))]);
        assert_eq!((p.stats().conversions, abandonments(&out)), (1, 0));
        let (out, p) = run(vec![
            Ok(cart("c1", t0)),
            Err(buy("o1", t0.plus(30 * MIN + 1))),
        ]);
        assert_eq!((p.stats().conversions, abandonments(&out)), (0, 1));
        let Some(Output::Abandonment(a)) = out.iter().find(|o| matches!(o, Output::Abandonment(_)))
        else {
            panic!("no abandonment")
        };
        assert_eq!((a.carted_at, a.window_closed_at), (t0, t0.plus(30 * MIN)));
    }

    #[test]
    fn released_and_forecast_are_separate_requests_with_stable_ids() {
        let t0 = samples::T0;
        let input = vec![
            Ok(cart("c1", t0)),
            Ok(cart("c2", t0.plus(MIN))),
            Err(buy("o1", t0.plus(2 * MIN))),
        ];
        let (out, _) = run(input.clone());
        let orders: Vec<&BuildOrder> = out
            .iter()
            .filter_map(|o| match o {
                Output::BuildOrder { order, .. } => Some(order),
                _ => None,
            })
            .collect();
        // Both carts converted (two carts of one SKU before one purchase): no forecast left.
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].request_state, RequestState::Released);
        assert_eq!(orders[0].quantity, Decimal::ONE);
        assert_eq!(orders[0].location.site, "berlin");
        let (again, _) = run(input);
        assert_eq!(out, again, "same input, same output, same ids");
    }

    #[test]
    fn a_purchase_late_beyond_grace_and_a_duplicate_are_rejected() {
        let t0 = samples::T0;
        let mut p = Planner::new(PlannerConfig::default(), Routing::bundled());
        let mut out = Vec::new();
        p.advance(t0.plus(20 * MIN), &mut out);
        // Window [T0, T0+15m) closes at 15 + 5 = 20 min: closed.
        assert!(matches!(
            p.purchase(buy("o1", t0), &mut out),
            Err(Rejected::Late(_))
        ));
        assert!(p.purchase(buy("o2", t0.plus(15 * MIN)), &mut out).is_ok());
        assert_eq!(
            p.purchase(buy("o2", t0.plus(15 * MIN)), &mut out),
            Err(Rejected::Duplicate)
        );
    }
}
