//! One function per subcommand. Each takes its options and the loaded configuration.
//!
//! Layout (every public name is re-exported here, so `commands::replay` is the path to use):
//! - this file: what every command shares: the [`codec`] and [`routing`] of a configuration,
//!   input files ([`read_inputs`], [`InputFormat`], [`count_lines`]) and the progress bar.
//! - `kafka`: the commands that talk to a broker: `topics create` and `topics describe`,
//!   `produce`, `simulate` (to Kafka or a file), `tail` and `run` ([`run_service`]).
//! - `embedded`: the commands that run the pipeline in this process ([`crate::embedded`]):
//!   `replay`, `demo` and `segments`, with the terminal views ([`segment_table`], [`view`]).

mod embedded;
mod kafka;

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;

use anyhow::Context;
use fitstream_contracts::Codec;
use fitstream_contracts::registry::Registry;
use fitstream_simulator::InputRecord;

pub use self::embedded::{demo, replay, segment_table, segments, view};
pub use self::kafka::{
    DEFAULT_PLANTS, Service, SimTarget, produce, run_service, simulate, tail, topics_create,
    topics_describe,
};
use crate::config::FitstreamConfig;

/// The codec of a configuration.
pub fn codec(cfg: &FitstreamConfig) -> Codec {
    Codec::new(
        Registry::from_config(&cfg.registry),
        fitstream_contracts::codec::DEFAULT_MAX_VALUE_BYTES,
    )
}

/// The routing table of a configuration: its file, or the bundled one.
pub fn routing(cfg: &FitstreamConfig) -> anyhow::Result<fitstream_planner::routing::Routing> {
    Ok(match &cfg.planner.routing {
        Some(path) => fitstream_planner::routing::Routing::load(path)?,
        None => fitstream_planner::routing::Routing::bundled(),
    })
}

/// Reads an input file of either format.
pub fn read_inputs(
    path: &Path,
    format: InputFormat,
) -> anyhow::Result<Box<dyn Iterator<Item = InputRecord>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::new(file);
    let skip = |r: Result<InputRecord, fitstream_simulator::ReplayError>| match r {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("skipping input: {e}");
            None
        }
    };
    Ok(match format {
        InputFormat::Rees46 => Box::new(fitstream_simulator::read_rees46(reader).filter_map(skip)),
        InputFormat::Jsonl => Box::new(fitstream_simulator::read_jsonl(reader).filter_map(skip)),
    })
}

/// Input file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// REES46 e-commerce CSV.
    Rees46,
    /// fitstream's JSON lines.
    Jsonl,
}

impl InputFormat {
    /// Guesses from the file name.
    pub fn guess(path: &Path) -> InputFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => InputFormat::Rees46,
            _ => InputFormat::Jsonl,
        }
    }
}

fn progress_bar(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} {pos} records [{elapsed}] {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Counts lines of a file (for progress totals).
pub fn count_lines(path: &Path) -> std::io::Result<u64> {
    Ok(BufReader::new(File::open(path)?).lines().count() as u64)
}
