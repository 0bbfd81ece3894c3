//! The profiler on a real broker, through `kill -9`, against the embedded run of the same
//! input: every version of every customer's profile, in order.
//!
//! Each run uses its own topics, consumer group and internal topics (random suffix).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use fitstream::embedded::to_json_line;
use fitstream::{commands, inputs};
use fitstream_runtime::embedded::Produced;
use fitstream_runtime::kafka::reader::read_until_idle;
use fitstream_runtime::kafka::writer::TopicWriter;
use fitstream_simulator::{InputRecord, SimConfig, Simulator};
use rand::Rng;

use common::*;

/// Every profile record of each customer, in the order it was written (one customer is on
/// one partition, and both the embedded files and a partition's reader keep that order):
/// partition, timestamp and value.
fn versions(lines: &[serde_json::Value]) -> BTreeMap<String, Vec<String>> {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        by_key.entry(l["key"].to_string()).or_default().push(
            serde_json::json!({
                "partition": l["partition"],
                "timestamp": l["timestamp"],
                "value": l["value"],
            })
            .to_string(),
        );
    }
    by_key
}

/// The profiler on Kafka, killed once with `kill -9` mid-run and restored from its changelog,
/// writes the same profiles as the embedded run: every version of every customer's profile in
/// the same order (nothing lost, nothing written twice), and so the same latest profile per
/// customer on the compacted topic. The profiles topic is created uncompacted here, so that
/// every version is still there to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiler_through_kill_9_leaves_the_embedded_profiles() {
    let id = run_id();
    let cfg = fresh_with(&id, true).await;
    // The simulator's default input: out of order, late, duplicated and malformed records.
    let sim = SimConfig {
        seconds: 86_400,
        ..SimConfig::default()
    };
    let records: Vec<InputRecord> = Simulator::new(sim).expect("simulator").collect();

    let (dir, _) = reference(&cfg, &id, &records);
    let embedded_lines = read_jsonl(&dir, &cfg.topics.profiles);
    let want_versions = versions(&embedded_lines);
    let want = latest(embedded_lines);

    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    inputs::produce(
        &mut writer,
        &commands::codec(&cfg),
        &cfg.topics,
        records,
        |_| {},
    )
    .expect("produce");

    let mut child = Stopped(spawn(&cfg, "profiler", Membership::Static));
    // Mid-run at any speed: once a random 10 % to 60 % of the input is committed.
    let at = rand::rng().random_range(0.1..0.6);
    let done = until_progress(&cfg, &mut child.0, "profiler", at, "profiler");
    // A process that ended before its kill fails the test.
    kill_mid_run(&mut child.0, "profiler");
    println!("profiler: SIGKILL mid-run at {done:.2} of the input committed");
    let mut child = Stopped(spawn(&cfg, "profiler", Membership::Static));
    let status = wait_for(&mut child.0, Duration::from_secs(900));
    assert!(status.success(), "profiler failed: {status}");

    let codec = commands::codec(&cfg);
    let read = |topic: &str| {
        let mut got = Vec::new();
        read_until_idle(
            &cfg.kafka,
            &[topic],
            Duration::from_secs(10),
            Duration::from_secs(600),
            |r| {
                let p = Produced::from_consumed(r);
                got.push(to_json_line(&codec, &cfg, &p));
            },
        )
        .expect("read");
        got
    };
    let records = read(&cfg.topics.profiles);
    let emitted = records.len();
    let have_versions = versions(&records);
    let have = latest(records);
    println!(
        "profiles: kafka {emitted} records for {} customers, embedded {} records for {} customers",
        have.len(),
        want_versions.values().map(Vec::len).sum::<usize>(),
        want.len()
    );
    assert!(!want.is_empty());
    let differing = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .count();
    assert_eq!(have.len(), want.len(), "customers with a profile");
    if let Some((k, v)) = want.iter().find(|(k, v)| have.get(*k) != Some(*v)) {
        println!(
            "first difference, {k}:\n  embedded {v}\n  kafka    {:?}",
            have.get(k)
        );
    }
    assert_eq!(
        differing, 0,
        "latest profiles that differ from the embedded run"
    );

    // Every version, in order.
    assert!(
        want_versions.values().any(|v| v.len() > 1),
        "no customer has more than one profile version: the comparison would be the latest one's"
    );
    let differing: Vec<&String> = want_versions
        .iter()
        .filter(|(k, v)| have_versions.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    if let Some(k) = differing.first() {
        let (w, h) = (&want_versions[*k], have_versions.get(*k));
        println!(
            "first customer whose versions differ, {k}: embedded {} versions, kafka {:?}",
            w.len(),
            h.map(Vec::len)
        );
        for (i, v) in w.iter().enumerate() {
            let other = h.and_then(|h| h.get(i));
            if other != Some(v) {
                println!("  version {i}:\n    embedded {v:.300}\n    kafka    {other:?}");
                break;
            }
        }
    }
    assert_eq!(
        have_versions.len(),
        want_versions.len(),
        "customers with profiles"
    );
    assert!(
        differing.is_empty(),
        "{} customers whose profile versions differ from the embedded run",
        differing.len()
    );

    std::fs::remove_dir_all(&dir).ok();
}

/// The kill helper fails loudly when there is nothing to kill: a process that already ended
/// by itself (here `false`, exit status 1) is reported with its status.
#[test]
#[should_panic(expected = "ended by itself before it was killed (exit status: 1)")]
fn a_kill_after_the_process_ended_fails_the_test() {
    let mut child = std::process::Command::new("false")
        .spawn()
        .expect("spawn false");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // try_wait reaped it: kill_mid_run sees the status it kept.
    kill_mid_run(&mut child, "false");
}

/// And a running process is killed by SIGKILL.
#[test]
fn a_kill_of_a_running_process_passes() {
    let mut child = Stopped(
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep"),
    );
    kill_mid_run(&mut child.0, "sleep");
}
