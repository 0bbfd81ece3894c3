//! The profiler's lookup API on a real broker (issue 19): two profiler instances share the
//! partitions, each answers for every customer (its own from its committed state, the
//! other's forwarded), and every answer equals what the embedded run's state says at the
//! same point, the end of the input.
//!
//! Each run uses its own topics, consumer group and internal topics (random suffix).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fitstream::{commands, inputs};
use fitstream_profiler::lookup::http::SERVED_BY;
use fitstream_profiler::lookup::{Lookup, Reply};
use fitstream_runtime::kafka::writer::TopicWriter;
use fitstream_simulator::{InputRecord, SimConfig, Simulator};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` at `addr`: status, the instance that answered, body.
async fn get(
    client: &reqwest::Client,
    addr: &str,
    path: &str,
) -> (u16, Option<String>, serde_json::Value) {
    let r = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("an answer");
    let status = r.status().as_u16();
    let served_by = r
        .headers()
        .get(SERVED_BY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, served_by, body)
}

/// The partitions an instance holds ready, and the owners it knows, from `/v1/status`.
/// Nothing yet while the instance does not listen.
async fn status(client: &reqwest::Client, addr: &str) -> (BTreeSet<i64>, usize) {
    let Ok(r) = client.get(format!("http://{addr}/v1/status")).send().await else {
        return (BTreeSet::new(), 0);
    };
    let s: serde_json::Value = r.json().await.unwrap_or_default();
    let ready = s["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["state"] == "ready")
        .filter_map(|p| p["partition"].as_i64())
        .collect();
    let owners = s["owners"].as_object().map_or(0, |o| o.len());
    (ready, owners)
}

/// Phase one runs the pipeline to the end of the input (`run all --until-end`), as the
/// replay tests do. Phase two starts two profiler instances with the API: each restores its
/// partitions' committed state from the changelog and claims them on the endpoints topic.
/// Every customer of the embedded run is then asked at both instances: the same answer as
/// the embedded state's (profile, segment, model version, as-of time, next-best products),
/// half of them forwarded. Ids that are empty, too long or not UTF-8 get 400; an unknown
/// one 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_answer_every_customer_as_the_embedded_state_says() {
    let id = run_id();
    let cfg = fresh(&id).await;
    let sim = SimConfig {
        seconds: 43_200,
        ..SimConfig::default()
    };
    let records: Vec<InputRecord> = Simulator::new(sim).expect("simulator").collect();
    let codec = commands::codec(&cfg);

    // The embedded state at the end of the input.
    let reference = Arc::new(Lookup::new(cfg.topics.partitions));
    segmentation_reference(&cfg, &records, Some(reference.clone()));
    let mut ids = reference.ids();
    ids.sort();
    let placed = ids
        .iter()
        .filter(|i| matches!(reference.get(i), Reply::Found(a) if a.segment.is_some()))
        .count();
    println!(
        "{} records; embedded: {} customers, {placed} placed",
        records.len(),
        ids.len()
    );
    assert!(placed > ids.len() / 2, "most customers have a segment");

    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    inputs::produce(&mut writer, &codec, &cfg.topics, records, |_| {}).expect("produce");
    let started = Instant::now();
    let mut all = Stopped(spawn_with(&cfg, "all", Membership::Static, true, &[]));
    let status_all = wait_for(&mut all.0, Duration::from_secs(600));
    assert!(status_all.success(), "run all --until-end: {status_all}");
    println!(
        "run all --until-end took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Two instances with the API, dynamic members sharing the group.
    let addrs: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut instances: Vec<Stopped> = addrs
        .iter()
        .map(|addr| {
            Stopped(
                Command::new(env!("CARGO_BIN_EXE_fitstream"))
                    .args(["run", "profiler", "--metrics-listen", "127.0.0.1:0"])
                    .args(["--api", addr])
                    .envs(env_of(&cfg))
                    .env_remove("FITSTREAM__KAFKA__GROUP_INSTANCE_ID")
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("run profiler --api"),
            )
        })
        .collect();
    let client = reqwest::Client::new();
    let all_partitions: BTreeSet<i64> = (0..i64::from(cfg.topics.partitions)).collect();
    let started = Instant::now();
    loop {
        for (i, child) in instances.iter_mut().enumerate() {
            if let Some(s) = child.0.try_wait().expect("wait") {
                panic!("instance {i} stopped by itself ({s})");
            }
        }
        let mut held = BTreeSet::new();
        let mut both_ready = true;
        let mut known = true;
        for addr in &addrs {
            let (ready, owners) =
                tokio::time::timeout(Duration::from_secs(2), status(&client, addr))
                    .await
                    .unwrap_or_default();
            both_ready &= !ready.is_empty();
            known &= owners == all_partitions.len();
            held.extend(ready);
        }
        if held == all_partitions && both_ready && known {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the instances never held every partition between them: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "both instances ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut forwarded = vec![0usize; addrs.len()];
    let mut differ = 0;
    for id in &ids {
        let Reply::Found(expected) = reference.get(id) else {
            panic!("{id}: in the reference");
        };
        let expected = serde_json::to_value(&*expected).expect("json");
        let path = format!("/v1/customers/{}", encode(id));
        for (i, addr) in addrs.iter().enumerate() {
            let (status, served_by, body) = get(&client, addr, &path).await;
            assert_eq!(status, 200, "{id} at {addr}: {body}");
            if served_by.as_deref() != Some(addr.as_str()) {
                forwarded[i] += 1;
            }
            if body != expected {
                differ += 1;
                if differ <= 3 {
                    println!("{id} at {addr}:\n  kafka:    {body}\n  embedded: {expected}");
                }
            }
        }
    }
    println!(
        "{} customers asked at both instances in {:.1} s; forwarded by each: {forwarded:?}; {differ} answers differ",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(differ, 0, "answers differ from the embedded state");
    assert!(
        forwarded.iter().all(|f| *f > 0),
        "each instance forwarded some: {forwarded:?}"
    );

    let long = "x".repeat(200);
    for (path, want) in [
        ("/v1/customers/", 400),
        ("/v1/customers/%FF%FEz", 400),
        (&format!("/v1/customers/{long}") as &str, 400),
        ("/v1/customers/nobody-has-this-id", 404),
    ] {
        for addr in &addrs {
            let (status, _, body) = get(&client, addr, path).await;
            assert_eq!(status, want, "{path} at {addr}: {body}");
            assert!(body["error"].is_string(), "{body}");
        }
    }
    for child in &mut instances {
        assert!(terminate(&mut child.0, Duration::from_secs(60)).success());
    }
}

/// Percent-encodes a customer id for a path segment.
fn encode(id: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("url");
    url.path_segments_mut().expect("base").push(id);
    url.path().trim_start_matches('/').to_owned()
}
