//! Failures on a real broker: a checkpoint that cannot be written aborts the transaction and
//! leaves the committed output, state and offsets as they were; a changelog written by
//! another format version fails the restore with the version named; a restore that cannot
//! finish in time fails instead of running on part of the state; a record on an input
//! topic that carries the runtime's watermark marker headers is dead-lettered and moves no
//! watermark; a bounded run ends past commit markers and aborted transactions, and two
//! instances of one end together while their input is still written.
//!
//! Needs a broker at `FITSTREAM_TEST_BOOTSTRAP` (default 127.0.0.1:9092; `bash
//! deploy/kafka.sh start`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fitstream_contracts::EventTime;
use fitstream_contracts::topics::{TopicRole, TopicSpec};
use fitstream_runtime::deadletter::Reason;
use fitstream_runtime::kafka::driver::{self, DriverConfig, DriverStats};
use fitstream_runtime::kafka::reader::{ConsumedRecord, read_until_idle};
use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};
use fitstream_runtime::kafka::{KafkaConfig, KafkaError, admin};
use fitstream_runtime::state::{self, Keyed, Store, Value, codec};
use fitstream_runtime::task::{
    Ctx, Gate, Record, Rejection, Stage, Task, Topology, WatermarkSource, marker_headers,
};
use fitstream_runtime::watermark::WatermarkConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// A count of the records seen; once poisoned, it refuses to be written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
struct Tally {
    seen: u64,
    poisoned: bool,
}

impl Serialize for Tally {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.poisoned {
            return Err(serde::ser::Error::custom(
                "a poisoned tally cannot be written",
            ));
        }
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Tally", 2)?;
        st.serialize_field("seen", &self.seen)?;
        st.serialize_field("poisoned", &self.poisoned)?;
        st.end()
    }
}

/// Copies every record to `to` and counts it; the record `poison` poisons the count; the
/// record `unwritable` makes an output too large to write; a record `remember-...` is kept
/// in a store that is slow to restore.
struct Counting {
    to: String,
    tally: Value<Tally>,
    remembered: SlowToRestore,
    /// What the driver told the task: `committed <seen> <poisoned>` (the state it may now
    /// show), `revoked`.
    told: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Releases the task holding the record `hold`.
static HOLD_RELEASED: AtomicBool = AtomicBool::new(false);

/// A keyed store whose restore takes a millisecond per entry: a large state's restore.
#[derive(Default)]
struct SlowToRestore(Keyed<String, i64>);

impl Store for SlowToRestore {
    fn checkpoint(&mut self, out: &mut state::Changes<'_>) -> Result<(), state::StateError> {
        self.0.checkpoint(out)
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), state::StateError> {
        std::thread::sleep(Duration::from_millis(1));
        self.0.restore(key, value)
    }
}

impl Task for Counting {
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), Rejection> {
        let t = EventTime(1_000 + record.offset);
        let watermark = gate.at(t)?;
        if watermark > t {
            return Err(Rejection::new(
                Reason::Late,
                format!("{t} is behind the watermark {watermark}"),
            ));
        }
        let value = record.value.unwrap_or_default();
        if value == b"unwritable" {
            // What a service does when its output does not encode within the codec's limit.
            let error = fitstream_contracts::EncodeError::TooLarge {
                len: 2_000_000,
                max: fitstream_contracts::codec::DEFAULT_MAX_VALUE_BYTES,
            };
            ctx.reject_output(&self.to, record.key.map(<[u8]>::to_vec), &error);
            return Ok(());
        }
        if value.starts_with(b"remember-") {
            self.remembered
                .0
                .insert(String::from_utf8_lossy(value).into_owned(), record.offset);
        }
        if value.starts_with(b"slow") {
            // Keeps the instance that holds the partition busy: a second instance joins meanwhile.
            std::thread::sleep(Duration::from_secs(3));
        }
        if value == b"hold" {
            // Held until the test appended a record behind it ([`HOLD_RELEASED`]).
            self.told.lock().expect("log").push("holding".into());
            while !HOLD_RELEASED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if value == b"poison" {
            self.tally.poisoned = true;
        } else {
            self.tally.seen += 1;
        }
        // An output dated in 2100: past what the broker accepts from a producer now.
        let dated = if value == b"from-2100" {
            EventTime(4_102_444_800_000)
        } else {
            t
        };
        ctx.emit(
            &self.to,
            record.key.map(<[u8]>::to_vec),
            value.to_vec(),
            dated,
        );
        Ok(())
    }

    fn advance(&mut self, _: EventTime, _: &mut Ctx) {}

    fn committed(&mut self) {
        let line = format!("committed {} {}", self.tally.seen, self.tally.poisoned);
        self.told.lock().expect("log").push(line);
    }

    fn revoked(&mut self) {
        self.told.lock().expect("log").push("revoked".into());
    }

    fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        vec![
            ("tally", &mut self.tally),
            ("remembered", &mut self.remembered),
        ]
    }
}

struct Setup {
    kafka: KafkaConfig,
    name: String,
    input: String,
    output: String,
    dead_letters: String,
    told: Arc<std::sync::Mutex<Vec<String>>>,
    partitions: i32,
}

