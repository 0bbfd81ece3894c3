//! One function per subcommand. Each takes its options and the loaded configuration.
//!
//! Layout (every public name is re-exported here, so `commands::replay` is the path to use):
//! - this file: what every command shares: the [`codec`] and [`routing`] of a configuration,
//!   input files ([`Inputs`], [`read_inputs`], [`InputFormat`], [`InputOrder`], gzip,
//!   [`count_lines`]) and the progress bar.
//! - `kafka`: the commands that talk to a broker: `topics create` and `topics describe`,
//!   `produce`, `simulate` (to Kafka or a file), `tail` and `run` ([`run_service`]).
//! - `schemas`: `schemas register|check` against a schema registry.
//! - `console`: the web console over the output topics, from Kafka or a directory.
//! - `embedded`: the commands that run the pipeline in this process ([`crate::embedded`]):
//!   `replay`, `demo` and `segments`, with the terminal views ([`segment_table`], [`view`]).

mod console;
mod embedded;
mod kafka;
mod schemas;

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;

use anyhow::Context;
use fitstream_contracts::Codec;
use fitstream_contracts::registry::Registry;
use fitstream_runtime::deadletter::{self, DeadLetter};
use fitstream_simulator::InputRecord;

pub use self::console::{ConsoleOptions, console, console_on};
pub use self::embedded::{demo, replay, replay_with, segment_table, segments, view};
pub use self::kafka::{
    DEFAULT_PLANTS, Service, ServiceNeeds, SimTarget, TailOptions, produce, run_service,
    service_needs, simulate, tail, topics_create, topics_describe,
};
pub use self::schemas::{level_of, schemas};
use crate::config::FitstreamConfig;

/// The codec of a configuration.
pub fn codec(cfg: &FitstreamConfig) -> Codec {
    Codec::with_limits(
        Registry::from_config(&cfg.registry),
        fitstream_contracts::codec::DEFAULT_MAX_VALUE_BYTES,
        cfg.limits.clone(),
    )
}

/// The routing table of a configuration: its file, or the bundled one.
pub fn routing(cfg: &FitstreamConfig) -> anyhow::Result<fitstream_planner::routing::Routing> {
    Ok(match &cfg.planner.routing {
        Some(path) => fitstream_planner::routing::Routing::load(path)?,
        None => fitstream_planner::routing::Routing::bundled(),
    })
}

/// How to read an input file: the order of its records and the memory the sort may use.
#[derive(Clone, Debug)]
pub struct InputOptions {
    /// Order of the records (the format's default when `None`: [`InputFormat::default_order`]).
    pub order: Option<InputOrder>,
    /// Memory bound of the event-time sort, in bytes; beyond it, sorted runs go to
    /// temporary files.
    pub sort_memory_bytes: usize,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            order: None,
            sort_memory_bytes: fitstream_simulator::sort::DEFAULT_MEMORY_BYTES,
        }
    }
}

/// The order in which a file's records are fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputOrder {
    /// By event time, stable (equal times keep the file's order), with bounded memory (an
    /// external merge sort).
    EventTime,
    /// As the file has them (arrival order: late records stay late).
    File,
}

/// An input file opened for reading any number of times: in file order it is read again on
/// each pass; in event-time order it is sorted once, when opened.
pub struct Inputs {
    path: std::path::PathBuf,
    format: InputFormat,
    sorted: Option<fitstream_simulator::Sorted>,
}

impl Inputs {
    /// Opens a file (gzip-compressed or not) of a format; sorts it now if its order is event
    /// time.
    pub fn open(
        path: &Path,
        format: InputFormat,
        options: &InputOptions,
    ) -> anyhow::Result<Inputs> {
        let order = options.order.unwrap_or(format.default_order());
        let sorted = match order {
            InputOrder::File => None,
            InputOrder::EventTime => {
                let cfg = fitstream_simulator::SortConfig {
                    memory_bytes: options.sort_memory_bytes,
                    dir: None,
                };
                let items = read_items(path, format)?;
                Some(
                    fitstream_simulator::sort_by_event_time(items, &cfg)
                        .with_context(|| format!("sorting {} by event time", path.display()))?,
                )
            }
        };
        Ok(Inputs {
            path: path.to_owned(),
            format,
            sorted,
        })
    }

