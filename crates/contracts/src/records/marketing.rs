//! Marketing signals: cart abandonments (`marketing.cart-abandonment.v1`).

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};

use super::Contract;
use crate::avro::{Fields, RecordError, nullable, record, string, time};
use crate::schemas::SchemaKind;
use crate::time::EventTime;

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
