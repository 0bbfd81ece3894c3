//! The commands that talk to a broker: topics, inputs to the input topics, `tail` and the
//! services (`run`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use fitstream_contracts::EventTime;
use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};
use fitstream_runtime::kafka::{admin, reader};
use fitstream_runtime::task::Topology;
use fitstream_simulator::{SimConfig, Simulator};

use super::{InputFormat, InputOptions, Inputs, codec, progress_bar, routing};
use crate::config::FitstreamConfig;
use crate::inputs;

/// Plants whose build-order topics `topics create` provisions by default.
pub const DEFAULT_PLANTS: [&str; 3] = ["berlin", "lyon", "porto"];

/// `fitstream topics create`: every topic of the product, idempotently.
pub async fn topics_create(cfg: &FitstreamConfig, plants: &[String]) -> anyhow::Result<()> {
    let specs = cfg.topics.specs(plants);
    for (name, what) in admin::ensure_topics(&cfg.kafka, &specs).await? {
        println!("{name}: {what:?}");
    }
    Ok(())
}

/// `fitstream topics describe`: partitions and configs as the broker has them.
pub async fn topics_describe(cfg: &FitstreamConfig, plants: &[String]) -> anyhow::Result<()> {
    for spec in cfg.topics.specs(plants) {
        let partitions = admin::partition_count(&cfg.kafka, &spec.name)?;
        if partitions == 0 {
            println!("{}: missing", spec.name);
            continue;
        }
        let configs = admin::describe_configs(&cfg.kafka, &spec.name).await?;
        let shown: Vec<String> = spec
            .configs
            .keys()
            .map(|k| format!("{k}={}", configs.get(k).map(String::as_str).unwrap_or("?")))
            .collect();
        println!("{}: partitions={partitions} {}", spec.name, shown.join(" "));
    }
    Ok(())
}

/// `fitstream produce`: a history file to the input topics, in the order `options` say (the
/// format's default: event time for the CSV histories).
pub fn produce(
    cfg: &FitstreamConfig,
    input: &Path,
    format: InputFormat,
    options: &InputOptions,
) -> anyhow::Result<u64> {
    let inputs = Inputs::open(input, format, options)?;
    // History older than a topic's time-based retention would be deleted by the broker while
    // it is read, and so would the outputs stamped with its event times: refuse up front.
    let earliest = inputs.records()?.filter_map(|r| r.event_time()).min();
    if let Some(earliest) = earliest {
        let plants = routing(cfg)?.plant_ids();
        let specs = cfg.topics.specs(&plants);
        let topics: Vec<&str> = specs
            .iter()
            .map(|s| s.name.as_str())
            .filter(|t| *t != cfg.topics.dead_letter)
            .collect();
        let mut settings = Vec::new();
        for topic in topics {
            let configs = futures::executor::block_on(admin::describe_configs(&cfg.kafka, topic))
                .with_context(|| format!("reading the settings of {topic}"))?;
            settings.push((topic.to_owned(), configs));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        refuse_if_retention_deletes(&settings, earliest, now)?;
    }
    let codec = codec(cfg);
    let mut unreadable = Vec::new();
    let records = inputs.items()?.filter_map(|item| match item {
        Ok(r) => Some(r),
        Err(e) => {
            unreadable.push(e);
            None
        }
    });
    let mut writer = TopicWriter::new(&cfg.kafka)?;
    let bar = progress_bar(None, "producing");
    let started = Instant::now();
    let n = inputs::produce(&mut writer, &codec, &cfg.topics, records, |n| {
        bar.set_position(n)
    })?;
    bar.finish_and_clear();
    println!(
        "produced {n} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Rows that are not records are never silently dropped: each is a dead letter.
    let dead_letters = inputs.parse_dead_letters(&unreadable, "produce", super::wall_clock_ms())?;
    for dl in &dead_letters {
        writer.send(&OutRecord {
            topic: cfg.topics.dead_letter.clone(),
            key: None,
            value: dl.value.clone(),
            timestamp: Some(dl.failed_at_ms),
            headers: dl
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into_bytes()))
                .collect(),
            partition: None,
        })?;
    }
    writer.flush()?;
    if !dead_letters.is_empty() {
        println!(
            "{} rows that are not records went to {} (reason parse)",
            dead_letters.len(),
            cfg.topics.dead_letter
        );
    }
    Ok(n)
}

