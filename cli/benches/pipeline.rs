//! Throughput on this machine's broker, in one run, on the same simulated input:
//!
//! 1. the ceiling: a transactional passthrough (read, copy, write, commit offsets) on the
//!    Kafka driver, exactly once like every service;
//! 2. the planner (cart -> purchase join, repartition, build-order windows) on the Kafka driver;
//! 3. their ratio;
//! 4. the whole pipeline on the Kafka driver, as `fitstream run all --until-end` runs it
//!    (profiler and segmenter together, then the planner on the complete assignments; its
//!    own consumer groups and internal topics), and its ratio to the passthrough;
//! 5. the planner's operators alone: the embedded driver in this process, no broker (one
//!    core: records/s per core).
//!
//! Environment: `FITSTREAM_BENCH_RECORDS` (default 200000), `FITSTREAM_TEST_BOOTSTRAP`.
//!
//! The bench allocates as the `fitstream` binary does (mimalloc), so that its figures are
//! the binary's.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use fitstream::config::FitstreamConfig;
use fitstream::{commands, embedded, inputs};
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::kafka::driver::{self, DriverConfig};
use fitstream_runtime::kafka::writer::TopicWriter;
use fitstream_runtime::kafka::{KafkaConfig, admin};
use fitstream_runtime::watermark::WatermarkConfig;
use fitstream_simulator::{InputRecord, SimConfig, Simulator};

fn driver_config(cfg: &FitstreamConfig) -> DriverConfig {
    DriverConfig {
        kafka: cfg.kafka.clone(),
        watermark: WatermarkConfig::default(),
        dead_letter_topic: cfg.topics.dead_letter.clone(),
        partitions: cfg.topics.partitions,
        replication_factor: 1,
        bounded: true,
        chain: Default::default(),
    }
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("FITSTREAM_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let bootstrap =
        std::env::var("FITSTREAM_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let p = |name: &str| format!("b-{id}.{name}");
    let cfg = FitstreamConfig {
        kafka: KafkaConfig {
            bootstrap_servers: bootstrap,
            ..KafkaConfig::default()
        },
        topics: TopicsConfig {
            partitions: 3,
            ..TopicsConfig::default().with_prefix(&format!("b-{id}"))
        },
        application_suffix: format!("-{id}"),
        ..FitstreamConfig::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    let plants: Vec<String> = ["berlin", "lyon", "porto"].map(String::from).to_vec();
    let mut specs = cfg.topics.specs(&plants);
    let copy_topic = p("passthrough-out");
    specs.push(fitstream_contracts::topics::TopicSpec {
        name: copy_topic.clone(),
        ..specs[0].clone()
    });
    for s in &mut specs {
        s.configs.insert("retention.ms".into(), "-1".into());
    }
    rt.block_on(admin::ensure_topics(&cfg.kafka, &specs))?;

    let records: Vec<InputRecord> = Simulator::new(SimConfig {
        out_of_order_max_ms: 0,
        late_fraction: 0.0,
        ..SimConfig::default()
    })?
    .take(n)
    .collect();
    let mut writer = TopicWriter::new(&cfg.kafka)?;
    inputs::produce(
        &mut writer,
        &commands::codec(&cfg),
        &cfg.topics,
        records.clone(),
        |_| {},
    )?;
    println!(
        "input: {} records on {} and {} (3 partitions each)",
        records.len(),
        cfg.topics.clickstream,
        cfg.topics.purchases
    );

    // 1. Passthrough.
    let topology = fitstream_runtime::passthrough::topology(
        format!("passthrough-{id}"),
        vec![cfg.topics.clickstream.clone(), cfg.topics.purchases.clone()],
        copy_topic.clone(),
    );
    let started = Instant::now();
    let stats = driver::run(
        topology,
        driver_config(&cfg),
        Arc::new(AtomicBool::new(false)),
    )?;
    let copy_secs = started.elapsed().as_secs_f64();
    let copy_rate = records.len() as f64 / copy_secs;
    println!(
        "passthrough (read, copy, write, commit; exactly once): {:.1} s, {copy_rate:.0} records/s, {} transactions",
        copy_secs, stats.commits
    );

    // 2. Planner on Kafka.
    let codec = commands::codec(&cfg);
    let app = embedded::planner_app(
        &cfg,
        cfg.planner.clone(),
        fitstream_planner::routing::Routing::bundled(),
        codec.clone(),
    );
    let started = Instant::now();
    let stats = driver::run(
        app.topology(),
        driver_config(&cfg),
        Arc::new(AtomicBool::new(false)),
    )?;
    let planner_secs = started.elapsed().as_secs_f64();
    let planner_rate = records.len() as f64 / planner_secs;
    println!(
        "planner (join + repartition + windows; exactly once): {:.1} s, {planner_rate:.0} records/s, {} transactions, {} build orders",
        planner_secs,
        stats.commits,
        app.counters.snapshot().build_orders
    );
    println!(
        "ratio planner / passthrough: {:.2}",
        planner_rate / copy_rate
    );

    // 4. The whole pipeline on Kafka, bounded, as `run all --until-end`.
    let mut all = cfg.clone();
    all.application_suffix = format!("-{id}-all");
    all.registry.pinned_ids = true;
    all.metrics.listen = "127.0.0.1:0".into();
    let started = Instant::now();
    rt.block_on(commands::run_service(
        &all,
        commands::Service::All,
        Arc::new(AtomicBool::new(false)),
        true,
    ))?;
    let all_secs = started.elapsed().as_secs_f64();
    let all_rate = records.len() as f64 / all_secs;
    println!(
        "whole pipeline (profiler + segmenter, then planner; exactly once): {all_secs:.1} s, {all_rate:.0} records/s"
    );
    println!(
        "ratio whole pipeline / passthrough: {:.2}",
        all_rate / copy_rate
    );

    // 5. Operators alone, embedded, this thread only.
    let dir = std::env::temp_dir().join(format!("fitstream-bench-{id}"));
    let started = Instant::now();
    let summary = embedded::run(
        &cfg,
        cfg.planner.clone(),
        fitstream_planner::routing::Routing::bundled(),
        records.clone(),
        &dir,
        None,
        |_| {},
    )?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "planner operators alone (embedded, decode + join + windows + encode + JSON lines, one core): {:.2} s, {:.0} records/s per core ({} build orders)",
        secs,
        summary.inputs as f64 / secs,
        summary.planner.build_orders
    );
    std::fs::remove_dir_all(&dir).ok();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    rt.block_on(admin::delete_topics(&cfg.kafka, &names)).ok();
    Ok(())
}
