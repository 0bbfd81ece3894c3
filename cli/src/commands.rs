//! One function per subcommand. Each takes its options and the loaded configuration.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use fitstream_contracts::Codec;
use fitstream_contracts::registry::Registry;
use fitstream_runtime::kafka::{admin, reader, writer::TopicWriter};
use fitstream_runtime::task::Topology;
use fitstream_simulator::{InputRecord, SimConfig, Simulator};

use crate::config::FitstreamConfig;
use crate::inputs;

/// Plants whose build-order topics `topics create` provisions by default.
pub const DEFAULT_PLANTS: [&str; 3] = ["berlin", "lyon", "porto"];

/// The codec of a configuration.
pub fn codec(cfg: &FitstreamConfig) -> Codec {
    Codec::new(
        Registry::from_config(&cfg.registry),
        fitstream_contracts::codec::DEFAULT_MAX_VALUE_BYTES,
    )
}

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

/// Reads an input file of either format.
pub fn read_inputs(
    path: &Path,
    format: InputFormat,
) -> anyhow::Result<Box<dyn Iterator<Item = InputRecord>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::new(file);
    let skip = |r: Result<InputRecord, fitstream_simulator::ReplayError>| match r {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("skipping input: {e}");
            None
        }
    };
    Ok(match format {
        InputFormat::Rees46 => Box::new(fitstream_simulator::read_rees46(reader).filter_map(skip)),
        InputFormat::Jsonl => Box::new(fitstream_simulator::read_jsonl(reader).filter_map(skip)),
    })
}

/// Input file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// REES46 e-commerce CSV.
    Rees46,
    /// fitstream's JSON lines.
    Jsonl,
}

impl InputFormat {
    /// Guesses from the file name.
    pub fn guess(path: &Path) -> InputFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => InputFormat::Rees46,
            _ => InputFormat::Jsonl,
        }
    }
}

