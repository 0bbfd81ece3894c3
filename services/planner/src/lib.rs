//! The build-to-order planner: behaviour and orders in event-time windows become build orders
//! per plant, and abandoned carts become marketing audiences.
//!
//! - [`routing`]: SKU or category to plant, with each plant's line and lead time.
//! - [`planner`]: the operator. Cart -> purchase interval left join (30 min, grace 5 min),
//!   conversion rates per (segment, category) with a Beta prior, Released and Forecast demand
//!   in tumbling windows (15 min), each window emitted once when it closes, as ISA-95
//!   ProductionRequests with deterministic ids.
//! - [`app`]: the planner as a topology of two stages (`carts`, `windows`) for the drivers.
//!
//! Delivery: the planner is a pure function of its input records and watermarks. Exactly
//! once on the factory topics comes from the driver (one Kafka transaction holds outputs,
//! state changes and input offsets); the deterministic request id lets a factory upsert.

pub mod app;
pub mod planner;
pub mod routing;

pub use planner::{Output, Planner, PlannerConfig};
