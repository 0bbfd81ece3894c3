//! The command line: subcommands, flags and their dispatch to [`crate::commands`].

use std::path::PathBuf;
use std::time::Duration;

use crate::commands::{self, InputFormat, SimTarget};
use clap::{Parser, Subcommand};

/// fitstream links customer behaviour to production: segments for marketing, build orders for
/// the factory, from clickstream and purchases on Kafka.
#[derive(Parser)]
#[command(name = "fitstream", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML); also `FITSTREAM_CONFIG`. Environment variables
    /// `FITSTREAM__<SECTION>__<KEY>` override it; flags override both.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format on standard error: `text` (coloured only on a terminal) or `json` (one
    /// object per line, for a pod's log collector); also `FITSTREAM_LOG_FORMAT`.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "FITSTREAM_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when standard error is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// The order a history file is fed in.
#[derive(clap::Args)]
struct OrderArgs {
    /// Order of the records: event time (the default for CSV histories, which need not be
    /// sorted by time) or file (the default for JSON lines, which keep arrival order).
    #[arg(long, value_enum)]
    order: Option<commands::InputOrder>,
    /// Memory bound of the event-time sort in MiB; beyond it, sorted runs go to temporary
    /// files and are merged.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    sort_memory_mb: u64,
}

impl OrderArgs {
    fn options(&self) -> commands::InputOptions {
        commands::InputOptions {
            order: self.order,
            sort_memory_bytes: usize::try_from(self.sort_memory_mb << 20).unwrap_or(usize::MAX),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create or describe every topic of the product with its settings.
    Topics {
        /// create | describe
        #[arg(value_parser = ["create", "describe"])]
        action: String,
        /// Kafka bootstrap servers (overrides configuration).
        #[arg(long)]
        bootstrap: Option<String>,
        /// Plants whose build-order topics to include.
        #[arg(long, value_delimiter = ',', default_values_t = commands::DEFAULT_PLANTS.map(String::from))]
        plants: Vec<String>,
    },
    /// Register every schema with the schema registry (registry.url) under its topic's
    /// subject with the compatibility level the docs promise, or check them.
    Schemas {
        /// register | check
        #[arg(value_parser = ["register", "check"])]
        action: String,
        /// The registry's URL (overrides configuration).
        #[arg(long)]
        registry: Option<String>,
        /// Plants whose build-order topics to include.
        #[arg(long, value_delimiter = ',', default_values_t = commands::DEFAULT_PLANTS.map(String::from))]
        plants: Vec<String>,
    },
    /// Simulate customer behaviour into Kafka (--bootstrap) or a JSON-lines file (--out).
    Simulate {
        /// Events per second of event time.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of event time to simulate.
        #[arg(long)]
        seconds: Option<u64>,
        /// Seed: the same seed gives the same records.
        #[arg(long)]
        seed: Option<u64>,
        /// Number of customers.
        #[arg(long)]
        customers: Option<usize>,
        /// Kafka bootstrap servers.
        #[arg(long, conflicts_with = "out")]
        bootstrap: Option<String>,
        /// JSON-lines output file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// CSV file for the ground truth (customer_id,persona).
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// Write a history file (REES46 or Taobao CSV, JSON lines; gzip-compressed or not) to the
    /// input topics.
    Produce {
        /// The file.
        #[arg(long)]
        input: PathBuf,
        /// Its format (guessed from the extension and the first line when absent).
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        #[command(flatten)]
        order: OrderArgs,
        /// Kafka bootstrap servers.
        #[arg(long)]
        bootstrap: Option<String>,
    },
    /// Simulated customers through the whole pipeline in this process, with a live view; no
    /// broker needed. Outputs to OUT/<topic>.jsonl.
    Demo {
        /// Seconds of event time to simulate (default: 2 days).
        #[arg(long, default_value_t = 172_800)]
        seconds: u64,
        /// Events per second of event time.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Seed: the same seed gives the same run.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Also serve the web console over the outputs at this address (127.0.0.1:8080 when
        /// given without one), and keep serving after the run until Ctrl-C.
        #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
        console: Option<String>,
        /// Also serve the profiler's lookup API (`GET /v1/customers/{id}`) at this address
        /// (127.0.0.1:8082 when given without one), updated every 5,000 records, and keep
        /// serving after the run until Ctrl-C.
        #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8082")]
        api: Option<String>,
    },
    /// Segment simulated customers with known personas and print how well segments match
    /// them (adjusted Rand index) with the segment table.
    Segments {
        /// Seconds of event time to simulate (default: 3 days).
        #[arg(long, default_value_t = 259_200)]
        seconds: u64,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Replay a history file through the embedded pipeline (no broker); outputs to OUT/<topic>.jsonl.
    Replay {
        /// The file (REES46 or Taobao CSV, fitstream JSON lines; gzip-compressed or not).
        #[arg(long)]
        input: PathBuf,
        /// Its format (guessed from the extension and the first line when absent).
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        #[command(flatten)]
        order: OrderArgs,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Run a service against Kafka until SIGTERM or Ctrl-C (exactly once, state in changelogs).
    Run {
        /// Which service.
        #[arg(value_enum)]
        service: commands::Service,
        /// Kafka bootstrap servers.
        #[arg(long)]
        bootstrap: Option<String>,
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long)]
        metrics_listen: Option<String>,
        /// Serve the profiler's lookup API (`GET /v1/customers/{id}`) on this address
        /// (profiler and all only).
        #[arg(long)]
        api: Option<String>,
        /// Stop at the end of the input as of start (a replay through Kafka): close every
        /// window, commit, exit.
        #[arg(long)]
        until_end: bool,
    },
    /// Serve the web console: segments, audiences, build orders and health, read from the
    /// output topics (Kafka, read_committed) or a directory of topic JSON lines (--from).
    Console {
        /// Kafka bootstrap servers (overrides configuration).
        #[arg(long, conflicts_with = "from")]
        bootstrap: Option<String>,
        /// A directory of topic JSON lines (the output of replay, demo or tail), followed as
        /// it grows.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The services' metrics endpoints (http://host:port/metrics), for the health page.
        #[arg(long, num_args = 1..)]
        metrics: Vec<String>,
    },
    /// Print a topic as JSON lines, read_committed, decoded.
    Tail {
        /// Topic name.
        topic: String,
        /// Kafka bootstrap servers.
        #[arg(long)]
        bootstrap: Option<String>,
        /// Read from the beginning (the default; kept for familiarity).
        #[arg(long, default_value_t = true)]
        from_beginning: bool,
        /// Read only what is written from now on (without a group's committed offsets).
        #[arg(long)]
        from_end: bool,
        /// Read as this consumer group: resume after what it read last time, and commit what
        /// is read now (default: a throwaway group of its own).
        #[arg(long)]
        group: Option<String>,
        /// Stop after this many seconds without a record.
        #[arg(long)]
        until_idle: Option<u64>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Parses the command line and runs the subcommand.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The embedded commands print their own view and summary: service logs only from warnings
    // on (RUST_LOG overrides); services log from info.
    let default = match cli.command {
        Command::Replay { .. } | Command::Demo { .. } | Command::Segments { .. } => "warn",
        _ => "info",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        // A file or a pod's log gets no colour codes.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let mut cfg = crate::config::load(cli.config.as_deref())?;
    let mut bootstrap = |b: &Option<String>| {
        if let Some(b) = b {
            cfg.kafka.bootstrap_servers = b.clone();
        }
    };
    match &cli.command {
        Command::Topics { bootstrap: b, .. }
        | Command::Simulate { bootstrap: b, .. }
        | Command::Produce { bootstrap: b, .. }
        | Command::Tail { bootstrap: b, .. }
        | Command::Console { bootstrap: b, .. } => bootstrap(b),
        Command::Run { bootstrap: b, .. } => bootstrap(b),
        Command::Replay { .. } | Command::Demo { .. } | Command::Segments { .. } => {}
        Command::Schemas { registry, .. } => {
            if let Some(url) = registry {
                cfg.registry.url = Some(url.clone());
            }
        }
    }
    match cli.command {
        Command::Topics { action, plants, .. } if action == "create" => {
            commands::topics_create(&cfg, &plants).await
        }
        Command::Topics { plants, .. } => commands::topics_describe(&cfg, &plants).await,
        Command::Schemas { action, plants, .. } => {
            commands::schemas(&cfg, action == "check", &plants).await
        }
        Command::Simulate {
            rate,
            seconds,
            seed,
            customers,
            out,
            truth,
            ..
        } => {
            let mut sim = fitstream_simulator::SimConfig::default();
            sim.rate = rate.unwrap_or(sim.rate);
            sim.seconds = seconds.unwrap_or(sim.seconds);
            sim.seed = seed.unwrap_or(sim.seed);
            sim.customers = customers.unwrap_or(sim.customers);
            let target = out.map(SimTarget::File).unwrap_or(SimTarget::Kafka);
            commands::simulate(&cfg, sim, target, truth.as_deref()).map(|_| ())
        }
        Command::Produce {
            input,
            format,
            order,
            ..
        } => {
            let format = format.unwrap_or_else(|| InputFormat::guess(&input));
            commands::produce(&cfg, &input, format, &order.options()).map(|_| ())
        }
        Command::Run {
            service,
            metrics_listen,
            api,
            until_end,
            ..
        } => {
            if let Some(l) = metrics_listen {
                cfg.metrics.listen = l;
            }
            if api.is_some() {
                cfg.api.listen = api;
            }
            let shutdown = fitstream_runtime::shutdown::on_signals();
            commands::run_service(&cfg, service, shutdown, until_end)
                .await
                .map(|_| ())
        }
        Command::Segments { seconds, seed } => {
            let sim = fitstream_simulator::SimConfig {
                seconds,
                seed,
                ..Default::default()
            };
            commands::segments(&cfg, sim).map(|_| ())
        }
        Command::Demo {
            seconds,
            rate,
            seed,
            out,
            console,
            api,
        } => {
            let sim = fitstream_simulator::SimConfig {
                seconds,
                rate,
                seed,
                ..Default::default()
            };
            commands::demo(&cfg, sim, &out, console.as_deref(), api.as_deref()).map(|_| ())
        }
        Command::Console {
            from,
            listen,
            metrics,
            ..
        } => {
            let options = commands::ConsoleOptions {
                from,
                listen,
                metrics,
            };
            commands::console(
                &cfg,
                &options,
                fitstream_runtime::shutdown::wait_for_signal(),
            )
            .await
        }
        Command::Replay {
            input,
            format,
            order,
            out,
        } => {
            let format = format.unwrap_or_else(|| InputFormat::guess(&input));
            commands::replay_with(&cfg, &input, format, &order.options(), &out).map(|_| ())
        }
        Command::Tail {
            topic,
            until_idle,
            out,
            from_end,
            group,
            ..
        } => commands::tail(
            &cfg,
            &topic,
            &commands::TailOptions {
                until_idle: until_idle.map(Duration::from_secs),
                from_end,
                group,
            },
            out.as_deref(),
        )
        .map(|_| ()),
    }
}
