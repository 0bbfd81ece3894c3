//! The Kafka driver: a topology on a consumer group, exactly once.
//!
//! Delivery invariant: consume -> process -> produce -> commit offsets happen in one Kafka
//! transaction per commit interval (default 100 ms). The transaction holds the outputs, the
//! dead letters, the watermark markers, the changelog records of every task and the input
//! offsets (`send_offsets_to_transaction` with the consumer group's metadata, KIP-447), so a
//! crash at any point either commits all of them or none; consumers of the outputs read
//! `read_committed`.
//!
//! - Partitions are assigned with the `range` strategy, which gives the same partition
//!   number of every co-partitioned input topic to the same member (cooperative-sticky does
//!   not). Rebalances are therefore eager: on revocation the open transaction is aborted and
//!   every task dropped; on assignment each task's state is restored from its changelog
//!   partition (read_committed, to the end) before any record is processed, and the consumer
//!   resumes from the committed offsets. Work since the last commit is redone, never lost or
//!   doubled.
//! - Zombies are fenced by the group generation in `send_offsets_to_transaction`, and by a
//!   transactional id that is stable per instance (`fitstream-<app>-<group.instance.id>`).
//! - A failed commit is fatal: the driver returns the error and the process restarts (state
//!   and offsets come back from Kafka).
//! - Back-pressure: the driver stops polling while the producer queue is full.
//! - Shutdown: when the token is set, the open transaction is committed and the consumer
//!   closes, leaving the group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{KafkaConfig, KafkaError, admin};
use crate::deadletter::DeadLetter;
use crate::host::{TaskHost, account, count_dead_letter, targets};
use crate::metrics::METRICS;
use crate::partition::partition_for;
use crate::state::StateError;
use crate::task::{self, Ctx, EmitKind, Record, Topology, WatermarkSource};
use crate::watermark::WatermarkConfig;
use fitstream_contracts::EventTime;
use fitstream_contracts::topics::TopicSpec;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Settings of the Kafka driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Kafka connection, commit interval, transaction timeout.
    pub kafka: KafkaConfig,
    /// Watermark rules.
    pub watermark: WatermarkConfig,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Partitions of internal topics (repartition, changelog): the input partition count.
    pub partitions: i32,
    /// Replication factor of internal topics.
    pub replication_factor: i32,
    /// Bounded run (a replay through Kafka): input partitions end at their end offsets as of
    /// assignment; at the end every window closes, the last transaction commits and `run`
    /// returns. Restarted, a bounded run resumes and ends the same way.
    pub bounded: bool,
    /// How a bounded run follows the other services of its process.
    pub chain: BoundedChain,
}

/// Bounded runs of services chained in one process (`run all --until-end`): a service whose
/// input is another's output takes its end offsets once that one finished, not at assignment.
#[derive(Clone, Debug, Default)]
pub struct BoundedChain {
    /// When set, the input end offsets are taken once this flag is up (the upstream service's
    /// outputs are complete and committed).
    pub inputs_complete: Option<Arc<AtomicBool>>,
    /// Raised when every task passed the end of time and that is committed (the outputs that
    /// follow from the inputs are complete), before the run waits for its tasks to settle.
    pub finished: Option<Arc<AtomicBool>>,
}

/// Counters of a run, for tests and logs.
#[derive(Clone, Debug, Default)]
pub struct DriverStats {
    /// Records processed (input records and markers).
    pub records: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Rebalances seen.
    pub rebalances: u64,
    /// Changelog records restored.
    pub restored: u64,
}

#[derive(Default)]
struct RebalanceState {
    /// The producer failed inside a callback: the driver must restart.
    broken: Option<String>,
    revoked: bool,
    assigned: Option<Vec<(String, i32)>>,
}

/// Per input partition, as of librdkafka's latest statistics: the end a read_committed
/// consumer can reach (last stable offset), and the fetcher's next offset (past records it
/// fetched, and past aborted records and commit markers, which are never delivered).
type Ends = Arc<Mutex<HashMap<(String, i32), PartitionEnd>>>;

#[derive(Clone, Copy, Debug)]
struct PartitionEnd {
    end: i64,
    fetched: i64,
}

/// How long a partition whose fetcher is at the end may show a lag without delivering
/// anything before the lag counts as records that will never come (aborted transactions).
const UNDELIVERABLE_AFTER: Duration = Duration::from_secs(5);

struct DriverContext {
    state: Arc<Mutex<RebalanceState>>,
    ends: Ends,
    /// Stream inputs of stages that read a table: paused as soon as they are assigned, until
    /// the task's table partitions are read to their end (`Driver::pace_tables`).
    table_streams: Vec<String>,
    producer: Arc<ThreadedProducer<DefaultProducerContext>>,
    in_txn: Arc<AtomicBool>,
}

