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

/// The bounds of every input field (configuration `[limits]`, environment
/// `FITSTREAM__LIMITS__*`): what a record may carry before it is dead-lettered with reason
/// `validation`. The defaults are the constants above, which no real shop reaches; every
/// string an output or a state entry copies is bounded by them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest event, order, customer or session id, in bytes.
    pub id_bytes: usize,
    /// Longest SKU or product id, in bytes.
    pub sku_bytes: usize,
    /// Longest option name or value, category, channel or region, in bytes.
    pub text_bytes: usize,
    /// Longest search query, in bytes.
    pub query_bytes: usize,
    /// Most options on one product.
    pub options: usize,
    /// Most lines in one order.
    pub lines: usize,
    /// Most units on one order line.
    pub quantity: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            id_bytes: MAX_ID_LEN,
            sku_bytes: MAX_SKU_LEN,
            text_bytes: MAX_TEXT_LEN,
            query_bytes: MAX_QUERY_LEN,
            options: MAX_OPTIONS,
            lines: MAX_LINES,
            quantity: MAX_QUANTITY,
        }
    }
}

impl Limits {
    /// Whether the limits can hold a record at all (each at least 1), and keep a record within
    /// the codec's value limit (every text, id and line bounded well below it).
    pub fn check(&self) -> Result<(), String> {
        let sizes = [
            ("id_bytes", self.id_bytes),
            ("sku_bytes", self.sku_bytes),
            ("text_bytes", self.text_bytes),
            ("query_bytes", self.query_bytes),
            ("options", self.options),
            ("lines", self.lines),
        ];
        for (name, v) in sizes {
            if v == 0 {
                return Err(format!("limits.{name} is 0: no record would pass"));
            }
            if v > 64 * 1024 {
                return Err(format!(
                    "limits.{name} is {v}: more than 65,536 lets one record outgrow the codec's value limit"
                ));
            }
        }
        if self.quantity < 1 {
            return Err(format!("limits.quantity is {}", self.quantity));
        }
        Ok(())
    }
}

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

fn options(o: &crate::records::Options, l: &Limits) -> Result<(), ValidationError> {
    if o.len() > l.options {
        return fail(
            "options",
            format!("has {} entries, more than {}", o.len(), l.options),
        );
    }
    for (k, v) in o {
        text("options", k, l.text_bytes)?;
        text("options", v, l.text_bytes)?;
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

/// Checks a click event within `l`.
pub fn click_within(e: &ClickEvent, l: &Limits) -> Result<(), ValidationError> {
    id("event_id", &e.event_id, l.id_bytes)?;
    id("customer_id", &e.customer_id, l.id_bytes)?;
    // A session is optional context (real histories have rows without one).
    text("session_id", &e.session_id, l.id_bytes)?;
    event_time(e.event_time)?;
    if let Some(p) = e.price {
        price("price", p, true)?;
    }
    options(&e.options, l)?;
    text(
        "category",
        e.category.as_deref().unwrap_or(""),
        l.text_bytes,
    )?;
    text("query", e.query.as_deref().unwrap_or(""), l.query_bytes)?;
    text("channel", &e.channel, l.text_bytes)?;
    text("region", &e.region, l.text_bytes)?;
    if matches!(
        e.event_type,
        ClickEventType::AddToCart | ClickEventType::RemoveFromCart
    ) {
        match (&e.product_id, &e.sku) {
            (Some(p), Some(s)) => {
                id("product_id", p, l.sku_bytes)?;
                id("sku", s, l.sku_bytes)?;
            }
            _ => return fail("sku", "a cart event needs a product id and a SKU"),
        }
    }
    Ok(())
}

/// Checks a purchase within `l`.
pub fn purchase_within(p: &PurchaseEvent, l: &Limits) -> Result<(), ValidationError> {
    id("order_id", &p.order_id, l.id_bytes)?;
    id("customer_id", &p.customer_id, l.id_bytes)?;
    text("session_id", &p.session_id, l.id_bytes)?;
    text("region", &p.region, l.text_bytes)?;
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
    if p.lines.len() > l.lines {
        return fail(
            "lines",
            format!("{} lines, more than {}", p.lines.len(), l.lines),
        );
    }
    for line in &p.lines {
        id("product_id", &line.product_id, l.sku_bytes)?;
        id("sku", &line.sku, l.sku_bytes)?;
        if line.quantity <= 0 {
            return fail("quantity", format!("{} is not positive", line.quantity));
        }
        if line.quantity > l.quantity {
            return fail(
                "quantity",
                format!("{} is more than {}", line.quantity, l.quantity),
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
        options(&line.options, l)?;
        text(
            "category",
            line.category.as_deref().unwrap_or(""),
            l.text_bytes,
        )?;
    }
    Ok(())
}

/// Checks a click event within the default limits.
pub fn click(e: &ClickEvent) -> Result<(), ValidationError> {
    click_within(e, &Limits::default())
}

/// Checks a purchase within the default limits.
pub fn purchase(p: &PurchaseEvent) -> Result<(), ValidationError> {
    purchase_within(p, &Limits::default())
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
    fn configured_limits_replace_the_defaults() {
        let c = crate::samples::click();
        let tight = Limits {
            text_bytes: 3,
            ..Limits::default()
        };
        assert_eq!(click(&c), Ok(()));
        // The sample's option values and its category are longer than 3 bytes.
        assert_eq!(
            click_within(&c, &tight).map_err(|e| e.field),
            Err("options")
        );
        let mut bare = crate::samples::click();
        bare.options.clear();
        assert_eq!(
            click_within(&bare, &tight).map_err(|e| e.field),
            Err("category")
        );
        let one_line = Limits {
            lines: 1,
            ..Limits::default()
        };
        let mut o = order();
        assert_eq!(purchase_within(&o, &one_line), Ok(()));
        o.lines.push(o.lines[0].clone());
        assert_eq!(
            purchase_within(&o, &one_line).map_err(|e| e.field),
            Err("lines")
        );
        assert!(Limits::default().check().is_ok());
        assert!(
            Limits {
                lines: 0,
                ..Limits::default()
            }
            .check()
            .is_err()
        );
        assert!(
            Limits {
                text_bytes: 1 << 20,
                ..Limits::default()
            }
            .check()
            .is_err()
        );
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
