//! `fitstream console`: what marketing and operations see of fitstream's outputs.
//!
//! The console reads the output topics (from Kafka, read_committed, in a throwaway group of
//! its own; or from a directory of topic JSON lines that `replay`, `demo` and `tail` write)
//! and serves four pages rendered on the server:
//!
//! - **Segments**: the latest model's table (label, description, size, features in original
//!   units), customers per segment by model version over event time, and where customers
//!   moved with the latest model;
//! - **Audiences**: the latest cart abandonments, filtered by segment, as a table and CSV;
//! - **Build orders**: per plant, Released and Forecast quantity per window over event time
//!   and the latest orders with their ISA-95 ids;
//! - **Health**: dead letters by service and reason; watermarks, lag and readiness from the
//!   services' metrics endpoints.
//!
//! Every page states the event time its data is as of. Open pages follow new records by
//! server-sent events. Charts are inline SVG: nothing is fetched from elsewhere.

pub mod chart;
pub mod pages;
pub mod scrape;
pub mod server;
pub mod source;
pub mod view;

pub use pages::Source;
pub use server::{Console, serve, spawn_on_directory};
pub use view::View;