impl Setup {
    fn new(what: &str) -> Setup {
        Setup::with_partitions(what, 1)
    }

    fn with_partitions(what: &str, partitions: i32) -> Setup {
        // The driver's log, for a failing test (`RUST_LOG=info`); captured per test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let bootstrap =
            std::env::var("FITSTREAM_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let s = Setup {
            kafka: KafkaConfig {
                bootstrap_servers: bootstrap,
                ..KafkaConfig::default()
            },
            name: format!("state-{what}-{id}"),
            input: format!("st-{id}.in"),
            output: format!("st-{id}.out"),
            dead_letters: format!("st-{id}.dead-letter"),
            told: Arc::default(),
            partitions,
        };
        // Event times here are in 1970: no time-based retention, or the broker deletes them.
        let spec = |name: &str| TopicSpec {
            name: name.to_owned(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".to_owned(), "-1".to_owned())]),
            role: TopicRole::Output,
            value: None,
        };
        let mut specs = vec![spec(&s.input), spec(&s.output), spec(&s.dead_letters)];
        specs.extend(driver::internal_topics(&s.topology(), partitions, 1));
        futures::executor::block_on(admin::ensure_topics(&s.kafka, &specs))
            .expect("topics created");
        s
    }

    fn topology(&self) -> Topology {
        let to = self.output.clone();
        let told = self.told.clone();
        Topology {
            name: self.name.clone(),
            stages: vec![Stage {
                name: "count".into(),
                inputs: vec![self.input.clone()],
                tables: Vec::new(),
                repartitions: Vec::new(),
                watermark: WatermarkSource::EventTime,
                globals: Vec::new(),
                factory: Box::new(move |_| {
                    Box::new(Counting {
                        to: to.clone(),
                        tally: Value::default(),
                        remembered: SlowToRestore::default(),
                        told: told.clone(),
                    })
                }),
            }],
        }
    }

    fn changelog(&self) -> String {
        let topology = self.topology();
        topology.changelog_topic(&topology.stages[0])
    }

    fn produce(&self, topic: &str, records: &[(&[u8], &[u8])]) {
        let records: Vec<OutRecord> = records
            .iter()
            .map(|(k, v)| OutRecord {
                topic: topic.to_owned(),
                key: Some(k.to_vec()),
                value: Some(v.to_vec()),
                ..OutRecord::default()
            })
            .collect();
        self.send(&records);
    }

    fn send(&self, records: &[OutRecord]) {
        let mut w = TopicWriter::new(&self.kafka).expect("a producer");
        for r in records {
            w.send(r).expect("sent");
        }
        w.flush().expect("flushed");
    }

    /// A bounded run to the end of the input (stopped after two minutes at most).
    fn run(&self) -> Result<DriverStats, KafkaError> {
        self.run_with(self.kafka.clone())
    }

    fn run_with(&self, kafka: KafkaConfig) -> Result<DriverStats, KafkaError> {
        self.run_config(kafka, Default::default())
    }

    /// A bounded run whose upstream already finished (`run all`'s segmenter once the profiler
    /// is done): it takes its end offsets as it starts.
    fn run_chained(&self) -> Result<DriverStats, KafkaError> {
        let chain = driver::BoundedChain {
            inputs_complete: Some(Arc::new(AtomicBool::new(true))),
            ..Default::default()
        };
        self.run_config(self.kafka.clone(), chain)
    }

    fn run_config(
        &self,
        kafka: KafkaConfig,
        chain: driver::BoundedChain,
    ) -> Result<DriverStats, KafkaError> {
        let stop = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for _ in 0..1_200 {
                    if stop.load(Ordering::SeqCst) {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                stop.store(true, Ordering::SeqCst);
                true
            })
        };
        let config = DriverConfig {
            kafka,
            watermark: WatermarkConfig::default(),
            dead_letter_topic: self.dead_letters.clone(),
            partitions: self.partitions,
            replication_factor: 1,
            bounded: true,
            chain,
        };
        let result = driver::run(self.topology(), config, stop.clone());
        let timed_out = stop.swap(true, Ordering::SeqCst);
        assert!(
            !(timed_out && watchdog.join().expect("watchdog")),
            "the run did not end within two minutes"
        );
        result
    }

    fn read(&self, topic: &str) -> Vec<ConsumedRecord> {
        let mut out = Vec::new();
        read_until_idle(
            &self.kafka,
            &[topic],
            Duration::from_secs(3),
            Duration::from_secs(120),
            |r| out.push(r),
        )
        .expect("read");
        out
    }

    fn values(&self, topic: &str) -> Vec<Vec<u8>> {
        self.read(topic)
            .into_iter()
            .filter_map(|r| r.value)
            .collect()
    }

    /// The latest committed tally in the changelog.
    fn tally(&self) -> Option<Tally> {
        let latest = self
            .read(&self.changelog())
            .into_iter()
            .rfind(|r| r.key.as_deref() == Some(b"tally/"))?;
        Some(state::decode(&latest.value?).expect("a tally"))
    }

    /// The group's committed offset of the input partition.
    fn committed(&self) -> Option<i64> {
        self.committed_at(0)
    }

