//! Customer profiles (`iob.customer-profiles.v1`) and their derived features.

use apache_avro::types::Value;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Contract;
use crate::avro::{self, Fields, RecordError, decimal_field, nullable, record, string, time};
use crate::schemas::SchemaKind;
use crate::time::EventTime;

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
