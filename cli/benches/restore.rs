//! Restore at scale (issue 16, part 3): the profiler's changelog for
//! `FITSTREAM_BENCH_CUSTOMERS` customers (default 1,000,000; four clicks each, as in the
//! `state_memory` bench) is written to a broker, then the Kafka driver restores it the way a
//! pod does after a loss: one instance takes every partition
//! (`FITSTREAM_BENCH_PARTITIONS`, default 3), reads each task's changelog partition from the
//! beginning (read_committed), decodes every customer into the profiler's store and becomes
//! ready. Printed: the changelog's records and bytes, the time to write it, and the restore's
//! time and records per second (from the driver's start to the end of a bounded run with no
//! input: the restore is all it does).
//!
//! `cargo bench -p fitstream --bench restore` with a broker at `FITSTREAM_TEST_BOOTSTRAP`
//! (default 127.0.0.1:9092; `bash deploy/kafka.sh start`); not part of CI. Its topics are
//! deleted at the end.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use fitstream_contracts::Codec;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_profiler::app::{ProfilerApp, ProfilerConfig};
use fitstream_profiler::store::ProfileStore;
use fitstream_runtime::kafka::driver::{self, DriverConfig};
use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};
use fitstream_runtime::kafka::{KafkaConfig, admin};
use fitstream_runtime::partition::partition_for;
use fitstream_runtime::state::codec;
use fitstream_runtime::watermark::WatermarkConfig;

mod common;
use common::click;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let customers = env("FITSTREAM_BENCH_CUSTOMERS", 1_000_000);
    let partitions = env("FITSTREAM_BENCH_PARTITIONS", 3) as i32;
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let kafka = KafkaConfig {
        bootstrap_servers: std::env::var("FITSTREAM_TEST_BOOTSTRAP")
            .unwrap_or_else(|_| "127.0.0.1:9092".into()),
        ..KafkaConfig::default()
    };
    let topics = TopicsConfig {
        partitions,
        ..TopicsConfig::default().with_prefix(&format!("restore-{id}"))
    };
    let app = ProfilerApp::new(
        format!("profiler-restore-{id}"),
        ProfilerConfig::default(),
        topics.clone(),
        Codec::pinned(),
    );
    let topology = app.topology();
    let changelog = topology.changelog_topic(&topology.stages[0]);
    let mut specs = topics.specs(&[]);
    specs.extend(driver::internal_topics(&topology, partitions, 1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(admin::ensure_topics(&kafka, &specs))?;

    // The changelog as the profiler writes it: `customers/<id>`, the stored form, to the
    // partition of the customer's input partition.
    let mut store = ProfileStore::new();
    for e in 0..4 {
        for c in 0..customers {
            store.click(&click(c, e, customers));
        }
    }
    store.take_pending();
    let entries = store.take_changed();
    drop(store);
    let started = Instant::now();
    let mut writer = TopicWriter::new(&kafka)?;
    let mut bytes = 0usize;
    for (customer, stored) in &entries {
        let value = codec::encode(stored)?;
        bytes += customer.len() + "customers/".len() + value.len();
        writer.send(&OutRecord {
            topic: changelog.clone(),
            partition: Some(partition_for(customer.as_bytes(), partitions)),
            key: Some([b"customers/", customer.as_bytes()].concat()),
            value: Some(value),
            ..OutRecord::default()
        })?;
    }
    writer.flush()?;
    let written = started.elapsed();
    let records = entries.len();
    drop(entries);
    println!(
        "changelog: {records} customers in {partitions} partitions, {:.0} MB, written in {:.1} s",
        bytes as f64 / 1e6,
        written.as_secs_f64()
    );

    // A bounded run with empty inputs: it restores every task, then ends.
    let config = DriverConfig {
        kafka: kafka.clone(),
        watermark: WatermarkConfig::default(),
        dead_letter_topic: topics.dead_letter.clone(),
        partitions,
        replication_factor: 1,
        bounded: true,
        chain: Default::default(),
    };
    let started = Instant::now();
    let stats = driver::run(topology, config, Arc::new(AtomicBool::new(false)))?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "restore: {} records in {took:.1} s ({:.0} records/s), from the driver's start to its end",
        stats.restored,
        stats.restored as f64 / took
    );
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    runtime.block_on(admin::delete_topics(&kafka, &names))?;
    Ok(())
}
