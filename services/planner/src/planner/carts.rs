//! Stage `carts` (partitioned by customer): deduplication, the as-of join with segment
//! assignments, and the cart -> purchase interval join.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use fitstream_contracts::EventTime;
use fitstream_contracts::records::*;
use fitstream_runtime::asof::{AsOf, AsOfJoin};
use fitstream_runtime::join::{IntervalJoin, JoinEvent, JoinKind, JoinWindow};
use fitstream_runtime::metrics::METRICS;
use fitstream_runtime::state::{DedupStore, Store, Value};
use fitstream_runtime::window::Window;
use serde::{Deserialize, Serialize};

use super::{
    BuildKey, DemandEvent, Output, PlannerConfig, PlannerCounters, Rejected, Segment,
    SegmentVersion,
};
use crate::routing::Routing;

fn unassigned() -> Segment {
    (None, "unassigned".to_owned())
}

/// What the join keeps of an add-to-cart (no prices: state stays small).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cart {
    segment: Segment,
    event_id: String,
    customer_id: String,
    session_id: String,
    product_id: String,
    sku: String,
    category: Option<String>,
    key: BuildKey,
}

/// A purchase line as the stage keeps it while the order waits for the segment table.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Line {
    key: BuildKey,
    sku: String,
    units: i64,
}

/// An admitted cart or purchase waiting for the buyer's segment (the as-of join).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Held {
    Cart(Box<Cart>),
    Order { order_id: String, lines: Vec<Line> },
}

/// The stage's clocks (the `clock` store).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Clock {
    /// The latest assignment time seen (the table's watermark is 1 ms before it).
    table_max: EventTime,
    watermark: EventTime,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            table_max: EventTime::MIN,
            watermark: EventTime::MIN,
        }
    }
}

/// The `carts` stage of one customer partition.
pub struct CartStage {
    config: PlannerConfig,
    routing: Arc<Routing>,
    counters: Arc<PlannerCounters>,
    /// Open carts and the purchases that may still convert them (bounded by the join
    /// window; written per cart and purchase that changed).
    join: IntervalJoin<(String, String), Cart, ()>,
    /// Carts and purchases joined as of their event time with the segment assignments
    /// (customer -> segment versions, written key by key).
    segments: AsOfJoin<String, Held, SegmentVersion>,
    clock: Value<Clock>,
    /// Written entry by entry (24 h of ids is too large for a snapshot per commit).
    clicks_seen: DedupStore,
    orders_seen: DedupStore,
}

impl CartStage {
    /// Empty state.
    pub fn new(
        config: PlannerConfig,
        routing: Arc<Routing>,
        counters: Arc<PlannerCounters>,
    ) -> CartStage {
        let join_window = JoinWindow {
            before_ms: 0,
            after_ms: config.cart_window_ms,
            grace_ms: config.cart_grace_ms,
        };
        CartStage {
            join: IntervalJoin::new(JoinKind::Left, join_window),
            segments: AsOfJoin::new(config.segment_grace_ms, config.segment_retention_ms),
            clock: Value::default(),
            clicks_seen: DedupStore::new(config.dedup_retention_ms),
            orders_seen: DedupStore::new(config.dedup_retention_ms),
            config,
            routing,
            counters,
        }
    }

