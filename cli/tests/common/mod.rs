//! Helpers shared by the tests against a real Kafka broker (`kafka_*.rs`): fresh topics per
//! run, the `fitstream` binary as a child process (spawned, killed, stopped), the embedded
//! reference run, and output lines comparable across the two drivers.
//!
//! Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fitstream::config::FitstreamConfig;
use fitstream::embedded;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::kafka::{KafkaConfig, admin};
use fitstream_simulator::InputRecord;

pub const PLANTS: [&str; 3] = ["berlin", "lyon", "porto"];

pub fn bootstrap() -> String {
    std::env::var("FITSTREAM_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn config(id: &str, partitions: i32) -> FitstreamConfig {
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
pub async fn fresh(id: &str) -> FitstreamConfig {
    fresh_with(id, false).await
}

/// [`fresh`]; with `every_version`, no table topic is compacted (a test that checks every
/// version: compaction may legitimately drop superseded values before they are read, and
/// records dated early 2026 are old enough for it).
pub async fn fresh_with(id: &str, every_version: bool) -> FitstreamConfig {
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

pub fn env_of(cfg: &FitstreamConfig) -> Vec<(String, String)> {
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
        // No registry in these tests: fitstream's own ids, on purpose.
        ("FITSTREAM__REGISTRY__PINNED_IDS", "true".to_owned()),
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
pub enum Membership {
    /// `group.instance.id` from the configuration: a restart takes its partitions back.
    Static,
    /// No instance id: the instance leaves the group when it stops.
    Dynamic,
}

pub fn spawn(cfg: &FitstreamConfig, service: &str, membership: Membership) -> Child {
    spawn_with(cfg, service, membership, true, &[])
}

/// `fitstream run <service>`, bounded (`--until-end`) or not, with extra environment.
pub fn spawn_with(
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

/// `fitstream run <service> --until-end` with its own `group.instance.id` (None: a dynamic
/// member), logging JSON from info on to `log`: the test reads what the instance did.
pub fn spawn_logged(
    cfg: &FitstreamConfig,
    service: &str,
    instance: Option<&str>,
    log: &Path,
) -> Child {
    spawn_logged_with(cfg, service, instance, log, true)
}

/// [`spawn_logged`], bounded (`--until-end`) or not.
pub fn spawn_logged_with(
    cfg: &FitstreamConfig,
    service: &str,
    instance: Option<&str>,
    log: &Path,
    bounded: bool,
) -> Child {
    let file = std::fs::File::create(log).expect("the instance's log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_fitstream"));
    command.args(["run", service, "--metrics-listen", "127.0.0.1:0"]);
    if bounded {
        command.arg("--until-end");
    }
    command
        .envs(env_of(cfg))
        .env("RUST_LOG", "info")
        .env("FITSTREAM_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(file);
    match instance {
        Some(id) => command.env("FITSTREAM__KAFKA__GROUP_INSTANCE_ID", id),
        None => command.env_remove("FITSTREAM__KAFKA__GROUP_INSTANCE_ID"),
    };
    command.spawn().expect("start fitstream run")
}

/// The JSON log events of an instance started by [`spawn_logged`], in its log's lines
/// `lines` (a line being written, or not JSON, left out).
pub fn log_events(log: &Path, lines: std::ops::Range<usize>) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(lines.start)
        .take(lines.end.saturating_sub(lines.start))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Lines in an instance's log so far.
pub fn log_lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A file for a child's stderr. Never a pipe read once the child ended: a child that
/// writes more than the pipe holds (64 KiB on Linux) before then blocks in its write, and
/// never ends. In CI on 2026-12-07 a planner logging its broker's absence 40 lines a second
/// blocked so, 10 s in, and outlived the test's two-minute limit.
pub fn log_file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).expect("a log file")
}

/// A child process killed when the test ends, passed or not.
pub struct Stopped(pub Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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
pub fn normalise(mut line: serde_json::Value) -> String {
    if let Some(h) = line.get_mut("headers").and_then(|h| h.as_object_mut()) {
        h.remove("fitstream.error.time");
        let source = h
            .get("fitstream.source.topic")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        line["timestamp"] = serde_json::Value::Null;
        if let Some(decoded) = line["value"]["value_hex"]
            .as_str()
            .and_then(|hex| decoded_input(&source, hex))
        {
            line["value"] = decoded;
        }
    }
    line.to_string()
}

/// A dead letter's value that is a well-formed input record, decoded: apache_avro writes a
/// map's entries (a click's `options`) in the order of a `HashMap`, so the same record
/// encoded by `replay` and by `produce` may differ in its bytes, not in what it says.
fn decoded_input(topic: &str, hex: &str) -> Option<serde_json::Value> {
    use fitstream_contracts::{ClickEvent, Codec, PurchaseEvent};
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let codec = Codec::pinned();
    if topic.contains("clickstream") {
        let c: ClickEvent = codec.decode_unchecked(topic, &bytes).ok()?;
        serde_json::to_value(c).ok()
    } else if topic.contains("purchases") {
        let p: PurchaseEvent = codec.decode_unchecked(topic, &bytes).ok()?;
        serde_json::to_value(p).ok()
    } else {
        None
    }
}

pub fn multiset(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l).or_default() += 1;
    }
    m
}

/// A compacted topic's contract: the latest value per key.
pub fn latest(lines: Vec<serde_json::Value>) -> BTreeMap<String, String> {
    lines
        .into_iter()
        .map(|l| (l["key"].to_string(), l["value"].to_string()))
        .collect()
}

/// SIGTERM, then the exit status within `limit`.
pub fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    wait_for(child, limit)
}

/// The reference: `records` through the embedded pipeline, outputs under a directory of
/// this run's own.
///
/// The embedded run is deterministic, and several tests of one process (the fault
/// scenarios, the planner's equivalence tests) run the same input under configurations that
/// differ only in their run id: it runs once per configuration and input, under a stand-in
/// id, and each test gets a copy with its own id in the stand-in's place (topic names,
/// application names in headers). A debug build's run of the simulator's default day takes
/// about 50 s; the fault scenarios ran it four times.
pub fn reference(
    cfg: &FitstreamConfig,
    id: &str,
    records: &[InputRecord],
) -> (std::path::PathBuf, embedded::Summary) {
    use std::hash::{Hash, Hasher};
    use std::sync::Mutex;
    // As long as a run id (a stand-in must not change a name's length) and never one: not hex.
    const STAND_IN: &str = "referencerun";
    static RUNS: Mutex<BTreeMap<u64, (std::path::PathBuf, embedded::Summary)>> =
        Mutex::new(BTreeMap::new());
    assert_eq!(STAND_IN.len(), id.len(), "a run id of another length");
    let canonical = serde_json::to_string(cfg)
        .expect("a configuration serialises")
        .replace(id, STAND_IN);
    let mut key = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut key);
    for r in records {
        format!("{r:?}").hash(&mut key);
    }
    let key = key.finish();
    let (canonical_dir, summary) = {
        let mut runs = RUNS.lock().unwrap_or_else(|e| e.into_inner());
        runs.entry(key)
            .or_insert_with(|| {
                let cfg: FitstreamConfig =
                    serde_json::from_str(&canonical).expect("the configuration reads back");
                let dir = std::env::temp_dir().join(format!(
                    "fitstream-ref-{STAND_IN}-{}-{key:x}",
                    std::process::id()
                ));
                let summary = embedded::run_bounded(
                    &cfg,
                    cfg.planner.clone(),
                    fitstream_planner::routing::Routing::bundled(),
                    || Ok(records.iter().cloned()),
                    &dir,
                    |_| {},
                )
                .expect("embedded run");
                (dir, summary)
            })
            .clone()
    };
    let dir = std::env::temp_dir().join(format!("fitstream-ref-{id}"));
    std::fs::create_dir_all(&dir).expect("a directory");
    for entry in std::fs::read_dir(&canonical_dir).expect("the reference's outputs") {
        let path = entry.expect("an entry").path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().expect("a name").to_string_lossy();
        let text = std::fs::read_to_string(&path).expect("an output file");
        std::fs::write(
            dir.join(name.replace(STAND_IN, id)),
            text.replace(STAND_IN, id),
        )
        .expect("written");
    }
    let mut summary = summary;
    summary.outputs = std::mem::take(&mut summary.outputs)
        .into_iter()
        .map(|(topic, n)| (topic.replace(STAND_IN, id), n))
        .collect();
    (dir, summary)
}

