//! Latency after window close, the same way for any engine that reads fitstream's input
//! topics and writes build orders (fitstream's planner, the Kafka Streams peer): used by
//! `bench/vs-kafka-streams.sh`.
//!
//! It sends the records of a JSON-lines input (in event-time order, one partition per topic)
//! at a fixed rate of wall time, logging when each was handed to the producer, and reads the
//! build-order topics `read_committed` at the same time, logging when each Released build
//! order became visible. A window [start, end) of the planner closes when the engine's time
//! passes end + grace:
//! - `--time watermark` (fitstream): the watermark is the least, over the input partitions, of
//!   the greatest event time sent to each, minus the allowed out-of-orderness;
//! - `--time stream-time` (Kafka Streams): the windowed aggregation's stream time is the
//!   greatest timestamp of the purchase lines it read (its only input).
//!
//! The latency of a build order is the moment it was visible minus the moment the first
//! record that moved the engine's time past its window's end + grace was sent. Prints
//! `latency: N build orders, p50 A ms, p99 B ms, max C ms` (and the input rate reached).
//!
//! `cargo run --release --example latency -- --config FILE --input JSONL --rate 5000
//!  --seconds 120 --time watermark|stream-time [--grace-ms 300000] [--out-of-orderness-ms 0]`

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use fitstream::{commands, inputs};
use fitstream_contracts::{BuildOrder, RequestState};
use fitstream_runtime::kafka::reader::{self, ReadOptions, Start};
use fitstream_runtime::kafka::writer::TopicWriter;
use fitstream_simulator::{InputRecord, InputTopic};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineTime {
    /// fitstream: the least greatest event time over the input partitions.
    Watermark,
    /// Kafka Streams: the greatest purchase time read.
    StreamTime,
}

#[derive(Parser)]
struct Args {
    /// fitstream configuration (TOML): broker, input topics, build-order topics.
    #[arg(long)]
    config: PathBuf,
    /// The input, JSON lines in event-time order.
    #[arg(long)]
    input: PathBuf,
    /// Records per second of wall time.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Seconds of wall time to send for.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// How the engine's time moves.
    #[arg(long, value_enum)]
    time: EngineTime,
    /// The build windows' grace, ms.
    #[arg(long, default_value_t = 300_000)]
    grace_ms: i64,
    /// The watermark's allowed out-of-orderness, ms (`--time watermark`).
    #[arg(long, default_value_t = 0)]
    out_of_orderness_ms: i64,
    /// Seconds to keep reading after the last record was sent.
    #[arg(long, default_value_t = 20)]
    drain_seconds: u64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[i64], q: f64) -> i64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = fitstream::config::load(Some(&args.config))?;
    anyhow::ensure!(
        cfg.topics.partitions == 1,
        "the engines' time is followed for one partition per topic"
    );
    let codec = commands::codec(&cfg);
    let records: Vec<InputRecord> =
        commands::read_inputs(&args.input, commands::InputFormat::Jsonl)?
            .take((args.rate * args.seconds) as usize)
            .collect();
    let plants = commands::routing(&cfg)?.plant_ids();
    let topics: Vec<String> = plants
        .iter()
        .map(|p| cfg.topics.build_orders_topic(p))
        .collect();

    // The reader: every Released build order and when it became visible, until the sending
    // time plus the drain time (and time to join its group) passed.
    let reader = {
        let (kafka, codec) = (cfg.kafka.clone(), codec.clone());
        let limit = Duration::from_secs(args.seconds + args.drain_seconds + 10);
        let topics = topics.clone();
        std::thread::spawn(move || -> anyhow::Result<Vec<(i64, i64)>> {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let mut seen = Vec::new();
            let options = ReadOptions {
                idle: limit,
                limit,
                // Fresh topics: from the beginning nothing is missed while the group joins.
                start: Start::Beginning,
                group: None,
            };
            reader::read(&kafka, &names, &options, |r| {
                let at = wall_ms();
                if let Some(v) = r.value.as_deref()
                    && let Ok(order) = codec.decode::<BuildOrder>(&r.topic, v)
                    && order.request_state == RequestState::Released
                {
                    seen.push((order.window_end.0, at));
                }
                ControlFlow::Continue(())
            })?;
            Ok(seen)
        })
    };

    // The sender: paced, each record's send time kept with what it did to the engine's time.
    let mut writer = TopicWriter::new(&cfg.kafka)?;
    let mut sent: Vec<(i64, i64)> = Vec::with_capacity(records.len()); // (engine time, wall ms)
    let (mut max_click, mut max_purchase) = (i64::MIN, i64::MIN);
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for (i, record) in records.iter().enumerate() {
        let due = interval * i as u32;
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        writer.send(&inputs::to_out_record(&codec, &cfg.topics, record)?)?;
        let at = wall_ms();
        let t = record.event_time().map_or(i64::MIN, |t| t.0);
        match record.topic() {
            InputTopic::Clickstream => max_click = max_click.max(t),
            InputTopic::Purchases => max_purchase = max_purchase.max(t),
        }
        let engine_time = match args.time {
            EngineTime::Watermark => max_click.min(max_purchase) - args.out_of_orderness_ms,
            EngineTime::StreamTime => max_purchase,
        };
        sent.push((engine_time, at));
    }
    writer.flush()?;
    let send_secs = started.elapsed().as_secs_f64();
    let seen = match reader.join() {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("the reader panicked"),
    };

    // Engine time only grows along `sent`: the first send at or past a threshold.
    let mut latencies: Vec<i64> = seen
        .iter()
        .filter_map(|&(window_end, visible)| {
            let threshold = window_end + args.grace_ms;
            let i = sent.partition_point(|&(t, _)| t < threshold);
            sent.get(i).map(|&(_, crossed)| visible - crossed)
        })
        .collect();
    latencies.sort_unstable();
    println!(
        "sent {} records in {send_secs:.1} s ({:.0} records/s); {} Released build orders read, {} of windows closed during the run",
        sent.len(),
        sent.len() as f64 / send_secs,
        seen.len(),
        latencies.len()
    );
    anyhow::ensure!(!latencies.is_empty(), "no window closed during the run");
    println!(
        "latency: {} build orders, p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    Ok(())
}
