//! The profiler: a behavioural profile per customer from clickstream and purchases, and the
//! customer's segment under the current segment model.
//!
//! Layout:
//! - [`state`]: the compact per-customer state (120 bytes), its features and profile, its
//!   changelog form.
//! - [`store`]: every customer of a task, with the flags that drive emission and checkpoints.
//! - [`models`]: the model versions for the as-of join, nearest-centroid placement.
//! - [`app`]: [`ProfilerApp`] and its topology for the Kafka and embedded drivers.
//! - [`products`]: what sells in each category, per task.
//! - [`lookup`]: the lookup API (`GET /v1/customers/{id}`) over the tasks' committed state,
//!   routed to the instance that owns the customer's partition.
//!
//! Delivery: the profiler is a deterministic function of its input records, watermarks and
//! model records. Exactly once on its topics comes from the driver (one Kafka transaction
//! holds outputs, changelog entries and input offsets).

pub mod app;
pub mod lookup;
pub mod models;
pub mod products;
pub mod state;
pub mod store;

pub use app::{ProfilerApp, ProfilerConfig, ProfilerCounters, ProfilerStats};
