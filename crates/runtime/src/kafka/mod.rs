//! Kafka: the driver (a topology on a consumer group, exactly once), client configuration,
//! topic provisioning, writing and reading topics.
//!
//! librdkafka settings from configuration pass through untouched ([`KafkaConfig::properties`]),
//! so SASL_SSL clusters work without code. Readers of fitstream's outputs use
//! `isolation.level=read_committed`.

pub mod admin;
pub mod driver;
pub mod reader;
pub mod writer;

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// How to reach Kafka.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Static membership id (`group.instance.id`), e.g. the pod name; None for dynamic.
    pub group_instance_id: Option<String>,
    /// How often the processing loop commits its transaction, in milliseconds (Kafka
    /// Streams' default under exactly-once is 100 ms); bounds end-to-end latency.
    pub commit_interval_ms: u64,
    /// `transaction.timeout.ms`; must exceed the commit interval plus a restart.
    pub transaction_timeout_ms: u64,
    /// How long restoring one task's state from its changelog partition may take; past it
    /// the driver fails (all or nothing: it never processes with part of its state).
    pub restore_timeout_ms: u64,
    /// How long no broker may be reachable before a service gives up: the driver keeps
    /// retrying (restarts logged, with a growing pause) until the brokers have been
    /// unreachable this long, then fails with a message naming the setting, and the process
    /// exits non-zero.
    pub unavailable_limit_ms: u64,
    /// Extra librdkafka properties, passed through untouched (`security.protocol`, `sasl.*`).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_instance_id: None,
            commit_interval_ms: 100,
            transaction_timeout_ms: 60_000,
            restore_timeout_ms: 600_000,
            unavailable_limit_ms: 300_000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// How long a call that needs the broker may wait: `normal`, or less when
    /// `unavailable_limit_ms` is shorter, so that no single call outlasts the limit.
    pub fn broker_wait(&self, normal: std::time::Duration) -> std::time::Duration {
        normal.min(std::time::Duration::from_millis(self.unavailable_limit_ms))
    }

    /// A librdkafka client configuration with the bootstrap servers and the pass-through
    /// properties.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        // Explicit: the codec keeps every value it writes below it (a property may raise it).
        c.set(
            "message.max.bytes",
            fitstream_contracts::codec::PRODUCER_MAX_MESSAGE_BYTES.to_string(),
        );
        for (k, v) in &self.properties {
            // Environment variables cannot carry dots: `SASL_USERNAME` means `sasl.username`
            // (no librdkafka property has an underscore).
            c.set(k.replace('_', "."), v);
        }
        c
    }
}

/// Errors from Kafka clients, classified.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client reported an error.
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A topic exists with settings that contradict its spec.
    #[error("topic {topic}: {message}")]
    Topic {
        /// Topic.
        topic: String,
        /// What is wrong.
        message: String,
    },
    /// Encoding an output failed (a bug or a misconfiguration).
    #[error(transparent)]
    Encode(#[from] fitstream_contracts::EncodeError),
    /// Timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Another instance with this instance's `group.instance.id` took its place (a zombie
    /// of it, or a second deployment with the same ids): this one stops.
    #[error("fenced: {0}")]
    Fenced(String),
    /// No broker was reachable for longer than `kafka.unavailable_limit_ms`.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A task's state could not be written (the transaction is aborted) or restored.
    #[error("state: {0}")]
    State(#[from] crate::state::StateError),
}