pub fn read_jsonl(dir: &Path, topic: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(format!("{topic}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// A random suffix for this run's topics, group and internal topics.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// The plants of [`PLANTS`], owned.
pub fn plants() -> Vec<String> {
    PLANTS.iter().map(|s| s.to_string()).collect()
}

/// Waits until `service`'s consumer group has committed at least `fraction` of the records
/// on the input topics (clickstream and purchases), so that a kill or a fault comes mid-run
/// however fast the machine and the build are (a release build ran through the whole input
/// before a kill timed in seconds). Panics if `child` ends first, or after 600 s. Returns
/// the fraction committed when it was reached.
pub fn until_progress(
    cfg: &FitstreamConfig,
    child: &mut Child,
    service: &str,
    fraction: f64,
    what: &str,
) -> f64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let wait = Duration::from_secs(30);
    let group = format!("fitstream-{}", cfg.application(service));
    let probe: BaseConsumer = cfg
        .kafka
        .client()
        .set("group.id", &group)
        .create()
        .expect("a probe of the group's offsets");
    let mut tpl = TopicPartitionList::new();
    let mut end = 0i64;
    for topic in [&cfg.topics.clickstream, &cfg.topics.purchases] {
        for p in 0..cfg.topics.partitions {
            tpl.add_partition(topic, p);
            let (_, high) = probe
                .fetch_watermarks(topic, p, wait)
                .expect("the input's end");
            end += high;
        }
    }
    assert!(end > 0, "{what}: no input");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!(
                "{what}: the process ended by itself before {fraction:.2} of its input ({status})"
            );
        }
        let committed: i64 = probe
            .committed_offsets(tpl.clone(), wait)
            .expect("the group's offsets")
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        let done = committed as f64 / end as f64;
        if done >= fraction {
            return done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{what}: {done:.2} of the input committed after 600 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kill -9` of a process that must still be running: a process that already ended by
/// itself (crashed, or finished its bounded run) fails the test with its exit status, since
/// the kill would then test nothing; and the status collected after the kill must be the
/// kill's own (SIGKILL), not an exit that raced it.
pub fn kill_mid_run(child: &mut Child, what: &str) {
    use std::os::unix::process::ExitStatusExt;

    if let Some(status) = child.try_wait().expect("wait") {
        panic!("{what}: the process ended by itself before it was killed ({status})");
    }
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "{what}: the process ended by itself ({status}) before SIGKILL reached it"
    );
}

/// Kafka's default partition of a keyed record, written here from the Java client
/// (`org.apache.kafka.common.utils.Utils.murmur2` and `BuiltInPartitioner.partitionForKey`:
/// `toPositive(murmur2(key)) % partitions`), independently of the product's `partition_for`.
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (java_murmur2(key) & 0x7fff_ffff) % partitions
}

/// `Utils.murmur2` of the Java client: seed 0x9747b28c, 4-byte little-endian blocks, tail
/// bytes mixed in from the highest one down, as a signed 32-bit int.
pub fn java_murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ length as u32;
    let blocks = length / 4;
    for i in 0..blocks {
        let i4 = i * 4;
        let mut k = u32::from(data[i4])
            | (u32::from(data[i4 + 1]) << 8)
            | (u32::from(data[i4 + 2]) << 16)
            | (u32::from(data[i4 + 3]) << 24);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks * 4;
    let rest = length % 4;
    if rest == 3 {
        h ^= u32::from(data[tail + 2]) << 16;
    }
    if rest >= 2 {
        h ^= u32::from(data[tail + 1]) << 8;
    }
    if rest >= 1 {
        h ^= u32::from(data[tail]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to process `pid` with bash's built-in `kill`, which
/// needs no procps on the machine.
pub fn send_signal(pid: &str, signal: &str) {
    let status = Command::new("bash")
        .args(["-c", "kill -s \"$0\" \"$1\"", signal, pid])
        .status()
        .expect("bash");
    assert!(status.success(), "kill -s {signal} {pid}");
}

/// The broker of the fault tests (`tests/faults.sh`): its own node on
/// `FITSTREAM_FAULTS_KAFKA_PORT` (controller on the next port), started and stopped through
/// `deploy/kafka.sh` like the test broker, so that killing it disturbs no other test.
pub struct FaultBroker {
    port: u16,
}

impl FaultBroker {
    /// The fault broker, when `tests/faults.sh` named one.
    pub fn from_env() -> Option<FaultBroker> {
        let port = std::env::var("FITSTREAM_FAULTS_KAFKA_PORT").ok()?;
        Some(FaultBroker {
            port: port.parse().expect("FITSTREAM_FAULTS_KAFKA_PORT is a port"),
        })
    }

    fn script(&self, command: &str) -> std::process::ExitStatus {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Command::new("bash")
            .arg(repo.join("deploy/kafka.sh"))
            .arg(command)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string())
            .stdout(Stdio::null())
            .status()
            .expect("deploy/kafka.sh")
    }

    fn pid(&self) -> String {
        let home = std::env::var("FITSTREAM_KAFKA_HOME").unwrap_or_else(|_| {
            let cache = std::env::var("XDG_CACHE_HOME")
                .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").expect("HOME")));
            format!("{cache}/fitstream/kafka")
        });
        let file = format!("{home}/data-{}/kafka.pid", self.port);
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_owned()
    }

    fn signal(&self, signal: &str) {
        send_signal(&self.pid(), signal);
    }

    /// `kill -9` of the broker.
    pub fn kill(&self) {
        self.signal("KILL");
    }

    /// The broker frozen (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// The frozen broker goes on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Starts the broker (after a kill: the same data, recovered) and waits until it serves.
    pub fn start(&self) {
        assert!(self.script("start").success(), "the fault broker starts");
    }
}

/// The `fitstream` binary with `args` and extra environment, to its end (warnings only in
/// its log, no backtraces in its errors).
pub fn fitstream_output(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fitstream"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run fitstream")
}

/// The `fitstream` binary with `args` and `env` (the caller's log level), to its end or to
/// `limit`, when it is killed and the test fails with the end of its log: a run that hangs
/// fails its test instead of stopping the suite (or a soak) for good.
pub fn fitstream_within(
    args: &[&str],
    env: &[(String, String)],
    limit: Duration,
) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("fitstream-run-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a directory for the run's output");
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fitstream"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("run fitstream");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&err).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "fitstream {args:?} did not end within {} s, killed; the end of its log:\n{}",
                limit.as_secs(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::process::Output {
        status,
        stdout: std::fs::read(&out).expect("stdout"),
        stderr: std::fs::read(&err).expect("stderr"),
    };
    // FITSTREAM_TEST_LOG_DIR keeps every run's log (with FITSTREAM_TEST_CHILD_LOG=info).
    if let Ok(keep) = std::env::var("FITSTREAM_TEST_LOG_DIR") {
        let name = format!(
            "{}-{}.log",
            args.iter().take(2).copied().collect::<Vec<_>>().join("-"),
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("run")
        );
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(&err, Path::new(&keep).join(name));
    }
    let _ = std::fs::remove_dir_all(&dir);
    output
}

/// The standard output of a run that must succeed (its standard error in the failure).
pub fn succeeded(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `seconds` of the simulator's default traffic in order per partition (no out-of-order or
/// late records; duplicates and malformed ones stay) as a JSON-lines file: whether a delayed
/// record is late depends on the watermark when it is read, and on Kafka the input topics
/// interleave as they are fetched. Returns the record count.
pub fn write_in_order_simulation(path: &Path, seconds: u64) -> u64 {
    write_simulation(
        path,
        fitstream_simulator::SimConfig {
            seconds,
            out_of_order_max_ms: 0,
            late_fraction: 0.0,
            ..fitstream_simulator::SimConfig::default()
        },
    )
}

/// Writes `seconds` of the simulator's default input (out of order, late, duplicate and
/// malformed records included) as JSON lines to `path`; returns the record count.
pub fn write_default_simulation(path: &Path, seconds: u64) -> u64 {
    write_simulation(
        path,
        fitstream_simulator::SimConfig {
            seconds,
            ..fitstream_simulator::SimConfig::default()
        },
    )
}

fn write_simulation(path: &Path, sim: fitstream_simulator::SimConfig) -> u64 {
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    fitstream_simulator::write_jsonl(
        fitstream_simulator::Simulator::new(sim).expect("simulator"),
        file,
    )
    .expect("write")
}

/// Asserts that a topic holds the same records in both runs (as multisets of lines made
/// comparable by `key`), printing the counts under `label` and a few lines of each side that
/// the other lacks. Returns the record count.
pub fn assert_same_records(
    label: &str,
    replayed: Vec<serde_json::Value>,
    kafka: Vec<serde_json::Value>,
    key: impl Fn(serde_json::Value) -> String,
) -> u32 {
    compare_records(label, replayed, kafka, key).unwrap_or_else(|e| panic!("{e}"))
}

/// [`assert_same_records`] without the panic: `Err` names the differing topic, so that a test
/// comparing many topics can print every difference before it fails.
pub fn compare_records(
    label: &str,
    replayed: Vec<serde_json::Value>,
    kafka: Vec<serde_json::Value>,
    key: impl Fn(serde_json::Value) -> String,
) -> Result<u32, String> {
    let r = multiset(replayed.into_iter().map(&key));
    let k = multiset(kafka.into_iter().map(&key));
    let n: u32 = r.values().sum();
    println!("{label}: {n} (replay), {} (kafka)", k.values().sum::<u32>());
    // Whole records: a difference may lie past any cut (a build order is about 1 KB).
    for (line, c) in r.iter().filter(|(l, c)| k.get(*l) != Some(c)).take(3) {
        println!("  replay only ({c}): {line}");
    }
    for (line, c) in k.iter().filter(|(l, c)| r.get(*l) != Some(c)).take(3) {
        println!("  kafka only ({c}): {line}");
    }
    if r == k {
        Ok(n)
    } else {
        Err(format!("{label} differs"))
    }
}

/// The profiler and the segmenter of `cfg` on the embedded driver, fed `records` as a replay
/// feeds them (the profiler's state published to `lookup`, if any); what they produced.
pub fn segmentation_reference(
    cfg: &FitstreamConfig,
    records: &[fitstream_simulator::InputRecord],
    lookup: Option<std::sync::Arc<fitstream_profiler::lookup::Lookup>>,
) -> Vec<fitstream_runtime::embedded::Produced> {
    let codec = fitstream::commands::codec(cfg);
    let mut pipeline = fitstream::embedded::segmentation_with(cfg, lookup);
    // A bounded input, announced first: the profiler takes its two inputs in event-time
    // order, as a bounded run on Kafka does.
    for r in records {
        let topic = fitstream::inputs::topic_name(&cfg.topics, r.topic());
        pipeline.announce(topic, r.key());
    }
    let mut stamps = fitstream::inputs::Stamps::default();
    for r in records {
        let mut o = fitstream::inputs::to_out_record(&codec, &cfg.topics, r).expect("encodes");
        let at = stamps.stamp(&mut o);
        pipeline.push_at(
            &o.topic,
            o.key.as_deref(),
            o.value.as_deref().unwrap_or_default(),
            at,
        );
    }
    pipeline.finish().expect("every store checkpoints");
    pipeline.drain()
}
