//! Content rules for input records. A record that breaks one goes to the dead-letter topic
//! with reason `validation` and the rule's message.

use rust_decimal::Decimal;

use crate::records::{ClickEvent, ClickEventType, PurchaseEvent};
use crate::time::EventTime;

/// Longest id (event, order, customer; a session id, which may be empty) accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest SKU or product id accepted, in bytes.
pub const MAX_SKU_LEN: usize = 64;
/// Most options on one product.
pub const MAX_OPTIONS: usize = 32;
/// Longest option name or value, category, channel or region accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// Longest search query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 1_024;
/// Most lines in one order.
pub const MAX_LINES: usize = 500;
/// Most units on one order line.
pub const MAX_QUANTITY: i32 = 100_000;
/// Latest event time accepted in any case: 2100-01-01T00:00:00Z. The runtime applies the
/// tighter skew rule relative to the watermark.
pub const MAX_VALID_TIME: EventTime = EventTime(4_102_444_800_000);

/// ISO 4217 codes fitstream accepts.
pub const CURRENCIES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "CNY", "HKD", "SGD", "SEK", "NOK",
    "DKK", "PLN", "CZK", "HUF", "RON", "BGN", "TRY", "RUB", "UAH", "INR", "BRL", "MXN", "ZAR",
    "KRW", "TWD", "THB", "ILS", "AED", "SAR",
];

/// The currency of an order from a history without prices (ISO 4217 `XXX`, "no currency is
/// involved"): its lines carry a unit price of 0, which no other currency allows. The
/// UserBehavior history's buys are such orders; they count as units, not as spend.
pub const NO_PRICES: &str = "XXX";

/// A broken content rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field concerned.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn fail(field: &'static str, message: impl Into<String>) -> Result<(), ValidationError> {
    Err(ValidationError {
        field,
        message: message.into(),
    })
}

fn id(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return fail(field, "is empty");
    }
    if value.len() > max {
        return fail(
            field,
            format!("is {} bytes long, more than {max}", value.len()),
        );
    }
    Ok(())
}

/// Free text of a bounded length (may be empty): nothing a real shop sends is longer, and
/// every string an output or a state entry copies is bounded by it.
fn text(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return fail(
            field,
            format!("is {} bytes long, more than {max}", value.len()),
        );
    }
    Ok(())
}

fn options(o: &crate::records::Options) -> Result<(), ValidationError> {
    if o.len() > MAX_OPTIONS {
        return fail(
            "options",
            format!("has {} entries, more than {MAX_OPTIONS}", o.len()),
        );
    }
    for (k, v) in o {
        text("options", k, MAX_TEXT_LEN)?;
        text("options", v, MAX_TEXT_LEN)?;
    }
    Ok(())
}

fn event_time(t: EventTime) -> Result<(), ValidationError> {
    if t < EventTime::MIN_VALID {
        return fail("event_time", format!("{t} is before 2000-01-01"));
    }
    if t >= MAX_VALID_TIME {
        return fail("event_time", format!("{t} is after 2100-01-01"));
    }
    Ok(())
}

fn price(field: &'static str, p: Decimal, zero_ok: bool) -> Result<(), ValidationError> {
    if p.is_sign_negative() && !p.is_zero() {
        return fail(field, format!("{p} is negative"));
    }
    if p.is_zero() && !zero_ok {
        return fail(field, "is zero");
    }
    if p > Decimal::from(1_000_000_000_i64) {
        return fail(field, format!("{p} is absurdly large"));
    }
    Ok(())
}

/// Checks a click event.
pub fn click(e: &ClickEvent) -> Result<(), ValidationError> {
    id("event_id", &e.event_id, MAX_ID_LEN)?;
    id("customer_id", &e.customer_id, MAX_ID_LEN)?;
    // A session is optional context (real histories have rows without one).
    text("session_id", &e.session_id, MAX_ID_LEN)?;
    event_time(e.event_time)?;
    if let Some(p) = e.price {
        price("price", p, true)?;
    }
    options(&e.options)?;
    text(
        "category",
        e.category.as_deref().unwrap_or(""),
        MAX_TEXT_LEN,
    )?;
    text("query", e.query.as_deref().unwrap_or(""), MAX_QUERY_LEN)?;
    text("channel", &e.channel, MAX_TEXT_LEN)?;
    text("region", &e.region, MAX_TEXT_LEN)?;
    if matches!(
        e.event_type,
        ClickEventType::AddToCart | ClickEventType::RemoveFromCart
    ) {
        match (&e.product_id, &e.sku) {
            (Some(p), Some(s)) => {
                id("product_id", p, MAX_SKU_LEN)?;
                id("sku", s, MAX_SKU_LEN)?;
            }
            _ => return fail("sku", "a cart event needs a product id and a SKU"),
        }
    }
    Ok(())
}

