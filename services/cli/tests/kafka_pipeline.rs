//! The planner on a real broker against the embedded run of the same input: the
//! read_committed outputs equal the embedded outputs record for record, and every
//! build-order request id appears exactly once; and the same through three `kill -9` of
//! the planner process at random moments (nothing lost, nothing duplicated).
//!
//! Each run uses its own topics, consumer group and internal topics (random suffix).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fitstream::config::FitstreamConfig;
use fitstream::embedded::{self, to_json_line};
use fitstream::{commands, inputs};
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::embedded::Produced;
use fitstream_runtime::kafka::reader::read_until_idle;
use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};
use fitstream_runtime::kafka::{KafkaConfig, admin};
use fitstream_simulator::{InputRecord, SimConfig, Simulator};
use rand::{Rng, SeedableRng};

const PLANTS: [&str; 3] = ["berlin", "lyon", "porto"];

fn bootstrap() -> String {
    std::env::var("FITSTREAM_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn config(id: &str, partitions: i32) -> FitstreamConfig {
    FitstreamConfig {
        kafka: KafkaConfig {
            bootstrap_servers: bootstrap(),
            group_instance_id: Some(format!("i-{id}")),
            ..KafkaConfig::default()
        },
        topics: TopicsConfig {
            partitions,
            ..TopicsConfig::default().with_prefix(&format!("t-{id}"))
        },
        application_suffix: format!("-{id}"),
        ..FitstreamConfig::default()
    }
}

/// A configuration with its own topics, created with time-based retention off: the records
/// carry event times from early 2026, which retention would delete mid-test.
async fn fresh(id: &str) -> FitstreamConfig {
    fresh_with(id, false).await
}

/// [`fresh`]; with `every_version`, no table topic is compacted (a test that checks every
/// version: compaction may legitimately drop superseded values before they are read, and
/// records dated early 2026 are old enough for it).
async fn fresh_with(id: &str, every_version: bool) -> FitstreamConfig {
    let cfg = config(id, 3);
    let plants: Vec<String> = PLANTS.iter().map(|s| s.to_string()).collect();
    let mut specs = cfg.topics.specs(&plants);
    for s in &mut specs {
        s.configs.insert("retention.ms".into(), "-1".into());
        if every_version && s.configs.get("cleanup.policy").map(String::as_str) == Some("compact") {
            s.configs.insert("cleanup.policy".into(), "delete".into());
        }
    }
    admin::ensure_topics(&cfg.kafka, &specs)
        .await
        .expect("topics");
    cfg
}

fn env_of(cfg: &FitstreamConfig) -> Vec<(String, String)> {
    let t = &cfg.topics;
    let mut env = vec![
        (
            "FITSTREAM__KAFKA__BOOTSTRAP_SERVERS",
            cfg.kafka.bootstrap_servers.clone(),
        ),
        (
            "FITSTREAM__KAFKA__GROUP_INSTANCE_ID",
            cfg.kafka.group_instance_id.clone().unwrap_or_default(),
        ),
        (
            "FITSTREAM__APPLICATION_SUFFIX",
            cfg.application_suffix.clone(),
        ),
        ("FITSTREAM__TOPICS__CLICKSTREAM", t.clickstream.clone()),
        ("FITSTREAM__TOPICS__PURCHASES", t.purchases.clone()),
        (
            "FITSTREAM__TOPICS__CART_ABANDONMENT",
            t.cart_abandonment.clone(),
        ),
        ("FITSTREAM__TOPICS__BUILD_ORDERS", t.build_orders.clone()),
        ("FITSTREAM__TOPICS__DEAD_LETTER", t.dead_letter.clone()),
        ("FITSTREAM__TOPICS__PROFILES", t.profiles.clone()),
        (
            "FITSTREAM__TOPICS__SEGMENT_MODELS",
            t.segment_models.clone(),
        ),
        (
            "FITSTREAM__TOPICS__SEGMENT_ASSIGNMENTS",
            t.segment_assignments.clone(),
        ),
        (
            "FITSTREAM__TOPICS__SEGMENT_PROFILES",
            t.segment_profiles.clone(),
        ),
        ("FITSTREAM__TOPICS__PARTITIONS", t.partitions.to_string()),
        (
            "RUST_LOG",
            std::env::var("FITSTREAM_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ),
    ];
    env.sort();
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Membership of a spawned instance in the consumer group.
#[derive(Clone, Copy, PartialEq)]
enum Membership {
    /// `group.instance.id` from the configuration: a restart takes its partitions back.
    Static,
    /// No instance id: the instance leaves the group when it stops.
    Dynamic,
}

fn spawn(cfg: &FitstreamConfig, service: &str, membership: Membership) -> Child {
    spawn_with(cfg, service, membership, true, &[])
}

/// `fitstream run <service>`, bounded (`--until-end`) or not, with extra environment.
fn spawn_with(
    cfg: &FitstreamConfig,
    service: &str,
    membership: Membership,
    bounded: bool,
    env: &[(&str, &str)],
) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fitstream"));
    command.args(["run", service, "--metrics-listen", "127.0.0.1:0"]);
    if bounded {
        command.arg("--until-end");
    }
    command
        .envs(env_of(cfg))
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    if membership == Membership::Dynamic {
        command.env_remove("FITSTREAM__KAFKA__GROUP_INSTANCE_ID");
    }
    command.spawn().expect("start fitstream run")
}

/// A child process killed when the test ends, passed or not.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What happens to the planner processes during the run.
enum Scenario {
    /// `kill -9` this many times at random moments, then run to the end.
    Kills(u32),
    /// A second instance joins, works a while, then stops gracefully (SIGTERM).
    SecondInstance,
}

fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "the process did not end");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Output lines comparable across modes: dead letters without their wall-clock time.
fn normalise(mut line: serde_json::Value) -> String {
    if let Some(h) = line.get_mut("headers").and_then(|h| h.as_object_mut()) {
        h.remove("fitstream.error.time");
        line["timestamp"] = serde_json::Value::Null;
    }
    line.to_string()
}

fn multiset(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l).or_default() += 1;
    }
    m
}