    /// What sorting did (`None` in file order).
    pub fn sort_stats(&self) -> Option<fitstream_simulator::SortStats> {
        self.sorted.as_ref().map(fitstream_simulator::Sorted::stats)
    }

    /// The records, from the start, with an error item for each row that is not a record
    /// (in event-time order, they come where the sort met them: first).
    pub fn items(&self) -> anyhow::Result<Box<dyn Iterator<Item = ReplayItem>>> {
        Ok(match &self.sorted {
            Some(sorted) => Box::new(sorted.iter()),
            None => read_items(&self.path, self.format)?,
        })
    }

    /// The records only, from the start: for the passes after one that took the error items
    /// of [`Inputs::items`] (each row that is not a record is accounted for once, there).
    pub fn records(&self) -> anyhow::Result<Box<dyn Iterator<Item = InputRecord>>> {
        Ok(Box::new(self.items()?.filter_map(Result::ok)))
    }

    /// The dead letters (reason `parse`) of rows that are not records, as `service` names
    /// them at `failed_at_ms` (a replay gives 0, as the embedded driver does: its outputs do
    /// not depend on when it ran): each carries its raw line (read back from the file; the first
    /// [`deadletter::MAX_VALUE_BYTES`] of a longer one, with its size in a header), the reason
    /// in its message, and `file:<path>` with the line number as its source. An I/O error is
    /// not a row: it fails here.
    pub fn parse_dead_letters(
        &self,
        errors: &[fitstream_simulator::ReplayError],
        service: &str,
        failed_at_ms: i64,
    ) -> anyhow::Result<Vec<DeadLetter>> {
        use fitstream_simulator::lines::{Line, Lines};
        if let Some(e) = errors
            .iter()
            .find(|e| matches!(e, fitstream_simulator::ReplayError::Io { .. }))
        {
            anyhow::bail!("reading {}: {e}", self.path.display());
        }
        let wanted: std::collections::BTreeSet<u64> = errors.iter().map(|e| e.line()).collect();
        let mut raw = std::collections::BTreeMap::new();
        let mut lines = Lines::new(open_input(&self.path)?, deadletter::MAX_VALUE_BYTES);
        while raw.len() < wanted.len() {
            let Some(item) = lines.next_line() else {
                break;
            };
            let (n, line) = item?;
            if wanted.contains(&n) {
                let size = match line {
                    Line::Text(t) => t.len() as u64,
                    Line::TooLong(n) => n,
                };
                raw.insert(n, (lines.kept().to_vec(), size));
            }
        }
        let source = format!("file:{}", self.path.display());
        Ok(errors
            .iter()
            .map(|e| {
                let (value, size) = raw.remove(&e.line()).unwrap_or_default();
                let mut dl = DeadLetter::new(
                    None,
                    Some(&value),
                    deadletter::Reason::Parse,
                    e.to_string(),
                    deadletter::Source {
                        topic: source.clone(),
                        partition: 0,
                        offset: e.line() as i64,
                    },
                    service,
                    failed_at_ms,
                );
                if size > value.len() as u64 {
                    dl.cut.value_bytes = Some(size as usize);
                }
                dl
            })
            .collect())
    }
}

/// Wall-clock milliseconds since the epoch.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A record of an input file, or why a row is not one.
pub type ReplayItem = Result<InputRecord, fitstream_simulator::ReplayError>;

/// Reads an input file of any format in its default order (see [`Inputs`]); a row that is
/// not a record is logged as a warning and skipped.
pub fn read_inputs(
    path: &Path,
    format: InputFormat,
) -> anyhow::Result<Box<dyn Iterator<Item = InputRecord>>> {
    let items = Inputs::open(path, format, &InputOptions::default())?.items()?;
    Ok(Box::new(items.filter_map(|r| {
        r.map_err(|e| tracing::warn!("skipping input: {e}")).ok()
    })))
}

/// A file's bytes: decompressed when it starts with the gzip magic number (`.csv.gz`, the
/// way REES46 months are distributed; several members are read one after the other).
pub fn open_input(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader
        .fill_buf()
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    })
}