impl ClientContext for DriverContext {
    fn stats(&self, statistics: Statistics) {
        let Ok(mut ends) = self.ends.lock() else {
            return;
        };
        for (topic, t) in statistics.topics {
            for (p, part) in t.partitions {
                let end = if part.ls_offset >= 0 {
                    part.ls_offset
                } else {
                    part.hi_offset
                };
                if p >= 0 && end >= 0 {
                    let fetched = part.next_offset;
                    ends.insert((topic.clone(), p), PartitionEnd { end, fetched });
                }
            }
        }
    }
}

impl ConsumerContext for DriverContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Uncommitted work belongs to partitions we may lose: abort it; it is redone by
            // whoever owns them next, from the committed offsets and changelogs.
            if self.in_txn.swap(false, Ordering::SeqCst) {
                if let Err(e) = self.producer.abort_transaction(Duration::from_secs(30)) {
                    tracing::error!("abort on revocation failed: {e}");
                    if let Ok(mut s) = self.state.lock() {
                        s.broken = Some(e.to_string());
                    }
                }
                METRICS.transactions.with_label_values(&["aborted"]).inc();
            }
            if let Ok(mut s) = self.state.lock() {
                s.revoked = true;
                s.assigned = None;
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut pause = TopicPartitionList::new();
            for e in tpl.elements() {
                if self.table_streams.iter().any(|t| t == e.topic()) {
                    pause.add_partition(e.topic(), e.partition());
                }
            }
            if pause.count() > 0
                && let Err(e) = consumer.pause(&pause)
            {
                tracing::warn!("pausing stream inputs until their tables are read: {e}");
            }
        }
        if let Rebalance::Assign(tpl) = rebalance
            && let Ok(mut s) = self.state.lock()
        {
            s.assigned = Some(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect(),
            );
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Internal topics of a topology: repartition topics and one compacted changelog per stage.
pub fn internal_topics(
    topology: &Topology,
    partitions: i32,
    replication_factor: i32,
) -> Vec<TopicSpec> {
    use fitstream_contracts::topics::TopicRole;
    let mut specs = Vec::new();
    for stage in &topology.stages {
        // Append time, not event time: a replay of old history must not have its internal
        // records deleted by time-based retention (or refused as too far in the past/future).
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_owned(), "compact".to_owned());
        configs.insert(
            "message.timestamp.type".to_owned(),
            "LogAppendTime".to_owned(),
        );
        specs.push(TopicSpec {
            name: topology.changelog_topic(stage),
            partitions,
            replication_factor,
            configs,
            role: TopicRole::Table,
            value: None,
        });
        for r in &stage.repartitions {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_owned(), "delete".to_owned());
            configs.insert("retention.ms".to_owned(), (24 * 3_600_000).to_string());
            configs.insert(
                "message.timestamp.type".to_owned(),
                "LogAppendTime".to_owned(),
            );
            specs.push(TopicSpec {
                name: r.clone(),
                partitions,
                replication_factor,
                configs,
                role: TopicRole::Output,
                value: None,
            });
        }
    }
    specs
}