/// Refuses when a topic would delete records of `earliest` by time (its `cleanup.policy`
/// includes `delete` and `retention.ms` does not reach back to them at `now_ms`), naming every
/// such topic and the setting to change.
pub fn refuse_if_retention_deletes(
    topics: &[(String, BTreeMap<String, String>)],
    earliest: EventTime,
    now_ms: i64,
) -> anyhow::Result<()> {
    let deleting: Vec<String> = topics
        .iter()
        .filter(|(_, c)| {
            let deletes = c
                .get("cleanup.policy")
                .is_none_or(|p| p.split(',').any(|p| p.trim() == "delete"));
            let retention = c
                .get("retention.ms")
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(7 * 24 * 3_600_000);
            deletes && retention >= 0 && earliest.0 < now_ms.saturating_sub(retention)
        })
        .map(|(t, c)| {
            format!(
                "{t} (retention.ms={})",
                c.get("retention.ms").map_or("default", String::as_str)
            )
        })
        .collect();
    if deleting.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the input reaches back to {earliest}, older than what these topics keep: {}. The broker \
         would delete those records (and the outputs stamped with their event times) while \
         they are read. Set retention.ms=-1 on them (FITSTREAM__TOPICS__RETENTION_MS=-1 before \
         `fitstream topics create`, or kafka-configs --alter --add-config retention.ms=-1) \
         and produce again",
        deleting.join(", ")
    )
}

/// Where `simulate` writes.
pub enum SimTarget {
    /// Kafka, with the configured bootstrap servers.
    Kafka,
    /// A JSON-lines file.
    File(PathBuf),
}

