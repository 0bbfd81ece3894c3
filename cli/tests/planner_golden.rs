//! Golden scenarios of the planner: hand-written inputs through the planner's topology on
//! the embedded driver (one partition), and the exact records expected on every output topic
//! (abandonments, each plant's build orders, dead letters), reasoned from product.md and
//! semantics.md. Lead times are those of `deploy/plants.toml`.
//!
//! Request ids are pinned literals. The factory upserts by them, so the same plant, SKU,
//! options, window and state must give the same id across versions: a change of the hash
//! changes every id and fails here. Each literal is `pr-` and the first 12 bytes (hex) of
//! SHA-256 over `plant 0 sku 0 state 0`, then `name 1 value 0` per option (sorted by name),
//! then the window's start and end as big-endian i64 milliseconds; computed once outside the
//! product (Python's `hashlib`), and equal to what the planner emitted when they were pinned.
//!
//! Defaults: carts convert within 30 min (grace 5 min), build windows are 15 min tumbling with
//! 5 min grace, the conversion prior is Beta(1, 3) (0.25 before any outcome), a record waits
//! at most 1 min of event time for the buyer's segment.

use std::collections::BTreeMap;

use fitstream::config::FitstreamConfig;
use fitstream::embedded::{planner_app, to_json_line};
use fitstream_contracts::records::{
    ClickEvent, ClickEventType, Options, PurchaseEvent, PurchaseLine, RequestState,
    SegmentAssignment,
};
use fitstream_contracts::{Codec, EventTime, samples};
use fitstream_planner::planner::PlannerConfig;
use fitstream_planner::routing::Routing;
use fitstream_runtime::embedded::{Embedded, EmbeddedConfig};
use fitstream_runtime::watermark::WatermarkConfig;
use fitstream_runtime::window::Window;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// 2026-01-05T00:00:00Z, the start of a build window.
const T: i64 = 1_767_571_200_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// An order line: SKU, options, category, quantity.
type Line<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, i32);

struct Scenario {
    cfg: FitstreamConfig,
    codec: Codec,
    engine: Embedded,
}

