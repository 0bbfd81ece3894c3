//! The planner operator: one per input partition (co-partitioned clickstream and purchases).
//!
//! - Add-to-cart events are left records of an interval join with purchase lines of the same
//!   customer and SKU in `[t, t + cart_window]` (grace `cart_grace`). Two carts of one SKU
//!   before one purchase both convert. A cart closed without a match is a CartAbandonment.
//! - Conversion rates per (segment, category) count closed carts: matched = converted,
//!   unmatched = abandoned; smoothed by a Beta(alpha, beta) prior.
//! - Released demand: purchase lines by (plant, SKU, options) in the tumbling build window of
//!   the purchase. Forecast demand: carts of the window not converted when it closes, each
//!   weighted by its (segment, category) conversion rate.
//! - A build window is emitted once, when `watermark >= end + build_grace`. A purchase whose
//!   build window is closed on arrival is late; so is a cart whose join window is closed.
//!   Duplicates (same event id or order id within 24 h of event time) are dropped and counted.

use std::collections::{BTreeMap, BTreeSet};

use fitstream_contracts::EventTime;
use fitstream_contracts::records::*;
use fitstream_runtime::dedup::Deduplicator;
use fitstream_runtime::join::{IntervalJoin, JoinEvent, JoinKind, JoinWindow};
use fitstream_runtime::window::{Window, WindowSpec, WindowedAggregate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::routing::Routing;

/// Planner settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerConfig {
    /// How long after an add-to-cart a purchase converts it, ms (default 30 min).
    pub cart_window_ms: i64,
    /// Grace of the cart join, ms (default 5 min).
    pub cart_grace_ms: i64,
    /// Build-order windows (default tumbling 15 min).
    pub build_window: WindowSpec,
    /// Grace of build windows, ms (default 5 min).
    pub build_grace_ms: i64,
    /// Beta prior of conversion rates: pseudo-conversions.
    pub prior_alpha: f64,
    /// Beta prior of conversion rates: pseudo-abandonments.
    pub prior_beta: f64,
    /// Priority of Released requests before the quantity bonus.
    pub released_priority: i32,
    /// Priority of Forecast requests before the quantity bonus.
    pub forecast_priority: i32,
    /// Memory of event ids and order ids for deduplication, ms of event time.
    pub dedup_retention_ms: i64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            cart_window_ms: 30 * 60_000,
            cart_grace_ms: 5 * 60_000,
            build_window: WindowSpec::Tumbling {
                size_ms: 15 * 60_000,
            },
            build_grace_ms: 5 * 60_000,
            prior_alpha: 1.0,
            prior_beta: 3.0,
            released_priority: 600,
            forecast_priority: 200,
            dedup_retention_ms: Deduplicator::DEFAULT_RETENTION_MS,
        }
    }
}

/// What the planner emits.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A build order for a plant's topic, keyed by SKU.
    BuildOrder {
        /// Plant id.
        plant: String,
        /// The request.
        order: BuildOrder,
    },
    /// A marketing audience record, keyed by customer.
    Abandonment(CartAbandonment),
}

/// Why an input was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Closed on arrival.
    Late(String),
    /// Seen before.
    Duplicate,
}

#[derive(Clone, Debug)]
struct Cart {
    seq: u64,
    event: ClickEvent,
    window: Window,
    key: BuildKey,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct BuildKey {
    plant: String,
    sku: String,
    product_id: String,
    options: Vec<(String, String)>,
    state: RequestState,
}

type Segment = (Option<i32>, String);

#[derive(Clone, Debug, Default)]
struct Demand {
    units: i64,
    orders: BTreeSet<String>,
    mix: BTreeMap<Segment, i64>,
    /// Carts not converted (yet): seq -> (segment, category).
    open_carts: BTreeMap<u64, (Segment, Option<String>)>,
}

/// Counters for reconciliation and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlannerStats {
    /// Carts that met a purchase.
    pub conversions: u64,
    /// Carts closed without one.
    pub abandonments: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late records.
    pub late: u64,
    /// Carts whose forecast window had closed (still joined).
    pub late_for_forecast: u64,
    /// Lines routed to the default plant.
    pub unrouted: u64,
    /// Released units emitted.
    pub released_units: i64,
}

/// The planner of one partition.
pub struct Planner {
    config: PlannerConfig,
    routing: Routing,
    join: IntervalJoin<(String, String), Cart, ()>,
    demand: WindowedAggregate<BuildKey, Demand>,
    clicks_seen: Deduplicator,
    orders_seen: Deduplicator,
    rates: BTreeMap<(String, String), (u64, u64)>,
    seq: u64,
    watermark: EventTime,
    stats: PlannerStats,
}

fn unassigned() -> Segment {
    (None, "unassigned".to_owned())
}