    /// The group's committed offset of input partition `p`.
    fn committed_at(&self, p: i32) -> Option<i64> {
        let consumer: BaseConsumer = self
            .kafka
            .client()
            .set("group.id", self.topology().group_id())
            .create()
            .expect("a consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.input, p);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(30))
            .expect("committed offsets");
        match committed.elements().first()?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }
}

#[test]
fn a_checkpoint_that_cannot_be_written_aborts_and_changes_nothing() {
    let s = Setup::new("poison");
    s.produce(&s.input, &[(b"k", b"a"), (b"k", b"b")]);
    let first = s.run().expect("a clean run ends");
    assert!(first.commits > 0);
    let before = (s.values(&s.output), s.tally(), s.committed());
    assert_eq!(
        before,
        (
            vec![b"a".to_vec(), b"b".to_vec()],
            Some(Tally {
                seen: 2,
                poisoned: false
            }),
            Some(2)
        ),
        "the clean run committed its output, state and offsets"
    );

    s.produce(&s.input, &[(b"k", b"poison")]);
    let e = s.run().expect_err("the poisoned checkpoint fails the run");
    let message = e.to_string();
    eprintln!("the run failed with: {message}");
    assert!(
        matches!(e, KafkaError::State(_))
            && message.contains("\"tally\"")
            && message.contains("a poisoned tally cannot be written"),
        "{message}"
    );
    let after = (s.values(&s.output), s.tally(), s.committed());
    assert_eq!(
        after, before,
        "read_committed output, the changelog's state and the offsets are unchanged"
    );
    // What the task was told it may show (the lookup API's source): the first run's
    // commits, up to its whole tally; in the second, the restored state, never the aborted
    // checkpoint's; each run ends with the task revoked.
    let told = s.told.lock().expect("log").clone();
    println!("the task was told: {told:?}");
    let runs: Vec<&[String]> = told.split(|l| l == "revoked").collect();
    assert_eq!(runs.len(), 3, "two runs, each ending revoked: {told:?}");
    assert_eq!(
        runs[0].last().map(String::as_str),
        Some("committed 2 false")
    );
    assert_eq!(runs[1], ["committed 2 false"], "{told:?}");
    assert!(runs[2].is_empty());
}

#[test]
fn a_changelog_of_another_format_version_fails_the_restore_naming_it() {
    let s = Setup::new("version");
    let mut future = codec::encode(&Tally::default()).expect("encodes");
    future[1] = 9;
    s.produce(&s.changelog(), &[(b"tally/", &future)]);
    s.produce(&s.input, &[(b"k", b"a")]);
    let e = s.run().expect_err("the restore fails");
    let message = e.to_string();
    eprintln!("the run failed with: {message}");
    assert!(
        message
            .contains("state format version 9 cannot be read by this build (it reads version 1)")
            && message.contains(&s.changelog())
            && message.contains("store \"tally\""),
        "{message}"
    );
    assert!(s.values(&s.output).is_empty(), "nothing was processed");
    assert_eq!(s.committed(), None, "no offset was committed");
}

#[test]
fn marker_headers_on_an_input_topic_are_dead_lettered_and_move_no_watermark() {
    let s = Setup::new("marker");
    let record = |value: &[u8], headers| OutRecord {
        topic: s.input.clone(),
        key: Some(b"k".to_vec()),
        value: Some(value.to_vec()),
        headers,
        partition: Some(0),
        ..OutRecord::default()
    };
    // A stranger's record naming the input partition itself as the marker's source, with a
    // watermark far in the future: taken as a marker, it would make "b" late.
    let forged = marker_headers(&format!("{}/0", s.input), EventTime(i64::MAX / 2));
    s.send(&[
        record(b"a", Vec::new()),
        record(b"forged", forged),
        record(b"b", Vec::new()),
    ]);
    s.run().expect("the run ends");
    assert_eq!(
        s.values(&s.output),
        vec![b"a".to_vec(), b"b".to_vec()],
        "b is not late"
    );
    let dead: Vec<(Vec<u8>, String)> = s
        .read(&s.dead_letters)
        .into_iter()
        .map(|r| {
            let reason = r
                .headers
                .iter()
                .find(|(k, _)| k == "fitstream.error.reason")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            (r.value.unwrap_or_default(), reason)
        })
        .collect();
    assert_eq!(
        dead,
        vec![(b"forged".to_vec(), "marker-on-input".to_owned())],
        "the forged marker is dead-lettered with its reason, and nothing else is"
    );
}

/// Runs `a`, `value` (key `x`), `b` through [`Counting`]: `a` and `b` are written, `value`'s
/// output is dead-lettered in its place with `reason`, its topic as the source; the run goes
/// on and commits every input offset, no restart, no loss.
fn one_output_dead_lettered(what: &str, value: &[u8], reason: &str) -> DriverStats {
    let s = Setup::new(what);
    s.produce(&s.input, &[(b"k", b"a"), (b"x", value), (b"k", b"b")]);
    let stats = s.run().expect("the run ends");
    assert_eq!(s.values(&s.output), vec![b"a".to_vec(), b"b".to_vec()]);
    let dead = s.read(&s.dead_letters);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("fitstream.error.reason").as_deref(), Some(reason));
    assert_eq!(
        header("fitstream.source.topic").as_deref(),
        Some(s.output.as_str())
    );
    assert_eq!(dead[0].key.as_deref(), Some(&b"x"[..]));
    assert_eq!(s.committed(), Some(3), "every input offset committed");
    stats
}

