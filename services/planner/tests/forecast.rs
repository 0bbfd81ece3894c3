//! The forecast after learning: the quantity of a Forecast build order is the sum, over the
//! window's open carts, of the conversion rate of the cart's (segment, category), smoothed by
//! the Beta(alpha, beta) prior (default Beta(1, 3)) and rounded to 3 decimals per cart:
//!
//! `rate = (conversions + alpha) / (conversions + abandonments + alpha + beta)`
//!
//! counting only outcomes whose cart join closed (carted at + 30 min + 5 min grace) before the
//! window's end plus its 5 min grace. Expected values are worked out by hand below.

use fitstream_contracts::EventTime;
use fitstream_contracts::records::{
    BuildOrder, ClickEvent, Options, PurchaseEvent, PurchaseLine, RequestState,
};
use fitstream_contracts::samples;
use fitstream_planner::planner::{Output, Planner, PlannerConfig};
use fitstream_planner::routing::Routing;

/// 2026-01-05T00:00:00Z, the start of a build window.
const T: i64 = 1_767_571_200_000;
const MIN: i64 = 60_000;

/// An add-to-cart of `sku` (no options) in `category` by `customer` at `t`.
fn cart(customer: &str, sku: &str, category: &str, t: i64) -> ClickEvent {
    ClickEvent {
        event_id: format!("cart-{customer}-{t}"),
        customer_id: customer.into(),
        session_id: format!("s-{customer}"),
        product_id: Some(sku.into()),
        sku: Some(sku.into()),
        options: Options::new(),
        category: Some(category.into()),
        event_time: EventTime(t),
        ..samples::click()
    }
}

/// A purchase of one unit of `sku` by `customer` at `t`.
fn buy(customer: &str, sku: &str, category: &str, t: i64) -> PurchaseEvent {
    PurchaseEvent {
        order_id: format!("o-{customer}-{t}"),
        customer_id: customer.into(),
        session_id: format!("s-{customer}"),
        event_time: EventTime(t),
        lines: vec![PurchaseLine {
            product_id: sku.into(),
            sku: sku.into(),
            options: Options::new(),
            category: Some(category.into()),
            quantity: 1,
            ..samples::purchase_line()
        }],
        ..samples::purchase()
    }
}

/// Forecast orders as (window start - T in minutes, SKU, quantity, carts, priority, mix), the
/// decimals with 3 places as on the wire.
fn forecasts(out: &[Output]) -> Vec<(i64, String, String, i32, i32, String)> {
    let mut v: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::BuildOrder { order, .. } if order.request_state == RequestState::Forecast => {
                Some(order)
            }
            _ => None,
        })
        .map(|o: &BuildOrder| {
            let mix: Vec<String> = o
                .segment_mix
                .iter()
                .map(|s| format!("{:?} {} {:.3}", s.segment_id, s.segment_label, s.quantity))
                .collect();
            (
                (o.window_start.0 - T) / MIN,
                o.material_definition_id.clone(),
                format!("{:.3}", o.quantity),
                o.order_count,
                o.priority,
                mix.join(", "),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_forecast_after_learning_weights_open_carts_by_the_smoothed_rate() {
    let mut p = Planner::new(PlannerConfig::default(), Routing::bundled());
    let mut out = Vec::new();
    let click = |p: &mut Planner, out: &mut Vec<Output>, c: ClickEvent| {
        p.click(c, out).expect("an on-time cart");
    };

    // Learning. Skincare (p-40, Berlin): a1..a4 cart at T+1m; a1, a2, a3 buy at T+10m
    // (converted), a4 never does (abandoned); their joins close at T+1m+35m = T+36m. a6 carts
    // at T+14m and is abandoned at T+49m; a5 carts at T+15m, abandoned at T+50m. Makeup (p-20,
    // Lyon): m1, m2 cart at T+1m and never buy (abandoned at T+36m).
    for c in ["a1", "a2", "a3", "a4"] {
        click(&mut p, &mut out, cart(c, "p-40", "skincare", T + MIN));
    }
    for c in ["m1", "m2"] {
        click(&mut p, &mut out, cart(c, "p-20", "makeup", T + MIN));
    }
    p.advance(EventTime(T + 5 * MIN), &mut out);
    for c in ["a1", "a2", "a3"] {
        p.purchase(buy(c, "p-40", "skincare", T + 10 * MIN), &mut out)
            .expect("an on-time purchase");
    }
    p.advance(EventTime(T + 12 * MIN), &mut out);
    click(
        &mut p,
        &mut out,
        cart("a6", "p-40", "skincare", T + 14 * MIN),
    );
    click(
        &mut p,
        &mut out,
        cart("a5", "p-40", "skincare", T + 15 * MIN),
    );
    // [T, T+15m) closes at T+20m; [T+15m, T+30m) at T+35m.
    p.advance(EventTime(T + 20 * MIN), &mut out);

    // To forecast: f1, f2 cart p-40 at T+31m and T+32m, f3 carts p-20 at T+33m, in
    // [T+30m, T+45m), which closes at T+50m. None of them converts.
    click(
        &mut p,
        &mut out,
        cart("f1", "p-40", "skincare", T + 31 * MIN),
    );
    click(
        &mut p,
        &mut out,
        cart("f2", "p-40", "skincare", T + 32 * MIN),
    );
    click(&mut p, &mut out, cart("f3", "p-20", "makeup", T + 33 * MIN));
    p.advance(EventTime(T + 40 * MIN), &mut out);
    p.advance(EventTime(T + 50 * MIN), &mut out);

    let unassigned = "None unassigned";
    assert_eq!(
        forecasts(&out),
        vec![
            // [T, T+15m) at T+20m: no outcome closed before T+20m, the prior alone:
            // (0 + 1) / (0 + 1 + 3) = 0.25 per open cart. p-40: a1..a3 converted at T+10m,
            // before the close, so a4 and a6 are open: 0.500, priority 200 + ceil(0.5) = 201.
            (
                0,
                "p-20".into(),
                "0.500".into(),
                2,
                201,
                format!("{unassigned} 0.500")
            ),
            (
                0,
                "p-40".into(),
                "0.500".into(),
                2,
                201,
                format!("{unassigned} 0.500")
            ),
            // [T+15m, T+30m) at T+35m: still nothing closed before T+35m (the first outcomes
            // close at T+36m): a5 at 0.250.
            (
                15,
                "p-40".into(),
                "0.250".into(),
                1,
                201,
                format!("{unassigned} 0.250")
            ),
            // [T+30m, T+45m) at T+50m, outcomes closed before T+50m: makeup 0 conversions
            // and 2 abandonments (m1, m2): (0 + 1) / (2 + 1 + 3) = 1/6 = 0.1666.. -> 0.167
            // for f3, priority 200 + ceil(0.167) = 201.
            (
                30,
                "p-20".into(),
                "0.167".into(),
                1,
                201,
                format!("{unassigned} 0.167")
            ),
            // Skincare 3 conversions (a1..a3) and 2 abandonments (a4 at T+36m, a6 at T+49m;
            // a5 closes at T+50m, not before): (3 + 1) / (5 + 1 + 3) = 4/9 = 0.444.. -> 0.444
            // per cart, f1 and f2: 0.888 (the raw rate 3/5 would give 1.200, the prior alone
            // 0.500).
            (
                30,
                "p-40".into(),
                "0.888".into(),
                2,
                201,
                format!("{unassigned} 0.888")
            ),
        ]
    );
}