impl Planner {
    /// A planner with empty state.
    pub fn new(config: PlannerConfig, routing: Routing) -> Planner {
        let join_window = JoinWindow {
            before_ms: 0,
            after_ms: config.cart_window_ms,
            grace_ms: config.cart_grace_ms,
        };
        Planner {
            join: IntervalJoin::new(JoinKind::Left, join_window),
            demand: WindowedAggregate::new(config.build_window.clone(), config.build_grace_ms),
            clicks_seen: Deduplicator::new(config.dedup_retention_ms),
            orders_seen: Deduplicator::new(config.dedup_retention_ms),
            rates: BTreeMap::new(),
            seq: 0,
            watermark: EventTime::MIN,
            stats: PlannerStats::default(),
            config,
            routing,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &PlannerStats {
        &self.stats
    }

    fn window_of(&self, t: EventTime) -> Window {
        self.config
            .build_window
            .windows(t)
            .first()
            .copied()
            .unwrap_or(Window {
                start: t,
                end: t.plus(1),
            })
    }

    fn key(
        &mut self,
        sku: &str,
        product_id: &str,
        category: Option<&str>,
        options: &Options,
        state: RequestState,
    ) -> BuildKey {
        let (plant, routed) = self.routing.route(sku, category);
        let plant = plant.to_owned();
        if !routed {
            self.stats.unrouted += 1;
        }
        BuildKey {
            plant,
            sku: sku.to_owned(),
            product_id: product_id.to_owned(),
            options: options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            state,
        }
    }

    /// A click event. Only add-to-cart events matter to the planner.
    pub fn click(&mut self, event: ClickEvent, out: &mut Vec<Output>) -> Result<(), Rejected> {
        if event.event_type != ClickEventType::AddToCart {
            return Ok(());
        }
        let (Some(sku), Some(product)) = (event.sku.clone(), event.product_id.clone()) else {
            return Ok(()); // validated upstream: cart events carry both
        };
        if !self
            .clicks_seen
            .first_time(&event.event_id, event.event_time)
        {
            self.stats.duplicates += 1;
            return Err(Rejected::Duplicate);
        }
        let t = event.event_time;
        let window = self.window_of(t);
        let key = self.key(
            &sku,
            &product,
            event.category.as_deref(),
            &event.options,
            RequestState::Forecast,
        );
        self.seq += 1;
        let cart = Cart {
            seq: self.seq,
            event: event.clone(),
            window,
            key: key.clone(),
        };
        let mut events = Vec::new();
        if let Err(late) = self.join.left(
            (event.customer_id.clone(), sku),
            t,
            cart,
            self.watermark,
            &mut events,
        ) {
            self.stats.late += 1;
            return Err(Rejected::Late(format!(
                "add-to-cart at {} is closed at watermark {} (window {} min + grace {} min)",
                late.event_time,
                late.watermark,
                self.config.cart_window_ms / 60_000,
                self.config.cart_grace_ms / 60_000
            )));
        }
        let segment = unassigned();
        let added = self
            .demand
            .add(&key, t, self.watermark, Demand::default, |d| {
                d.open_carts
                    .insert(self.seq, (segment.clone(), event.category.clone()));
            });
        if added.is_err() {
            self.stats.late_for_forecast += 1;
        }
        self.handle(events, out);
        Ok(())
    }

    /// A purchase.
    pub fn purchase(
        &mut self,
        order: PurchaseEvent,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejected> {
        let t = order.event_time;
        let window = self.window_of(t);
        if window.is_closed(self.watermark, self.config.build_grace_ms) {
            self.stats.late += 1;
            return Err(Rejected::Late(format!(
                "purchase at {t} belongs to build window [{}, {}) closed at watermark {}",
                window.start, window.end, self.watermark
            )));
        }
        if !self.orders_seen.first_time(&order.order_id, t) {
            self.stats.duplicates += 1;
            return Err(Rejected::Duplicate);
        }
        let segment = unassigned();
        let mut events = Vec::new();
        for line in &order.lines {
            let key = self.key(
                &line.sku,
                &line.product_id,
                line.category.as_deref(),
                &line.options,
                RequestState::Released,
            );
            let units = i64::from(line.quantity);
            let order_id = order.order_id.clone();
            let seg = segment.clone();
            // The window is open (checked above): this cannot be late.
            let _ = self
                .demand
                .add(&key, t, self.watermark, Demand::default, |d| {
                    d.units += units;
                    d.orders.insert(order_id.clone());
                    *d.mix.entry(seg.clone()).or_default() += units;
                });
            // A right record the join finds closed has no cart left to convert: fine.
            let _ = self.join.right(
                (order.customer_id.clone(), line.sku.clone()),
                t,
                (),
                self.watermark,
                &mut events,
            );
        }
        self.handle(events, out);
        Ok(())
    }

    fn handle(
        &mut self,
        events: Vec<JoinEvent<(String, String), Cart, ()>>,
        out: &mut Vec<Output>,
    ) {
        for e in events {
            match e {
                JoinEvent::Matched {
                    left: (_, cart), ..
                } => {
                    // Converted: no longer forecast demand of its window.
                    if let Some(d) = self.demand.get_mut(cart.window, &cart.key) {
                        d.open_carts.remove(&cart.seq);
                    }
                }
                JoinEvent::Closed {
                    left: (_, cart), ..
                } => {
                    self.stats.conversions += 1;
                    self.rates
                        .entry(rate_key(&unassigned(), cart.event.category.as_deref()))
                        .or_default()
                        .0 += 1;
                }
                JoinEvent::Unmatched {
                    left: (t, cart), ..
                } => {
                    self.stats.abandonments += 1;
                    let seg = unassigned();
                    self.rates
                        .entry(rate_key(&seg, cart.event.category.as_deref()))
                        .or_default()
                        .1 += 1;
                    let e = cart.event;
                    out.push(Output::Abandonment(CartAbandonment {
                        customer_id: e.customer_id,
                        session_id: e.session_id,
                        product_id: e.product_id.unwrap_or_default(),
                        sku: e.sku.unwrap_or_default(),
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

    /// The conversion rate of a (segment, category), smoothed by the prior.
    pub fn conversion_rate(&self, segment_label: &str, category: Option<&str>) -> f64 {
        let (c, a) = self
            .rates
            .get(&(segment_label.to_owned(), category.unwrap_or("").to_owned()))
            .copied()
            .unwrap_or((0, 0));
        (c as f64 + self.config.prior_alpha)
            / ((c + a) as f64 + self.config.prior_alpha + self.config.prior_beta)
    }

    /// The watermark moved: closes carts, then build windows.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<Output>) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        let mut events = Vec::new();
        self.join.advance(watermark, &mut events);
        self.handle(events, out);
        for (window, key, demand) in self.demand.close(watermark) {
            if let Some(order) = self.build_order(window, &key, &demand) {
                if key.state == RequestState::Released {
                    self.stats.released_units += demand.units;
                }
                out.push(Output::BuildOrder {
                    plant: key.plant.clone(),
                    order,
                });
            }
        }
        self.clicks_seen.expire(watermark);
        self.orders_seen.expire(watermark);
    }

    fn build_order(&self, window: Window, key: &BuildKey, d: &Demand) -> Option<BuildOrder> {
        let (quantity, count, mix) = match key.state {
            RequestState::Released if d.units > 0 => (
                Decimal::from(d.units),
                d.orders.len(),
                d.mix
                    .iter()
                    .map(|(s, u)| (s.clone(), Decimal::from(*u)))
                    .collect::<BTreeMap<_, _>>(),
            ),
            RequestState::Forecast if !d.open_carts.is_empty() => {
                let mut mix: BTreeMap<Segment, Decimal> = BTreeMap::new();
                for (seg, category) in d.open_carts.values() {
                    let rate =
                        Decimal::from_f64_retain(self.conversion_rate(&seg.1, category.as_deref()))
                            .unwrap_or_default()
                            .round_dp(3);
                    *mix.entry(seg.clone()).or_default() += rate;
                }
                (mix.values().copied().sum(), d.open_carts.len(), mix)
            }
            _ => return None,
        };
        let plant = self.routing.plants.get(&key.plant);
        let lead_ms = plant.map(|p| p.lead_time_hours).unwrap_or(24) * 3_600_000;
        let base = match key.state {
            RequestState::Released => self.config.released_priority,
            _ => self.config.forecast_priority,
        };
        let bonus = quantity
            .ceil()
            .to_string()
            .parse::<i32>()
            .unwrap_or(0)
            .clamp(0, 100);
        Some(BuildOrder {
            request_id: request_id(key, window),
            request_state: key.state,
            product_production_rule_id: key.product_id.clone(),
            material_definition_id: key.sku.clone(),
            quantity: quantity.round_dp(3),
            unit_of_measure: "EA".into(),
            parameters: key
                .options
                .iter()
                .map(|(id, value)| ProductionParameter {
                    id: id.clone(),
                    value: value.clone(),
                })
                .collect(),
            location: Location {
                site: key.plant.clone(),
                area: plant.map(|p| p.area.clone()).unwrap_or_default(),
                line: plant.map(|p| p.line.clone()).unwrap_or_default(),
            },
            earliest_start: window.end,
            latest_end: window.end.plus(lead_ms),
            priority: base + bonus,
            order_count: count as i32,
            segment_mix: mix
                .into_iter()
                .map(|((segment_id, segment_label), quantity)| SegmentShare {
                    segment_id,
                    segment_label,
                    quantity: quantity.round_dp(3),
                })
                .collect(),
            window_start: window.start,
            window_end: window.end,
            model_version: None,
        })
    }
}

fn rate_key(segment: &Segment, category: Option<&str>) -> (String, String) {
    (segment.1.clone(), category.unwrap_or("").to_owned())
}

/// The deterministic ProductionRequest id: the same plant, SKU, options, window and state
/// always give the same id, so a factory can upsert.
fn request_id(key: &BuildKey, window: Window) -> String {
    let mut h = Sha256::new();
    for part in [key.plant.as_str(), key.sku.as_str(), key.state.symbol()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (k, v) in &key.options {
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.update(window.start.0.to_be_bytes());
    h.update(window.end.0.to_be_bytes());
    format!("pr-{}", hex::encode(&h.finalize()[..12]))
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::samples;

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
        let mut p = samples::purchase();
        p.order_id = id.into();
        p.event_time = t;
        p.lines.truncate(1);
        p.lines[0].quantity = 1;
        p
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
