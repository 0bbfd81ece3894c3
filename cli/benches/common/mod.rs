//! What the benches share: the profiler's synthetic clicks.

use fitstream_contracts::records::{ClickEvent, ClickEventType};
use fitstream_contracts::{EventTime, samples};
use fitstream_simulator::catalogue::CATEGORIES;

/// 2026-01-05T00:00:00Z.
pub const START: i64 = 1_767_571_200_000;

/// Event `e` (0..4) of customer `c` of `customers`: three product views and an add-to-cart,
/// in one or two sessions, one of seven categories, four events per customer within one day.
pub fn click(c: usize, e: usize, customers: usize) -> ClickEvent {
    let n = e * customers + c;
    ClickEvent {
        event_id: format!("ev-{n}"),
        customer_id: format!("cust-{c:07}"),
        session_id: format!("se-{c}-{}", e / 2),
        event_type: if e % 4 == 3 {
            ClickEventType::AddToCart
        } else {
            ClickEventType::ProductView
        },
        product_id: Some(format!("prod-{:05}", n % 997)),
        sku: Some(format!("prod-{:05}", n % 997)),
        category: Some(CATEGORIES[(c + e / 3) % CATEGORIES.len()].to_owned()),
        region: "eu-west".into(),
        event_time: EventTime(START + (n as i64 * 86_400_000) / (4 * customers as i64)),
        ..samples::bare_click()
    }
}
