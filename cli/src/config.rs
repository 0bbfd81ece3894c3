//! Configuration: a TOML file (`--config` or `FITSTREAM_CONFIG`), overridden by environment
//! variables `FITSTREAM__<SECTION>__<KEY>` (e.g. `FITSTREAM__KAFKA__BOOTSTRAP_SERVERS`),
//! overridden by command-line flags. Passed down as a value, never a global.

use std::path::{Path, PathBuf};

use fitstream_contracts::registry::RegistryConfig;
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::kafka::KafkaConfig;
use serde::{Deserialize, Serialize};

/// Metrics and health endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "0.0.0.0:9464".into(),
        }
    }
}

/// The profiler's lookup API (`GET /v1/customers/{id}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the API listens on (none: no API). `run profiler|all --api ADDR` sets it.
    pub listen: Option<String>,
    /// `host:port` the other instances forward requests to (a pod's IP and the API port on
    /// Kubernetes); by default the listen address, when it names a host.
    pub advertised: Option<String>,
}

impl ApiConfig {
    /// Where the other instances reach this one's API, once it listens on `bound`.
    pub fn advertised(&self, bound: std::net::SocketAddr) -> String {
        match &self.advertised {
            Some(a) if !a.is_empty() => a.clone(),
            _ if bound.ip().is_unspecified() => {
                // Every interface: the host name is what the others can resolve.
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
                format!("{host}:{}", bound.port())
            }
            _ => bound.to_string(),
        }
    }
}

/// Everything fitstream reads from its configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitstreamConfig {
    /// Kafka connection and client properties.
    pub kafka: KafkaConfig,
    /// Schema registry (or pinned ids).
    pub registry: RegistryConfig,
    /// Topic names and settings.
    pub topics: TopicsConfig,
    /// Metrics endpoint.
    pub metrics: MetricsConfig,
    /// The profiler's lookup API.
    pub api: ApiConfig,
    /// The planner's windows, priorities and routing file.
    pub planner: fitstream_planner::PlannerConfig,
    /// The profiler's dedup horizon, emission and assignment settings.
    pub profiler: fitstream_profiler::app::ProfilerConfig,
    /// The segmenter's fit and refit settings.
    pub segmenter: fitstream_segmenter::app::SegmenterConfig,
    /// Event-time rules of the processing services.
    pub watermark: fitstream_runtime::watermark::WatermarkConfig,
    /// Bounds of every input field (lengths, options, lines, units): a record beyond them is
    /// dead-lettered with reason `validation`.
    pub limits: fitstream_contracts::validate::Limits,
    /// Appended to every service's application name (consumer group `fitstream-planner<suffix>`,
    /// internal topics, transactional ids): lets several pipelines share one cluster.
    pub application_suffix: String,
}

