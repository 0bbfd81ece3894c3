//! The Kafka driver: a topology on a consumer group, exactly once.
//!
//! Delivery invariant: consume -> process -> produce -> commit offsets happen in one Kafka
//! transaction per commit interval (default 100 ms). The transaction holds the outputs, the
//! dead letters, the watermark markers, the changelog records of every task and the input
//! offsets (`send_offsets_to_transaction` with the consumer group's metadata, KIP-447), so a
//! crash at any point either commits all of them or none; consumers of the outputs read
//! `read_committed`.
//!
//! - Partitions are assigned by the `range` assignor, which gives the same partition number
//!   of every co-partitioned input topic to the same member. Under the KIP-848 `consumer`
//!   protocol (the default, `kafka.group_protocol`) it runs on the group coordinator and is
//!   sticky, and rebalances are incremental: on a revocation the open transaction is
//!   committed (every task's work so far, checkpoints and offsets), the revoked partitions'
//!   tasks are dropped and only then the partitions are given up; the tasks that stay keep
//!   their state and go on. Under the `classic` protocol rebalances are eager: on revocation
//!   the open transaction is aborted and every task dropped. Either way, on assignment each
//!   new task's state is restored from its changelog partition (read_committed, to the end)
//!   before any of its records is processed, and its partitions resume from the committed
//!   offsets. Work since the last commit is redone, never lost or doubled.
//! - Zombies are fenced by the group generation (the member epoch under KIP-848) in
//!   `send_offsets_to_transaction`, and by a transactional id that is stable per instance
//!   (`fitstream-<app>-<group.instance.id>`), initialised once the group admitted the
//!   instance.
//! - A failed commit is fatal: the driver returns the error and the process restarts (state
//!   and offsets come back from Kafka).
//! - Back-pressure: the driver stops polling while the producer queue is full.
//! - Shutdown: when the shutdown flag is up, the open transaction is committed and the
//!   consumer closes, leaving the group.
//!
//! Layout: this file holds the settings and the processing loop ([`run`]); beside it,
//! `context` (rebalance callbacks, librdkafka statistics), `internal` (repartition and
//! changelog topics), `restore` (assignment: positions, tasks restored from their changelog
//! partitions), `records` (the record path, sends with back-pressure, watermark advances), `globals`
//! (global tables), `tables` (tables read before streams), `ends` (bounded ends, lag,
//! records never delivered), `order` (event-time order across a task's input partitions),
//! `restarts` (failures forgiven or final) and `commit` (checkpoints and offsets in one
//! transaction). The per-task work is the runtime's [`crate::host::TaskHost`].

mod clients;
mod commit;
mod context;
mod ends;
mod globals;
mod internal;
mod order;
mod records;
mod restarts;
mod restore;
mod tables;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fitstream_contracts::EventTime;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use self::context::{Closing, DriverContext, Ends, Member, RebalanceState};
use self::globals::{GlobalRecord, driver_globals};
pub use self::internal::internal_topics;
use self::restarts::{FENCED_AGAIN, Restarts, UNRELEASED_RETRY, denied, is_fencing, is_unreleased};
use super::{GroupProtocol, KafkaConfig, KafkaError, admin};
use crate::host::TaskHost;
use crate::kafka::repeats::Quiet;
use crate::metrics::METRICS;
use crate::task::{self, Topology};
use crate::watermark::WatermarkConfig;

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