fn progress_bar(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} {pos} records [{elapsed}] {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// `fitstream produce`: a history file to the input topics.
pub fn produce(cfg: &FitstreamConfig, input: &Path, format: InputFormat) -> anyhow::Result<u64> {
    let codec = codec(cfg);
    let records = read_inputs(input, format)?;
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
    Ok(n)
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

/// `fitstream tail`: a topic, read_committed, decoded to JSON lines.
pub fn tail(
    cfg: &FitstreamConfig,
    topic: &str,
    until_idle: Option<Duration>,
    out: Option<&Path>,
) -> anyhow::Result<u64> {
    let codec = codec(cfg);
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    // Without --until-idle, follow the topic until Ctrl-C.
    let idle = until_idle.unwrap_or(Duration::from_secs(u64::MAX / 4));
    let mut failed = None;
    let n = reader::read_until_idle(
        &cfg.kafka,
        &[topic],
        idle,
        Duration::from_secs(u64::MAX / 4),
        |r| {
            // The same JSON line as `replay` writes (dead letters with their headers).
            let produced = fitstream_runtime::embedded::Produced::from_consumed(r);
            if produced.progress().is_some() {
                // A progress marker between services (segment models), not a record.
                return;
            }
            let line = crate::embedded::to_json_line(&codec, cfg, &produced);
            if let Err(e) = writeln!(sink, "{line}") {
                failed = Some(e);
            }
        },
    )?;
    sink.flush()?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(n)
}

/// Counts lines of a file (for progress totals).
pub fn count_lines(path: &Path) -> std::io::Result<u64> {
    Ok(BufReader::new(File::open(path)?).lines().count() as u64)
}

/// `fitstream replay`: a history file through the embedded pipeline in data-flow order
/// ([`crate::embedded::run_bounded`]); every output topic to `out/<topic>.jsonl`, then a
/// summary and the reconciliation of outputs with the input.
pub fn replay(
    cfg: &FitstreamConfig,
    input: &Path,
    format: InputFormat,
    out: &Path,
) -> anyhow::Result<crate::embedded::Summary> {
    let mut truth = crate::reconcile::InputTruth::default();
    for r in read_inputs(input, format)? {
        truth.observe(&r);
    }
    let bar = progress_bar(None, "replaying");
    let started = Instant::now();
    // In data-flow order, as `run all --until-end` does on Kafka: the same outputs.
    let summary = crate::embedded::run_bounded(
        cfg,
        cfg.planner.clone(),
        routing(cfg)?,
        || read_inputs(input, format),
        out,
        |s| bar.set_position(s.inputs),
    )?;
    bar.finish_and_clear();
    println!(
        "replayed {} records in {:.1} s into {}",
        summary.inputs,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    for (topic, n) in &summary.outputs {
        println!("  {topic:<40} {n:>7} records");
    }
    for (reason, n) in &summary.dead_letters {
        println!("  dead letters ({reason:<10})              {n:>7}");
    }
    print!(
        "{}",
        segment_table(&summary.segments, summary.model_version)
    );
    let p = &summary.planner;
    println!(
        "  carts: {} converted, {} abandoned; released units {}; duplicates {}; late {}; unrouted lines {}",
        p.conversions, p.abandonments, p.released_units, p.duplicates, p.late, p.unrouted
    );
    let reconciliation = crate::reconcile::reconcile(cfg, &truth, &summary, out)?;
    print!("{reconciliation}");
    anyhow::ensure!(
        reconciliation.holds(),
        "the outputs do not reconcile with the input"
    );
    Ok(summary)
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

/// The routing table of a configuration: its file, or the bundled one.
pub fn routing(cfg: &FitstreamConfig) -> anyhow::Result<fitstream_planner::routing::Routing> {
    Ok(match &cfg.planner.routing {
        Some(path) => fitstream_planner::routing::Routing::load(path)?,
        None => fitstream_planner::routing::Routing::bundled(),
    })
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
    let routing = routing(cfg)?;
    let plants = routing.plant_ids();
    admin::ensure_topics(&cfg.kafka, &cfg.topics.specs(&plants)).await?;
    let wanted: Vec<Service> = match service {
        Service::All => vec![Service::Profiler, Service::Segmenter, Service::Planner],
        one => vec![one],
    };
    let chained = bounded && service == Service::All;
    let profiles_complete = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
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
        let (topology, outputs) = match service {
            Service::Planner => {
                let app = crate::embedded::planner_app(
                    cfg,
                    cfg.planner.clone(),
                    routing.clone(),
                    codec.clone(),
                );
                if chained {
                    phases.push(Vec::new());
                }
                (app.topology(), app.output_topics())
            }
            Service::Profiler => {
                let mut app = fitstream_profiler::app::ProfilerApp::new(
                    cfg.application("profiler"),
                    cfg.profiler.clone(),
                    cfg.topics.clone(),
                    codec.clone(),
                );
                if chained {
                    app.await_segmenter_at_end = true;
                    config.chain.finished = Some(profiles_complete.clone());
                }
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
                if chained {
                    config.chain.inputs_complete = Some(profiles_complete.clone());
                }
                (app.topology(), app.output_topics())
            }
        };
        for topic in outputs {
            if let Some(kind) = cfg.topics.kind_of(&topic) {
                codec.prepare_writer(&topic, kind).await?;
            }
        }
        if let Some(phase) = phases.last_mut() {
            phase.push((topology, config));
        }
    }
    let addr = fitstream_runtime::http::serve(&cfg.metrics.listen).await?;
    tracing::info!(%addr, "metrics, /healthz and /readyz");
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
    tracing::info!(records = stats.records, commits = stats.commits, "stopped");
    Ok(stats)
}

/// The segments of a model as a table a marketer can read: centroids in original units.
pub fn segment_table(segments: &[fitstream_contracts::SegmentProfile], version: i64) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    if segments.is_empty() {
        let _ = writeln!(t, "  no segment model yet");
        return t;
    }
    let _ = writeln!(
        t,
        "  segments (model v{version}, centroids in original units):"
    );
    let _ = writeln!(
        t,
        "  {:>3}  {:<22} {:>6}  {:>8} {:>6} {:>8} {:>7} {:>8} {:>9} {:>7}  top categories",
        "id", "label", "size", "recency", "orders", "spend", "AOV", "sessions", "abandon", "conv"
    );
    for s in segments {
        let _ = writeln!(
            t,
            "  {:>3}  {:<22} {:>6}  {:>7.1}d {:>6.2} {:>8.2} {:>7.2} {:>8.2} {:>8.0}% {:>6.0}%  {}",
            s.segment_id,
            s.label,
            s.size,
            s.recency_days,
            s.orders,
            s.spend,
            s.avg_order_value,
            s.sessions,
            (s.cart_abandonment_rate * 100.0).max(0.0),
            (s.conversion_rate * 100.0).max(0.0),
            s.top_categories.join(", ")
        );
    }
    t
}

/// The terminal view of a running pipeline.
pub fn view(s: &crate::embedded::Summary, elapsed: Duration, title: &str) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let secs = elapsed.as_secs_f64().max(1e-3);
    let _ = writeln!(
        t,
        "fitstream {title}: the whole pipeline in one process (planner, profiler, segmenter)"
    );
    let _ = writeln!(
        t,
        "  records {:>9}   {:>8.0} records/s   event time {}",
        s.inputs,
        s.inputs as f64 / secs,
        fitstream_contracts::EventTime(s.last_output_time)
    );
    let dead: Vec<String> = s
        .dead_letters
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let _ = writeln!(
        t,
        "  dead letters: {}   late {}   duplicates {}",
        if dead.is_empty() {
            "none".to_owned()
        } else {
            dead.join(", ")
        },
        s.planner.late,
        s.planner.duplicates
    );
    let _ = writeln!(
        t,
        "  carts: {} converted, {} abandoned   released units {}   build orders {}",
        s.planner.conversions,
        s.planner.abandonments,
        s.planner.released_units,
        s.planner.build_orders
    );
    t.push_str(&segment_table(&s.segments, s.model_version));
    let _ = writeln!(t, "  latest build orders per plant:");
    for (plant, o) in &s.latest_orders {
        let _ = writeln!(
            t,
            "    {plant:<8} {:<9} {:<24} qty {:>8} {}  window {}..{}  priority {}",
            o.request_state.symbol(),
            o.material_definition_id,
            o.quantity,
            o.unit_of_measure,
            o.window_start,
            o.window_end,
            o.priority
        );
    }
    t
}

/// `fitstream demo`: the simulator feeding the whole pipeline embedded, with a live view.
pub fn demo(
    cfg: &FitstreamConfig,
    sim: SimConfig,
    out: &Path,
) -> anyhow::Result<crate::embedded::Summary> {
    let simulator = Simulator::new(sim)?;
    let tty = std::io::stdout().is_terminal();
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    };
    let started = Instant::now();
    let mut last = Instant::now();
    let draw = |s: &crate::embedded::Summary, last: &mut Instant, force: bool| {
        if !force && last.elapsed() < every {
            return;
        }
        *last = Instant::now();
        if tty {
            print!("\x1b[2J\x1b[H{}", view(s, started.elapsed(), "demo"));
        } else {
            println!(
                "demo: {} records, {:.0}/s, event time {}, build orders {}, abandonments {}, segments {}, dead letters {}",
                s.inputs,
                s.inputs as f64 / started.elapsed().as_secs_f64().max(1e-3),
                fitstream_contracts::EventTime(s.last_output_time),
                s.planner.build_orders,
                s.planner.abandonments,
                s.segments.len(),
                s.dead_letters.values().sum::<u64>()
            );
        }
        let _ = std::io::stdout().flush();
    };
    let summary = crate::embedded::run(
        cfg,
        cfg.planner.clone(),
        routing(cfg)?,
        simulator,
        out,
        |s| draw(s, &mut last, false),
    )?;
    if tty {
        print!("\x1b[2J\x1b[H");
    }
    print!("{}", view(&summary, started.elapsed(), "demo"));
    println!("outputs: {}/<topic>.jsonl", out.display());
    Ok(summary)
}