fn options(pairs: &[(&str, &str)]) -> Options {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Scenario {
    fn new() -> Scenario {
        let mut cfg = FitstreamConfig::default();
        cfg.topics.partitions = 1;
        let codec = Codec::pinned();
        let app = planner_app(
            &cfg,
            PlannerConfig::default(),
            Routing::bundled(),
            codec.clone(),
        );
        let engine = Embedded::new(
            app.topology(),
            EmbeddedConfig {
                partitions: 1,
                output_partitions: 1,
                topic_partitions: Default::default(),
                watermark: WatermarkConfig {
                    advance_when_idle: false,
                    ..WatermarkConfig::default()
                },
                dead_letter_topic: cfg.topics.dead_letter.clone(),
                service: cfg.application("planner"),
            },
        );
        Scenario { cfg, codec, engine }
    }

    fn push<R: fitstream_contracts::records::Contract>(&mut self, topic: &str, key: &str, r: &R) {
        let bytes = self.codec.encode(topic, r).expect("encodes");
        self.engine.push(topic, Some(key.as_bytes()), &bytes);
    }

    /// A click with no product (the sample page view), of `customer` at `t`.
    fn click(&mut self, customer: &str, id: &str, kind: ClickEventType, t: i64) -> ClickEvent {
        ClickEvent {
            event_id: id.into(),
            customer_id: customer.into(),
            session_id: format!("s-{customer}"),
            event_type: kind,
            region: "eu-west".into(),
            event_time: EventTime(t),
            ..samples::bare_click()
        }
    }

    /// An add-to-cart of `sku` with its options (product = the SKU's first part).
    fn cart(
        &mut self,
        customer: &str,
        id: &str,
        sku: &str,
        opts: &[(&str, &str)],
        category: &str,
        t: i64,
    ) {
        let mut c = self.click(customer, id, ClickEventType::AddToCart, t);
        c.product_id = Some(sku.split('/').next().unwrap_or(sku).into());
        c.sku = Some(sku.into());
        c.options = options(opts);
        c.category = Some(category.into());
        c.price = Some(Decimal::new(1_990, 2));
        let topic = self.cfg.topics.clickstream.clone();
        self.push(&topic, customer, &c);
    }

    /// A page view: moves event time on.
    fn view(&mut self, customer: &str, id: &str, t: i64) {
        let c = self.click(customer, id, ClickEventType::PageView, t);
        let topic = self.cfg.topics.clickstream.clone();
        self.push(&topic, customer, &c);
    }

    fn order(&self, customer: &str, id: &str, lines: &[Line<'_>], t: i64) -> PurchaseEvent {
        PurchaseEvent {
            order_id: id.into(),
            customer_id: customer.into(),
            session_id: format!("s-{customer}"),
            event_time: EventTime(t),
            lines: lines
                .iter()
                .map(|(sku, opts, category, quantity)| PurchaseLine {
                    product_id: sku.split('/').next().unwrap_or(sku).into(),
                    sku: (*sku).into(),
                    options: options(opts),
                    category: Some((*category).into()),
                    quantity: *quantity,
                    unit_price: Decimal::new(1_990, 2),
                })
                .collect(),
            ..samples::purchase()
        }
    }

    /// A purchase with these lines.
    fn buy(&mut self, customer: &str, id: &str, lines: &[Line<'_>], t: i64) {
        let o = self.order(customer, id, lines, t);
        let topic = self.cfg.topics.purchases.clone();
        self.push(&topic, customer, &o);
    }

    fn assign(&mut self, customer: &str, segment: i32, label: &str, version: i64, t: i64) {
        let a = SegmentAssignment {
            customer_id: customer.into(),
            segment_id: segment,
            segment_label: label.into(),
            model_version: version,
            event_time: EventTime(t),
            ..samples::assignment()
        };
        let topic = self.cfg.topics.segment_assignments.clone();
        self.push(&topic, customer, &a);
    }

    /// The end of the input; every output record as (topic, key, value), by topic, sorted.
    fn finish(mut self) -> BTreeMap<String, Vec<Value>> {
        self.engine.finish().expect("every store checkpoints");
        let mut by_topic: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in self.engine.drain() {
            let mut line = to_json_line(&self.codec, &self.cfg, &p);
            if let Some(h) = line.get_mut("headers").and_then(Value::as_object_mut) {
                assert!(h.remove("fitstream.error.time").is_some());
            }
            by_topic.entry(p.topic.clone()).or_default().push(line);
        }
        for v in by_topic.values_mut() {
            v.sort_by_key(Value::to_string);
        }
        by_topic
    }
}

fn berlin(s: &Scenario) -> String {
    s.cfg.topics.build_orders_topic("berlin")
}

fn lyon(s: &Scenario) -> String {
    s.cfg.topics.build_orders_topic("lyon")
}

/// A build order as it must appear on `topic` (`plant` with its area, line and lead time),
/// with its pinned request id.
#[allow(clippy::too_many_arguments)]
fn build_order(
    request_id: &str,
    topic: &str,
    plant: (&str, &str, &str, i64),
    sku: &str,
    opts: &[(&str, &str)],
    state: RequestState,
    window_start: i64,
    quantity: &str,
    order_count: i32,
    priority: i32,
    mix: &[(Option<i32>, &str, &str)],
    model_version: Option<i64>,
) -> Value {
    let (site, area, line, lead_hours) = plant;
    let product = sku.split('/').next().unwrap_or(sku);
    let window = Window {
        start: EventTime(window_start),
        end: EventTime(window_start + 15 * MIN),
    };
    json!({
        "topic": topic,
        "partition": 0,
        "key": sku,
        "timestamp": window.end.0,
        "value": {
            "request_id": request_id,
            "request_state": state.symbol(),
            "product_production_rule_id": product,
            "material_definition_id": sku,
            "quantity": quantity,
            "unit_of_measure": "EA",
            "parameters": opts.iter().map(|(k, v)| json!({"id": k, "value": v})).collect::<Vec<_>>(),
            "location": {"site": site, "area": area, "line": line},
            "earliest_start": window.end.0,
            "latest_end": window.end.0 + lead_hours * HOUR,
            "priority": priority,
            "order_count": order_count,
            "segment_mix": mix.iter().map(|(id, label, q)| json!({"segment_id": id, "segment_label": label, "quantity": q})).collect::<Vec<_>>(),
            "window_start": window.start.0,
            "window_end": window.end.0,
            "model_version": model_version,
        }
    })
}

const BERLIN: (&str, &str, &str, i64) = ("berlin", "filling", "B1", 24);
const LYON: (&str, &str, &str, i64) = ("lyon", "assembly", "L2", 48);

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(Value::to_string);
    v
}

fn assert_topics(got: &BTreeMap<String, Vec<Value>>, want: BTreeMap<String, Vec<Value>>) {
    let want: BTreeMap<String, Vec<Value>> =
        want.into_iter().map(|(k, v)| (k, sorted(v))).collect();
    for (topic, records) in &want {
        let have = got.get(topic).cloned().unwrap_or_default();
        assert_eq!(
            have.len(),
            records.len(),
            "{topic}: got {}",
            serde_json::to_string_pretty(&have).unwrap_or_default()
        );
        for (h, w) in have.iter().zip(records) {
            assert_eq!(
                h,
                w,
                "{topic}:\n got  {}\n want {}",
                serde_json::to_string_pretty(h).unwrap_or_default(),
                serde_json::to_string_pretty(w).unwrap_or_default()
            );
        }
    }
    let extra: Vec<&String> = got.keys().filter(|t| !want.contains_key(*t)).collect();
    assert!(extra.is_empty(), "records on unexpected topics: {got:?}");
}

/// A cart converts when the purchase comes exactly 30 min later, not 1 ms after that. The
/// converting purchase comes after the cart's build window closed, so both carts stay in
/// that window's forecast; the abandoned one is also an audience record.
#[test]
fn a_cart_converted_at_the_edge_of_its_window_and_one_ms_too_late() {
    let mut s = Scenario::new();
    let sku = "p-10/rose";
    let rose: &[(&str, &str)] = &[("colour", "rose")];
    s.cart("a", "e-a", sku, rose, "skincare", T + MIN);
    s.cart("b", "e-b", sku, rose, "skincare", T + MIN);
    s.buy("a", "o-a", &[(sku, rose, "skincare", 1)], T + 31 * MIN);
    s.buy("b", "o-b", &[(sku, rose, "skincare", 1)], T + 31 * MIN + 1);
    let orders = berlin(&s);
    let abandonments = s.cfg.topics.cart_abandonment.clone();
    let got = s.finish();
    assert_topics(
        &got,
        BTreeMap::from([
            (
                abandonments.clone(),
                vec![json!({
                    "topic": abandonments, "partition": 0, "key": "b",
                    "timestamp": T + 31 * MIN,
                    "value": {
                        "customer_id": "b", "session_id": "s-b", "product_id": "p-10",
                        "sku": sku, "category": "skincare", "segment_id": null,
                        "segment_label": "unassigned", "carted_at": T + MIN,
                        "window_closed_at": T + 31 * MIN, "source_event_id": "e-b",
                    }
                })],
            ),
            (
                orders.clone(),
                vec![
                    // Two open carts at the close of [T, T+15m), 0.25 each (no outcome known
                    // before T+20m): priority 200 + ceil(0.5).
                    build_order(
                        "pr-0c9539cf1ce1a4161a3e3721",
                        &orders,
                        BERLIN,
                        sku,
                        rose,
                        RequestState::Forecast,
                        T,
                        "0.500",
                        2,
                        201,
                        &[(None, "unassigned", "0.500")],
                        None,
                    ),
                    // Both purchases in [T+30m, T+45m): 2 units from 2 orders.
                    build_order(
                        "pr-9d122b3db02d78b9d331134f",
                        &orders,
                        BERLIN,
                        sku,
                        rose,
                        RequestState::Released,
                        T + 30 * MIN,
                        "2.000",
                        2,
                        602,
                        &[(None, "unassigned", "2.000")],
                        None,
                    ),
                ],
            ),
        ]),
    );
}

/// A duplicate purchase counts once; a purchase whose build window closed (its end plus the
/// grace is behind the watermark) goes to the dead-letter topic with the reason, untouched.
/// The converting purchase comes before the window closed: no forecast is left, and no
/// abandonment.
#[test]
fn a_duplicate_purchase_and_a_purchase_late_beyond_grace() {
    let mut s = Scenario::new();
    let none: &[(&str, &str)] = &[];
    s.cart("c", "e-c", "p-20", none, "makeup", T + MIN);
    s.buy("c", "o-1", &[("p-20", none, "makeup", 1)], T + 5 * MIN);
    s.buy("c", "o-1", &[("p-20", none, "makeup", 1)], T + 5 * MIN);
    // Both inputs move on to T+40m (the watermark is their minimum): [T, T+15m) closes.
    s.view("c", "e-view", T + 40 * MIN);
    s.buy("c", "o-3", &[("p-20", none, "makeup", 1)], T + 40 * MIN);
    let late = s.order("d", "o-2", &[("p-20", none, "makeup", 1)], T + 10 * MIN);
    let purchases = s.cfg.topics.purchases.clone();
    let late_bytes = s.codec.encode(&purchases, &late).expect("encodes");
    s.buy("d", "o-2", &[("p-20", none, "makeup", 1)], T + 10 * MIN);
    let orders = lyon(&s);
    let dead = s.cfg.topics.dead_letter.clone();
    let service = s.cfg.application("planner");
    let got = s.finish();
    assert_topics(
        &got,
        BTreeMap::from([
            (
                orders.clone(),
                vec![
                    build_order(
                        "pr-2ce1f17abf8e5778271851b6",
                        &orders,
                        LYON,
                        "p-20",
                        none,
                        RequestState::Released,
                        T,
                        "1.000",
                        1,
                        601,
                        &[(None, "unassigned", "1.000")],
                        None,
                    ),
                    build_order(
                        "pr-b99ff2cf83ec16aea9ea71dd",
                        &orders,
                        LYON,
                        "p-20",
                        none,
                        RequestState::Released,
                        T + 30 * MIN,
                        "1.000",
                        1,
                        601,
                        &[(None, "unassigned", "1.000")],
                        None,
                    ),
                ],
            ),
            (
                dead.clone(),
                vec![json!({
                    "topic": dead, "partition": 0, "key": "d", "timestamp": null,
                    "headers": {
                        "fitstream.error.reason": "late",
                        "fitstream.error.message": "purchase at 2026-01-05T00:10:00.000Z belongs to build window [2026-01-05T00:00:00.000Z, 2026-01-05T00:15:00.000Z) closed at watermark 2026-01-05T00:40:00.000Z",
                        "fitstream.service": service,
                        "fitstream.source.topic": purchases,
                        "fitstream.source.partition": "0",
                        // The fourth record of the purchases partition (o-1, o-1, o-3, o-2).
                        "fitstream.source.offset": "3",
                    },
                    "value": {"value_hex": hex::encode(&late_bytes)},
                })],
            ),
        ]),
    );
}

/// Identical option sets of one SKU aggregate; different ones are different requests (with
/// their own ids), both keyed by the SKU.
#[test]
fn two_option_sets_of_one_sku_are_two_requests() {
    let mut s = Scenario::new();
    let red: &[(&str, &str)] = &[("engraving", "none"), ("colour", "red")];
    let blue: &[(&str, &str)] = &[("colour", "blue"), ("engraving", "none")];
    s.buy("g", "o-g", &[("p-30", red, "fragrance", 1)], T + 2 * MIN);
    s.buy("h", "o-h", &[("p-30", blue, "fragrance", 1)], T + 3 * MIN);
    s.buy("i", "o-i", &[("p-30", red, "fragrance", 2)], T + 4 * MIN);
    let orders = lyon(&s);
    let got = s.finish();
    // Options come out sorted by name.
    let red_sorted: &[(&str, &str)] = &[("colour", "red"), ("engraving", "none")];
    assert_topics(
        &got,
        BTreeMap::from([(
            orders.clone(),
            vec![
                build_order(
                    "pr-773f248323bb48fc729e492a",
                    &orders,
                    LYON,
                    "p-30",
                    red_sorted,
                    RequestState::Released,
                    T,
                    "3.000",
                    2,
                    603,
                    &[(None, "unassigned", "3.000")],
                    None,
                ),
                build_order(
                    "pr-de6cc8c568777146d29be503",
                    &orders,
                    LYON,
                    "p-30",
                    blue,
                    RequestState::Released,
                    T,
                    "1.000",
                    1,
                    601,
                    &[(None, "unassigned", "1.000")],
                    None,
                ),
            ],
        )]),
    );
    let ids: Vec<&str> = got[&orders]
        .iter()
        .filter_map(|v| v["value"]["request_id"].as_str())
        .collect();
    assert_ne!(ids[0], ids[1]);
}

/// The buyer's segment is the assignment valid at the purchase's event time: none before the
/// first assignment ("unassigned"), not a later one. Abandonments and forecasts carry the
/// segment of the cart's time; the model version is the newest behind the request's segments.
#[test]
fn purchases_and_carts_take_the_segment_valid_at_their_event_time() {
    let mut s = Scenario::new();
    let none: &[(&str, &str)] = &[];
    let loyal = "loyal high spenders";
    s.buy("e", "o-e1", &[("p-40", none, "skincare", 1)], T + MIN);
    s.assign("e", 4, loyal, 3, T + 2 * MIN);
    s.buy("e", "o-e2", &[("p-40", none, "skincare", 1)], T + 3 * MIN);
    s.buy("f", "o-f", &[("p-40", none, "skincare", 1)], T + 3 * MIN);
    s.cart("e", "e-cart", "p-41", none, "skincare", T + 4 * MIN);
    s.assign("e", 5, "at risk", 4, T + 10 * MIN);
    let orders = berlin(&s);
    let abandonments = s.cfg.topics.cart_abandonment.clone();
    let got = s.finish();
    assert_topics(
        &got,
        BTreeMap::from([
            (
                abandonments.clone(),
                vec![json!({
                    "topic": abandonments, "partition": 0, "key": "e",
                    "timestamp": T + 34 * MIN,
                    "value": {
                        "customer_id": "e", "session_id": "s-e", "product_id": "p-41",
                        "sku": "p-41", "category": "skincare", "segment_id": 4,
                        "segment_label": loyal, "carted_at": T + 4 * MIN,
                        "window_closed_at": T + 34 * MIN, "source_event_id": "e-cart",
                    }
                })],
            ),
            (
                orders.clone(),
                vec![
                    build_order(
                        "pr-edee3e5b3fd5010a531d4a14",
                        &orders,
                        BERLIN,
                        "p-40",
                        none,
                        RequestState::Released,
                        T,
                        "3.000",
                        3,
                        603,
                        &[(None, "unassigned", "2.000"), (Some(4), loyal, "1.000")],
                        Some(3),
                    ),
                    build_order(
                        "pr-7c22af897aa8cae97c2426f6",
                        &orders,
                        BERLIN,
                        "p-41",
                        none,
                        RequestState::Forecast,
                        T,
                        "0.250",
                        1,
                        201,
                        &[(Some(4), loyal, "0.250")],
                        Some(3),
                    ),
                ],
            ),
        ]),
    );
}
