//! The commands that run the whole pipeline in this process ([`crate::embedded`]): `replay`,
//! `demo` and `segments`, with the tables and the live view they print.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use fitstream_simulator::{SimConfig, Simulator};

use super::{InputFormat, InputOptions, Inputs, progress_bar, routing};
use crate::config::FitstreamConfig;

/// `fitstream replay`: a history file through the embedded pipeline in data-flow order
/// ([`crate::embedded::run_bounded`]); every output topic to `out/<topic>.jsonl`, then a
/// summary and the reconciliation of outputs with the input. Records in the format's default
/// order ([`InputFormat::default_order`]).
pub fn replay(
    cfg: &FitstreamConfig,
    input: &Path,
    format: InputFormat,
    out: &Path,
) -> anyhow::Result<crate::embedded::Summary> {
    replay_with(cfg, input, format, &InputOptions::default(), out)
}

/// [`replay`] with the order of the records and the sort's memory bound chosen.
pub fn replay_with(
    cfg: &FitstreamConfig,
    input: &Path,
    format: InputFormat,
    options: &InputOptions,
    out: &Path,
) -> anyhow::Result<crate::embedded::Summary> {
    let sorting = Instant::now();
    let inputs = Inputs::open(input, format, options)?;
    if let Some(s) = inputs.sort_stats() {
        println!(
            "in event-time order: {} records{} in {:.1} s ({}; rows that are not records: {})",
            s.records,
            if s.was_in_order {
                ", already in order,"
            } else {
                " sorted"
            },
            sorting.elapsed().as_secs_f64(),
            if s.runs == 0 {
                "in memory".to_owned()
            } else {
                format!("{} runs, {} MB on disk", s.runs, s.spilled_bytes >> 20)
            },
            s.errors
        );
    }
    let mut truth = crate::reconcile::InputTruth::default();
    let mut unreadable = Vec::new();
    for item in inputs.items()? {
        match item {
            Ok(r) => truth.observe(&r),
            Err(e) => unreadable.push(e),
        }
    }
    let parse_dead_letters = inputs.parse_dead_letters(&unreadable, "replay", 0)?;
    let bar = progress_bar(None, "replaying");
    let started = Instant::now();
    // In data-flow order, as `run all --until-end` does on Kafka: the same outputs.
    let summary = crate::embedded::run_bounded(
        cfg,
        cfg.planner.clone(),
        routing(cfg)?,
        || inputs.records(),
        out,
        |s| bar.set_position(s.inputs),
    )?;
    bar.finish_and_clear();
    let mut summary = summary;
    crate::embedded::append_dead_letters(cfg, out, parse_dead_letters, &mut summary)?;
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
    print!("{}", outcome_table(&summary, unreadable.len() as u64));
    let reconciliation = crate::reconcile::reconcile(cfg, &truth, &summary, out)?;
    print!("{reconciliation}");
    anyhow::ensure!(
        summary.accounted(),
        "some input records have no outcome (see the table above)"
    );
    anyhow::ensure!(
        reconciliation.holds(),
        "the outputs do not reconcile with the input"
    );
    Ok(summary)
}