/// The replay of a file in file order: records and the error items of unreadable rows.
fn read_items(
    path: &Path,
    format: InputFormat,
) -> anyhow::Result<Box<dyn Iterator<Item = ReplayItem>>> {
    let reader = open_input(path)?;
    Ok(match format {
        InputFormat::Rees46 => Box::new(fitstream_simulator::read_rees46(reader)),
        InputFormat::Taobao => Box::new(fitstream_simulator::read_taobao(reader)),
        InputFormat::Jsonl => Box::new(fitstream_simulator::read_jsonl(reader)),
    })
}

/// Input file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// REES46 e-commerce CSV.
    Rees46,
    /// Alibaba/Taobao UserBehavior CSV (no header).
    Taobao,
    /// fitstream's JSON lines.
    Jsonl,
}

impl InputFormat {
    /// Guesses from the file name (a `.gz` suffix aside) and, for CSV, from the first line:
    /// UserBehavior rows have no header.
    pub fn guess(path: &Path) -> InputFormat {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let name = name.strip_suffix(".gz").unwrap_or(name);
        if !name.ends_with(".csv") {
            return InputFormat::Jsonl;
        }
        let mut first = String::new();
        let taobao = open_input(path)
            .map(|mut r| r.read_line(&mut first).is_ok())
            .unwrap_or(false)
            && fitstream_simulator::taobao::looks_like_taobao(&first);
        if taobao {
            InputFormat::Taobao
        } else {
            InputFormat::Rees46
        }
    }

    /// The order records are fed in unless told otherwise: event time for the public CSV
    /// histories, which need not be sorted by time; file order for fitstream's JSON lines,
    /// whose order is the arrival order it recorded (late records stay late).
    pub fn default_order(self) -> InputOrder {
        match self {
            InputFormat::Rees46 | InputFormat::Taobao => InputOrder::EventTime,
            InputFormat::Jsonl => InputOrder::File,
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(parts: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(part.as_bytes()).expect("gzip");
            out.extend(enc.finish().expect("gzip"));
        }
        out
    }

    fn text(path: &Path) -> String {
        let mut s = String::new();
        open_input(path)
            .expect("open")
            .read_to_string(&mut s)
            .expect("read");
        s
    }

    #[test]
    fn gzip_input_is_read_directly_by_its_magic_number_whatever_its_name() {
        let dir = tempfile::tempdir().expect("dir");
        let rows = "1,2,3,pv,1511544070\n1,2,3,buy,1511544090\n";
        let plain = dir.path().join("UserBehavior.csv");
        std::fs::write(&plain, rows).expect("write");
        // Two gzip members one after the other (as `cat a.gz b.gz` makes) are one stream.
        let gz = dir.path().join("UserBehavior.csv.gz");
        std::fs::write(
            &gz,
            gzip(&["1,2,3,pv,1511544070\n", "1,2,3,buy,1511544090\n"]),
        )
        .expect("write");
        let misnamed = dir.path().join("history.csv");
        std::fs::write(&misnamed, gzip(&[rows])).expect("write");
        for path in [&plain, &gz, &misnamed] {
            assert_eq!(text(path), rows, "{}", path.display());
            assert_eq!(InputFormat::guess(path), InputFormat::Taobao);
            let records: Vec<InputRecord> = read_inputs(path, InputFormat::Taobao)
                .expect("read")
                .collect();
            assert_eq!(records.len(), 2);
        }
        let rees46 = dir.path().join("2019-Oct.csv.gz");
        std::fs::write(&rees46, gzip(&[",event_time,event_type,product_id\n"])).expect("write");
        assert_eq!(InputFormat::guess(&rees46), InputFormat::Rees46);
        assert_eq!(
            InputFormat::guess(Path::new("x.jsonl.gz")),
            InputFormat::Jsonl
        );
        // A truncated gzip file fails to read (the readers make that their last error item).
        let truncated = dir.path().join("cut.csv.gz");
        let bytes = gzip(&[rows]);
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
        let mut s = String::new();
        assert!(
            open_input(&truncated)
                .expect("open")
                .read_to_string(&mut s)
                .is_err()
        );
    }

    #[test]
    fn csv_histories_default_to_event_time_and_json_lines_to_file_order() {
        assert_eq!(InputFormat::Taobao.default_order(), InputOrder::EventTime);
        assert_eq!(InputFormat::Rees46.default_order(), InputOrder::EventTime);
        assert_eq!(InputFormat::Jsonl.default_order(), InputOrder::File);
    }
}