/// Checks a purchase.
pub fn purchase(p: &PurchaseEvent) -> Result<(), ValidationError> {
    id("order_id", &p.order_id, MAX_ID_LEN)?;
    id("customer_id", &p.customer_id, MAX_ID_LEN)?;
    text("session_id", &p.session_id, MAX_ID_LEN)?;
    text("region", &p.region, MAX_TEXT_LEN)?;
    event_time(p.event_time)?;
    let priced = p.currency != NO_PRICES;
    if priced && !CURRENCIES.contains(&p.currency.as_str()) {
        return fail(
            "currency",
            format!("`{}` is not a known ISO 4217 code", p.currency),
        );
    }
    if p.lines.is_empty() {
        return fail("lines", "an order needs at least one line");
    }
    if p.lines.len() > MAX_LINES {
        return fail(
            "lines",
            format!("{} lines, more than {MAX_LINES}", p.lines.len()),
        );
    }
    for line in &p.lines {
        id("product_id", &line.product_id, MAX_SKU_LEN)?;
        id("sku", &line.sku, MAX_SKU_LEN)?;
        if line.quantity <= 0 {
            return fail("quantity", format!("{} is not positive", line.quantity));
        }
        if line.quantity > MAX_QUANTITY {
            return fail(
                "quantity",
                format!("{} is more than {MAX_QUANTITY}", line.quantity),
            );
        }
        if priced {
            price("unit_price", line.unit_price, false)?;
        } else if !line.unit_price.is_zero() {
            return fail(
                "unit_price",
                format!(
                    "{} in an order without prices (currency {NO_PRICES}), which carries 0",
                    line.unit_price
                ),
            );
        }
        options(&line.options)?;
        text(
            "category",
            line.category.as_deref().unwrap_or(""),
            MAX_TEXT_LEN,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::PurchaseLine;

    fn order() -> PurchaseEvent {
        PurchaseEvent {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            session_id: "s1".into(),
            event_time: EventTime(1_569_888_007_000),
            region: "eu".into(),
            currency: "USD".into(),
            lines: vec![PurchaseLine {
                product_id: "p".into(),
                sku: "p-red".into(),
                options: Default::default(),
                category: None,
                quantity: 1,
                unit_price: Decimal::new(262, 2),
            }],
        }
    }

    #[test]
    fn each_purchase_rule_names_its_field() {
        assert_eq!(purchase(&order()), Ok(()));
        type Breaker = Box<dyn Fn(&mut PurchaseEvent)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("quantity", Box::new(|o| o.lines[0].quantity = -1)),
            ("quantity", Box::new(|o| o.lines[0].quantity = 0)),
            (
                "unit_price",
                Box::new(|o| o.lines[0].unit_price = Decimal::ZERO),
            ),
            (
                "unit_price",
                Box::new(|o| o.lines[0].unit_price = Decimal::new(-1, 0)),
            ),
            ("currency", Box::new(|o| o.currency = "XXQ".into())),
            (
                "sku",
                Box::new(|o| o.lines[0].sku = "x".repeat(MAX_SKU_LEN + 1)),
            ),
            ("lines", Box::new(|o| o.lines.clear())),
            ("event_time", Box::new(|o| o.event_time = EventTime(0))),
            ("order_id", Box::new(|o| o.order_id = " ".into())),
        ];
        for (field, break_it) in cases {
            let mut o = order();
            break_it(&mut o);
            assert_eq!(purchase(&o).map_err(|e| e.field), Err(field));
        }
    }

    #[test]
    fn every_free_text_field_is_bounded_and_a_session_is_optional() {
        let long = "x".repeat(MAX_TEXT_LEN + 1);
        let mut c = crate::samples::click();
        c.session_id = String::new();
        assert_eq!(click(&c), Ok(()), "no session");
        for (field, set) in [
            (
                "category",
                (|c: &mut ClickEvent, v: String| c.category = Some(v))
                    as fn(&mut ClickEvent, String),
            ),
            ("channel", |c, v| c.channel = v),
            ("region", |c, v| c.region = v),
            ("options", |c, v| {
                c.options.insert("scent".into(), v);
            }),
            ("options", |c, v| {
                c.options.insert(v, "rose".into());
            }),
        ] {
            let mut c = crate::samples::click();
            set(&mut c, long.clone());
            assert_eq!(click(&c).map_err(|e| e.field), Err(field));
            let mut c = crate::samples::click();
            set(&mut c, "x".repeat(MAX_TEXT_LEN));
            assert_eq!(click(&c), Ok(()), "{field} at the limit");
        }
        let mut c = crate::samples::click();
        c.query = Some("q".repeat(MAX_QUERY_LEN + 1));
        assert_eq!(click(&c).map_err(|e| e.field), Err("query"));
        let mut o = order();
        o.lines[0].category = Some(long.clone());
        assert_eq!(purchase(&o).map_err(|e| e.field), Err("category"));
        let mut o = order();
        o.region = long;
        assert_eq!(purchase(&o).map_err(|e| e.field), Err("region"));
    }

    #[test]
    fn an_order_without_prices_carries_zero_and_only_it_may() {
        let mut o = order();
        o.currency = NO_PRICES.into();
        o.lines[0].unit_price = Decimal::ZERO;
        assert_eq!(purchase(&o), Ok(()), "a buy from a history without prices");
        o.lines[0].unit_price = Decimal::new(262, 2);
        assert_eq!(purchase(&o).map_err(|e| e.field), Err("unit_price"));
        o.lines[0].unit_price = Decimal::new(-1, 0);
        assert_eq!(purchase(&o).map_err(|e| e.field), Err("unit_price"));
        let mut o = order();
        o.lines[0].unit_price = Decimal::ZERO;
        assert_eq!(
            purchase(&o).map_err(|e| e.field),
            Err("unit_price"),
            "a priced currency still needs a positive price"
        );
    }

    #[test]
    fn a_sku_at_the_limit_passes() {
        let mut o = order();
        o.lines[0].sku = "x".repeat(MAX_SKU_LEN);
        assert_eq!(purchase(&o), Ok(()));
    }
}