/// How every row of the input ended, per service that reads it: rows that are not records
/// (dead letters, reason `parse`), then per input topic the records read and, for each
/// service, how many it used, dropped as duplicates, or dead-lettered by reason.
pub fn outcome_table(summary: &crate::embedded::Summary, unreadable: u64) -> String {
    use std::collections::BTreeSet;
    use std::fmt::Write as _;
    let mut t = String::new();
    // In data-flow order: the profiler, then the planner.
    let mut services: Vec<&String> = summary.outcomes.keys().collect();
    services.sort_by_key(|s| (s.as_str() != "profiler", s.as_str()));
    let _ = writeln!(
        t,
        "  outcome of every input row     {}",
        services
            .iter()
            .map(|s| format!("{s:>10}"))
            .collect::<String>()
    );
    let _ = writeln!(
        t,
        "    not a record (parse)         {}",
        services
            .iter()
            .map(|_| format!("{unreadable:>10}"))
            .collect::<String>()
    );
    let topics: BTreeSet<&String> = summary.outcomes.values().flat_map(|o| o.keys()).collect();
    let reasons: BTreeSet<&String> = summary
        .outcomes
        .values()
        .flat_map(|o| o.values().flat_map(|x| x.dead.keys()))
        .collect();
    for topic in topics {
        let row = |label: &str, f: &dyn Fn(&fitstream_runtime::embedded::Outcomes) -> u64| {
            let cells: String = services
                .iter()
                .map(|s| {
                    let n = summary.outcomes[*s].get(topic).map_or(0, f);
                    format!("{n:>10}")
                })
                .collect();
            format!("    {label:<29}{cells}\n")
        };
        t += &row(topic, &|o| o.read);
        t += &row("  used", &|o| o.used);
        t += &row("  duplicate", &|o| o.duplicates);
        for reason in &reasons {
            t += &row(&format!("  dead letter ({reason})"), &|o| {
                o.dead.get(*reason).copied().unwrap_or(0)
            });
        }
    }
    let _ = writeln!(
        t,
        "    every record read has one outcome: {}",
        if summary.accounted() { "yes" } else { "NO" }
    );
    t
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
        "  {:>3}  {:<32} {:>6}  {:>8} {:>6} {:>8} {:>7} {:>8} {:>9} {:>7}  top categories",
        "id", "label", "size", "recency", "orders", "spend", "AOV", "sessions", "abandon", "conv"
    );
    for s in segments {
        let _ = writeln!(
            t,
            "  {:>3}  {:<32} {:>6}  {:>7.1}d {:>6.2} {:>8.2} {:>7.2} {:>8.2} {:>8.0}% {:>6.0}%  {}",
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
        if let Some(d) = &s.description {
            let _ = writeln!(t, "       {d}");
        }
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
    console: Option<&str>,
    api: Option<&str>,
) -> anyhow::Result<crate::embedded::Summary> {
    let simulator = Simulator::new(sim)?;
    // The lookup API over the profiler's state as of each embedded commit (every 5,000
    // records): one process holds every partition.
    let lookup = match api {
        Some(listen) => {
            let lookup = std::sync::Arc::new(fitstream_profiler::lookup::Lookup::new(
                cfg.topics.partitions,
            ));
            let addr = serve_api(listen, lookup.clone())
                .with_context(|| format!("lookup API: cannot listen on {listen}"))?;
            Some((lookup, addr))
        }
        None => None,
    };
    // The console follows the output files as the run writes them.
    let console = match console {
        Some(listen) => Some(
            fitstream_console::spawn_on_directory(
                cfg.topics.clone(),
                out.to_owned(),
                listen,
                Vec::new(),
            )
            .with_context(|| format!("console: cannot listen on {listen}"))?,
        ),
        None => None,
    };
    let title = match console {
        Some(addr) => format!("demo (console at http://{addr}/)"),
        None => "demo".to_owned(),
    };
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
            print!("\x1b[2J\x1b[H{}", view(s, started.elapsed(), &title));
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
        lookup.as_ref().map(|(l, _)| l.clone()),
        |s| draw(s, &mut last, false),
    )?;
    if tty {
        print!("\x1b[2J\x1b[H");
    }
    print!("{}", view(&summary, started.elapsed(), &title));
    println!("outputs: {}/<topic>.jsonl", out.display());
    if let Some((lookup, addr)) = &lookup {
        let example = lookup.example().unwrap_or_else(|| "<id>".to_owned());
        println!("lookup API: curl http://{addr}/v1/customers/{example}");
    }
    if console.is_some() || lookup.is_some() {
        if let Some(addr) = console {
            println!("console: http://{addr}/");
        }
        println!("(Ctrl-C to stop)");
        let _ = std::io::stdout().flush();
        let stop = fitstream_runtime::shutdown::on_signals();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(summary)
}

/// Serves the lookup API of an embedded run (the run is synchronous).
fn serve_api(
    listen: &str,
    lookup: std::sync::Arc<fitstream_profiler::lookup::Lookup>,
) -> anyhow::Result<std::net::SocketAddr> {
    use fitstream_profiler::lookup::http;
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    http::spawn_thread(listener, http::Api::new(lookup, None, addr.to_string()))?;
    Ok(addr)
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
            "  {:>3}  {:<32} {}",
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
