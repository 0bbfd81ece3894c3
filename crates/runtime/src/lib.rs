//! fitstream's stream runtime: a small library in the style of Kafka Streams, the Rust way.
//!
//! Operators take records and watermarks and never read a clock or import rdkafka; drivers
//! feed them from Kafka (consumer groups, transactions) or from memory (embedded).
//!
//! Layout:
//! - [`partition`]: Kafka's default key partitioner (murmur2), so both drivers agree.
//! - [`deadletter`]: the dead-letter record and its headers.
//! - [`metrics`]: every Prometheus metric fitstream exports, registered once.
//! - [`host`]: one task with its watermarks, markers and state, as both drivers run it.
//! - [`state`]: the stores a task declares (values, maps, held records, deduplication,
//!   snapshots), their versioned changelog encoding, checkpoint and restore.
//! - [`kafka`]: client configuration, topic provisioning, writing and reading topics.
//! - [`task`]: the one operator shape ([`task::Task`] per partition of a [`task::Stage`]) and
//!   the [`task::Topology`] that strings stages through repartition topics.
//! - [`watermark`]: event time and watermarks per partition and per task, idleness.
//! - [`window`]: event-time windows and the windowed aggregate that emits each once.
//! - [`join`]: the interval join, inner and left.
//! - [`asof`]: the as-of stream-table join (a record joins the version valid at its time).
//! - [`dedup`]: deduplication by id within a retention of event time.
//! - [`embedded`]: the embedded driver, a topology in one process over in-memory records.
//! - [`http`]: the `/metrics`, `/healthz` and `/readyz` endpoints.
//! - [`shutdown`]: one shutdown signal per process (SIGTERM or Ctrl-C).

pub mod asof;
pub mod deadletter;
pub mod dedup;
pub mod embedded;
pub mod host;
pub mod http;
pub mod join;
pub mod kafka;
pub mod metrics;
pub mod partition;
pub mod shutdown;
pub mod state;
pub mod task;
pub mod watermark;
pub mod window;
