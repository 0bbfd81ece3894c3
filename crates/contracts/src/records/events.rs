//! The input events: clicks (`iob.clickstream.v1`) and purchases (`iob.purchases.v1`).

use apache_avro::types::Value;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Contract, Options};
use crate::avro::{self, Fields, RecordError, decimal_field, nullable, record, string, time};
use crate::schemas::SchemaKind;
use crate::time::EventTime;

/// What a customer did (`ClickEventType` in Avro).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClickEventType {
    /// A page that is not a product page.
    PageView,
    /// A product page.
    ProductView,
    /// A search.
    Search,
    /// A product added to the cart.
    AddToCart,
    /// A product removed from the cart.
    RemoveFromCart,
    /// The checkout started.
    CheckoutStart,
    /// A product added to the wishlist (favourites).
    AddToWishlist,
}

impl ClickEventType {
    const SYMBOLS: [(&'static str, ClickEventType); 7] = [
        ("PAGE_VIEW", ClickEventType::PageView),
        ("PRODUCT_VIEW", ClickEventType::ProductView),
        ("SEARCH", ClickEventType::Search),
        ("ADD_TO_CART", ClickEventType::AddToCart),
        ("REMOVE_FROM_CART", ClickEventType::RemoveFromCart),
        ("CHECKOUT_START", ClickEventType::CheckoutStart),
        ("ADD_TO_WISHLIST", ClickEventType::AddToWishlist),
    ];

    /// The Avro symbol.
    pub fn symbol(self) -> &'static str {
        Self::SYMBOLS[self as usize].0
    }

    fn to_avro(self) -> Value {
        Value::Enum(self as u32, self.symbol().to_owned())
    }

    fn from_symbol(s: &str) -> Result<Self, RecordError> {
        Self::SYMBOLS
            .iter()
            .find(|(sym, _)| *sym == s)
            .map(|(_, t)| *t)
            .ok_or_else(|| RecordError::WrongType {
                record: "ClickEvent",
                field: "event_type".into(),
                expected: "ClickEventType symbol",
                found: s.to_owned(),
            })
    }
}

/// One behavioural event (`iob.clickstream.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClickEvent {
    /// Unique event id; duplicates share it.
    pub event_id: String,
    /// Customer id (the key).
    pub customer_id: String,
    /// Session id.
    pub session_id: String,
    /// What happened.
    pub event_type: ClickEventType,
    /// Product, for product and cart events.
    #[serde(default)]
    pub product_id: Option<String>,
    /// SKU, for cart events.
    #[serde(default)]
    pub sku: Option<String>,
    /// Chosen options.
    #[serde(default)]
    pub options: Options,
    /// Category code.
    #[serde(default)]
    pub category: Option<String>,
    /// Unit price shown.
    #[serde(default)]
    pub price: Option<Decimal>,
    /// Search text.
    #[serde(default)]
    pub query: Option<String>,
    /// Collector channel.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// Sales region.
    #[serde(default)]
    pub region: String,
    /// When it happened.
    pub event_time: EventTime,
}

fn default_channel() -> String {
    "web".to_owned()
}

impl Contract for ClickEvent {
    const KIND: SchemaKind = SchemaKind::ClickEvent;

    fn to_avro(&self) -> Result<Value, RecordError> {
        let price = match self.price {
            Some(p) => Some(decimal_field("ClickEvent", "price", p, 2)?),
            None => None,
        };
        Ok(record(vec![
            ("event_id", string(&self.event_id)),
            ("customer_id", string(&self.customer_id)),
            ("session_id", string(&self.session_id)),
            ("event_type", self.event_type.to_avro()),
            (
                "product_id",
                nullable(self.product_id.as_deref().map(string)),
            ),
            ("sku", nullable(self.sku.as_deref().map(string))),
            ("options", avro::string_map(&self.options)),
            ("category", nullable(self.category.as_deref().map(string))),
            ("price", nullable(price)),
            ("query", nullable(self.query.as_deref().map(string))),
            ("channel", string(&self.channel)),
            ("region", string(&self.region)),
            ("event_time", time(self.event_time)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("ClickEvent", value)?;
        Ok(ClickEvent {
            event_id: f.string("event_id")?,
            customer_id: f.string("customer_id")?,
            session_id: f.string("session_id")?,
            event_type: ClickEventType::from_symbol(&f.symbol("event_type")?)?,
            product_id: f.opt_string("product_id")?,
            sku: f.opt_string("sku")?,
            options: f.string_map("options")?,
            category: f.opt_string("category")?,
            price: f.opt_decimal("price", 2)?,
            query: f.opt_string("query")?,
            channel: f.string("channel")?,
            region: f.string("region")?,
            event_time: f.time("event_time")?,
        })
    }
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurchaseLine {
    /// Product.
    pub product_id: String,
    /// SKU.
    pub sku: String,
    /// Chosen options.
    #[serde(default)]
    pub options: Options,
    /// Category code.
    #[serde(default)]
    pub category: Option<String>,
    /// Units (positive).
    pub quantity: i32,
    /// Price of one unit.
    pub unit_price: Decimal,
}

/// A completed checkout (`iob.purchases.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurchaseEvent {
    /// Unique order id; duplicates share it.
    pub order_id: String,
    /// Buyer (the key).
    pub customer_id: String,
    /// Session.
    pub session_id: String,
    /// When the order was placed.
    pub event_time: EventTime,
    /// Sales region.
    #[serde(default)]
    pub region: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Order lines.
    pub lines: Vec<PurchaseLine>,
}

impl Contract for PurchaseEvent {
    const KIND: SchemaKind = SchemaKind::PurchaseEvent;

    fn to_avro(&self) -> Result<Value, RecordError> {
        let lines = self
            .lines
            .iter()
            .map(|l| {
                Ok(record(vec![
                    ("product_id", string(&l.product_id)),
                    ("sku", string(&l.sku)),
                    ("options", avro::string_map(&l.options)),
                    ("category", nullable(l.category.as_deref().map(string))),
                    ("quantity", Value::Int(l.quantity)),
                    (
                        "unit_price",
                        decimal_field("PurchaseLine", "unit_price", l.unit_price, 2)?,
                    ),
                ]))
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(record(vec![
            ("order_id", string(&self.order_id)),
            ("customer_id", string(&self.customer_id)),
            ("session_id", string(&self.session_id)),
            ("event_time", time(self.event_time)),
            ("region", string(&self.region)),
            ("currency", string(&self.currency)),
            ("lines", Value::Array(lines)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("PurchaseEvent", value)?;
        let order_id = f.string("order_id")?;
        let customer_id = f.string("customer_id")?;
        let session_id = f.string("session_id")?;
        let event_time = f.time("event_time")?;
        let region = f.string("region")?;
        let currency = f.string("currency")?;
        let lines = f
            .array("lines")?
            .into_iter()
            .map(|v| {
                let mut l = Fields::new("PurchaseLine", v)?;
                Ok(PurchaseLine {
                    product_id: l.string("product_id")?,
                    sku: l.string("sku")?,
                    options: l.string_map("options")?,
                    category: l.opt_string("category")?,
                    quantity: l.int("quantity")?,
                    unit_price: l.decimal("unit_price", 2)?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(PurchaseEvent {
            order_id,
            customer_id,
            session_id,
            event_time,
            region,
            currency,
            lines,
        })
    }
}