/// Runs `topology` until `shutdown` is set or a fatal error occurs.
pub fn run(
    topology: Topology,
    config: DriverConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<DriverStats, KafkaError> {
    // Crash-only: a broken producer or a fenced transaction restarts the driver in this
    // process (state and offsets come back from Kafka); a few failures in a row end it.
    let mut failures = 0;
    loop {
        match run_once(&topology, &config, &shutdown) {
            Err(KafkaError::Client(e)) if failures < 5 && !shutdown.load(Ordering::SeqCst) => {
                failures += 1;
                tracing::warn!("restarting the {} driver after: {e}", topology.name);
                std::thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn run_once(
    topology: &Topology,
    config: &DriverConfig,
    shutdown: &Arc<AtomicBool>,
) -> Result<DriverStats, KafkaError> {
    let specs = internal_topics(topology, config.partitions, config.replication_factor);
    futures::executor::block_on(admin::ensure_topics(&config.kafka, &specs))?;
    let group = topology.group_id();
    let instance = config
        .kafka
        .group_instance_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let producer: Arc<ThreadedProducer<DefaultProducerContext>> = Arc::new(
        config
            .kafka
            .client()
            .set("transactional.id", format!("{group}-{instance}"))
            .set(
                "transaction.timeout.ms",
                config.kafka.transaction_timeout_ms.to_string(),
            )
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "100000")
            .create()?,
    );
    producer.init_transactions(Duration::from_secs(60))?;
    let in_txn = Arc::new(AtomicBool::new(false));
    let state = Arc::new(Mutex::new(RebalanceState::default()));
    let ends: Ends = Arc::default();
    let table_streams: Vec<String> = topology
        .stages
        .iter()
        .filter(|s| !s.tables.is_empty())
        .flat_map(|s| s.inputs.iter().cloned())
        .collect();
    let context = DriverContext {
        state: state.clone(),
        ends: ends.clone(),
        table_streams,
        producer: producer.clone(),
        in_txn: in_txn.clone(),
    };
    let mut client = config.kafka.client();
    client
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "range")
        .set("enable.partition.eof", "false")
        // Statistics carry each partition's end offset: consumer lag, and backlog vs idleness.
        .set("statistics.interval.ms", "1000")
        // Small fetches per partition keep co-partitioned inputs close in event time, which
        // keeps buffered join state (and its snapshots) small during a backlog.
        .set("max.partition.fetch.bytes", "65536");
    if let Some(id) = &config.kafka.group_instance_id {
        client.set("group.instance.id", id);
    }
    let consumer: BaseConsumer<DriverContext> = client.create_with_context(context)?;
    let topics = topology.input_topics();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;

    // Global tables: read whole by every instance, outside the group.
    let globals: Vec<String> = driver_globals(topology);
    let global_consumer: Option<BaseConsumer> = if globals.is_empty() {
        None
    } else {
        let c: BaseConsumer = config
            .kafka
            .client()
            .set("group.id", format!("{group}-globals-{instance}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for g in &globals {
            for p in 0..admin::partition_count(&config.kafka, g)?.max(1) {
                tpl.add_partition_offset(g, p, Offset::Beginning)?;
            }
        }
        c.assign(&tpl)?;
        Some(c)
    };

    let mut driver = Driver {
        global_log: Vec::new(),
        global_progress: BTreeMap::new(),
        topology,
        config: config.clone(),
        producer,
        in_txn,
        slots: BTreeMap::new(),
        positions: BTreeMap::new(),
        partition_counts: HashMap::new(),
        stats: DriverStats::default(),
        service: String::new(),
        end_offsets: BTreeMap::new(),
        starts: BTreeMap::new(),
        table_ends: BTreeMap::new(),
        progress: HashMap::new(),
        paused: BTreeSet::new(),
        rewind: BTreeMap::new(),
        last_table_check: Instant::now(),
        last_backlog_check: Instant::now(),
        quiet_since: None,
        ends_taken: config.chain.inputs_complete.is_none(),
    };
    driver.service = driver.topology.name.clone();
    let commit_every = Duration::from_millis(driver.config.kafka.commit_interval_ms.max(1));
    let mut last_commit = Instant::now();
    METRICS.ready.set(0);
    loop {
        if shutdown.load(Ordering::SeqCst) {
            driver.commit(&consumer)?;
            break;
        }
        let message = consumer.poll(Duration::from_millis(10));
        let (revoked, assigned, broken) = match state.lock() {
            Ok(mut s) => (
                std::mem::take(&mut s.revoked),
                s.assigned.take(),
                s.broken.take(),
            ),
            Err(_) => (false, None, None),
        };
        if let Some(e) = broken {
            return Err(KafkaError::Client(RdError::MessageProduction(
                RDKafkaErrorCode::InvalidTransactionalState,
            )))
            .inspect_err(|_| tracing::error!("producer broken during a rebalance: {e}"));
        }
        if revoked {
            driver.stats.rebalances += 1;
            driver.slots.clear();
            driver.positions.clear();
            driver.paused.clear();
            driver.rewind.clear();
            driver.progress.clear();
            METRICS.ready.set(0);
        }
        if let Some(assignment) = assigned {
            // Every stream input of a table stage was paused on assignment.
            for (topic, p) in &assignment {
                if consumer.context().table_streams.contains(topic) {
                    driver.paused.insert((topic.clone(), *p));
                }
            }
            driver.assign(&assignment)?;
            driver.pace_tables(&consumer, &ends, true)?;
            METRICS.ready.set(1);
        }
        if let Some(g) = &global_consumer {
            while let Some(Ok(m)) = g.poll(Duration::ZERO) {
                let progress = m.headers().and_then(|h| {
                    task::progress_of(h.iter().map(|x| (x.key, x.value.unwrap_or_default())))
                });
                match progress {
                    Some(wm) => driver.global_progress(m.topic(), wm)?,
                    None => driver.global(m.topic(), m.key(), m.payload())?,
                }
            }
        }
        let message_seen = matches!(message, Some(Ok(_)));
        match message {
            Some(Ok(m)) => driver.handle(&m)?,
            Some(Err(e)) => tracing::warn!("consumer: {e}"),
            None => {}
        }
        if !driver.ends_taken
            && driver
                .config
                .chain
                .inputs_complete
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            driver.take_end_offsets()?;
        }
        let all_done = driver.finish_ended(&ends);
        driver.refresh_backlog(&ends);
        driver.pace_tables(&consumer, &ends, false)?;
        driver.tick()?;
        if last_commit.elapsed() >= commit_every {
            driver.commit(&consumer)?;
            last_commit = Instant::now();
            if all_done && driver.finish_ended(&ends) && !driver.in_txn.load(Ordering::SeqCst) {
                // Everything closed and committed; markers downstream were read too.
                if let Some(f) = &driver.config.chain.finished {
                    f.store(true, Ordering::SeqCst);
                }
                if driver
                    .quiet_since
                    .is_some_and(|q| q.elapsed() > Duration::from_secs(2))
                    && driver.slots.values().all(|s| s.task.settled())
                {
                    break;
                }
            }
        }
        if message_seen || driver.quiet_since.is_none() {
            driver.quiet_since = Some(Instant::now());
        }
    }
    METRICS.ready.set(0);
    drop(consumer);
    Ok(driver.stats)
}

fn driver_globals(topology: &Topology) -> Vec<String> {
    let mut g: Vec<String> = topology
        .stages
        .iter()
        .flat_map(|s| s.globals.iter().cloned())
        .collect();
    g.sort();
    g.dedup();
    g
}

type GlobalRecord = (String, Option<Vec<u8>>, Option<Vec<u8>>);

struct Driver<'t> {
    global_log: Vec<GlobalRecord>,
    /// The latest progress marker of each global topic (replayed to a new task after the log).
    global_progress: BTreeMap<String, EventTime>,
    topology: &'t Topology,
    config: DriverConfig,
    producer: Arc<ThreadedProducer<DefaultProducerContext>>,
    in_txn: Arc<AtomicBool>,
    slots: BTreeMap<(usize, i32), TaskHost>,
    positions: BTreeMap<(String, i32), i64>,
    partition_counts: HashMap<String, i32>,
    stats: DriverStats,
    service: String,
    end_offsets: BTreeMap<(String, i32), i64>,
    /// Whether `end_offsets` are known (chained bounded runs take them when upstream ends).
    ends_taken: bool,
    /// Low watermark of event-time input partitions at assignment (where a partition
    /// without a committed offset starts).
    starts: BTreeMap<(String, i32), i64>,
    /// End offsets of table partitions at assignment (before any statistics).
    table_ends: BTreeMap<(String, i32), i64>,
    /// Per input partition: the position last seen, and since when.
    progress: HashMap<(String, i32), (i64, Instant)>,
    /// Stream partitions paused while their task's table is behind.
    paused: BTreeSet<(String, i32)>,
    /// Paused partitions' first record delivered anyway (fetched before the pause): read
    /// again from there on resume.
    rewind: BTreeMap<(String, i32), i64>,
    last_table_check: Instant,
    last_backlog_check: Instant,
    quiet_since: Option<Instant>,
}

impl Driver<'_> {
    /// Bounded runs: finishes the watermark of every event-time task whose input partitions
    /// are all read to their end offsets. Returns true when every task is finished.
    fn finish_ended(&mut self, ends: &Ends) -> bool {
        if !self.config.bounded || self.slots.is_empty() || !self.ends_taken {
            return false;
        }
        let Ok(stats) = ends.lock() else {
            return false;
        };
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        let mut all = true;
        for (stage, p) in keys {
            let st = &self.topology.stages[stage];
            if st.watermark == WatermarkSource::EventTime {
                let inputs: Vec<(String, i32)> = st
                    .inputs
                    .iter()
                    .chain(&st.tables)
                    .map(|t| (t.clone(), p))
                    .collect();
                let ended = inputs
                    .iter()
                    .all(|key| self.read_to_end(key, stats.get(key).copied()));
                if ended && let Some(slot) = self.slots.get_mut(&(stage, p)) {
                    slot.watermarks.finish();
                }
            }
            all &= self
                .slots
                .get(&(stage, p))
                .is_some_and(|s| s.current == EventTime::MAX);
        }
        all
    }

    /// Whether a bounded input partition is read to its end offset. A transactional topic
    /// ends with a commit marker, which is never delivered: one offset short, with the fetcher
    /// past the end and nothing delivered for [`UNDELIVERABLE_AFTER`], is the end too.
    fn read_to_end(&mut self, key: &(String, i32), stats: Option<PartitionEnd>) -> bool {
        let end = self.end_offsets.get(key).copied().unwrap_or(0);
        let Some(position) = self
            .positions
            .get(key)
            .or_else(|| self.starts.get(key))
            .copied()
        else {
            return end == 0;
        };
        if position >= end {
            return true;
        }
        // Only the last offset may be a marker; a paused partition is not read at all.
        if end - position > 1 || self.paused.contains(key) {
            return false;
        }
        self.undeliverable(key, position, end, stats)
    }

    /// A consumer of the group's offsets and the partitions' ends, outside the group.
    fn probe(&self) -> Result<BaseConsumer, KafkaError> {
        Ok(self
            .config
            .kafka
            .client()
            .set("group.id", self.topology.group_id())
            .set("isolation.level", "read_committed")
            .create()?)
    }

    /// Chained bounded runs: the end offsets of every event-time input partition, now that the
    /// upstream service finished.
    fn take_end_offsets(&mut self) -> Result<(), KafkaError> {
        let probe = self.probe()?;
        let keys: Vec<(String, i32)> = self.starts.keys().cloned().collect();
        for (topic, p) in keys {
            let (_, high) = probe.fetch_watermarks(&topic, p, Duration::from_secs(30))?;
            self.end_offsets.insert((topic, p), high);
        }
        tracing::info!(
            partitions = self.end_offsets.len(),
            "upstream finished: input end offsets taken"
        );
        self.ends_taken = true;
        Ok(())
    }

    fn begin(&mut self) -> Result<(), KafkaError> {
        if !self.in_txn.load(Ordering::SeqCst) {
            self.producer.begin_transaction()?;
            self.in_txn.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn partitions_of(&mut self, topic: &str) -> Result<i32, KafkaError> {
        if let Some(n) = self.partition_counts.get(topic) {
            return Ok(*n);
        }
        let n = admin::partition_count(&self.config.kafka, topic)?;
        if n == 0 {
            return Err(KafkaError::Topic {
                topic: topic.into(),
                message: "does not exist".into(),
            });
        }
        self.partition_counts.insert(topic.to_owned(), n);
        Ok(n)
    }

    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: Option<i64>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), KafkaError> {
        self.begin()?;
        if value.is_some_and(|v| v.len() > 900_000) {
            tracing::warn!(
                topic,
                bytes = value.map(<[u8]>::len),
                "record close to the message size limit"
            );
        }
        loop {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
            if let Some(k) = key {
                r = r.key(k);
            }
            if let Some(v) = value {
                r = r.payload(v);
            }
            if let Some(ts) = timestamp {
                r = r.timestamp(ts);
            }
            if !headers.is_empty() {
                r = r.headers(super::writer::owned_headers(headers));
            }
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(2)); // back-pressure
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    fn assign(&mut self, assignment: &[(String, i32)]) -> Result<(), KafkaError> {
        self.stats.rebalances += 1;
        let now = now_ms();
        // Where each partition resumes (committed offset, else the start): with the broker's
        // end offsets this tells a backlog from a quiet partition (`refresh_backlog`).
        let probe = self.probe()?;
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in assignment {
            tpl.add_partition(topic, *p);
        }
        let committed = probe.committed_offsets(tpl, Duration::from_secs(30))?;
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                self.positions
                    .entry((e.topic().to_owned(), e.partition()))
                    .or_insert(o);
            }
        }
        for (topic, p) in assignment {
            let st = self
                .topology
                .stage_of(topic)
                .map(|i| &self.topology.stages[i]);
            let by_event_time = st.is_some_and(|s| {
                s.watermark == WatermarkSource::EventTime || s.tables.contains(topic)
            });
            if by_event_time {
                let (low, high) = probe.fetch_watermarks(topic, *p, Duration::from_secs(30))?;
                self.starts.insert((topic.clone(), *p), low);
                if st.is_some_and(|s| s.tables.contains(topic)) {
                    self.table_ends.insert((topic.clone(), *p), high);
                }
                if self.config.bounded && self.ends_taken {
                    self.end_offsets.insert((topic.clone(), *p), high);
                }
            }
        }
        let mut wanted: BTreeMap<(usize, i32), ()> = BTreeMap::new();
        for (topic, p) in assignment {
            if let Some(stage) = self.topology.stage_of(topic) {
                wanted.insert((stage, *p), ());
            }
        }
        for (stage_idx, p) in wanted.into_keys() {
            let started = Instant::now();
            let stage = &self.topology.stages[stage_idx];
            // A bounded run's watermarks never move with the wall clock: the end of its input
            // closes everything, and its outputs do not depend on how fast it ran.
            let mut rules = self.config.watermark.clone();
            rules.advance_when_idle &= !self.config.bounded;
            let mut slot = TaskHost::new(self.topology, stage_idx, p, rules, now);
            let changelog = self.topology.changelog_topic(stage);
            let restored = restore(&self.config.kafka, &changelog, p, |key, value| {
                slot.restore(key, value, now)
            })?;
            slot.restored(now);
            self.stats.restored += restored;
            METRICS
                .restore_seconds
                .with_label_values(&[&stage.name])
                .set(started.elapsed().as_secs_f64());
            tracing::info!(stage = %stage.name, partition = p, restored, "task restored");
            let mut ctx = Ctx::default();
            for (topic, key, value) in &self.global_log {
                if stage.globals.iter().any(|g| g == topic) {
                    slot.task
                        .global(topic, key.as_deref(), value.as_deref(), &mut ctx);
                }
            }
            for (topic, wm) in &self.global_progress {
                if stage.globals.iter().any(|g| g == topic) {
                    slot.task.global_progress(topic, *wm, &mut ctx);
                }
            }
            self.slots.insert((stage_idx, p), slot);
            if !ctx.emits.is_empty() {
                self.begin()?;
            }
            self.route(stage_idx, p, ctx)?;
        }
        Ok(())
    }

    fn global(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), KafkaError> {
        self.global_log.push((
            topic.to_owned(),
            key.map(<[u8]>::to_vec),
            value.map(<[u8]>::to_vec),
        ));
        self.each_global_reader(topic, |task, ctx| task.global(topic, key, value, ctx))
    }

    fn global_progress(&mut self, topic: &str, watermark: EventTime) -> Result<(), KafkaError> {
        self.global_progress.insert(topic.to_owned(), watermark);
        self.each_global_reader(topic, |task, ctx| {
            task.global_progress(topic, watermark, ctx)
        })
    }

    /// Runs `f` on every task of the stages that read `topic` as a global table, routing what
    /// it emits.
    fn each_global_reader(
        &mut self,
        topic: &str,
        mut f: impl FnMut(&mut dyn task::Task, &mut Ctx),
    ) -> Result<(), KafkaError> {
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            if !self.topology.stages[stage]
                .globals
                .iter()
                .any(|g| g == topic)
            {
                continue;
            }
            let mut ctx = Ctx::default();
            if let Some(slot) = self.slots.get_mut(&(stage, p)) {
                f(slot.task.as_mut(), &mut ctx);
            }
            if !ctx.emits.is_empty() {
                self.begin()?;
            }
            self.route(stage, p, ctx)?;
        }
        Ok(())
    }

    fn handle(&mut self, m: &BorrowedMessage<'_>) -> Result<(), KafkaError> {
        let topic = m.topic().to_owned();
        let partition = m.partition();
        let Some(stage) = self.topology.stage_of(&topic) else {
            return Ok(());
        };
        if self.paused.contains(&(topic.clone(), partition)) {
            // Fetched before the pause took effect: not processed now, read again on resume.
            self.rewind
                .entry((topic.clone(), partition))
                .or_insert(m.offset());
            return Ok(());
        }
        self.positions
            .insert((topic.clone(), partition), m.offset() + 1);
        self.stats.records += 1;
        self.begin()?;
        METRICS.records_in.with_label_values(&[&topic]).inc();
        let marker = m.headers().and_then(|h| {
            task::parse_marker(h.iter().map(|x| (x.key, x.value.unwrap_or_default())))
        });
        let Some(slot) = self.slots.get_mut(&(stage, partition)) else {
            return Ok(());
        };
        if let Some((source, watermark)) = marker {
            slot.marker(source, watermark, now_ms());
            return Ok(());
        }
        let started = Instant::now();
        let record = Record {
            topic: &topic,
            partition,
            offset: m.offset(),
            key: m.key(),
            value: m.payload(),
        };
        let (ctx, dead) = slot.deliver(&record, &self.service, now_ms());
        METRICS
            .processing_seconds
            .with_label_values(&[&self.topology.stages[stage].name])
            .observe(started.elapsed().as_secs_f64());
        if let Some(dl) = dead {
            self.dead_letter(&dl)?;
        }
        self.route(stage, partition, ctx)
    }

    fn dead_letter(&mut self, dl: &DeadLetter) -> Result<(), KafkaError> {
        count_dead_letter(dl, &self.service);
        let topic = self.config.dead_letter_topic.clone();
        let n = self.partitions_of(&topic)?;
        let partition = dl.key.as_deref().map(|k| partition_for(k, n)).unwrap_or(0);
        let headers: Vec<(String, Vec<u8>)> = dl
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_bytes()))
            .collect();
        self.send(
            &topic,
            partition,
            dl.key.as_deref(),
            dl.value.as_deref(),
            Some(dl.failed_at_ms),
            &headers,
        )
    }

    fn route(&mut self, stage: usize, partition: i32, ctx: Ctx) -> Result<(), KafkaError> {
        account(&ctx, &self.service);
        let now = now_ms();
        for e in ctx.emits {
            let n = self.partitions_of(&e.topic)?;
            if e.kind == EmitKind::Progress {
                let source = format!("{}/{partition}", self.topology.stages[stage].name);
                let headers = task::marker_headers(&source, e.event_time);
                for p in targets(&e, n) {
                    self.send(&e.topic, p, e.key.as_deref(), None, None, &headers)?;
                }
                continue;
            }
            for p in targets(&e, n) {
                self.send(
                    &e.topic,
                    p,
                    e.key.as_deref(),
                    e.value.as_deref(),
                    Some(e.event_time.0),
                    &[],
                )?;
            }
            METRICS.records_out.with_label_values(&[&e.topic]).inc();
            if !self.topology.is_repartition(&e.topic)
                && e.event_time > EventTime::MIN
                && e.event_time < EventTime::MAX
            {
                METRICS
                    .event_latency_seconds
                    .with_label_values(&[&e.topic])
                    .observe(((now - e.event_time.0) as f64 / 1000.0).max(0.0));
            }
        }
        Ok(())
    }

    /// Whether the records of `key` from `position` to `end` will never be delivered: the
    /// fetcher is past `end` and the driver's position has not moved for
    /// [`UNDELIVERABLE_AFTER`] (aborted transactions, commit markers).
    fn undeliverable(
        &mut self,
        key: &(String, i32),
        position: i64,
        end: i64,
        stats: Option<PartitionEnd>,
    ) -> bool {
        let now = Instant::now();
        let since = match self.progress.get(key) {
            Some((p, at)) if *p == position => *at,
            _ => {
                self.progress.insert(key.clone(), (position, now));
                now
            }
        };
        stats.is_some_and(|s| s.fetched >= end) && now.duration_since(since) >= UNDELIVERABLE_AFTER
    }

    /// Records of `key` (an input partition) not processed yet that will come: its lag, and
    /// zero when the lag is only records that are never delivered (the fetcher is past the
    /// end and nothing came for [`UNDELIVERABLE_AFTER`]: aborted transactions, markers).
    fn waiting(&mut self, key: &(String, i32), end: Option<PartitionEnd>) -> Option<i64> {
        let position = *self.positions.get(key).or_else(|| self.starts.get(key))?;
        let table_end = self.table_ends.get(key).copied();
        let end_offset = end.map(|e| e.end).max(table_end)?;
        let lag = (end_offset - position).max(0);
        let stats_end = end.map_or(end_offset, |e| e.end);
        let undeliverable = self.undeliverable(key, position, stats_end, end);
        if lag > 1 && undeliverable {
            return Some(0);
        }
        Some(lag)
    }

    /// Consumer lag per input partition (its last stable offset, from librdkafka's statistics,
    /// minus the driver's position), and idleness for quiet partitions only, not slow ones: an
    /// event-time input partition more than one record behind has records waiting (behind
    /// other partitions' in the consumer's queue, or not fetched yet), so it stays in the
    /// watermark however long since its last record. One record of slack: on a transactional
    /// topic the last offset is a commit marker, which is never delivered.
    fn refresh_backlog(&mut self, ends: &Ends) {
        if self.last_backlog_check.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last_backlog_check = Instant::now();
        let Ok(ends) = ends.lock() else {
            return;
        };
        let now = now_ms();
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            let st = &self.topology.stages[stage];
            let by_event_time = st.watermark == WatermarkSource::EventTime;
            for topic in st.inputs.clone() {
                let key = (topic.clone(), p);
                let Some(lag) = self.waiting(&key, ends.get(&key).copied()) else {
                    continue;
                };
                METRICS
                    .consumer_lag
                    .with_label_values(&[&topic, &p.to_string()])
                    .set(lag);
                if lag > 1
                    && by_event_time
                    && let Some(slot) = self.slots.get_mut(&(stage, p))
                {
                    slot.watermarks.backlogged(&format!("{topic}/{p}"), now);
                }
            }
        }
    }

    /// Tables first, as Kafka Streams bootstraps its tables: a task whose table partitions
    /// have records waiting (more than one past the position; one is a commit marker's
    /// slack) does not read its streams, so a stream record never gives up waiting for a
    /// table version that is already in Kafka. Streams resume when the tables are read.
    fn pace_tables(
        &mut self,
        consumer: &BaseConsumer<DriverContext>,
        ends: &Ends,
        now: bool,
    ) -> Result<(), KafkaError> {
        if !now && self.last_table_check.elapsed() < Duration::from_millis(50) {
            return Ok(());
        }
        self.last_table_check = Instant::now();
        let Ok(ends) = ends.lock() else {
            return Ok(());
        };
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            let st = &self.topology.stages[stage];
            if st.tables.is_empty() {
                continue;
            }
            let (tables, inputs) = (st.tables.clone(), st.inputs.clone());
            let behind = tables.iter().any(|t| {
                let key = (t.clone(), p);
                self.waiting(&key, ends.get(&key).copied())
                    .is_some_and(|lag| lag > 1)
            });
            for input in &inputs {
                let key = (input.clone(), p);
                let paused = self.paused.contains(&key);
                if behind && !paused {
                    pause.add_partition(input, p);
                    self.paused.insert(key);
                } else if !behind && paused {
                    if let Some(offset) = self.rewind.remove(&key) {
                        consumer.seek(input, p, Offset::Offset(offset), Duration::from_secs(10))?;
                    }
                    resume.add_partition(input, p);
                    self.paused.remove(&key);
                }
            }
        }
        if pause.count() > 0 {
            consumer.pause(&pause)?;
        }
        if resume.count() > 0 {
            tracing::debug!(partitions = resume.count(), "tables read: streams resume");
            consumer.resume(&resume)?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), KafkaError> {
        let now = now_ms();
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        for (stage, p) in keys {
            let Some(slot) = self.slots.get_mut(&(stage, p)) else {
                continue;
            };
            let idle = slot.watermarks.idle(now);
            if idle != slot.idle {
                tracing::info!(
                    stage = %self.topology.stages[stage].name,
                    partition = p,
                    ?idle,
                    watermark = %slot.watermarks.current(now),
                    "idle inputs changed"
                );
                slot.idle = idle;
            }
            if let Some(ctx) = slot.tick(now) {
                if !ctx.emits.is_empty() {
                    self.begin()?;
                }
                self.route(stage, p, ctx)?;
            }
        }
        Ok(())
    }

    fn commit(&mut self, consumer: &BaseConsumer<DriverContext>) -> Result<(), KafkaError> {
        // Markers and checkpoints go into the transaction that carries the offsets.
        let keys: Vec<(usize, i32)> = self.slots.keys().copied().collect();
        let mut entries = 0;
        let mut bytes = 0;
        for (stage, p) in keys {
            let repartitions = self.topology.stages[stage].repartitions.clone();
            let source = format!("{}/{p}", self.topology.stages[stage].name);
            let Some(slot) = self.slots.get_mut(&(stage, p)) else {
                continue;
            };
            let due = if repartitions.is_empty() {
                None
            } else {
                slot.marker_due()
            };
            // No time of its own and nothing to read (every input idle, none backlogged):
            // downstream must not wait for this task.
            let inputs = self.topology.stages[stage].inputs.len();
            let send_idle = !repartitions.is_empty()
                && slot.current == EventTime::MIN
                && !slot.idle_marker_sent
                && slot.idle.len() == inputs;
            if send_idle {
                slot.idle_marker_sent = true;
            }
            if !self.in_txn.load(Ordering::SeqCst) && due.is_none() && !send_idle {
                continue;
            }
            // A store that cannot write its state fails the commit: the transaction is
            // aborted (nothing of it becomes visible, the offsets stay) and the run ends.
            let changes = match slot.checkpoint() {
                Ok(changes) => changes,
                Err(e) => {
                    self.abort();
                    return Err(e.into());
                }
            };
            let (e, b) = slot.task.state_size();
            entries += e;
            bytes += b;
            let changelog = self.topology.changelog_topic(&self.topology.stages[stage]);
            for (k, v) in changes {
                self.send(&changelog, p, Some(&k), v.as_deref(), None, &[])?;
            }
            let send_marker = due.is_some();
            let current = due.unwrap_or(EventTime::MIN);
            if send_marker || send_idle {
                let headers = if send_marker {
                    task::marker_headers(&source, current)
                } else {
                    task::idle_marker_headers(&source)
                };
                for topic in repartitions {
                    let n = self.partitions_of(&topic)?;
                    for q in 0..n {
                        // No record timestamp: a watermark may be the end of time, which brokers refuse.
                        self.send(&topic, q, None, None, None, &headers)?;
                    }
                }
            }
        }
        METRICS
            .state_entries
            .with_label_values(&[&self.service])
            .set(entries as i64);
        METRICS
            .state_bytes
            .with_label_values(&[&self.service])
            .set(bytes as i64);
        if !self.in_txn.load(Ordering::SeqCst) {
            return Ok(());
        }
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &self.positions {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        let metadata = consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::Timeout("no group metadata".into()))?;
        let offsets = if tpl.count() == 0 {
            Ok(())
        } else {
            self.producer
                .send_offsets_to_transaction(&tpl, &metadata, Duration::from_secs(30))
        };
        let result =
            offsets.and_then(|_| self.producer.commit_transaction(Duration::from_secs(60)));
        self.in_txn.store(false, Ordering::SeqCst);
        match result {
            Ok(()) => {
                self.stats.commits += 1;
                METRICS.transactions.with_label_values(&["committed"]).inc();
                METRICS
                    .transaction_commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(())
            }
            Err(e) => {
                self.abort();
                Err(e.into())
            }
        }
    }

    /// Aborts the open transaction (its records are never visible to read_committed readers,
    /// its offsets are not committed).
    fn abort(&mut self) {
        if self.in_txn.swap(false, Ordering::SeqCst) {
            METRICS.transactions.with_label_values(&["aborted"]).inc();
            if let Err(e) = self.producer.abort_transaction(Duration::from_secs(30)) {
                tracing::warn!("aborting the transaction failed: {e}");
            }
        }
    }
}

/// Reads changelog partition `p` from the beginning to its end, committed records only.
fn restore(
    config: &KafkaConfig,
    topic: &str,
    p: i32,
    mut apply: impl FnMut(&[u8], Option<&[u8]>) -> Result<(), StateError>,
) -> Result<u64, KafkaError> {
    let consumer: BaseConsumer = config
        .client()
        .set(
            "group.id",
            format!("fitstream-restore-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
    if high <= low {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                n += 1;
                if let Some(k) = m.key() {
                    apply(k, m.payload()).map_err(|e| KafkaError::Topic {
                        topic: topic.into(),
                        message: format!("restore of partition {p} at offset {}: {e}", m.offset()),
                    })?;
                }
                if m.offset() + 1 >= high {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                // The end may be a transaction marker, which is never delivered: compare the
                // position instead.
                let at = consumer
                    .position()?
                    .find_partition(topic, p)
                    .map(|e| e.offset());
                if let Some(Offset::Offset(o)) = at
                    && o >= high
                {
                    break;
                }
            }
        }
    }
    Ok(n)
}
