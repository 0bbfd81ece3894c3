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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use fitstream_contracts::EventTime;
use fitstream_contracts::records::*;
use fitstream_runtime::asof::{AsOf, AsOfJoin};
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
    /// How long (event time) a cart or purchase waits for the segment-assignment table to
    /// reach its time before it joins with what is there, ms (default 1 min). At most the
    /// build-window grace, so that a waiting purchase is never late for its window.
    pub segment_grace_ms: i64,
    /// How long a customer's older segment versions are kept, ms (default 24 h).
    pub segment_retention_ms: i64,
    /// Routing file; the bundled `deploy/plants.toml` when absent.
    pub routing: Option<std::path::PathBuf>,
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
            segment_grace_ms: 60_000,
            segment_retention_ms: 24 * 3_600_000,
            routing: None,
        }
    }
}

impl PlannerConfig {
    /// Settings that cannot work together.
    pub fn check(&self) -> Result<(), String> {
        if self.segment_grace_ms < 0 || self.segment_grace_ms > self.build_grace_ms {
            return Err(format!(
                "planner.segment_grace_ms ({}) must be between 0 and planner.build_grace_ms ({}): \
                 a purchase waiting for its segment longer than its window's grace would be late",
                self.segment_grace_ms, self.build_grace_ms
            ));
        }
        if self.segment_grace_ms > self.cart_window_ms + self.cart_grace_ms {
            return Err(format!(
                "planner.segment_grace_ms ({}) must be at most the cart window plus its grace",
                self.segment_grace_ms
            ));
        }
        Ok(())
    }
}

/// What the planner emits to other teams.
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

/// What a build order is for: one request per key and window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BuildKey {
    /// Plant.
    pub plant: String,
    /// SKU.
    pub sku: String,
    /// Product.
    pub product_id: String,
    /// Options, sorted by name.
    pub options: Vec<(String, String)>,
    /// Released or Forecast.
    pub state: RequestState,
}

impl BuildKey {
    /// The repartition key: plant and SKU.
    pub fn partition_key(&self) -> Vec<u8> {
        format!("{}|{}", self.plant, self.sku).into_bytes()
    }
}

/// A customer segment: id (None = unassigned) and label.
pub type Segment = (Option<i32>, String);

/// A version of a customer's segment in the planner's table: the segment and the version of
/// the model that placed the customer there.
pub type SegmentVersion = (Segment, i64);

/// What the `carts` stage tells the `windows` stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DemandEvent {
    /// An add-to-cart: forecast demand until converted.
    Cart {
        /// Event id of the add-to-cart.
        cart_id: String,
        /// When it was carted.
        t: EventTime,
        /// Its build key (state Forecast).
        key: BuildKey,
        /// Buyer's segment.
        segment: Segment,
        /// Version of the model that placed the buyer in it.
        model_version: Option<i64>,
        /// Category.
        category: Option<String>,
    },
    /// A cart met a purchase: no longer forecast demand of its window, if the purchase came
    /// before the window closed in event time.
    Converted {
        /// Event id of the add-to-cart.
        cart_id: String,
        /// When it was carted.
        t: EventTime,
        /// Its build key (state Forecast).
        key: BuildKey,
        /// When the purchase was made.
        purchase_t: EventTime,
    },
    /// A purchase line: released demand.
    Released {
        /// Order.
        order_id: String,
        /// When it was ordered.
        t: EventTime,
        /// Build key (state Released).
        key: BuildKey,
        /// Units.
        units: i64,
        /// Buyer's segment.
        segment: Segment,
        /// Version of the model that placed the buyer in it.
        model_version: Option<i64>,
    },
    /// A cart's join closed (broadcast): converted or abandoned.
    Outcome {
        /// Event time at which the cart's join closed (carted at + window + grace).
        closed_at: EventTime,
        /// Segment label.
        segment: String,
        /// Category.
        category: String,
        /// Whether it converted.
        converted: bool,
    },
}

/// Counters for reconciliation (shared by every task of one planner).
#[derive(Debug, Default)]
pub struct PlannerCounters {
    /// Carts that met a purchase.
    pub conversions: AtomicU64,
    /// Carts closed without one.
    pub abandonments: AtomicU64,
    /// Duplicates dropped.
    pub duplicates: AtomicU64,
    /// Late records.
    pub late: AtomicU64,
    /// Lines routed to the default plant.
    pub unrouted: AtomicU64,
    /// Released units emitted in build orders.
    pub released_units: AtomicI64,
    /// Build orders emitted.
    pub build_orders: AtomicU64,
}

/// A snapshot of the counters.
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
    /// Lines routed to the default plant.
    pub unrouted: u64,
    /// Released units emitted in build orders.
    pub released_units: i64,
    /// Build orders emitted.
    pub build_orders: u64,
}

impl PlannerCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> PlannerStats {
        PlannerStats {
            conversions: self.conversions.load(Ordering::Relaxed),
            abandonments: self.abandonments.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            unrouted: self.unrouted.load(Ordering::Relaxed),
            released_units: self.released_units.load(Ordering::Relaxed),
            build_orders: self.build_orders.load(Ordering::Relaxed),
        }
    }
}

