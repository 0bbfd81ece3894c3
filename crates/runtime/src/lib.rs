//! fitstream's stream runtime: a small library in the style of Kafka Streams, the Rust way.
//!
//! Operators take records and watermarks and never read a clock or import rdkafka; drivers
//! feed them from Kafka (consumer groups, transactions) or from memory (embedded).
//!
//! Layout, from the operator shape to the drivers:
//! - [`task`]: the one operator shape ([`task::Task`] per partition of a [`task::Stage`], the
//!   [`task::Gate`] of the event-time rules for each record) and the [`task::Topology`] that
//!   strings stages through repartition topics.
//! - [`state`]: the stores a task declares (values, maps, held records, deduplication,
//!   snapshots), their versioned changelog encoding, checkpoint and restore.
//! - [`watermark`]: event time and watermarks per partition and per task, idleness.
//! - [`window`]: event-time windows and the windowed aggregate that emits each once.
//! - [`join`]: the interval join, inner and left.
//! - [`asof`]: the as-of stream-table join (a record joins the version valid at its time).
//! - [`dedup`]: the memory of ids seen within a retention of event time.
//! - [`merge`]: event-time order across a task's input partitions, as both drivers take it.
//! - [`deadletter`]: the dead-letter record and its headers.
//! - [`partition`]: Kafka's default key partitioner (murmur2), so both drivers agree.
//! - [`passthrough`]: the transactional passthrough, the ceiling benchmarks divide by.
//! - [`host`]: one task with its watermarks, markers and state, as both drivers run it.
//! - [`embedded`]: the embedded driver, a topology in one process over in-memory records.
//! - [`kafka`]: the Kafka driver (consumer group, transactions), client configuration, topic
//!   provisioning, writing and reading topics.
//! - [`metrics`]: every Prometheus metric fitstream exports, registered once.
//! - [`http`]: the `/metrics`, `/healthz` and `/readyz` endpoints.
//! - [`shutdown`]: one shutdown signal per process (SIGTERM or Ctrl-C).

pub mod asof;
pub mod deadletter;
pub mod dedup;
pub mod embedded;
pub mod health;
pub mod host;
pub mod http;
pub mod join;
pub mod kafka;
pub mod merge;
pub mod metrics;
pub mod partition;
pub mod passthrough;
pub mod shutdown;
pub mod state;
pub mod task;
pub mod watermark;
pub mod window;