/// An output that cannot be written (too large once encoded) goes to the dead-letter topic in
/// its place.
#[test]
fn an_output_that_cannot_be_written_is_dead_lettered_and_the_run_goes_on() {
    let stats = one_output_dead_lettered("unwritable", b"unwritable", "too-large");
    assert!(stats.commits >= 1);
}

/// An output dated further ahead of the wall clock than the broker accepts
/// (`message.timestamp.after.max.ms`, 1 h by default) would fail the whole transaction, and
/// the driver would restart into it until the run failed: it is a dead letter (`future`).
#[test]
fn an_output_dated_past_what_the_broker_accepts_is_dead_lettered() {
    one_output_dead_lettered("from-2100", b"from-2100", "future");
}

/// A restore longer than `max.poll.interval.ms` (here 8,000 entries at a millisecond each,
/// against 6 s) runs between polls of the group: the instance keeps its membership (one
/// assignment, no revocation), and the run goes on from the restored state.
#[test]
fn a_restore_longer_than_the_poll_interval_keeps_the_group() {
    let s = Setup::new("long-restore");
    let values: Vec<Vec<u8>> = (0..8_000)
        .map(|i| format!("remember-{i}").into_bytes())
        .collect();
    let records: Vec<(&[u8], &[u8])> = values.iter().map(|v| (&b"k"[..], &v[..])).collect();
    s.produce(&s.input, &records);
    s.run().expect("the first run ends");
    assert_eq!(s.committed(), Some(8_000));

    s.produce(&s.input, &[(b"k", b"after")]);
    let mut kafka = s.kafka.clone();
    kafka
        .properties
        .insert("max.poll.interval.ms".into(), "6000".into());
    let restored_before = fitstream_runtime::metrics::METRICS.restore_records.get();
    let started = std::time::Instant::now();
    let stats = s.run_with(kafka).expect("the second run ends");
    assert!(
        stats.restored >= 8_000,
        "{} changelog records restored",
        stats.restored
    );
    assert!(
        started.elapsed() > Duration::from_secs(8),
        "the restore took its time"
    );
    assert_eq!(
        stats.rebalances, 1,
        "one assignment, never revoked: the group did not lose the instance"
    );
    assert!(
        fitstream_runtime::metrics::METRICS.restore_records.get() - restored_before >= 8_000,
        "the restore's progress is counted"
    );
    let outputs = s.values(&s.output);
    assert_eq!(outputs.len(), 8_001, "every record exactly once");
    assert_eq!(outputs.last().map(Vec::as_slice), Some(&b"after"[..]));
    assert_eq!(s.committed(), Some(8_001));
    assert_eq!(s.tally().map(|t| t.seen), Some(8_001));
}

