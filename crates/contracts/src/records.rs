//! The records on fitstream's topics, one Rust type per Avro schema.
//!
//! Each type implements [`Contract`]: conversion to and from an Avro value of its schema. The
//! test `records_match_their_schemas` fails when a type and its `.avsc` drift apart.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::avro::{self, Fields, RecordError, decimal_field, nullable, record, string, time};
use crate::schemas::SchemaKind;
use crate::time::EventTime;

/// A record type with an Avro schema in `schemas/`.
pub trait Contract: Sized {
    /// Its schema.
    const KIND: SchemaKind;
    /// Converts to an Avro value of [`Contract::KIND`]'s schema.
    fn to_avro(&self) -> Result<Value, RecordError>;
    /// Reads from an Avro value of [`Contract::KIND`]'s schema.
    fn from_avro(value: Value) -> Result<Self, RecordError>;
}

/// Options chosen for a product (colour, size, ...), sorted by name.
pub type Options = BTreeMap<String, String>;

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
}

impl ClickEventType {
    const SYMBOLS: [(&'static str, ClickEventType); 6] = [
        ("PAGE_VIEW", ClickEventType::PageView),
        ("PRODUCT_VIEW", ClickEventType::ProductView),
        ("SEARCH", ClickEventType::Search),
        ("ADD_TO_CART", ClickEventType::AddToCart),
        ("REMOVE_FROM_CART", ClickEventType::RemoveFromCart),
        ("CHECKOUT_START", ClickEventType::CheckoutStart),
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

/// Derived features of a profile, in original units.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileFeatures {
    /// Days from the last order (or the first event) to the last event.
    pub recency_days: f64,
    /// Orders.
    pub frequency: f64,
    /// Spend.
    pub monetary: f64,
    /// Spend per order.
    pub avg_order_value: f64,
    /// Sessions.
    pub sessions: f64,
    /// Product views.
    pub product_views: f64,
    /// Add-to-cart events.
    pub carts: f64,
    /// 1 - units bought / units carted, in [0, 1].
    pub cart_abandonment_rate: f64,
    /// Orders per session, in [0, 1].
    pub conversion_rate: f64,
    /// Share of events in the top category.
    pub category_affinity: f64,
}

impl ProfileFeatures {
    /// Feature names, in the order of [`ProfileFeatures::to_vec`].
    pub const NAMES: [&'static str; 10] = [
        "recency_days",
        "frequency",
        "monetary",
        "avg_order_value",
        "sessions",
        "product_views",
        "carts",
        "cart_abandonment_rate",
        "conversion_rate",
        "category_affinity",
    ];

    /// The features as a vector, in [`ProfileFeatures::NAMES`] order.
    pub fn to_vec(&self) -> [f64; 10] {
        [
            self.recency_days,
            self.frequency,
            self.monetary,
            self.avg_order_value,
            self.sessions,
            self.product_views,
            self.carts,
            self.cart_abandonment_rate,
            self.conversion_rate,
            self.category_affinity,
        ]
    }

    /// Builds features from a vector in [`ProfileFeatures::NAMES`] order.
    pub fn from_slice(v: &[f64; 10]) -> ProfileFeatures {
        ProfileFeatures {
            recency_days: v[0],
            frequency: v[1],
            monetary: v[2],
            avg_order_value: v[3],
            sessions: v[4],
            product_views: v[5],
            carts: v[6],
            cart_abandonment_rate: v[7],
            conversion_rate: v[8],
            category_affinity: v[9],
        }
    }
}

/// Behavioural profile of a customer (`iob.customer-profiles.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// Customer (the key).
    pub customer_id: String,
    /// First event seen.
    pub first_event_time: EventTime,
    /// Latest event seen.
    pub last_event_time: EventTime,
    /// Latest order.
    pub last_purchase_time: Option<EventTime>,
    /// Distinct orders.
    pub orders: i64,
    /// Total spend.
    pub spend: Decimal,
    /// Units bought.
    pub units: i64,
    /// Sessions.
    pub sessions: i64,
    /// Product views.
    pub product_views: i64,
    /// Add-to-cart events.
    pub carts: i64,
    /// Remove-from-cart events.
    pub cart_removals: i64,
    /// Top categories, most frequent first.
    pub top_categories: Vec<String>,
    /// Derived features.
    pub features: ProfileFeatures,
}

impl Contract for CustomerProfile {
    const KIND: SchemaKind = SchemaKind::CustomerProfile;