impl FitstreamConfig {
    /// A service's application name.
    pub fn application(&self, service: &str) -> String {
        format!("{service}{}", self.application_suffix)
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// Loads the file (if any) and the environment.
pub fn load(file: Option<&Path>) -> Result<FitstreamConfig, ConfigError> {
    load_with(file, None)
}

/// [`load`] with the environment variables given (tests), or the process's when `None`.
/// Values stay strings until each field's type reads them: parsing them on sight as numbers
/// would turn a suffix or topic name like `-72e8217` into `-inf`.
fn load_with(
    file: Option<&Path>,
    env: Option<std::collections::HashMap<String, String>>,
) -> Result<FitstreamConfig, ConfigError> {
    let file: Option<PathBuf> = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FITSTREAM_CONFIG").map(PathBuf::from));
    let mut builder = config::Config::builder();
    if let Some(f) = &file {
        if !f.exists() {
            return Err(ConfigError(format!("{} does not exist", f.display())));
        }
        builder = builder.add_source(config::File::from(f.as_path()));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("FITSTREAM")
            .prefix_separator("__")
            .separator("__")
            .source(env),
    );
    let built = builder.build().map_err(|e| ConfigError(e.to_string()))?;
    let config: FitstreamConfig = built
        .try_deserialize()
        .map_err(|e| ConfigError(e.to_string()))?;
    config.planner.check().map_err(ConfigError)?;
    config.limits.check().map_err(ConfigError)?;
    config.kafka.check().map_err(ConfigError)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("fitstream-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("f.toml");
        std::fs::write(
            &path,
            "[kafka]\nbootstrap_servers = \"file:9092\"\ncommit_interval_ms = 250\n[topics]\npartitions = 12\n",
        )
        .expect("write");
        let cfg = load(Some(&path)).expect("load");
        assert_eq!(cfg.kafka.bootstrap_servers, "file:9092");
        assert_eq!(cfg.kafka.commit_interval_ms, 250);
        assert_eq!(cfg.topics.partitions, 12);
        assert_eq!(cfg.topics.clickstream, "iob.clickstream.v1");
        std::fs::write(&path, "[kafka]\nbootstrap_server = \"typo\"\n").expect("write");
        assert!(load(Some(&path)).is_err(), "unknown keys are refused");
    }

    #[test]
    fn environment_values_keep_their_text_and_numbers_still_parse() {
        let env = [
            ("FITSTREAM__APPLICATION_SUFFIX", "-72e821747664"),
            ("FITSTREAM__TOPICS__CLICKSTREAM", "1e5"),
            ("FITSTREAM__TOPICS__PARTITIONS", "3"),
            ("FITSTREAM__WATERMARK__IDLE_TIMEOUT_MS", "2000"),
            ("FITSTREAM__WATERMARK__ADVANCE_WHEN_IDLE", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let cfg = load_with(None, Some(env)).expect("load");
        assert_eq!(cfg.application_suffix, "-72e821747664");
        assert_eq!(cfg.topics.clickstream, "1e5");
        assert_eq!(cfg.topics.partitions, 3);
        assert_eq!(cfg.watermark.idle_timeout_ms, 2000);
        assert!(!cfg.watermark.advance_when_idle);
    }

    /// Field limits come from the configuration, reach the codec every service decodes
    /// with, and a record past them is a validation error there; absurd limits are refused.
    #[test]
    fn field_limits_are_configured_and_reach_the_codec() {
        use fitstream_contracts::{ClickEvent, samples};
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cfg =
            load_with(None, Some(env(&[("FITSTREAM__LIMITS__TEXT_BYTES", "4")]))).expect("load");
        assert_eq!(cfg.limits.text_bytes, 4);
        assert_eq!(
            cfg.limits.id_bytes,
            fitstream_contracts::validate::MAX_ID_LEN
        );
        let topic = cfg.topics.clickstream.clone();
        let mut click = samples::click();
        click.category = Some("hair-care".into());
        let bytes = crate::commands::codec(&FitstreamConfig::default())
            .encode(&topic, &click)
            .expect("encode");
        assert!(
            crate::commands::codec(&FitstreamConfig::default())
                .decode::<ClickEvent>(&topic, &bytes)
                .is_ok()
        );
        let e = crate::commands::codec(&cfg)
            .decode::<ClickEvent>(&topic, &bytes)
            .expect_err("a 9-byte category past a 4-byte limit");
        assert_eq!(e.reason(), "validation", "{e}");
        let refused = load_with(None, Some(env(&[("FITSTREAM__LIMITS__LINES", "0")])));
        assert!(refused.is_err());
    }

    #[test]
    fn the_kubernetes_configuration_files_load() {
        for file in [
            "k8s/base/config/fitstream.toml",
            "k8s/overlays/prod/config/fitstream.toml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
            let cfg = load(Some(&path)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                cfg.kafka.properties["security.protocol"], "SASL_SSL",
                "{file}"
            );
            assert!(cfg.planner.routing.is_some(), "{file}");
        }
    }
}