/// `fitstream segments`: simulated customers with known personas through the profiler and
/// the segmenter (embedded); prints the adjusted Rand index between the final segments and
/// the personas, and the segment table with the personas inside each segment.
pub fn segments(cfg: &FitstreamConfig, sim: SimConfig) -> anyhow::Result<f64> {
    let options = crate::pipeline::EvaluateOptions {
        partitions: cfg.topics.partitions,
        topics: cfg.topics.clone(),
        profiler: cfg.profiler.clone(),
        segmenter: cfg.segmenter.clone(),
    };
    let started = Instant::now();
    let e = crate::pipeline::evaluate(&sim, &options)?;
    let profiles: Vec<fitstream_contracts::SegmentProfile> =
        e.segments.iter().map(|r| r.profile.clone()).collect();
    print!("{}", segment_table(&profiles, e.model_version));
    println!("  personas per segment:");
    for r in &e.segments {
        let personas: Vec<String> = r.personas.iter().map(|(p, n)| format!("{p} {n}")).collect();
        println!(
            "  {:>3}  {:<22} {}",
            r.segment_id,
            r.label,
            personas.join(", ")
        );
    }
    println!(
        "adjusted Rand index (segments vs personas): {:.3} over {} customers; {} inputs, {} models, {} {:.3}, {:.1} s",
        e.ari,
        e.customers,
        e.inputs,
        e.models,
        e.quality_metric,
        e.quality_score,
        started.elapsed().as_secs_f64()
    );
    Ok(e.ari)
}