/// `fitstream simulate`: synthetic behaviour to Kafka or a file, ground truth to a side file.
pub fn simulate(
    cfg: &FitstreamConfig,
    sim: SimConfig,
    target: SimTarget,
    truth: Option<&Path>,
) -> anyhow::Result<u64> {
    let simulator = Simulator::new(sim)?;
    if let Some(path) = truth {
        let mut w = BufWriter::new(File::create(path)?);
        simulator.write_truth(&mut w)?;
        w.flush()?;
    }
    let started = Instant::now();
    let n = match target {
        SimTarget::Kafka => {
            let codec = codec(cfg);
            let mut writer = TopicWriter::new(&cfg.kafka)?;
            let bar = progress_bar(None, "simulating");
            let n = inputs::produce(&mut writer, &codec, &cfg.topics, simulator, |n| {
                bar.set_position(n)
            })?;
            bar.finish_and_clear();
            n
        }
        SimTarget::File(path) => {
            let w = BufWriter::new(File::create(&path)?);
            fitstream_simulator::write_jsonl(simulator, w)?
        }
    };
    println!(
        "simulated {n} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(n)
}

/// How `tail` reads.
#[derive(Clone, Debug, Default)]
pub struct TailOptions {
    /// Stop after this long without a record (None: follow until Ctrl-C).
    pub until_idle: Option<Duration>,
    /// Start at the end (without a group's committed offsets).
    pub from_end: bool,
    /// Read as this consumer group, resuming and committing.
    pub group: Option<String>,
}

/// `fitstream tail`: a topic, read_committed, as JSON lines. A closed output (`tail ... |
/// head`) ends it cleanly; with a group, what was written is committed.
pub fn tail(
    cfg: &FitstreamConfig,
    topic: &str,
    options: &TailOptions,
    out: Option<&Path>,
) -> anyhow::Result<u64> {
    let codec = codec(cfg);
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    // Without --until-idle, follow the topic until Ctrl-C.
    let read = reader::ReadOptions {
        idle: options
            .until_idle
            .unwrap_or(Duration::from_secs(u64::MAX / 4)),
        limit: Duration::from_secs(u64::MAX / 4),
        start: if options.from_end {
            reader::Start::End
        } else {
            reader::Start::Beginning
        },
        group: options.group.clone(),
    };
    let mut failed = None;
    let n = reader::read(&cfg.kafka, &[topic], &read, |r| {
        // The same JSON line as `replay` writes (dead letters with their headers).
        let produced = fitstream_runtime::embedded::Produced::from_consumed(r);
        if produced.progress().is_some() {
            // A progress marker between services (segment models), not a record.
            return ControlFlow::Continue(());
        }
        let line = crate::embedded::to_json_line(&codec, cfg, &produced);
        match writeln!(sink, "{line}").and_then(|()| {
            // Following a topic, each line goes out when it comes.
            if options.until_idle.is_none() {
                sink.flush()
            } else {
                Ok(())
            }
        }) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    match failed {
        // The reader went away (`| head`): done, not an error.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(n),
        Some(e) => return Err(e.into()),
        None => {}
    }
    match sink.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(n),
        other => Ok(other.map(|()| n)?),
    }
}

/// A service's topology and output topics, as `run` runs it. In a bounded `run all`, `chain`
/// links the profiler to the segmenter: the profiler waits for the segmenter's last model at
/// its end and says when the profiles are complete; the segmenter ends on that.
fn service_topology(
    cfg: &FitstreamConfig,
    service: Service,
    routing: &fitstream_planner::routing::Routing,
    codec: &fitstream_contracts::Codec,
    chain: Option<(
        &mut fitstream_runtime::kafka::driver::BoundedChain,
        &std::sync::Arc<std::sync::atomic::AtomicBool>,
    )>,
    lookup: Option<&std::sync::Arc<fitstream_profiler::lookup::Lookup>>,
) -> (Topology, Vec<String>) {
    match service {
        Service::Planner => {
            let app = crate::embedded::planner_app(
                cfg,
                cfg.planner.clone(),
                routing.clone(),
                codec.clone(),
            );
            (app.topology(), app.output_topics())
        }
        Service::Profiler => {
            let mut app = fitstream_profiler::app::ProfilerApp::new(
                cfg.application("profiler"),
                cfg.profiler.clone(),
                cfg.topics.clone(),
                codec.clone(),
            );
            if let Some((chain, complete)) = chain {
                app.await_segmenter_at_end = true;
                chain.finished = Some(complete.clone());
            }
            app.lookup = lookup.cloned();
            (app.topology(), app.output_topics())
        }
        Service::Segmenter | Service::All => {
            let mut app = fitstream_segmenter::app::SegmenterApp::new(
                cfg.application("segmenter"),
                cfg.segmenter.clone(),
                cfg.topics.clone(),
                codec.clone(),
            );
            // A service reads the clock for its fit-duration metric (tasks never do).
            app.stopwatch = std::sync::Arc::new(fitstream_segmenter::app::FitSecondsHistogram);
            if let Some((chain, complete)) = chain {
                chain.inputs_complete = Some(complete.clone());
            }
            (app.topology(), app.output_topics())
        }
    }
}

/// What a service touches on the cluster, as its principal needs it granted: the product's
/// topics it reads and writes, its group prefix (its consumer group, restore and globals
/// groups, transactional ids and internal topics all start with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNeeds {
    /// The service.
    pub service: Service,
    /// `fitstream-<service>`: the group, and the prefix of its other groups, its
    /// transactional ids (`<group>-<instance>`) and its internal topics (`<group>-...`).
    pub group: String,
    /// Product topics it reads (Read, Describe).
    pub reads: Vec<String>,
    /// Product topics it writes (Write, Describe).
    pub writes: Vec<String>,
}

impl ServiceNeeds {
    fn of(
        service: Service,
        topology: &Topology,
        outputs: &[String],
        cfg: &FitstreamConfig,
    ) -> Self {
        let group = topology.group_id();
        let internal = format!("{group}-");
        let clean = |mut names: Vec<String>| {
            names.retain(|n| !n.starts_with(&internal));
            names.sort();
            names.dedup();
            names
        };
        let mut reads = topology.input_topics();
        reads.extend(
            topology
                .stages
                .iter()
                .flat_map(|s| s.globals.iter().cloned()),
        );
        let mut writes = outputs.to_vec();
        writes.push(cfg.topics.dead_letter.clone());
        ServiceNeeds {
            service,
            group,
            reads: clean(reads),
            writes: clean(writes),
        }
    }

    /// Every product topic it touches.
    pub fn topics(&self) -> Vec<String> {
        let mut all: Vec<String> = self.reads.iter().chain(&self.writes).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

/// What each service needs granted, for the ACLs (`k8s/base/users.yaml` is checked against
/// it).
pub fn service_needs(cfg: &FitstreamConfig) -> anyhow::Result<Vec<ServiceNeeds>> {
    let (routing, codec) = (routing(cfg)?, codec(cfg));
    Ok([Service::Profiler, Service::Segmenter, Service::Planner]
        .into_iter()
        .map(|service| {
            let (topology, outputs) = service_topology(cfg, service, &routing, &codec, None, None);
            ServiceNeeds::of(service, &topology, &outputs, cfg)
        })
        .collect())
}

/// A service `run` can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// Build orders and cart abandonment.
    Planner,
    /// Customer profiles and segment assignments.
    Profiler,
    /// Segment models and segment profiles (run one instance).
    Segmenter,
    /// All three in one process (handy on a laptop).
    All,
}

impl Service {
    /// Its name: in group ids, topics and `kafka.services.<name>` settings.
    pub fn name(self) -> &'static str {
        match self {
            Service::Planner => "planner",
            Service::Profiler => "profiler",
            Service::Segmenter => "segmenter",
            Service::All => "all",
        }
    }
}

/// `fitstream run`: a service against Kafka until SIGTERM or Ctrl-C, or with `bounded` until
/// its inputs are read to their end.
///
/// `all` runs every service in one process. Bounded, it runs them in data-flow order: the
/// profiler and the segmenter together (a cycle: profiles to the segmenter, models back), the
/// segmenter taking the end of the profiles once the profiler's are complete and the profiler
/// ending once the segmenter's last model and progress placed everybody; then the planner, on
/// the complete segment assignments. The outputs are then those of `replay` on the same input.
pub async fn run_service(
    cfg: &FitstreamConfig,
    service: Service,
    shutdown: std::sync::Arc<std::sync::atomic::AtomicBool>,
    bounded: bool,
) -> anyhow::Result<fitstream_runtime::kafka::driver::DriverStats> {
    use fitstream_runtime::kafka::driver::{BoundedChain, DriverConfig, DriverStats};

    let codec = codec(cfg);
    if codec.registry().is_pinned() && !cfg.registry.pinned_ids {
        anyhow::bail!(
            "no schema registry (registry.url): the outputs would carry fitstream's own schema ids \
             (1001..1008, docs/consumers.md), which a deserializer that looks ids up in a registry \
             misreads. Set registry.url (FITSTREAM__REGISTRY__URL), or registry.pinned_ids = true \
             (FITSTREAM__REGISTRY__PINNED_IDS=true) when every consumer reads the ids as documented"
        );
    }
    let routing = routing(cfg)?;
    let plants = routing.plant_ids();
    // The product's topics are an admin's to create (`topics create`, or the KafkaTopic
    // resources); each service checks those it touches, as its own principal.
    let partitions: BTreeMap<String, i32> = cfg
        .topics
        .specs(&plants)
        .into_iter()
        .map(|s| (s.name, s.partitions))
        .collect();
    let wanted: Vec<Service> = match service {
        Service::All => vec![Service::Profiler, Service::Segmenter, Service::Planner],
        one => vec![one],
    };
    let chained = bounded && service == Service::All;
    // The lookup API: the profiler's committed view, and the endpoints topic that tells
    // every instance which one holds which partition.
    let api = match &cfg.api.listen {
        Some(_) if !wanted.contains(&Service::Profiler) => {
            anyhow::bail!("--api serves the profiler's lookup API: run profiler or all")
        }
        Some(listen) => Some((
            std::sync::Arc::new(fitstream_profiler::lookup::Lookup::new(
                cfg.topics.partitions,
            )),
            listen.clone(),
        )),
        None => None,
    };
    let profiles_complete = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut profiler_group = None;
    let driver = DriverConfig {
        kafka: cfg.kafka.clone(),
        watermark: cfg.watermark.clone(),
        dead_letter_topic: cfg.topics.dead_letter.clone(),
        partitions: cfg.topics.partitions,
        replication_factor: cfg.topics.replication_factor,
        bounded,
        chain: BoundedChain::default(),
    };
    // Phases run one after the other; the services of a phase together.
    let mut phases: Vec<Vec<(Topology, DriverConfig)>> = vec![Vec::new()];
    for service in wanted {
        let mut config = driver.clone();
        config.kafka = cfg.kafka.for_service(service.name());
        if chained && service == Service::Planner {
            phases.push(Vec::new());
        }
        let chain = chained.then_some((&mut config.chain, &profiles_complete));
        let lookup = api
            .as_ref()
            .filter(|_| service == Service::Profiler)
            .map(|(lookup, _)| lookup);
        let (topology, outputs) = service_topology(cfg, service, &routing, &codec, chain, lookup);
        if service == Service::Profiler {
            profiler_group = Some(topology.group_id());
        }
        let needed: Vec<admin::Needed> = ServiceNeeds::of(service, &topology, &outputs, cfg)
            .topics()
            .into_iter()
            .map(|name| admin::Needed {
                partitions: partitions.get(&name).copied(),
                name,
            })
            .collect();
        let (kafka, limit) = (
            config.kafka.clone(),
            Duration::from_millis(cfg.kafka.unavailable_limit_ms),
        );
        let stop = shutdown.clone();
        tokio::task::spawn_blocking(move || admin::check_topics(&kafka, &needed, limit, &stop))
            .await??;
        for topic in outputs {
            if let Some(kind) = cfg.topics.kind_of(&topic) {
                codec.prepare_writer(&topic, kind).await?;
            }
        }
        if let Some(phase) = phases.last_mut() {
            phase.push((topology, config));
        }
    }
    fitstream_runtime::health::LIVENESS.set_timeout(cfg.kafka.liveness_timeout_ms as i64);
    let addr = fitstream_runtime::http::serve(&cfg.metrics.listen).await?;
    tracing::info!(%addr, "metrics, /healthz and /readyz");
    let endpoints = match (api, profiler_group) {
        (Some((lookup, listen)), Some(group)) => {
            Some(serve_lookup(cfg, lookup, &listen, &group, &shutdown).await?)
        }
        _ => None,
    };
    let mut stats = DriverStats::default();
    for phase in phases {
        let mut running = tokio::task::JoinSet::new();
        for (topology, config) in phase {
            let shutdown = shutdown.clone();
            running.spawn_blocking(move || {
                fitstream_runtime::kafka::driver::run(topology, config, shutdown)
            });
        }
        // In the order they end: a failed service stops the others (one may be waiting for
        // it), and the process exits non-zero and restarts.
        while let Some(ended) = running.join_next().await {
            let s = match ended {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e.into());
                }
                Err(e) => {
                    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e.into());
                }
            };
            stats.records += s.records;
            stats.commits += s.commits;
        }
        if shutdown.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
    }
    if let Some(endpoints) = endpoints {
        shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(move || endpoints.join()).await;
    }
    tracing::info!(records = stats.records, commits = stats.commits, "stopped");
    Ok(stats)
}