fn unassigned() -> Segment {
    (None, "unassigned".to_owned())
}

/// What the join keeps of an add-to-cart (no prices: state stays small and bincode-safe).
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

/// The `carts` stage of one customer partition.
#[derive(Serialize, Deserialize)]
pub struct CartStage {
    #[serde(skip)]
    config: PlannerConfig,
    #[serde(skip)]
    routing: Arc<Routing>,
    #[serde(skip)]
    counters: Arc<PlannerCounters>,
    join: IntervalJoin<(String, String), Cart, ()>,
    /// Carts and purchases joined as of their event time with the segment assignments
    /// (customer -> segment versions; the versions are changelogged key by key).
    segments: AsOfJoin<String, Held, SegmentVersion>,
    /// The latest assignment time seen (the table's watermark is 1 ms before it).
    table_max: EventTime,
    /// Changelogged entry by entry (24 h of ids is too large for a snapshot per commit).
    #[serde(skip)]
    clicks_seen: Deduplicator,
    #[serde(skip)]
    orders_seen: Deduplicator,
    watermark: EventTime,
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
            table_max: EventTime::MIN,
            clicks_seen: Deduplicator::new(config.dedup_retention_ms),
            orders_seen: Deduplicator::new(config.dedup_retention_ms),
            watermark: EventTime::MIN,
            config,
            routing,
            counters,
        }
    }

    /// Puts back state from a snapshot, keeping this stage's configuration.
    pub fn restore_from(&mut self, snapshot: CartStage) {
        self.join = snapshot.join;
        self.watermark = snapshot.watermark;
        self.table_max = snapshot.table_max;
        // Versions are changelogged key by key: keep those restored so far.
        let mut segments = snapshot.segments;
        for (k, v) in self.segments.take_changed_all() {
            segments.restore_versions(k, v);
        }
        self.segments = segments;
    }

    /// What this stage may still emit demand for: the earliest cart or purchase waiting for
    /// its segment, else `watermark`.
    pub fn output_watermark(&self, watermark: EventTime) -> EventTime {
        self.segments
            .earliest_waiting()
            .map_or(watermark, |t| t.min(watermark))
    }

    /// Segment versions changed since the last call (customer, versions; none = forget).
    pub fn take_segment_changes(&mut self) -> Vec<(String, Vec<(EventTime, SegmentVersion)>)> {
        self.segments.take_changed()
    }

    /// Puts back one customer's segment versions from the changelog.
    pub fn restore_segments(
        &mut self,
        customer: String,
        versions: Vec<(EventTime, SegmentVersion)>,
    ) {
        self.segments.restore_versions(customer, versions);
    }

    /// The deduplication memories (clicks, orders), for their entry-by-entry changelog.
    pub fn dedup_mut(&mut self) -> (&mut Deduplicator, &mut Deduplicator) {
        (&mut self.clicks_seen, &mut self.orders_seen)
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
        w.is_closed(self.watermark, self.config.build_grace_ms)
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
        if self.join.is_closed_left(t, self.watermark) {
            self.counters.late.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::Late(format!(
                "add-to-cart at {t} is closed at watermark {} (window {} min + grace {} min)",
                self.watermark,
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
                w.start, w.end, self.watermark
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
        self.table_max = self.table_max.max(a.event_time);
        self.segments.table(
            a.customer_id,
            a.event_time,
            ((Some(a.segment_id), a.segment_label), a.model_version),
        );
        let mut joined = Vec::new();
        self.segments
            .table_advance(self.table_max.minus(1), &mut joined);
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
                    if let Err(late) = self.join.left(key, t, cart, self.watermark, &mut events) {
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
                            self.watermark,
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
        if watermark <= self.watermark {
            return;
        }
        // Those that waited a grace for their segment go on first, at the old watermark.
        let mut joined = Vec::new();
        self.segments.stream_advance(watermark, &mut joined);
        self.joined(joined, demand, out);
        self.watermark = watermark;
        let mut events = Vec::new();
        self.join.advance(watermark, &mut events);
        self.handle(events, demand, out);
        self.clicks_seen.expire(watermark);
        self.orders_seen.expire(watermark);
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Demand {
    units: i64,
    orders: BTreeSet<String>,
    mix: BTreeMap<Segment, i64>,
    /// Carts not converted (yet): cart id -> (segment, category).
    open_carts: BTreeMap<String, (Segment, Option<String>)>,
    /// The newest segment-model version behind the segments of this demand.
    model_version: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct WindowSnapshot {
    demand: Vec<(Window, BuildKey, Demand)>,
    pending_outcomes: BTreeMap<(EventTime, u64), (String, String, bool)>,
    rates: BTreeMap<(String, String), (u64, u64)>,
    seq: u64,
    watermark: EventTime,
}

/// The `windows` stage of one (plant, SKU) partition.
pub struct WindowStage {
    config: PlannerConfig,
    routing: Arc<Routing>,
    counters: Arc<PlannerCounters>,
    demand: WindowedAggregate<BuildKey, Demand>,
    pending_outcomes: BTreeMap<(EventTime, u64), (String, String, bool)>,
    rates: BTreeMap<(String, String), (u64, u64)>,
    seq: u64,
    watermark: EventTime,
}

impl WindowStage {
    /// Empty state.
    pub fn new(
        config: PlannerConfig,
        routing: Arc<Routing>,
        counters: Arc<PlannerCounters>,
    ) -> WindowStage {
        WindowStage {
            demand: WindowedAggregate::new(config.build_window.clone(), config.build_grace_ms),
            pending_outcomes: BTreeMap::new(),
            rates: BTreeMap::new(),
            seq: 0,
            watermark: EventTime::MIN,
            config,
            routing,
            counters,
        }
    }

    /// The state as bytes (bincode).
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let snap = WindowSnapshot {
            demand: self
                .demand
                .iter()
                .map(|(w, k, d)| (w, k.clone(), d.clone()))
                .collect(),
            pending_outcomes: self.pending_outcomes.clone(),
            rates: self.rates.clone(),
            seq: self.seq,
            watermark: self.watermark,
        };
        bincode::serialize(&snap).map_err(|e| e.to_string())
    }

    /// Puts back state from [`WindowStage::snapshot`] bytes.
    pub fn restore_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        let snap: WindowSnapshot = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
        self.demand =
            WindowedAggregate::new(self.config.build_window.clone(), self.config.build_grace_ms);
        for (w, k, d) in snap.demand {
            self.demand.restore(w, k, d);
        }
        self.pending_outcomes = snap.pending_outcomes;
        self.rates = snap.rates;
        self.seq = snap.seq;
        self.watermark = snap.watermark;
        Ok(())
    }

    /// Open aggregates and pending outcomes.
    pub fn len(&self) -> usize {
        self.demand.len() + self.pending_outcomes.len() + self.rates.len()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn window_of(&self, t: EventTime) -> Option<Window> {
        self.config.build_window.windows(t).first().copied()
    }

    /// The watermark this stage has seen.
    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// One demand event. Returns false when it arrived after its window closed.
    pub fn demand(&mut self, event: DemandEvent) -> bool {
        let wm = self.watermark;
        match event {
            DemandEvent::Cart {
                cart_id,
                t,
                key,
                segment,
                model_version,
                category,
            } => self
                .demand
                .add(&key, t, wm, Demand::default, |d| {
                    d.open_carts
                        .insert(cart_id.clone(), (segment.clone(), category.clone()));
                    d.model_version = d.model_version.max(model_version);
                })
                .is_ok(),
            DemandEvent::Converted {
                cart_id,
                t,
                key,
                purchase_t,
            } => {
                // Event-time rule: only a purchase before the window's close threshold takes
                // the cart out of its forecast. (Such a purchase always arrives before the
                // close; a later one may or may not, depending on how upstream tasks' markers
                // interleave, so it must not count.)
                let grace = self.config.build_grace_ms;
                if let Some(w) = self.window_of(t)
                    && purchase_t < w.end.plus(grace)
                    && let Some(d) = self.demand.get_mut(w, &key)
                {
                    d.open_carts.remove(&cart_id);
                }
                true
            }
            DemandEvent::Released {
                order_id,
                t,
                key,
                units,
                segment,
                model_version,
            } => self
                .demand
                .add(&key, t, wm, Demand::default, |d| {
                    d.units += units;
                    d.orders.insert(order_id.clone());
                    *d.mix.entry(segment.clone()).or_default() += units;
                    d.model_version = d.model_version.max(model_version);
                })
                .is_ok(),
            DemandEvent::Outcome {
                closed_at,
                segment,
                category,
                converted,
            } => {
                self.seq += 1;
                self.pending_outcomes
                    .insert((closed_at, self.seq), (segment, category, converted));
                true
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

    /// The watermark moved: emits every closed window.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<Output>) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        let closed = self.demand.close(watermark);
        for (window, key, demand) in closed {
            // Learn from outcomes known for certain at this window's close.
            let threshold = window.end.plus(self.config.build_grace_ms);
            self.fold_outcomes(threshold);
            if let Some(order) = self.build_order(window, &key, &demand) {
                if key.state == RequestState::Released {
                    self.counters
                        .released_units
                        .fetch_add(demand.units, Ordering::Relaxed);
                }
                self.counters.build_orders.fetch_add(1, Ordering::Relaxed);
                out.push(Output::BuildOrder {
                    plant: key.plant.clone(),
                    order,
                });
            }
        }
    }

    /// Counts pending outcomes that closed before `threshold` into the rates.
    fn fold_outcomes(&mut self, threshold: EventTime) {
        while let Some(entry) = self.pending_outcomes.first_entry() {
            if entry.key().0 >= threshold {
                break;
            }
            let (segment, category, converted) = entry.remove();
            let r = self.rates.entry((segment, category)).or_default();
            if converted {
                r.0 += 1;
            } else {
                r.1 += 1;
            }
        }
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
            model_version: d.model_version,
        })
    }
}

/// The deterministic ProductionRequest id: the same plant, SKU, options, window and state
/// always give the same id, so a factory can upsert.
pub fn request_id(key: &BuildKey, window: Window) -> String {
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
