//! The transactional passthrough as a process of its own
//! ([`fitstream_runtime::passthrough`]), so that a benchmark can measure its CPU seconds and
//! peak memory like any service's: it reads the input topics of a configuration
//! (clickstream and purchases), copies every record unchanged to `--to`, and commits the
//! offsets in the same transaction, every commit interval, exactly once like the services.
//!
//! `cargo run --release --example passthrough -- --config FILE --to TOPIC [--until-end]`
//!
//! `--until-end` stops once the inputs are read to the end they had at start (as `fitstream
//! run --until-end` does); without it, it runs until SIGTERM or Ctrl-C.
//! Used by `bench/vs-kafka-streams.sh`.

use std::path::PathBuf;

use clap::Parser;
use fitstream_runtime::kafka::admin;
use fitstream_runtime::kafka::driver::{self, BoundedChain, DriverConfig};

#[derive(Parser)]
struct Args {
    /// fitstream configuration (TOML): broker, topics, watermark settings.
    #[arg(long)]
    config: PathBuf,
    /// The topic the copies go to (created like the inputs when missing).
    #[arg(long)]
    to: String,
    /// Stop at the end of the inputs as of start.
    #[arg(long)]
    until_end: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = fitstream::config::load(Some(&args.config))?;
    let mut spec = cfg
        .topics
        .specs(&[])
        .into_iter()
        .find(|s| s.name == cfg.topics.clickstream)
        .ok_or_else(|| anyhow::anyhow!("no clickstream topic in the configuration"))?;
    spec.name = args.to.clone();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(admin::ensure_topics(&cfg.kafka, &[spec]))?;
    let topology = fitstream_runtime::passthrough::topology(
        cfg.application("passthrough"),
        vec![cfg.topics.clickstream.clone(), cfg.topics.purchases.clone()],
        args.to,
    );
    let config = DriverConfig {
        kafka: cfg.kafka.clone(),
        watermark: cfg.watermark.clone(),
        dead_letter_topic: cfg.topics.dead_letter.clone(),
        partitions: cfg.topics.partitions,
        replication_factor: cfg.topics.replication_factor,
        bounded: args.until_end,
        chain: BoundedChain::default(),
    };
    let shutdown = rt.block_on(async { fitstream_runtime::shutdown::on_signals() });
    let stats = driver::run(topology, config, shutdown)?;
    println!("passthrough: {} transactions", stats.commits);
    Ok(())
}