/// Serves the profiler's lookup API on `listen` and follows the endpoints topic of the
/// profiler's consumer group `group` (created under its prefix, like its changelog) on a
/// thread of its own.
async fn serve_lookup(
    cfg: &FitstreamConfig,
    lookup: std::sync::Arc<fitstream_profiler::lookup::Lookup>,
    listen: &str,
    group: &str,
    shutdown: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    use fitstream_profiler::lookup::{endpoints, http};
    let kafka = cfg.kafka.for_service(Service::Profiler.name());
    let topic = endpoints::topic(group);
    let spec = fitstream_contracts::topics::TopicSpec {
        name: topic.clone(),
        partitions: 1,
        replication_factor: cfg.topics.replication_factor,
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
        role: fitstream_contracts::topics::TopicRole::Table,
        value: None,
    };
    admin::ensure_topics(&kafka, &[spec]).await?;
    let listener = std::net::TcpListener::bind(listen)?;
    let bound = listener.local_addr()?;
    let endpoint = cfg.api.advertised(bound);
    let instance = cfg
        .kafka
        .group_instance_id
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let directory = std::sync::Arc::new(endpoints::Directory::new(instance));
    http::spawn_thread(
        listener,
        http::Api::new(lookup.clone(), Some(directory.clone()), endpoint.clone()),
    )?;
    tracing::info!(%bound, %endpoint, %topic, "lookup API: GET /v1/customers/{{id}}");
    Ok(endpoints::spawn(
        kafka,
        topic,
        endpoint,
        lookup,
        directory,
        shutdown.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3_600_000;

    fn topic(name: &str, policy: &str, retention: &str) -> (String, BTreeMap<String, String>) {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_owned(), policy.to_owned()),
            ("retention.ms".to_owned(), retention.to_owned()),
        ]);
        (name.to_owned(), configs)
    }

    #[test]
    fn history_older_than_a_deleting_topic_keeps_is_refused_naming_the_topic() {
        let now = 1_765_000_000_000;
        let topics = [
            topic("in", "delete", &(7 * DAY).to_string()),
            topic("profiles", "compact", &(7 * DAY).to_string()),
            topic("orders", "compact,delete", "-1"),
        ];
        let e = refuse_if_retention_deletes(&topics, EventTime(now - 8 * DAY), now)
            .expect_err("8 days back, 7 kept");
        let m = e.to_string();
        assert!(m.contains("in (retention.ms=604800000)"), "{m}");
        assert!(!m.contains("profiles") && !m.contains("orders"), "{m}");
        assert!(m.contains("retention.ms=-1"), "{m}");
        assert!(refuse_if_retention_deletes(&topics, EventTime(now - 6 * DAY), now).is_ok());
        let kept = [topic("in", "delete", "-1")];
        assert!(refuse_if_retention_deletes(&kept, EventTime(0), now).is_ok());
    }
}
