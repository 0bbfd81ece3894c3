//! What the planner emits and what its stages tell each other: outputs, rejections, build
//! keys, demand events, and the deterministic request id.

use fitstream_contracts::EventTime;
use fitstream_contracts::records::*;
use fitstream_runtime::window::Window;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
