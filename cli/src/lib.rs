//! The `fitstream` command's library: everything the binary does, testable.
//!
//! Layout:
//! - [`config`]: the configuration file, `FITSTREAM__...` environment variables and flags.
//! - [`inputs`]: input records (simulated or replayed) written to Kafka.
//! - [`jsonl`]: records as JSON lines `{"topic","partition","key","timestamp","value"}`.
//! - [`pipeline`]: the profiler and the segmenter wired together in embedded mode, and
//!   [`pipeline::evaluate`], which measures segments against the simulator's personas.
//! - [`embedded`]: the embedded mode: every service in one process on the runtime's embedded
//!   driver, no broker (`demo`, `replay`).
//! - [`reconcile`]: a replay's outputs checked against its input (units and carts).
//! - [`cli`]: the command line and its dispatch.
//! - [`commands`]: one function per subcommand: what they share, the commands that talk to a
//!   broker (`topics`, `produce`, `simulate`, `tail`, `run`) and the embedded ones (`replay`,
//!   `demo`, `segments`).

pub mod cli;
pub mod commands;
pub mod config;
pub mod embedded;
pub mod inputs;
pub mod jsonl;
pub mod pipeline;
pub mod reconcile;