/// Partitions for a log line: `topic/partition`, space separated.
fn listed(partitions: &[(String, i32)]) -> String {
    let items: Vec<String> = partitions.iter().map(|(t, p)| format!("{t}/{p}")).collect();
    items.join(" ")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `topology` until `shutdown` is set or a fatal error occurs.
pub fn run(
    topology: Topology,
    config: DriverConfig,
    shutdown: Arc<AtomicBool>,
) -> Result<DriverStats, KafkaError> {
    // Crash-only: a broken producer or a fenced transaction restarts the driver in this
    // process (state and offsets come back from Kafka); a streak of failures as long as
    // `kafka.unavailable_limit_ms` ends it.
    let mut restarts = Restarts::new(Duration::from_millis(config.kafka.unavailable_limit_ms));
    let mut last_fenced: Option<Instant> = None;
    let mut unreleased_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let e = match run_once(&topology, &config, &shutdown) {
            // A client the configuration cannot make: no restart makes it.
            Err(KafkaError::Client(e @ RdError::ClientCreation(_))) => {
                tracing::error!("the {} driver stops: {e}", topology.name);
                return Err(KafkaError::Client(e));
            }
            Err(KafkaError::Client(e)) if !shutdown.load(Ordering::SeqCst) => e,
            other => return other,
        };
        if let Some(d) = denied(&e, &topology, &config) {
            tracing::error!("the {} driver stops: {d}", topology.name);
            return Err(d);
        }
        if let Some(id) = &config.kafka.group_instance_id
            && is_unreleased(&e)
        {
            // KIP-848 refuses a member whose `group.instance.id` the group still holds: the
            // previous incarnation of this instance (killed; released when its session
            // expires) or another instance running with the same id (never released).
            let since = *unreleased_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= FENCED_AGAIN {
                let why = format!(
                    "another instance runs with group.instance.id {id}: the group has refused this one for {} s ({e})",
                    since.elapsed().as_secs()
                );
                tracing::error!("{why}; stopping");
                crate::health::LIVENESS.fail(format!("refused for good: {why}"));
                return Err(KafkaError::Fenced(why));
            }
            tracing::warn!(
                waited_s = since.elapsed().as_secs(),
                "the group still holds group.instance.id {id} (a previous incarnation whose session has not expired, or another instance): joining again in {} s",
                UNRELEASED_RETRY.as_secs()
            );
            let until = Instant::now() + UNRELEASED_RETRY;
            while Instant::now() < until && !shutdown.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        unreleased_since = None;
        if let Some(id) = &config.kafka.group_instance_id
            && is_fencing(&e)
        {
            // Static membership: the member id and the transactional id are this instance's
            // own. Fenced once, it may have fenced itself (its session timed out during a
            // broker outage and its rejoin replaced its old membership): it restarts. Fenced
            // again soon after, another instance runs with its id (a zombie of it, or a
            // second deployment); restarting would fence that one in turn and the two would
            // take turns forever: it stops.
            if last_fenced.is_some_and(|t: Instant| t.elapsed() < FENCED_AGAIN) {
                tracing::error!(
                    "fenced again: another instance runs with group.instance.id {id}; stopping"
                );
                let why = format!("another instance runs with group.instance.id {id} ({e})");
                crate::health::LIVENESS.fail(format!("fenced for good: {why}"));
                return Err(KafkaError::Fenced(why));
            }
            last_fenced = Some(Instant::now());
        }
        let Some(pause) = restarts.failed(started.elapsed(), Instant::now()) else {
            tracing::error!(
                failures = restarts.failures,
                "the {} driver failed again after {} s of failures in a row: giving up (kafka.unavailable_limit_ms)",
                topology.name,
                restarts.limit.as_secs()
            );
            return Err(KafkaError::Unavailable(format!(
                "{} failures in a row over {} s (kafka.unavailable_limit_ms), the last: {e}",
                restarts.failures,
                restarts.limit.as_secs()
            )));
        };
        tracing::warn!(
            failures = restarts.failures,
            pause_s = pause.as_secs(),
            "restarting the {} driver after: {e}",
            topology.name
        );
        let until = Instant::now() + pause;
        while Instant::now() < until && !shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
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
    let producer = clients::transactional_producer(config, &group, &instance)?;
    // The transactional id is initialised (fencing its previous incarnation) once the group
    // has admitted this instance: under KIP-848 a second instance with a live instance's
    // `group.instance.id` is refused by the group, and must not fence that one's producer.
    let mut producer_ready = false;
    let in_txn = Arc::new(AtomicBool::new(false));
    let state = Arc::new(Mutex::new(RebalanceState::default()));
    let ends: Ends = Arc::default();
    let table_streams: Vec<String> = topology
        .stages
        .iter()
        .filter(|s| !s.tables.is_empty())
        .flat_map(|s| s.inputs.iter().cloned())
        .collect();
    let broker_up_ms = Arc::new(std::sync::atomic::AtomicI64::new(now_ms()));
    let unavailable_limit = config.kafka.unavailable_limit_ms as i64;
    let context = DriverContext {
        state: state.clone(),
        ends: ends.clone(),
        table_streams,
        producer: producer.clone(),
        in_txn: in_txn.clone(),
        broker_up_ms: broker_up_ms.clone(),
        rxmsgs: std::sync::atomic::AtomicI64::new(0),
        closing: AtomicBool::new(false),
        quiet: Quiet::default(),
    };
    let consumer =
        Member::new(clients::group_consumer(config, &group).create_with_context(context)?);
    let closing = Closing(&consumer);
    let topics = topology.input_topics();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;

    // Global tables: read whole by every instance, outside the group.
    let globals: Vec<String> = driver_globals(topology);
    let global_consumer = clients::globals_reader(config, &globals, &group, &instance)?;

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
        polled: BTreeMap::new(),
        polled_at: None,
        paused: BTreeSet::new(),
        rewind: BTreeMap::new(),
        last_table_check: Instant::now(),
        last_backlog_check: Instant::now(),
        quiet_since: None,
        ends_taken: false,
        restoring: None,
        draining: None,
        merges: BTreeMap::new(),
        order_wait: HashMap::new(),
        order_told: BTreeSet::new(),
        order_paused: BTreeSet::new(),
        others_checked: None,
        others_told: BTreeSet::new(),
        past_end_told: BTreeSet::new(),
        past_end_paused: BTreeSet::new(),
    };
    driver.service = driver.topology.name.clone();
    if config.bounded && config.chain.inputs_complete.is_none() {
        driver.take_end_offsets()?;
    }
    let beat = crate::health::LIVENESS.register(&driver.service, now_ms());
    let commit_every = Duration::from_millis(driver.config.kafka.commit_interval_ms.max(1));
    let mut last_commit = Instant::now();
    METRICS.ready.set(0);
    loop {
        if shutdown.load(Ordering::SeqCst) {
            driver.draining =
                Some(Instant::now() + Duration::from_millis(config.kafka.shutdown_timeout_ms));
            driver.commit(&consumer)?;
            break;
        }
        let message = consumer.poll(Duration::from_millis(10));
        let now = now_ms();
        beat.beat(now);
        let unreachable_ms = now - broker_up_ms.load(Ordering::SeqCst);
        if unreachable_ms > unavailable_limit {
            return Err(KafkaError::Unavailable(format!(
                "no broker of {} reachable for {} s (kafka.unavailable_limit_ms)",
                config.kafka.bootstrap_servers,
                unreachable_ms / 1000
            )));
        }
        let (revoked, assigned, broken, revoking) = match state.lock() {
            Ok(mut s) => (
                std::mem::take(&mut s.revoked),
                s.assigned.take(),
                s.broken.take(),
                s.revoking.take(),
            ),
            Err(_) => (false, None, None, None),
        };
        if let Some(e) = broken {
            return Err(KafkaError::Client(RdError::MessageProduction(
                RDKafkaErrorCode::InvalidTransactionalState,
            )))
            .inspect_err(|_| tracing::error!("producer broken during a rebalance: {e}"));
        }
        if let Some(r) = revoking {
            if r.lost {
                // The group gave the partitions to others already: the open transaction
                // cannot commit, and the tasks that stay would keep work it aborts.
                driver.abort();
                if let Some((code, why)) = consumer.client().fatal_error() {
                    tracing::warn!("the group member failed: {why}");
                    return Err(KafkaError::Client(RdError::MessageConsumptionFatal(code)));
                }
                tracing::warn!(
                    partitions = r.partitions.len(),
                    "the group took this instance's partitions (its session expired or its epoch was fenced): restarting"
                );
                return Err(KafkaError::Client(RdError::MessageConsumption(
                    RDKafkaErrorCode::FencedMemberEpoch,
                )));
            }
            driver.revoke_partitions(&consumer, &r.partitions)?;
            r.unassign(&consumer)?;
        }
        if revoked {
            tracing::info!("every partition revoked (eager rebalance)");
            driver.stats.rebalances += 1;
            let owned: Vec<(&str, i32)> = driver
                .slots
                .keys()
                .flat_map(|(stage, p)| {
                    topology.stages[*stage]
                        .inputs
                        .iter()
                        .map(move |t| (t.as_str(), *p))
                })
                .collect();
            METRICS.forget_partitions(owned);
            driver.revoke_all();
            METRICS.restore_pending.set(0);
            driver.positions.clear();
            driver.paused.clear();
            driver.rewind.clear();
            driver.past_end_paused.clear();
            driver.forget_polled();
            METRICS.ready.set(0);
        }
        if let Some(assignment) = assigned {
            if !producer_ready {
                driver
                    .producer
                    .init_transactions(config.kafka.broker_wait(Duration::from_secs(60)))?;
                producer_ready = true;
            }
            METRICS.ready.set(0);
            if !assignment.is_empty() {
                tracing::info!(partitions = %listed(&assignment), "partitions assigned");
            }
            // Every input was paused on assignment, until its task is restored.
            for (topic, p) in &assignment {
                driver.paused.insert((topic.clone(), *p));
            }
            driver.assign(&assignment)?;
        }
        if driver.restoring.is_some() && driver.restore_step(Duration::from_millis(100))? {
            driver.restoring = None;
            driver.resume_restored(&consumer, &consumer.context().table_streams)?;
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
        let mut message_seen = false;
        match message {
            Some(Ok(m)) => message_seen = driver.handle(&m)?,
            Some(Err(e)) if is_fencing(&e) => return Err(e.into()),
            Some(Err(RdError::MessageConsumptionFatal(code))) => {
                // The underlying error of a fatal one (e.g. UNRELEASED_INSTANCE_ID).
                let code = consumer.client().fatal_error().map_or(code, |(c, _)| c);
                return Err(KafkaError::Client(RdError::MessageConsumptionFatal(code)));
            }
            Some(Err(e)) => consumer.context().quiet.warn(&format!("consumer: {e}")),
            None => {}
        }
        driver.pause_past_end(&consumer)?;
        driver.refresh_polled(&consumer)?;
        driver.take_in_order(&ends)?;
        driver.pace_order(&consumer)?;
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
        let all_done = driver.finish_ended();
        driver.refresh_backlog(&ends);
        driver.pace_tables(&consumer, &ends, false)?;
        driver.tick()?;
        if last_commit.elapsed() >= commit_every {
            driver.commit(&consumer)?;
            last_commit = Instant::now();
            if all_done && driver.finish_ended() && !driver.in_txn.load(Ordering::SeqCst) {
                // Every task of the assignment closed and committed (none restoring:
                // `finish_ended`); markers downstream were read too. Said to a chained
                // service once the partitions other instances hold are finished as well:
                // it then takes its end offsets.
                if let Some(f) = driver.config.chain.finished.clone()
                    && !f.load(Ordering::SeqCst)
                    && driver.others_done()?
                {
                    f.store(true, Ordering::SeqCst);
                }
                if driver
                    .quiet_since
                    .is_some_and(|q| q.elapsed() > Duration::from_secs(2))
                    && driver.slots.values().all(|s| s.task.settled())
                    && driver.others_done()?
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
    drop(closing);
    drop(consumer);
    Ok(std::mem::take(&mut driver.stats))
}

struct Driver<'t> {
    global_log: Vec<GlobalRecord>,
    /// The latest progress marker of each global topic (replayed to a new task after the log).
    global_progress: BTreeMap<String, EventTime>,
    topology: &'t Topology,
    config: DriverConfig,
    producer: Arc<ThreadedProducer<Quiet>>,
    in_txn: Arc<AtomicBool>,
    slots: BTreeMap<(usize, i32), TaskHost>,
    positions: BTreeMap<(String, i32), i64>,
    partition_counts: HashMap<String, i32>,
    stats: DriverStats,
    service: String,
    end_offsets: BTreeMap<(String, i32), i64>,
    /// Whether `end_offsets` are known: a bounded run takes them as it starts, a chained one
    /// when its upstream ended (`take_end_offsets`).
    ends_taken: bool,
    /// Low watermark of event-time input partitions at assignment (where a partition
    /// without a committed offset starts).
    starts: BTreeMap<(String, i32), i64>,
    /// End offsets of table partitions at assignment (before any statistics).
    table_ends: BTreeMap<(String, i32), i64>,
    /// librdkafka's application position per assigned partition, past commit markers
    /// (`ends::refresh_polled`), and when it was taken.
    polled: BTreeMap<(String, i32), i64>,
    polled_at: Option<Instant>,
    /// Stream partitions paused while their task's table is behind.
    paused: BTreeSet<(String, i32)>,
    /// Paused partitions' first record delivered anyway (fetched before the pause): read
    /// again from there on resume.
    rewind: BTreeMap<(String, i32), i64>,
    last_table_check: Instant,
    last_backlog_check: Instant,
    quiet_since: Option<Instant>,
    /// The assignment's restore under way, if any.
    restoring: Option<restore::Restoring>,
    /// Set on SIGTERM: every broker call of the last commit ends by then
    /// (`kafka.shutdown_timeout_ms`).
    draining: Option<Instant>,
    /// Records waiting for event-time order, per task of a stage with several inputs
    /// (`order`).
    merges: BTreeMap<(usize, i32), crate::merge::Merge<order::Waiting>>,
    /// Since when a task's waiting records wait for an empty input.
    order_wait: HashMap<(usize, i32), Instant>,
    /// Tasks whose long wait was logged (once per wait).
    order_told: BTreeSet<(usize, i32)>,
    /// Input partitions paused because their queue in the merge is long.
    order_paused: BTreeSet<(String, i32)>,
    /// When a bounded run last checked the partitions it does not hold (`others_done`).
    others_checked: Option<Instant>,
    /// Partitions not held that a bounded run said it waits for (once each).
    others_told: BTreeSet<(String, i32)>,
    /// Input partitions a bounded run found records past the end of (said once each), and
    /// those of them paused since (nothing more is fetched of them in this run).
    past_end_told: BTreeSet<(String, i32)>,
    past_end_paused: BTreeSet<(String, i32)>,
}

impl Drop for Driver<'_> {
    /// However the run ends (stopped, failed, restarting), its tasks are no longer its own.
    fn drop(&mut self) {
        self.revoke_all();
    }
}