/// A compacted topic's contract: the latest value per key.
fn latest(lines: Vec<serde_json::Value>) -> BTreeMap<String, String> {
    lines
        .into_iter()
        .map(|l| (l["key"].to_string(), l["value"].to_string()))
        .collect()
}

/// SIGTERM, then the exit status within `limit`.
fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    wait_for(child, limit)
}

/// The reference: `records` through the embedded pipeline, outputs under a directory of
/// this run's own.
fn reference(
    cfg: &FitstreamConfig,
    id: &str,
    records: &[InputRecord],
) -> (std::path::PathBuf, embedded::Summary) {
    let dir = std::env::temp_dir().join(format!("fitstream-ref-{id}"));
    let summary = embedded::run_bounded(
        cfg,
        cfg.planner.clone(),
        fitstream_planner::routing::Routing::bundled(),
        || Ok(records.iter().cloned()),
        &dir,
        |_| {},
    )
    .expect("embedded run");
    (dir, summary)
}

fn read_jsonl(dir: &Path, topic: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(format!("{topic}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_on_kafka_equals_the_embedded_run() {
    pipeline(Scenario::Kills(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joining_and_leaving_changes_nothing() {
    pipeline(Scenario::SecondInstance).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_through_kill_9_equals_the_embedded_run() {
    pipeline(Scenario::Kills(3)).await;
}

async fn pipeline(scenario: Scenario) {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let cfg = fresh(&id).await;
    let plants: Vec<String> = PLANTS.iter().map(|s| s.to_string()).collect();

    // In-order partitions (out-of-order delay 0), duplicates and malformed records included.
    let sim = SimConfig {
        out_of_order_max_ms: 0,
        late_fraction: 0.0,
        ..SimConfig::default()
    };
    let records: Vec<InputRecord> = Simulator::new(sim).expect("simulator").collect();
    assert!(records.len() >= 200_000, "{} records", records.len());

    // The reference: the embedded run of the same records with the same partitioning.
    let (dir, summary) = reference(&cfg, &id, &records);
    let mut outputs: Vec<String> = cfg
        .topics
        .specs(&plants)
        .iter()
        .map(|s| s.name.clone())
        .collect();
    outputs.retain(|t| {
        *t != cfg.topics.clickstream
            && *t != cfg.topics.purchases
            && cfg.topics.kind_of(t).is_none_or(|k| {
                matches!(
                    k,
                    fitstream_contracts::SchemaKind::BuildOrder
                        | fitstream_contracts::SchemaKind::CartAbandonment
                )
            })
    });
    // The embedded pipeline also runs the profiler, which dead-letters the same bad input
    // under its own name: the Kafka run here is the planner alone.
    let planner_service = cfg.application("planner");
    let want = multiset(
        outputs
            .iter()
            .flat_map(|t| read_jsonl(&dir, t))
            .filter(|line| {
                line["headers"]["fitstream.service"]
                    .as_str()
                    .is_none_or(|s| s == planner_service)
            })
            .map(normalise),
    );
    println!(
        "embedded: {} inputs -> {:?}",
        summary.inputs, summary.outputs
    );

    // The planner reads the buyers' segments from the assignments topic, which the profiler
    // writes: here the embedded run's assignments, on the partitions the embedded run used.
    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    let codec = commands::codec(&cfg);
    let assignments = read_jsonl(&dir, &cfg.topics.segment_assignments);
    assert!(
        !assignments.is_empty(),
        "the embedded run assigned segments"
    );
    for line in &assignments {
        let a: fitstream_contracts::SegmentAssignment =
            serde_json::from_value(line["value"].clone()).expect("an assignment");
        writer
            .send(&OutRecord {
                topic: cfg.topics.segment_assignments.clone(),
                key: Some(a.customer_id.clone().into_bytes()),
                value: Some(
                    codec
                        .encode(&cfg.topics.segment_assignments, &a)
                        .expect("encode"),
                ),
                timestamp: Some(a.event_time.0),
                headers: Vec::new(),
                partition: line["partition"].as_i64().map(|p| p as i32),
            })
            .expect("send");
    }
    println!("{} segment assignments produced", assignments.len());

    // The same records into Kafka.
    inputs::produce(
        &mut writer,
        &commands::codec(&cfg),
        &cfg.topics,
        records,
        |_| {},
    )
    .expect("produce");

    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    match scenario {
        Scenario::Kills(kills) => {
            println!("kill schedule seed {seed}");
            for kill in 1..=kills {
                let mut child = spawn(&cfg, "planner", Membership::Static);
                let after = Duration::from_millis(rng.random_range(4_000..12_000));
                std::thread::sleep(after);
                match child.try_wait().expect("wait") {
                    Some(status) => println!("kill {kill}: process had already ended ({status})"),
                    None => {
                        child.kill().expect("kill -9");
                        let _ = child.wait();
                        println!("kill {kill}: SIGKILL after {:.1} s", after.as_secs_f64());
                    }
                }
            }
            let mut child = spawn(&cfg, "planner", Membership::Static);
            let status = wait_for(&mut child, Duration::from_secs(900));
            assert!(status.success(), "last run failed: {status}");
        }
        Scenario::SecondInstance => {
            let mut first = spawn(&cfg, "planner", Membership::Static);
            std::thread::sleep(Duration::from_secs(4));
            let mut second = spawn(&cfg, "planner", Membership::Dynamic);
            std::thread::sleep(Duration::from_secs(8));
            let status = terminate(&mut second, Duration::from_secs(120));
            println!("second instance joined at 4 s and stopped at 12 s ({status})");
            assert!(
                status.success(),
                "the second instance did not drain cleanly: {status}"
            );
            let status = wait_for(&mut first, Duration::from_secs(900));
            assert!(status.success(), "the first instance failed: {status}");
        }
    }
    println!("kafka runs took {:.1} s", started.elapsed().as_secs_f64());

    // What the factory and marketing see: read_committed.
    let mut got = Vec::new();
    let topic_refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    read_until_idle(
        &cfg.kafka,
        &topic_refs,
        Duration::from_secs(10),
        Duration::from_secs(600),
        |r| {
            let p = Produced::from_consumed(r);
            got.push(normalise(to_json_line(&codec, &cfg, &p)));
        },
    )
    .expect("read outputs");
    let have = multiset(got);
    let ids: Vec<String> = have
        .keys()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["value"]["request_id"].as_str().map(str::to_owned))
        .collect();
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    println!(
        "kafka: {} records on output topics ({} distinct), {} build orders with {} distinct request ids; embedded: {} records",
        have.values().sum::<u32>(),
        have.len(),
        ids.len(),
        distinct.len(),
        want.values().sum::<u32>()
    );
    assert_eq!(ids.len(), distinct.len(), "a request id appeared twice");
    assert!(
        have.values().all(|n| *n == 1) || have == want,
        "duplicates on the output topics"
    );
    if have != want {
        let dump = |name: &str, m: &BTreeMap<String, u32>| {
            let text: String = m.keys().map(|k| format!("{k}\n")).collect();
            std::fs::write(std::env::temp_dir().join(name), text).ok();
        };
        dump("fitstream-kafka-have.jsonl", &have);
        dump("fitstream-kafka-want.jsonl", &want);
    }
    let missing: Vec<&String> = want
        .keys()
        .filter(|k| !have.contains_key(*k))
        .take(3)
        .collect();
    let extra: Vec<&String> = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(3)
        .collect();
    assert!(
        have == want,
        "differs from the embedded run; missing e.g. {missing:?}; extra e.g. {extra:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The profiler on Kafka, killed once with `kill -9` and restored from its changelog, leaves
/// the same latest profile per customer on the compacted topic as the embedded run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiler_through_kill_9_leaves_the_embedded_profiles() {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let cfg = fresh(&id).await;
    let sim = SimConfig {
        out_of_order_max_ms: 0,
        late_fraction: 0.0,
        seconds: 86_400,
        ..SimConfig::default()
    };
    let records: Vec<InputRecord> = Simulator::new(sim).expect("simulator").collect();

    let (dir, _) = reference(&cfg, &id, &records);
    let want = latest(read_jsonl(&dir, &cfg.topics.profiles));

    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    inputs::produce(
        &mut writer,
        &commands::codec(&cfg),
        &cfg.topics,
        records,
        |_| {},
    )
    .expect("produce");

    let mut child = spawn(&cfg, "profiler", Membership::Static);
    std::thread::sleep(Duration::from_millis(
        rand::rng().random_range(3_000..7_000),
    ));
    if child.try_wait().expect("wait").is_none() {
        child.kill().expect("kill -9");
        let _ = child.wait();
        println!("profiler: SIGKILL mid-run");
    }
    let mut child = spawn(&cfg, "profiler", Membership::Static);
    assert!(
        wait_for(&mut child, Duration::from_secs(900)).success(),
        "profiler failed"
    );

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
    let have = latest(records);
    println!(
        "profiles: kafka {emitted} records for {} customers, embedded {} customers",
        have.len(),
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

    std::fs::remove_dir_all(&dir).ok();
}

/// A window closes on a quiet stream, with no end of input: one purchase just before the end
/// of its build window, then silence. Once the inputs are idle (2 s of wall clock here), time
/// moves with the wall clock; partitions that never had a record declare themselves idle
/// downstream; the build order comes out, exactly once, while the planner keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_closes_on_a_quiet_stream() {
    use fitstream_contracts::records::{PurchaseEvent, PurchaseLine};

    const T: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z, a window start
    const MIN: i64 = 60_000;
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let cfg = fresh(&id).await;
    let codec = commands::codec(&cfg);
    let order = PurchaseEvent {
        order_id: "o-quiet".into(),
        customer_id: "quiet-1".into(),
        session_id: "s-quiet".into(),
        event_time: fitstream_contracts::EventTime(T + 15 * MIN - 2_000),
        region: "eu-west".into(),
        currency: "EUR".into(),
        lines: vec![PurchaseLine {
            product_id: "p-50".into(),
            sku: "p-50".into(),
            options: Default::default(),
            category: Some("fragrance".into()),
            quantity: 3,
            unit_price: rust_decimal::Decimal::new(2_500, 2),
        }],
    };
    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    writer
        .send(&OutRecord {
            topic: cfg.topics.purchases.clone(),
            key: Some(b"quiet-1".to_vec()),
            value: Some(codec.encode(&cfg.topics.purchases, &order).expect("encode")),
            timestamp: Some(order.event_time.0),
            headers: Vec::new(),
            partition: None,
        })
        .expect("send");
    writer.flush().expect("flush");

    let started = Instant::now();
    let mut planner = spawn_with(
        &cfg,
        "planner",
        Membership::Static,
        false,
        &[
            ("FITSTREAM__WATERMARK__IDLE_TIMEOUT_MS", "2000"),
            ("FITSTREAM__PLANNER__BUILD_GRACE_MS", "1000"),
            ("FITSTREAM__PLANNER__SEGMENT_GRACE_MS", "1000"),
        ],
    );
    let lyon = cfg.topics.build_orders_topic("lyon");
    let read_all = || {
        let mut lines = Vec::new();
        let topics = [
            lyon.as_str(),
            cfg.topics.build_orders_topic("berlin").leak(),
            cfg.topics.build_orders_topic("porto").leak(),
            cfg.topics.cart_abandonment.as_str(),
            cfg.topics.dead_letter.as_str(),
        ];
        read_until_idle(
            &cfg.kafka,
            &topics,
            Duration::from_secs(2),
            Duration::from_secs(30),
            |r| lines.push(to_json_line(&codec, &cfg, &Produced::from_consumed(r))),
        )
        .expect("read");
        lines
    };
    let mut got = Vec::new();
    while got.is_empty() && started.elapsed() < Duration::from_secs(120) {
        assert!(
            planner.try_wait().expect("wait").is_none(),
            "the planner stopped"
        );
        got = read_all();
    }
    println!(
        "build order after {:.1} s of a quiet stream",
        started.elapsed().as_secs_f64()
    );
    // Still running: quiet is not the end. Then a clean stop, and nothing more came out.
    assert!(planner.try_wait().expect("wait").is_none());
    assert!(terminate(&mut planner, Duration::from_secs(60)).success());
    let got = read_all();
    assert_eq!(got.len(), 1, "{got:?}");
    let v = &got[0];
    assert_eq!(v["topic"], serde_json::json!(lyon));
    assert_eq!(v["key"], "p-50");
    let o = &v["value"];
    assert_eq!(o["request_state"], "Released");
    assert_eq!(o["quantity"], "3.000");
    assert_eq!(o["order_count"], 1);
    assert_eq!(o["window_start"], T);
    assert_eq!(o["window_end"], T + 15 * MIN);
    assert_eq!(o["location"]["site"], "lyon");
    assert_eq!(
        o["segment_mix"],
        serde_json::json!([{"segment_id": null, "segment_label": "unassigned", "quantity": "3.000"}])
    );
}

/// The profiler and the segmenter of `cfg` on the embedded driver, fed `records` as a replay
/// feeds them; what they produced (progress markers between them left out).
fn segmentation_reference(cfg: &FitstreamConfig, records: &[InputRecord]) -> Vec<Produced> {
    let codec = commands::codec(cfg);
    let mut pipeline = embedded::segmentation(cfg);
    for r in records {
        let o = inputs::to_out_record(&codec, &cfg.topics, r).expect("encodes");
        pipeline.push(
            &o.topic,
            o.key.as_deref(),
            o.value.as_deref().unwrap_or_default(),
        );
    }
    pipeline.finish();
    pipeline.drain()
}

/// Segmentation through Kafka, as deployed: the profiler and the segmenter as two processes,
/// profiles flowing to the segmenter and models back to the profiler (a global table, with
/// the segmenter's progress markers). The same input gives the same records as the embedded
/// run, read_committed, compared as multisets of (key, event time, bytes):
/// - every profile version;
/// - every model and segment profile, but the embedded run's last fit (at the end of the
///   input, which a service that keeps running never reaches);
/// - every assignment before that last fit's cutoff.
///
/// And on what came out: model versions 1, 2, 3, ..., a segment profile for every segment of
/// every model, assignments that name a segment of their model and form one unbroken chain
/// per customer, customers moved by newer models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_models_and_assignments_equal_the_embedded_run() {
    use fitstream_contracts::{SegmentAssignment, SegmentModel};

    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let cfg = fresh_with(&id, true).await;
    // In-order partitions (see the planner's test); duplicates and malformed records stay in.
    let sim = SimConfig {
        seconds: 86_400,
        out_of_order_max_ms: 0,
        late_fraction: 0.0,
        ..SimConfig::default()
    };
    let records: Vec<InputRecord> = Simulator::new(sim).expect("simulator").collect();
    let codec = commands::codec(&cfg);
    let embedded = segmentation_reference(&cfg, &records);
    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    inputs::produce(&mut writer, &codec, &cfg.topics, records, |_| {}).expect("produce");

    let of = |out: &[Produced], topic: &str| -> Vec<Produced> {
        out.iter()
            .filter(|p| p.topic == topic && p.progress().is_none())
            .cloned()
            .collect()
    };
    let decode_models = |out: &[Produced]| -> Vec<SegmentModel> {
        out.iter()
            .map(|p| {
                codec
                    .decode(
                        &cfg.topics.segment_models,
                        p.value.as_deref().unwrap_or_default(),
                    )
                    .expect("a model")
            })
            .collect()
    };
    let decode_assignments = |out: &[Produced]| -> Vec<SegmentAssignment> {
        out.iter()
            .map(|p| {
                codec
                    .decode(
                        &cfg.topics.segment_assignments,
                        p.value.as_deref().unwrap_or_default(),
                    )
                    .expect("an assignment")
            })
            .collect()
    };
    let models = decode_models(&of(&embedded, &cfg.topics.segment_models));
    let last = models.last().expect("the embedded run fitted").clone();
    println!(
        "embedded: {} models, the last at the end of the input (cutoff {})",
        models.len(),
        last.cutoff_event_time
    );
    // (key, event time, bytes) of what a running service publishes too.
    let comparable = |out: Vec<Produced>, topic: &str| -> BTreeMap<String, u32> {
        let keep = |p: &Produced| -> bool {
            if topic == cfg.topics.segment_models {
                return decode_models(std::slice::from_ref(p))[0].version < last.version;
            }
            if topic == cfg.topics.segment_profiles {
                return p.timestamp < last.cutoff_event_time.0;
            }
            if topic == cfg.topics.segment_assignments {
                return p.timestamp < last.cutoff_event_time.0;
            }
            true
        };
        multiset(out.iter().filter(|p| keep(p)).map(|p| {
            format!(
                "{} {} {}",
                String::from_utf8_lossy(p.key.as_deref().unwrap_or_default()),
                p.timestamp,
                hex::encode(p.value.as_deref().unwrap_or_default())
            )
        }))
    };
    let topics = [
        cfg.topics.profiles.clone(),
        cfg.topics.segment_models.clone(),
        cfg.topics.segment_profiles.clone(),
        cfg.topics.segment_assignments.clone(),
    ];
    let expected: Vec<BTreeMap<String, u32>> = topics
        .iter()
        .map(|t| comparable(of(&embedded, t), t))
        .collect();
    for (t, e) in topics.iter().zip(&expected) {
        println!("  {t}: {} records expected", e.values().sum::<u32>());
    }

    let started = Instant::now();
    // Idle inputs move the watermarks with the wall clock after 5 s (not 30): the end of the
    // input is flushed, fitted and placed sooner. It changes no record (a replay has no
    // idleness).
    let idle = [("FITSTREAM__WATERMARK__IDLE_TIMEOUT_MS", "5000")];
    let mut profiler = Stopped(spawn_with(
        &cfg,
        "profiler",
        Membership::Static,
        false,
        &idle,
    ));
    let mut segmenter = Stopped(spawn_with(
        &cfg,
        "segmenter",
        Membership::Static,
        false,
        &idle,
    ));
    let read = |topic: &str| -> Vec<Produced> {
        let mut out = Vec::new();
        read_until_idle(
            &cfg.kafka,
            &[topic],
            Duration::from_secs(3),
            Duration::from_secs(120),
            |r| out.push(Produced::from_consumed(r)),
        )
        .expect("read");
        out.retain(|p| p.progress().is_none());
        out
    };
    // Until every topic has what the embedded run says (the service's watermarks pass the
    // end of the input with the wall clock once it is idle).
    let mut got: Vec<BTreeMap<String, u32>>;
    loop {
        assert!(
            profiler.0.try_wait().expect("wait").is_none(),
            "profiler stopped"
        );
        assert!(
            segmenter.0.try_wait().expect("wait").is_none(),
            "segmenter stopped"
        );
        got = topics.iter().map(|t| comparable(read(t), t)).collect();
        let counts: Vec<u32> = got.iter().map(|g| g.values().sum()).collect();
        println!(
            "after {:.0} s: {counts:?} records",
            started.elapsed().as_secs_f64()
        );
        if got == expected || started.elapsed() > Duration::from_secs(420) {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    for child in [&mut profiler.0, &mut segmenter.0] {
        assert!(terminate(child, Duration::from_secs(60)).success());
    }
    for ((t, e), g) in topics.iter().zip(&expected).zip(&got) {
        let missing: Vec<&String> = e.keys().filter(|k| g.get(*k) != e.get(*k)).collect();
        let extra: Vec<&String> = g.keys().filter(|k| e.get(*k) != g.get(*k)).collect();
        for k in missing.iter().take(3) {
            println!("  {t}: embedded only: {k:.200}");
        }
        for k in extra.iter().take(3) {
            println!("  {t}: kafka only: {k:.200}");
        }
        assert!(e == g, "{t}: {} differ", missing.len() + extra.len());
    }

    let models = decode_models(&read(&cfg.topics.segment_models));
    let versions: Vec<i64> = models.iter().map(|m| m.version).collect();
    assert_eq!(versions, (1..=models.len() as i64).collect::<Vec<_>>());
    assert!(models.len() >= 10, "{} models", models.len());
    let segments: std::collections::HashSet<(i64, i32)> = models
        .iter()
        .flat_map(|m| m.segments.iter().map(move |s| (m.version, s.segment_id)))
        .collect();
    let profiles: std::collections::HashSet<(i64, i32)> = read(&cfg.topics.segment_profiles)
        .iter()
        .map(|p| {
            let sp: fitstream_contracts::SegmentProfile = codec
                .decode(
                    &cfg.topics.segment_profiles,
                    p.value.as_deref().unwrap_or_default(),
                )
                .expect("a segment profile");
            (sp.model_version, sp.segment_id)
        })
        .collect();
    assert!(
        segments.is_subset(&profiles),
        "a segment of a model without its segment profile"
    );
    let assignments = decode_assignments(&read(&cfg.topics.segment_assignments));
    let mut latest: BTreeMap<String, i32> = BTreeMap::new();
    let mut broken = 0;
    for a in &assignments {
        assert!(
            segments.contains(&(a.model_version, a.segment_id)),
            "{a:?} names a segment its model does not have"
        );
        if a.previous_segment_id != latest.get(&a.customer_id).copied() {
            broken += 1;
        }
        latest.insert(a.customer_id.clone(), a.segment_id);
    }
    let by_model: BTreeMap<i64, usize> = assignments.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.model_version).or_default() += 1;
        m
    });
    println!(
        "{} models in {:.0} s; {} assignments for {} customers, by model version {by_model:?}",
        models.len(),
        started.elapsed().as_secs_f64(),
        assignments.len(),
        latest.len()
    );
    assert_eq!(broken, 0, "assignment chains with a gap or a repeat");
    assert!(
        by_model.keys().any(|v| *v > 1),
        "no customer moved by a newer model"
    );
}

/// The command-line contract end to end, through the binary: `replay` of a JSON-lines file
/// (embedded), and `produce` of the same file, `run all --until-end` and `tail` of every
/// output topic (Kafka, read_committed) give the same records on every output topic:
/// profiles, segment models and profiles, assignments, build orders, abandonments and dead
/// letters. Inputs are in order within each partition (see the planner's test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_run_all_and_tail_match_replay() {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    // Every version on the table topics: compaction would keep only the latest per key.
    let cfg = fresh_with(&id, true).await;
    let dir = std::env::temp_dir().join(format!("fitstream-cli-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("sim.jsonl");
    // In-order partitions, as in the planner's test: whether a delayed record is late depends
    // on the watermark when it is read, and on Kafka the two input topics interleave as they
    // are fetched (duplicates and malformed records stay in).
    let sim = SimConfig {
        seconds: 6 * 3_600,
        out_of_order_max_ms: 0,
        late_fraction: 0.0,
        ..SimConfig::default()
    };
    let file = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
    let n = fitstream_simulator::write_jsonl(Simulator::new(sim).expect("simulator"), file)
        .expect("write");
    let fitstream = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fitstream"))
            .args(args)
            .envs(env_of(&cfg))
            .output()
            .expect("run fitstream");
        assert!(
            out.status.success(),
            "fitstream {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let input_arg = input.to_string_lossy().into_owned();
    let replayed = dir.join("replay");
    fitstream(&[
        "replay",
        "--input",
        &input_arg,
        "--format",
        "jsonl",
        "--out",
        &replayed.to_string_lossy(),
    ]);
    let bootstrap = bootstrap();
    print!(
        "{}",
        fitstream(&[
            "produce",
            "--input",
            &input_arg,
            "--format",
            "jsonl",
            "--bootstrap",
            &bootstrap
        ])
    );
    let started = Instant::now();
    fitstream(&[
        "run",
        "all",
        "--until-end",
        "--bootstrap",
        &bootstrap,
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    println!(
        "{n} records: run all --until-end took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tailed = dir.join("kafka");
    std::fs::create_dir_all(&tailed).expect("dir");
    let plants: Vec<String> = PLANTS.iter().map(|s| s.to_string()).collect();
    let outputs: Vec<String> = cfg
        .topics
        .specs(&plants)
        .into_iter()
        .map(|s| s.name)
        .filter(|t| *t != cfg.topics.clickstream && *t != cfg.topics.purchases)
        .collect();
    for topic in &outputs {
        let file = tailed.join(format!("{topic}.jsonl"));
        fitstream(&[
            "tail",
            topic,
            "--bootstrap",
            &bootstrap,
            "--from-beginning",
            "--until-idle",
            "3",
            "--out",
            &file.to_string_lossy(),
        ]);
    }

    // Every output topic, record for record (partition, key, timestamp, decoded value; dead
    // letters with their headers but the wall-clock time of failure).
    let mut total = 0;
    for topic in &outputs {
        let r = multiset(read_jsonl(&replayed, topic).into_iter().map(normalise));
        let k = multiset(read_jsonl(&tailed, topic).into_iter().map(normalise));
        let n: u32 = r.values().sum();
        println!("{topic}: {n} (replay), {} (kafka)", k.values().sum::<u32>());
        for (line, c) in r.iter().filter(|(l, c)| k.get(*l) != Some(c)).take(3) {
            println!("  replay only ({c}): {line:.300}");
        }
        for (line, c) in k.iter().filter(|(l, c)| r.get(*l) != Some(c)).take(3) {
            println!("  kafka only ({c}): {line:.300}");
        }
        assert!(r == k, "{topic} differs");
        total += n;
    }
    for topic in [
        &cfg.topics.profiles,
        &cfg.topics.segment_models,
        &cfg.topics.segment_assignments,
        &cfg.topics.cart_abandonment,
        &cfg.topics.dead_letter,
    ] {
        assert!(
            !read_jsonl(&replayed, topic).is_empty(),
            "nothing on {topic}"
        );
    }
    println!("{total} output records equal");
    std::fs::remove_dir_all(&dir).ok();
}
