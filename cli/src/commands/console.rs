//! `fitstream console`: the web console over the output topics, from Kafka or a directory.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use fitstream_console::{Console, Source};
use fitstream_runtime::kafka::reader;

use crate::config::FitstreamConfig;

/// Where the console reads and where it listens.
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// A directory of topic JSON lines (followed as it grows); `None`: Kafka.
    pub from: Option<PathBuf>,
    /// The address to listen on.
    pub listen: String,
    /// The services' `/metrics` URLs, for the health page.
    pub metrics: Vec<String>,
}

/// A directory followed every this often.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Serves the console until `shutdown` resolves.
pub async fn console(
    cfg: &FitstreamConfig,
    options: &ConsoleOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .with_context(|| format!("console: cannot listen on {}", options.listen))?;
    println!("console: http://{}/", listener.local_addr()?);
    console_on(cfg, options, listener, shutdown).await
}

/// [`console`] on a bound listener.
pub async fn console_on(
    cfg: &FitstreamConfig,
    options: &ConsoleOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let topics = cfg.topics.clone();
    let console = match &options.from {
        Some(dir) => {
            let source = Source {
                name: format!("directory {}", dir.display()),
                live: true,
            };
            let console = Console::new(topics, source, options.metrics.clone());
            tokio::spawn(console.clone().follow(dir.clone(), FOLLOW_EVERY));
            console
        }
        None => {
            let source = Source {
                name: format!("Kafka {}", cfg.kafka.bootstrap_servers),
                live: true,
            };
            let console = Console::new(topics.clone(), source, options.metrics.clone());
            let plants = super::routing(cfg)?.plant_ids();
            let names = console.topics(&plants);
            follow_kafka(cfg.clone(), names, console.clone())?;
            console
        }
    };
    fitstream_console::serve(listener, console, shutdown).await?;
    Ok(())
}

/// Reads the output topics from their beginning, read_committed, in a throwaway group of
/// its own (`fitstream-reader-<uuid>`: the readers' ACL prefix), on a thread of its own that
/// ends with the process. Progress markers are skipped as `tail` skips them.
fn follow_kafka(
    cfg: FitstreamConfig,
    topics: Vec<String>,
    console: std::sync::Arc<Console>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("console-reader".into())
        .spawn(move || {
            let codec = super::codec(&cfg);
            let options = reader::ReadOptions {
                idle: Duration::from_secs(u64::MAX / 4),
                limit: Duration::from_secs(u64::MAX / 4),
                start: reader::Start::Beginning,
                group: None,
            };
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let read = reader::read(&cfg.kafka, &names, &options, |r| {
                let produced = fitstream_runtime::embedded::Produced::from_consumed(r);
                if produced.progress().is_none() {
                    let line = crate::embedded::to_json_line(&codec, &cfg, &produced);
                    console.ingest([&line]);
                }
                ControlFlow::Continue(())
            });
            let problem = match read {
                Ok(_) => "the Kafka reader stopped".to_owned(),
                Err(e) => format!("reading Kafka failed: {e}"),
            };
            tracing::error!("console: {problem}");
            console.fail(problem);
        })
        .map(|_| ())
}