#[test]
fn a_restore_past_its_deadline_fails_instead_of_running_on_part_of_the_state() {
    let s = Setup::new("restore");
    s.produce(&s.input, &[(b"k", b"a")]);
    s.run().expect("a clean run ends");
    s.produce(&s.input, &[(b"k", b"b")]);
    let impatient = KafkaConfig {
        restore_timeout_ms: 0,
        ..s.kafka.clone()
    };
    let e = s
        .run_with(impatient)
        .expect_err("the restore cannot finish in no time");
    let message = e.to_string();
    eprintln!("the run failed with: {message}");
    assert!(
        matches!(e, KafkaError::Timeout(_))
            && message.contains(&format!("restore of {} partition 0", s.changelog())),
        "{message}"
    );
    assert_eq!(
        s.values(&s.output),
        vec![b"a".to_vec()],
        "b was not processed"
    );
    assert_eq!(s.committed(), Some(1));
    s.run().expect("with time to restore, the run ends");
    assert_eq!(s.values(&s.output), vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(
        s.tally(),
        Some(Tally {
            seen: 2,
            poisoned: false
        })
    );
}

/// Waiting for topics to show in the metadata needs no async runtime (CI's run of 2026-12-06
/// panicked with "no reactor running" when a loaded broker showed new topics a moment late,
/// under `futures::executor::block_on`, as the driver calls it). A topic that never appears
/// makes the wait time out with an error, outside any runtime, deterministically.
#[test]
fn waiting_for_topics_needs_no_async_runtime_and_times_out_with_an_error() {
    let kafka = KafkaConfig {
        bootstrap_servers: std::env::var("FITSTREAM_TEST_BOOTSTRAP")
            .unwrap_or_else(|_| "127.0.0.1:9092".into()),
        ..KafkaConfig::default()
    };
    let never = TopicSpec {
        name: format!("never-created-{}", uuid::Uuid::new_v4().simple()),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
        role: TopicRole::Output,
        value: None,
    };
    let started = std::time::Instant::now();
    let waited = admin::wait_visible(&kafka, &[&never], std::time::Duration::from_millis(500));
    assert!(
        matches!(
            waited,
            Err(fitstream_runtime::kafka::KafkaError::Timeout(_))
        ),
        "{waited:?}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
}

/// No call of a service to its broker waits longer than `kafka.unavailable_limit_ms`. CI's
/// run of 2026-12-06 (a slow fresh machine) saw the planner give up 91 s after its broker
/// died instead of about 15: the broker died while the driver started, and the restarted
/// driver's creation of its internal topics waited librdkafka's default request timeout
/// (60 s) before the streak of failures could be counted. Here no broker listens at all:
/// creating a topic fails within the limit.
#[test]
fn creating_topics_without_a_broker_fails_within_the_unavailable_limit() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = closed.local_addr().expect("address").to_string();
    drop(closed);
    let limit = Duration::from_secs(3);
    let kafka = KafkaConfig {
        bootstrap_servers: address,
        unavailable_limit_ms: limit.as_millis() as u64,
        ..KafkaConfig::default()
    };
    let spec = TopicSpec {
        name: format!("nowhere-{}", uuid::Uuid::new_v4().simple()),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
        role: TopicRole::Table,
        value: None,
    };
    let started = std::time::Instant::now();
    let created = futures::executor::block_on(admin::ensure_topics(&kafka, &[spec]));
    let took = started.elapsed();
    println!("ensure_topics without a broker: {created:?} after {took:?}");
    assert!(created.is_err(), "{created:?}");
    // librdkafka's own request timeout is 60 s; the limit bounds it (plus its own jitter).
    assert!(took < limit * 3, "waited {took:?}, the limit is {limit:?}");
}

/// Under KIP-848 a static member that leaves keeps its partitions until its session expires.
/// A bounded run whose own partitions are done waits for such a partition, is given it and
/// finishes it, instead of ending with it unread: CI's run of the scaling test lost 6,113 of
/// 44,003 outputs that way (the third instance left, the other two ended first). Here a
/// static member (not a driver) holds one of two partitions and leaves without reading it;
/// the run must still deliver both records.
#[test]
fn a_bounded_run_finishes_a_partition_a_departed_static_member_held() {
    let s = Setup::with_partitions("departed", 2);
    let records: Vec<OutRecord> = [0, 1]
        .map(|p| OutRecord {
            topic: s.input.clone(),
            key: Some(b"k".to_vec()),
            value: Some(format!("on {p}").into_bytes()),
            partition: Some(p),
            ..OutRecord::default()
        })
        .to_vec();
    s.send(&records);
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let holder = {
        let (kafka, group, input) = (s.kafka.clone(), s.topology().group_id(), s.input.clone());
        std::thread::spawn(move || {
            let holder: BaseConsumer = kafka
                .member_client()
                .set("group.id", group)
                .set("group.protocol", "consumer")
                .set("group.remote.assignor", "range")
                .set("group.instance.id", "holder")
                .set("enable.auto.commit", "false")
                .create()
                .expect("the holder");
            holder.subscribe(&[&input]).expect("subscribe");
            let held = |n: usize| {
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while holder.assignment().map(|a| a.count()).unwrap_or(0) != n {
                    assert!(std::time::Instant::now() < deadline, "never held {n}");
                    holder.poll(Duration::from_millis(100));
                }
            };
            held(2);
            ready_tx.send(()).expect("ready");
            // The driver joined and took one partition: the holder leaves with the other,
            // unread (a static member's leave keeps it reserved for the session timeout).
            held(1);
        })
    };
    ready.recv().expect("the holder holds both partitions");
    let mut kafka = s.kafka.clone();
    kafka.group_instance_id = Some("runner".into());
    let run = std::thread::scope(|scope| {
        let run = scope.spawn(|| s.run_with(kafka));
        holder.join().expect("the holder left");
        run.join().expect("the run")
    });
    run.expect("the run ends");
    let mut values = s.values(&s.output);
    values.sort();
    assert_eq!(
        values,
        vec![b"on 0".to_vec(), b"on 1".to_vec()],
        "both partitions' records, the departed member's one included"
    );
}

/// Writes `values` to the input in one transaction of a transactional producer, committed
/// or aborted.
fn send_in_transaction(s: &Setup, values: &[&[u8]], commit: bool) {
    use rdkafka::producer::Producer;
    let producer = open_transaction(s, values);
    let wait = Duration::from_secs(30);
    if commit {
        producer.commit_transaction(wait).expect("committed");
    } else {
        producer.abort_transaction(wait).expect("aborted");
    }
}

/// A transactional producer that appended `values` to the input in a transaction it has
/// not ended.
fn open_transaction(s: &Setup, values: &[&[u8]]) -> rdkafka::producer::BaseProducer {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = s
        .kafka
        .client()
        .set("transactional.id", format!("{}-writer", s.name))
        .create()
        .expect("a transactional producer");
    let wait = Duration::from_secs(30);
    producer.init_transactions(wait).expect("init");
    producer.begin_transaction().expect("begin");
    for v in values {
        producer
            .send(BaseRecord::to(&s.input).key(b"k").payload(*v))
            .expect("queued");
    }
    producer.flush(wait).expect("flushed");
    producer
}

/// Raises its flag when dropped: a writer thread stops however the test ends, a failed
/// assertion included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A bounded run ends while its input is still being written: records appended after its
/// end offsets are not activity that keeps it from ending (the partition is paused), and
/// are left for the next run. (Before: every appended record reset the run's quiet time,
/// and a record every 100 ms kept it running to its two-minute limit.)
#[test]
fn a_bounded_run_ends_while_its_input_is_still_written() {
    let s = Setup::new("still-written");
    s.produce(&s.input, &[(b"k", b"a")]);
    let stop = AtomicBool::new(false);
    let ended = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                s.produce(&s.input, &[(b"k", b"more")]);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // The writer stops however the run ends, a failed assertion in it included.
        let _stop = StopOnDrop(&stop);
        s.run()
    });
    ended.expect("the run ends");
    let values = s.values(&s.output);
    assert_eq!(values.first().map(Vec::as_slice), Some(&b"a"[..]));
    assert!(s.read(&s.dead_letters).is_empty(), "nothing read as late");
    assert_eq!(
        s.committed(),
        Some(values.len() as i64),
        "committed up to its end offsets, no further"
    );
}