    /// Its stores.
    pub fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        let (versions, waiting) = self.segments.stores();
        let (carts, purchases) = self.join.stores();
        vec![
            ("join-carts", carts),
            ("join-purchases", purchases),
            ("segments", versions),
            ("segments-waiting", waiting),
            ("clock", &mut self.clock),
            ("clicks-seen", &mut self.clicks_seen),
            ("orders-seen", &mut self.orders_seen),
        ]
    }

    /// What this stage may still emit demand for: the earliest cart or purchase waiting for
    /// its segment, else `watermark`.
    pub fn output_watermark(&self, watermark: EventTime) -> EventTime {
        self.segments
            .earliest_waiting()
            .map_or(watermark, |t| t.min(watermark))
    }

    /// Approximate bytes of state: open carts and purchases by their layout, each with
    /// about 200 bytes of strings (ids, SKU, category, build key), and the waiting records as
    /// last written.
    pub fn state_bytes(&self) -> usize {
        let (l, r) = self.join.len();
        (l + r) * (size_of::<Cart>() + 200) + self.segments.snapshot_bytes()
    }

    /// Every store is restored: the join derives its indexes again.
    pub fn restored(&mut self) {
        self.join.restored();
    }

    /// Join entries held.
    pub fn len(&self) -> usize {
        let (l, r) = self.join.len();
        let (waiting, versions) = self.segments.len();
        l + r + waiting + versions + self.clicks_seen.len() + self.orders_seen.len()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(
        &self,
        sku: &str,
        product_id: &str,
        category: Option<&str>,
        options: &Options,
        state: RequestState,
    ) -> BuildKey {
        let (plant, routed) = self.routing.route(sku, category);
        if !routed {
            self.counters.unrouted.fetch_add(1, Ordering::Relaxed);
            METRICS.unrouted.inc();
        }
        BuildKey {
            plant: plant.to_owned(),
            sku: sku.to_owned(),
            product_id: product_id.to_owned(),
            options: options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            state,
        }
    }

    fn build_window_closed(&self, t: EventTime) -> Option<Window> {
        let w = self.config.build_window.windows(t).first().copied()?;
        w.is_closed(self.clock.watermark, self.config.build_grace_ms)
            .then_some(w)
    }

    /// A click event. Only add-to-cart events matter.
    pub fn click(
        &mut self,
        event: ClickEvent,
        demand: &mut Vec<DemandEvent>,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejected> {
        if event.event_type != ClickEventType::AddToCart {
            return Ok(());
        }
        let (Some(sku), Some(product)) = (event.sku.clone(), event.product_id.clone()) else {
            return Ok(()); // validated on decode: cart events carry both
        };
        if !self
            .clicks_seen
            .first_time(&event.event_id, event.event_time)
        {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::Duplicate);
        }
        let t = event.event_time;
        let key = self.key(
            &sku,
            &product,
            event.category.as_deref(),
            &event.options,
            RequestState::Forecast,
        );
        // Closed on arrival: refused now, while the input can still be dead-lettered.
        if self.join.is_closed_left(t, self.clock.watermark) {
            self.counters.late.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::Late(format!(
                "add-to-cart at {t} is closed at watermark {} (window {} min + grace {} min)",
                self.clock.watermark,
                self.config.cart_window_ms / 60_000,
                self.config.cart_grace_ms / 60_000
            )));
        }
        let cart = Cart {
            segment: unassigned(),
            event_id: event.event_id.clone(),
            customer_id: event.customer_id.clone(),
            session_id: event.session_id.clone(),
            product_id: product,
            sku,
            category: event.category,
            key,
        };
        let mut joined = Vec::new();
        self.segments.stream(
            event.customer_id,
            t,
            Held::Cart(Box::new(cart)),
            &mut joined,
        );
        self.joined(joined, demand, out);
        Ok(())
    }

    /// A purchase.
    pub fn purchase(
        &mut self,
        order: PurchaseEvent,
        demand: &mut Vec<DemandEvent>,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejected> {
        let t = order.event_time;
        if let Some(w) = self.build_window_closed(t) {
            self.counters.late.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::Late(format!(
                "purchase at {t} belongs to build window [{}, {}) closed at watermark {}",
                w.start, w.end, self.clock.watermark
            )));
        }
        if !self.orders_seen.first_time(&order.order_id, t) {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::Duplicate);
        }
        let lines = order
            .lines
            .iter()
            .map(|line| Line {
                key: self.key(
                    &line.sku,
                    &line.product_id,
                    line.category.as_deref(),
                    &line.options,
                    RequestState::Released,
                ),
                sku: line.sku.clone(),
                units: i64::from(line.quantity),
            })
            .collect();
        let held = Held::Order {
            order_id: order.order_id,
            lines,
        };
        let mut joined = Vec::new();
        self.segments
            .stream(order.customer_id, t, held, &mut joined);
        self.joined(joined, demand, out);
        Ok(())
    }

    /// A segment assignment: a version of the customer's segment from its event time on.
    /// Assignments of one partition come in event-time order (the profiler stamps them so),
    /// so the table is complete up to 1 ms before the latest one.
    pub fn assignment(
        &mut self,
        a: SegmentAssignment,
        demand: &mut Vec<DemandEvent>,
        out: &mut Vec<Output>,
    ) {
        self.clock.table_max = self.clock.table_max.max(a.event_time);
        self.segments.table(
            a.customer_id,
            a.event_time,
            ((Some(a.segment_id), a.segment_label), a.model_version),
        );
        let mut joined = Vec::new();
        self.segments
            .table_advance(self.clock.table_max.minus(1), &mut joined);
        self.joined(joined, demand, out);
    }

    /// Carts and purchases that have their segment go on: into the cart join, and downstream.
    fn joined(
        &mut self,
        joined: Vec<AsOf<String, Held, SegmentVersion>>,
        demand: &mut Vec<DemandEvent>,
        out: &mut Vec<Output>,
    ) {
        let mut events = Vec::new();
        for j in joined {
            let (segment, model_version) = match j.version {
                Some((segment, version)) => (segment, Some(version)),
                None => (unassigned(), None),
            };
            let t = j.t;
            match j.record {
                Held::Cart(cart) => {
                    let mut cart = *cart;
                    cart.segment = segment.clone();
                    demand.push(DemandEvent::Cart {
                        cart_id: cart.event_id.clone(),
                        t,
                        key: cart.key.clone(),
                        segment,
                        model_version,
                        category: cart.category.clone(),
                    });
                    let key = (j.key, cart.sku.clone());
                    if let Err(late) =
                        self.join
                            .left(key, t, cart, self.clock.watermark, &mut events)
                    {
                        // Not possible while the segment grace is within the join's: counted.
                        tracing::warn!(t = %late.event_time, "cart closed while it waited for its segment");
                        self.counters.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Held::Order { order_id, lines } => {
                    for line in lines {
                        demand.push(DemandEvent::Released {
                            order_id: order_id.clone(),
                            t,
                            key: line.key,
                            units: line.units,
                            segment: segment.clone(),
                            model_version,
                        });
                        // A right record the join finds closed has no cart left to convert.
                        let _ = self.join.right(
                            (j.key.clone(), line.sku),
                            t,
                            (),
                            self.clock.watermark,
                            &mut events,
                        );
                    }
                }
            }
        }
        self.handle(events, demand, out);
    }

    fn handle(
        &mut self,
        events: Vec<JoinEvent<(String, String), Cart, ()>>,
        demand: &mut Vec<DemandEvent>,
        out: &mut Vec<Output>,
    ) {
        let close = self.config.cart_window_ms + self.config.cart_grace_ms;
        for e in events {
            match e {
                JoinEvent::Matched {
                    left: (t, cart),
                    right: (purchase_t, ()),
                    ..
                } => {
                    demand.push(DemandEvent::Converted {
                        cart_id: cart.event_id.clone(),
                        t,
                        key: cart.key,
                        purchase_t,
                    });
                }
                JoinEvent::Closed {
                    left: (t, cart), ..
                } => {
                    self.counters.conversions.fetch_add(1, Ordering::Relaxed);
                    demand.push(DemandEvent::Outcome {
                        closed_at: t.plus(close),
                        segment: cart.segment.1,
                        category: cart.category.unwrap_or_default(),
                        converted: true,
                    });
                }
                JoinEvent::Unmatched {
                    left: (t, cart), ..
                } => {
                    self.counters.abandonments.fetch_add(1, Ordering::Relaxed);
                    let seg = cart.segment.clone();
                    let e = cart;
                    demand.push(DemandEvent::Outcome {
                        closed_at: t.plus(close),
                        segment: seg.1.clone(),
                        category: e.category.clone().unwrap_or_default(),
                        converted: false,
                    });
                    out.push(Output::Abandonment(CartAbandonment {
                        customer_id: e.customer_id,
                        session_id: e.session_id,
                        product_id: e.product_id,
                        sku: e.sku,
                        category: e.category,
                        segment_id: seg.0,
                        segment_label: seg.1,
                        carted_at: t,
                        window_closed_at: t.plus(self.config.cart_window_ms),
                        source_event_id: e.event_id,
                    }));
                }
            }
        }
    }

    /// The watermark moved: closes carts.
    pub fn advance(
        &mut self,
        watermark: EventTime,
        demand: &mut Vec<DemandEvent>,
        out: &mut Vec<Output>,
    ) {
        if watermark <= self.clock.watermark {
            return;
        }
        // Those that waited a grace for their segment go on first, at the old watermark.
        let mut joined = Vec::new();
        self.segments.stream_advance(watermark, &mut joined);
        self.joined(joined, demand, out);
        self.clock.watermark = watermark;
        let mut events = Vec::new();
        self.join.advance(watermark, &mut events);
        self.handle(events, demand, out);
        self.clicks_seen.expire(watermark);
        self.orders_seen.expire(watermark);
    }
}