    fn to_avro(&self) -> Result<Value, RecordError> {
        let x = &self.features;
        Ok(record(vec![
            ("customer_id", string(&self.customer_id)),
            ("first_event_time", time(self.first_event_time)),
            ("last_event_time", time(self.last_event_time)),
            (
                "last_purchase_time",
                nullable(self.last_purchase_time.map(time)),
            ),
            ("orders", Value::Long(self.orders)),
            (
                "spend",
                decimal_field("CustomerProfile", "spend", self.spend, 2)?,
            ),
            ("units", Value::Long(self.units)),
            ("sessions", Value::Long(self.sessions)),
            ("product_views", Value::Long(self.product_views)),
            ("carts", Value::Long(self.carts)),
            ("cart_removals", Value::Long(self.cart_removals)),
            ("top_categories", avro::strings(&self.top_categories)),
            (
                "features",
                record(
                    ProfileFeatures::NAMES
                        .iter()
                        .zip(x.to_vec())
                        .map(|(n, v)| (*n, Value::Double(v)))
                        .collect(),
                ),
            ),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("CustomerProfile", value)?;
        let customer_id = f.string("customer_id")?;
        let first_event_time = f.time("first_event_time")?;
        let last_event_time = f.time("last_event_time")?;
        let last_purchase_time = f.opt_time("last_purchase_time")?;
        let orders = f.long("orders")?;
        let spend = f.decimal("spend", 2)?;
        let units = f.long("units")?;
        let sessions = f.long("sessions")?;
        let product_views = f.long("product_views")?;
        let carts = f.long("carts")?;
        let cart_removals = f.long("cart_removals")?;
        let top_categories = f.strings("top_categories")?;
        let mut x = f.record("features", "ProfileFeatures")?;
        let mut v = [0.0; 10];
        for (slot, name) in v.iter_mut().zip(ProfileFeatures::NAMES) {
            *slot = x.double(name)?;
        }
        Ok(CustomerProfile {
            customer_id,
            first_event_time,
            last_event_time,
            last_purchase_time,
            orders,
            spend,
            units,
            sessions,
            product_views,
            carts,
            cart_removals,
            top_categories,
            features: ProfileFeatures::from_slice(&v),
        })
    }
}

/// A customer's segment, emitted when it changes (`marketing.segment-assignments.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentAssignment {
    /// Customer (the key).
    pub customer_id: String,
    /// Stable segment id.
    pub segment_id: i32,
    /// Segment label.
    pub segment_label: String,
    /// Model version.
    pub model_version: i64,
    /// Distance to the centroid (scaled space).
    pub distance: f64,
    /// Segment before this change.
    pub previous_segment_id: Option<i32>,
    /// Event time from which it holds.
    pub event_time: EventTime,
}

impl Contract for SegmentAssignment {
    const KIND: SchemaKind = SchemaKind::SegmentAssignment;

    fn to_avro(&self) -> Result<Value, RecordError> {
        Ok(record(vec![
            ("customer_id", string(&self.customer_id)),
            ("segment_id", Value::Int(self.segment_id)),
            ("segment_label", string(&self.segment_label)),
            ("model_version", Value::Long(self.model_version)),
            ("distance", Value::Double(self.distance)),
            (
                "previous_segment_id",
                nullable(self.previous_segment_id.map(Value::Int)),
            ),
            ("event_time", time(self.event_time)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("SegmentAssignment", value)?;
        Ok(SegmentAssignment {
            customer_id: f.string("customer_id")?,
            segment_id: f.int("segment_id")?,
            segment_label: f.string("segment_label")?,
            model_version: f.long("model_version")?,
            distance: f.double("distance")?,
            previous_segment_id: f.opt_int("previous_segment_id")?,
            event_time: f.time("event_time")?,
        })
    }
}

/// One segment of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSegment {
    /// Stable id.
    pub segment_id: i32,
    /// Label.
    pub label: String,
    /// Centroid in scaled space.
    pub centroid: Vec<f64>,
}

/// A fitted segment model (`iob.segment-models.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentModel {
    /// Version, from 1.
    pub version: i64,
    /// Valid from this event time on.
    pub cutoff_event_time: EventTime,
    /// Feature order.
    pub feature_names: Vec<String>,
    /// Features transformed with log1p.
    pub log1p_features: Vec<String>,
    /// Scaler means.
    pub means: Vec<f64>,
    /// Scaler standard deviations.
    pub scales: Vec<f64>,
    /// Segments.
    pub segments: Vec<ModelSegment>,
    /// Name of the quality score.
    pub quality_metric: String,
    /// Quality score.
    pub quality_score: f64,
    /// Next unused segment id.
    pub next_segment_id: i32,
    /// Profiles in the fitted sample.
    pub sample_size: i64,
}

impl Contract for SegmentModel {
    const KIND: SchemaKind = SchemaKind::SegmentModel;

    fn to_avro(&self) -> Result<Value, RecordError> {
        let segments = self
            .segments
            .iter()
            .map(|s| {
                record(vec![
                    ("segment_id", Value::Int(s.segment_id)),
                    ("label", string(&s.label)),
                    ("centroid", avro::doubles(&s.centroid)),
                ])
            })
            .collect();
        Ok(record(vec![
            ("version", Value::Long(self.version)),
            ("cutoff_event_time", time(self.cutoff_event_time)),
            ("feature_names", avro::strings(&self.feature_names)),
            ("log1p_features", avro::strings(&self.log1p_features)),
            ("means", avro::doubles(&self.means)),
            ("scales", avro::doubles(&self.scales)),
            ("segments", Value::Array(segments)),
            ("quality_metric", string(&self.quality_metric)),
            ("quality_score", Value::Double(self.quality_score)),
            ("next_segment_id", Value::Int(self.next_segment_id)),
            ("sample_size", Value::Long(self.sample_size)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("SegmentModel", value)?;
        let version = f.long("version")?;
        let cutoff_event_time = f.time("cutoff_event_time")?;
        let feature_names = f.strings("feature_names")?;
        let log1p_features = f.strings("log1p_features")?;
        let means = f.doubles("means")?;
        let scales = f.doubles("scales")?;
        let segments = f
            .array("segments")?
            .into_iter()
            .map(|v| {
                let mut s = Fields::new("ModelSegment", v)?;
                Ok(ModelSegment {
                    segment_id: s.int("segment_id")?,
                    label: s.string("label")?,
                    centroid: s.doubles("centroid")?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(SegmentModel {
            version,
            cutoff_event_time,
            feature_names,
            log1p_features,
            means,
            scales,
            segments,
            quality_metric: f.string("quality_metric")?,
            quality_score: f.double("quality_score")?,
            next_segment_id: f.int("next_segment_id")?,
            sample_size: f.long("sample_size")?,
        })
    }
}

/// What a segment looks like (`marketing.segment-profiles.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentProfile {
    /// Stable id (the key).
    pub segment_id: i32,
    /// Label.
    pub label: String,
    /// Members at fit time.
    pub size: i64,
    /// Model version.
    pub model_version: i64,
    /// Quality score of the model.
    pub quality_score: f64,
    /// Centroid: days since last order.
    pub recency_days: f64,
    /// Centroid: orders.
    pub orders: f64,
    /// Centroid: spend.
    pub spend: f64,
    /// Centroid: average order value.
    pub avg_order_value: f64,
    /// Centroid: sessions.
    pub sessions: f64,
    /// Centroid: cart abandonment rate.
    pub cart_abandonment_rate: f64,
    /// Centroid: orders per session.
    pub conversion_rate: f64,
    /// Top categories of the members.
    pub top_categories: Vec<String>,
    /// The segment is gone in this model version.
    pub retired: bool,
}

impl Contract for SegmentProfile {
    const KIND: SchemaKind = SchemaKind::SegmentProfile;

    fn to_avro(&self) -> Result<Value, RecordError> {
        Ok(record(vec![
            ("segment_id", Value::Int(self.segment_id)),
            ("label", string(&self.label)),
            ("size", Value::Long(self.size)),
            ("model_version", Value::Long(self.model_version)),
            ("quality_score", Value::Double(self.quality_score)),
            ("recency_days", Value::Double(self.recency_days)),
            ("orders", Value::Double(self.orders)),
            ("spend", Value::Double(self.spend)),
            ("avg_order_value", Value::Double(self.avg_order_value)),
            ("sessions", Value::Double(self.sessions)),
            (
                "cart_abandonment_rate",
                Value::Double(self.cart_abandonment_rate),
            ),
            ("conversion_rate", Value::Double(self.conversion_rate)),
            ("top_categories", avro::strings(&self.top_categories)),
            ("retired", Value::Boolean(self.retired)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("SegmentProfile", value)?;
        Ok(SegmentProfile {
            segment_id: f.int("segment_id")?,
            label: f.string("label")?,
            size: f.long("size")?,
            model_version: f.long("model_version")?,
            quality_score: f.double("quality_score")?,
            recency_days: f.double("recency_days")?,
            orders: f.double("orders")?,
            spend: f.double("spend")?,
            avg_order_value: f.double("avg_order_value")?,
            sessions: f.double("sessions")?,
            cart_abandonment_rate: f.double("cart_abandonment_rate")?,
            conversion_rate: f.double("conversion_rate")?,
            top_categories: f.strings("top_categories")?,
            retired: f.boolean("retired")?,
        })
    }
}

/// An add-to-cart without a purchase in its window (`marketing.cart-abandonment.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CartAbandonment {
    /// Customer (the key).
    pub customer_id: String,
    /// Session of the cart event.
    pub session_id: String,
    /// Product.
    pub product_id: String,
    /// SKU.
    pub sku: String,
    /// Category.
    pub category: Option<String>,
    /// Segment at cart time.
    pub segment_id: Option<i32>,
    /// Its label.
    pub segment_label: String,
    /// When it was carted.
    pub carted_at: EventTime,
    /// End of the conversion window.
    pub window_closed_at: EventTime,
    /// Event id of the add-to-cart.
    pub source_event_id: String,
}

impl Contract for CartAbandonment {
    const KIND: SchemaKind = SchemaKind::CartAbandonment;

    fn to_avro(&self) -> Result<Value, RecordError> {
        Ok(record(vec![
            ("customer_id", string(&self.customer_id)),
            ("session_id", string(&self.session_id)),
            ("product_id", string(&self.product_id)),
            ("sku", string(&self.sku)),
            ("category", nullable(self.category.as_deref().map(string))),
            ("segment_id", nullable(self.segment_id.map(Value::Int))),
            ("segment_label", string(&self.segment_label)),
            ("carted_at", time(self.carted_at)),
            ("window_closed_at", time(self.window_closed_at)),
            ("source_event_id", string(&self.source_event_id)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("CartAbandonment", value)?;
        Ok(CartAbandonment {
            customer_id: f.string("customer_id")?,
            session_id: f.string("session_id")?,
            product_id: f.string("product_id")?,
            sku: f.string("sku")?,
            category: f.opt_string("category")?,
            segment_id: f.opt_int("segment_id")?,
            segment_label: f.string("segment_label")?,
            carted_at: f.time("carted_at")?,
            window_closed_at: f.time("window_closed_at")?,
            source_event_id: f.string("source_event_id")?,
        })
    }
}

/// B2MML RequestState.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RequestState {
    /// Expected demand (open or abandoned carts times conversion rate).
    Forecast,
    /// Firm demand (purchase lines).
    Released,
    /// Withdrawn.
    Cancelled,
}

impl RequestState {
    const SYMBOLS: [&'static str; 3] = ["Forecast", "Released", "Cancelled"];

    /// The Avro symbol.
    pub fn symbol(self) -> &'static str {
        Self::SYMBOLS[self as usize]
    }
}

/// A ProductionParameter: one chosen option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductionParameter {
    /// Option name.
    pub id: String,
    /// Option value.
    pub value: String,
}

/// Where a request is built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Plant.
    pub site: String,
    /// Area.
    pub area: String,
    /// Line.
    pub line: String,
}

/// Quantity contributed by one buyer segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentShare {
    /// Segment; None = unassigned.
    pub segment_id: Option<i32>,
    /// Label.
    pub segment_label: String,
    /// Quantity.
    pub quantity: Decimal,
}

/// An ISA-95 ProductionRequest (`factory.<plant>.build-orders.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildOrder {
    /// Deterministic id.
    pub request_id: String,
    /// Forecast or Released.
    pub request_state: RequestState,
    /// Product to build.
    pub product_production_rule_id: String,
    /// SKU.
    pub material_definition_id: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit of measure.
    pub unit_of_measure: String,
    /// Chosen options, sorted by id.
    pub parameters: Vec<ProductionParameter>,
    /// Where.
    pub location: Location,
    /// Earliest start.
    pub earliest_start: EventTime,
    /// Latest end.
    pub latest_end: EventTime,
    /// Priority, higher = more urgent.
    pub priority: i32,
    /// Orders or carts behind the quantity.
    pub order_count: i32,
    /// Quantity by segment.
    pub segment_mix: Vec<SegmentShare>,
    /// Window start.
    pub window_start: EventTime,
    /// Window end (exclusive).
    pub window_end: EventTime,
    /// Segment model version.
    pub model_version: Option<i64>,
}

impl Contract for BuildOrder {
    const KIND: SchemaKind = SchemaKind::BuildOrder;

    fn to_avro(&self) -> Result<Value, RecordError> {
        let mix = self
            .segment_mix
            .iter()
            .map(|s| {
                Ok(record(vec![
                    ("segment_id", nullable(s.segment_id.map(Value::Int))),
                    ("segment_label", string(&s.segment_label)),
                    (
                        "quantity",
                        decimal_field("SegmentShare", "quantity", s.quantity, 3)?,
                    ),
                ]))
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let params = self
            .parameters
            .iter()
            .map(|p| record(vec![("id", string(&p.id)), ("value", string(&p.value))]))
            .collect();
        Ok(record(vec![
            ("request_id", string(&self.request_id)),
            (
                "request_state",
                Value::Enum(
                    self.request_state as u32,
                    self.request_state.symbol().to_owned(),
                ),
            ),
            (
                "product_production_rule_id",
                string(&self.product_production_rule_id),
            ),
            (
                "material_definition_id",
                string(&self.material_definition_id),
            ),
            (
                "quantity",
                decimal_field("BuildOrder", "quantity", self.quantity, 3)?,
            ),
            ("unit_of_measure", string(&self.unit_of_measure)),
            ("parameters", Value::Array(params)),
            (
                "location",
                record(vec![
                    ("site", string(&self.location.site)),
                    ("area", string(&self.location.area)),
                    ("line", string(&self.location.line)),
                ]),
            ),
            ("earliest_start", time(self.earliest_start)),
            ("latest_end", time(self.latest_end)),
            ("priority", Value::Int(self.priority)),
            ("order_count", Value::Int(self.order_count)),
            ("segment_mix", Value::Array(mix)),
            ("window_start", time(self.window_start)),
            ("window_end", time(self.window_end)),
            (
                "model_version",
                nullable(self.model_version.map(Value::Long)),
            ),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("BuildOrder", value)?;
        let request_id = f.string("request_id")?;
        let state = f.symbol("request_state")?;
        let request_state = RequestState::SYMBOLS
            .iter()
            .position(|s| *s == state)
            .map(|i| {
                [
                    RequestState::Forecast,
                    RequestState::Released,
                    RequestState::Cancelled,
                ][i]
            })
            .ok_or_else(|| RecordError::WrongType {
                record: "BuildOrder",
                field: "request_state".into(),
                expected: "RequestState symbol",
                found: state.clone(),
            })?;
        let product_production_rule_id = f.string("product_production_rule_id")?;
        let material_definition_id = f.string("material_definition_id")?;
        let quantity = f.decimal("quantity", 3)?;
        let unit_of_measure = f.string("unit_of_measure")?;
        let parameters = f
            .array("parameters")?
            .into_iter()
            .map(|v| {
                let mut p = Fields::new("ProductionParameter", v)?;
                Ok(ProductionParameter {
                    id: p.string("id")?,
                    value: p.string("value")?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let mut loc = f.record("location", "Location")?;
        let location = Location {
            site: loc.string("site")?,
            area: loc.string("area")?,
            line: loc.string("line")?,
        };
        let earliest_start = f.time("earliest_start")?;
        let latest_end = f.time("latest_end")?;
        let priority = f.int("priority")?;
        let order_count = f.int("order_count")?;
        let segment_mix = f
            .array("segment_mix")?
            .into_iter()
            .map(|v| {
                let mut s = Fields::new("SegmentShare", v)?;
                Ok(SegmentShare {
                    segment_id: s.opt_int("segment_id")?,
                    segment_label: s.string("segment_label")?,
                    quantity: s.decimal("quantity", 3)?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(BuildOrder {
            request_id,
            request_state,
            product_production_rule_id,
            material_definition_id,
            quantity,
            unit_of_measure,
            parameters,
            location,
            earliest_start,
            latest_end,
            priority,
            order_count,
            segment_mix,
            window_start: f.time("window_start")?,
            window_end: f.time("window_end")?,
            model_version: f.opt_long("model_version")?,
        })
    }
}