/// Two instances of one bounded run end while both input partitions are still being
/// written. Each takes the end offsets of every partition once, as it starts; it finishes
/// what it holds at those ends, and counts a partition the other holds as done once the
/// group's committed offset reaches its end there: what is appended after is the next run's.
/// Every partition's output is then exactly its records before the committed offset, none
/// dead-lettered. (Before, an instance took the end of a partition it held at assignment and
/// of one it did not at its first check: each could wait for the other's partition past the
/// end the other took, both until their two-minute limit.)
#[test]
fn two_instances_of_a_bounded_run_end_while_their_input_is_still_written() {
    let s = Setup::with_partitions("two-still-written", 2);
    // Each partition's first record keeps the task that holds it busy for 3 s.
    let value = |p: i32, n: i64| match n {
        0 => format!("slow-{p}").into_bytes(),
        n => format!("{p}-{n:06}").into_bytes(),
    };
    let record = |p: i32, n: i64| OutRecord {
        topic: s.input.clone(),
        key: Some(format!("k{p}").into_bytes()),
        value: Some(value(p, n)),
        partition: Some(p),
        ..OutRecord::default()
    };
    s.send(&[record(0, 0), record(1, 0)]);
    let stop = AtomicBool::new(false);
    let (first, second) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 1;
            while !stop.load(Ordering::SeqCst) {
                s.send(&[record(0, n), record(1, n)]);
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let _stop = StopOnDrop(&stop);
        let first = scope.spawn(|| s.run());
        // The second instance joins while the first one is busy: the group moves a partition.
        std::thread::sleep(Duration::from_secs(1));
        let second = scope.spawn(|| s.run());
        (
            first.join().expect("the first instance"),
            second.join().expect("the second instance"),
        )
    });
    first.expect("the first instance ends");
    second.expect("the second instance ends");
    assert!(s.read(&s.dead_letters).is_empty(), "nothing read as late");
    let mut outputs = s.values(&s.output);
    outputs.sort();
    let mut expected = Vec::new();
    for p in 0..2 {
        let committed = s.committed_at(p).expect("a committed offset");
        assert!(committed >= 1, "partition {p}: its first record was read");
        expected.extend((0..committed).map(|n| value(p, n)));
    }
    assert_eq!(
        outputs.len(),
        expected.len(),
        "one output per record below the committed offsets"
    );
    expected.sort();
    assert!(
        outputs == expected,
        "the outputs are each partition's records below its committed offset"
    );
}

/// A partition whose records after the committed offset were all deleted (retention, or
/// `kafka-delete-records`) starts at its log start: a bounded run ends there. (Before, the
/// committed offset below the log start was taken for the position, and no record came to
/// move it: the run failed at its two-minute limit.)
#[test]
fn a_bounded_run_ends_where_retention_deleted_the_rest() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let s = Setup::new("deleted");
    s.produce(&s.input, &[(b"k", b"a"), (b"k", b"b")]);
    s.run().expect("the first run ends");
    s.produce(&s.input, &[(b"k", b"c"), (b"k", b"d")]);
    let admin: AdminClient<DefaultClientContext> =
        s.kafka.client().create().expect("an admin client");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&s.input, 0, Offset::Offset(4))
        .expect("offset");
    futures::executor::block_on(admin.delete_records(&tpl, &AdminOptions::new()))
        .expect("records deleted");
    s.run().expect("the second run ends");
    assert_eq!(s.values(&s.output), vec![b"a".to_vec(), b"b".to_vec()]);
}

/// A chained bounded run (its upstream finished) takes its end offsets as the high
/// watermarks: the upstream's last transaction is in, even while the broker has not written
/// its commit markers yet and its last stable offset is still at the transaction's start.
/// Here the transaction stays open until the run took its end offsets: the run waits for it
/// and reads its records. (It took the last stable offset, 0, and ended without them.)
#[test]
fn a_chained_bounded_run_reads_the_upstreams_last_transaction() {
    use rdkafka::producer::Producer;
    let s = Setup::new("chained-end");
    let producer = open_transaction(&s, &[b"a", b"b"]);
    std::thread::scope(|scope| {
        let run = scope.spawn(|| s.run_chained());
        std::thread::sleep(Duration::from_secs(5));
        producer
            .commit_transaction(Duration::from_secs(30))
            .expect("committed");
        run.join().expect("the run").expect("the run ends");
    });
    assert_eq!(s.values(&s.output), vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(s.read(&s.dead_letters).is_empty());
}

/// A bounded run ends at its end offsets, where the input's last offsets are never
/// delivered: a commit marker, or an aborted transaction's records and its marker. The
/// driver takes the consumer's position for it, which passes them in the queue; it used to
/// take a position one short of the end for a marker after 5 s of wall time, and never
/// ended with more than one offset undelivered (the run failed at its two-minute limit).
#[test]
fn a_bounded_run_ends_past_commit_markers_and_an_aborted_transaction() {
    let s = Setup::new("undelivered");
    send_in_transaction(&s, &[b"a", b"b"], true);
    send_in_transaction(&s, &[b"c", b"d", b"e"], false);
    let started = std::time::Instant::now();
    s.run().expect("the run ends");
    println!(
        "ended past a marker and an aborted transaction in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        s.values(&s.output),
        vec![b"a".to_vec(), b"b".to_vec()],
        "the committed records, not the aborted ones"
    );
    assert_eq!(
        s.committed(),
        Some(2),
        "committed after the last record processed (what follows is passed again next run)"
    );
    s.run()
        .expect("a second run from the committed offset ends too");
    assert_eq!(s.values(&s.output).len(), 2, "and writes nothing");
}

/// A bounded run reads its inputs to the end offsets it took at assignment: a record
/// appended afterwards is the next run's, neither processed nor committed. (It used to be
/// processed once the task had ended, at a watermark at the end of time: a dead letter
/// here as late, and in the segmenter a profile dated at the end of time.)
#[test]
fn a_record_appended_after_a_bounded_runs_end_offsets_is_the_next_runs() {
    let s = Setup::new("past-end");
    s.produce(&s.input, &[(b"k", b"hold")]);
    std::thread::scope(|scope| {
        let run = scope.spawn(|| s.run());
        // The task holds its only record: the run took its end offsets (at assignment).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !s.told.lock().expect("log").iter().any(|l| l == "holding") {
            assert!(std::time::Instant::now() < deadline, "never held");
            std::thread::sleep(Duration::from_millis(20));
        }
        s.produce(&s.input, &[(b"k", b"after")]);
        HOLD_RELEASED.store(true, Ordering::SeqCst);
        run.join().expect("the run").expect("the run ends");
    });
    assert_eq!(s.values(&s.output), vec![b"hold".to_vec()]);
    assert!(
        s.read(&s.dead_letters).is_empty(),
        "the appended record is not read (as late) in this run"
    );
    assert_eq!(
        s.committed(),
        Some(1),
        "committed up to the end offset taken"
    );
    s.run().expect("the next run");
    assert_eq!(
        s.values(&s.output),
        vec![b"hold".to_vec(), b"after".to_vec()],
        "the next run reads it"
    );
}

/// What [`Slow`] saw: a record (`topic`, event time) or the watermark it was advanced to.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Record(String, i64),
    Advance(EventTime),
}

/// A task whose records of `slow` take 40 ms each.
struct Slow {
    slow: String,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl Task for Slow {
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        _: &mut Ctx,
    ) -> Result<(), Rejection> {
        let t: i64 = String::from_utf8_lossy(record.value.unwrap_or_default())
            .parse()
            .expect("an event time");
        gate.at(EventTime(t))?;
        if record.topic == self.slow {
            std::thread::sleep(Duration::from_millis(40));
        }
        let seen = Seen::Record(record.topic.to_owned(), t);
        self.seen.lock().expect("log").push(seen);
        Ok(())
    }

    fn advance(&mut self, watermark: EventTime, _: &mut Ctx) {
        self.seen
            .lock()
            .expect("log")
            .push(Seen::Advance(watermark));
    }

    fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        Vec::new()
    }
}

/// A task with two inputs takes their records in event-time order, so the records of the
/// input whose times come later wait in its merge while the other input's go first. However
/// long that takes, the waiting input is not idle: its records are on their way, and it
/// holds the watermark where a replay of the same records has it (here: nothing taken from
/// it yet, so the watermark does not move before its first record). Before, once the waiting
/// input had been fetched to its end with its position still for 5 s, its lag read as
/// records never delivered, and after `idle_timeout_ms` it was counted idle: the watermark
/// jumped to the other input's time, ahead of the replay's (found by a soak: a profile
/// flushed before an out-of-order click of its minute came, in one run of
/// `profiles_models_and_assignments_equal_the_embedded_run`).
#[test]
fn an_input_waiting_in_the_merge_is_not_idle() {
    let s = Setup::new("merge-wait");
    let (early, late) = (format!("{}-early", s.input), format!("{}-late", s.input));
    let seen: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
    let topology = {
        let (slow, seen) = (early.clone(), seen.clone());
        Topology {
            name: s.name.clone(),
            stages: vec![Stage {
                name: "merge".into(),
                inputs: vec![early.clone(), late.clone()],
                tables: Vec::new(),
                repartitions: Vec::new(),
                watermark: WatermarkSource::EventTime,
                globals: Vec::new(),
                factory: Box::new(move |_| {
                    Box::new(Slow {
                        slow: slow.clone(),
                        seen: seen.clone(),
                    })
                }),
            }],
        }
    };
    let spec = |name: &str| TopicSpec {
        name: name.to_owned(),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".to_owned(), "-1".to_owned())]),
        role: TopicRole::Output,
        value: None,
    };
    let mut specs = vec![spec(&early), spec(&late)];
    specs.extend(driver::internal_topics(&topology, 1, 1));
    futures::executor::block_on(admin::ensure_topics(&s.kafka, &specs)).expect("topics");
    // 200 records of `early` (8 s of work, past the 5 s after which a still position reads
    // as records never delivered) before the 3 of `late`, whose times all come after.
    let record = |topic: &str, t: i64| OutRecord {
        topic: topic.to_owned(),
        value: Some(t.to_string().into_bytes()),
        timestamp: Some(t),
        partition: Some(0),
        ..OutRecord::default()
    };
    let mut records: Vec<OutRecord> = (0..200).map(|i| record(&early, 1_000 + i)).collect();
    records.extend((0..3).map(|i| record(&late, 100_000 + i)));
    s.send(&records);

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, seen, late) = (stop.clone(), seen.clone(), late.clone());
        std::thread::spawn(move || {
            for _ in 0..1_200 {
                let taken = seen
                    .lock()
                    .expect("log")
                    .iter()
                    .filter(|x| matches!(x, Seen::Record(t, _) if *t == late))
                    .count();
                if taken == 3 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let config = DriverConfig {
        kafka: s.kafka.clone(),
        watermark: WatermarkConfig {
            idle_timeout_ms: 1_000,
            ..WatermarkConfig::default()
        },
        dead_letter_topic: s.dead_letters.clone(),
        partitions: 1,
        replication_factor: 1,
        bounded: false,
        chain: Default::default(),
    };
    driver::run(topology, config, stop).expect("the run ends when stopped");
    watcher.join().expect("watcher");

    let seen = seen.lock().expect("log").clone();
    let first_late = seen
        .iter()
        .position(|x| matches!(x, Seen::Record(t, _) if *t == late))
        .expect("the late input's records were taken");
    let early_taken = seen[..first_late]
        .iter()
        .filter(|x| matches!(x, Seen::Record(..)))
        .count();
    assert_eq!(early_taken, 200, "every earlier record goes first");
    let moved: Vec<&Seen> = seen[..first_late]
        .iter()
        .filter(|x| matches!(x, Seen::Advance(_)))
        .collect();
    assert!(
        moved.is_empty(),
        "the watermark moved while the late input's records waited: {moved:?}"
    );
    assert!(
        seen[first_late..].contains(&Seen::Advance(EventTime(1_199))),
        "then it follows both inputs: {:?}",
        &seen[first_late..]
    );
}

/// `run all --until-end` starts the segmenter's end once the profiler's bounded run says it
/// finished (`BoundedChain::finished`). A restarted run restores its tasks one after the
/// other, and a task whose input was all processed before it was killed finishes at once,
/// while another still restores. CI's secured run of 2026-12-07 (and 1 in 10 runs killed
/// at 3-6 s here) raised the flag then: the segmenter took its end offsets before the last
/// profiler task wrote its profiles, and the last two segment models differed from the
/// embedded run's. The flag waits for every task of the assignment: here partition 1 takes
/// 3 s to restore and has one record more to read, and when the flag is up, that record is
/// committed.
#[test]
fn a_restarted_bounded_run_says_it_finished_only_once_every_task_is_restored_and_done() {
    let s = Setup::with_partitions("finished", 2);
    let on = |p: i32, value: String| OutRecord {
        topic: s.input.clone(),
        key: Some(b"k".to_vec()),
        value: Some(value.into_bytes()),
        partition: Some(p),
        ..OutRecord::default()
    };
    let mut records = vec![on(0, "on 0".into())];
    records.extend((0..3_000).map(|i| on(1, format!("remember-{i}"))));
    s.send(&records);
    s.run().expect("the first run ends");
    assert_eq!(s.committed_at(1), Some(3_000));

    s.send(&[on(1, "after".into())]);
    let finished = Arc::new(AtomicBool::new(false));
    let chain = driver::BoundedChain {
        finished: Some(finished.clone()),
        ..Default::default()
    };
    let (run, committed_when_finished) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !finished.load(Ordering::SeqCst) {
                if std::time::Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            s.committed_at(1)
        });
        let run = s.run_config(s.kafka.clone(), chain);
        (run, watcher.join().expect("the watcher"))
    });
    let stats = run.expect("the second run ends");
    assert!(stats.restored >= 3_000, "{} restored", stats.restored);
    assert_eq!(
        committed_when_finished,
        Some(3_001),
        "when the run said it finished, partition 1's last record was committed"
    );
}
