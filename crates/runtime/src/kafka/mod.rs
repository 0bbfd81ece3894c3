//! Kafka: the driver (a topology on a consumer group, exactly once), client configuration,
//! topic provisioning, writing and reading topics.
//!
//! librdkafka settings from configuration pass through untouched ([`KafkaConfig::properties`]),
//! so SASL_SSL clusters work without code. Readers of fitstream's outputs use
//! `isolation.level=read_committed`.

pub mod admin;
pub mod driver;
pub mod reader;
pub mod repeats;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, TopicPartitionList};
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
    /// How long a processing loop may go without polling before `/healthz` fails (and
    /// Kubernetes restarts the pod): longer than the longest single broker call (a commit
    /// waits up to 60 s).
    pub liveness_timeout_ms: u64,
    /// The whole drain on SIGTERM (the last commit) is bounded by this; the manifests' grace
    /// period leaves room for it (a test checks that they agree).
    pub shutdown_timeout_ms: u64,
    /// How long a task with several inputs (clickstream and purchases) waits for an empty
    /// input that the broker shows has records not fetched yet before it goes on without it,
    /// as Kafka Streams' `max.task.idle.ms`; live runs only (a bounded run waits for every
    /// record). A caught-up input is never waited for.
    pub max_task_idle_ms: u64,
    /// How far ahead of the wall clock an output record may be dated: the brokers'
    /// `message.timestamp.after.max.ms` (1 hour by default since Kafka 4.0). The broker
    /// refuses a later one and with it the whole transaction, and the driver would restart
    /// into the same record; such an output is a dead letter (`future`) instead.
    pub output_ahead_limit_ms: u64,
    /// The consumer group protocol of the services' groups: `consumer` (KIP-848, brokers 4.0
    /// and later; incremental: a rebalance moves only the partitions that change owner, and
    /// the tasks that stay keep their state) or `classic` (eager `range`: every rebalance
    /// drops every task and restores it). Both keep a task's co-partitioned inputs together
    /// (the broker's `range` assignor under `consumer`).
    pub group_protocol: GroupProtocol,
    /// Extra librdkafka properties, passed through untouched (`security.protocol`, `sasl.*`).
    pub properties: BTreeMap<String, String>,
    /// Properties per service over [`properties`](Self::properties): each service's clients
    /// connect as its own principal, also when `run all` runs them in one process
    /// (`[kafka.services.planner] sasl_username = "fitstream-planner"`).
    pub services: BTreeMap<String, BTreeMap<String, String>>,
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
            liveness_timeout_ms: 120_000,
            shutdown_timeout_ms: 30_000,
            max_task_idle_ms: 1_000,
            output_ahead_limit_ms: 3_600_000,
            group_protocol: GroupProtocol::Consumer,
            properties: BTreeMap::new(),
            services: BTreeMap::new(),
        }
    }
}

/// The consumer group protocol ([`KafkaConfig::group_protocol`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// KIP-848: assignments computed by the group coordinator (the `range` assignor, sticky
    /// and co-partitioning), reconciled incrementally.
    #[default]
    Consumer,
    /// The classic protocol with the eager `range` assignor.
    Classic,
}

impl KafkaConfig {
    /// How long a call that needs the broker may wait: `normal`, or less when
    /// `unavailable_limit_ms` is shorter, so that no single call outlasts the limit.
    pub fn broker_wait(&self, normal: std::time::Duration) -> std::time::Duration {
        normal.min(std::time::Duration::from_millis(self.unavailable_limit_ms))
    }

    /// Settings that cannot work together: under `group_protocol = "consumer"` the session,
    /// the heartbeat and the assignor are the broker's, and setting them in `properties` (or
    /// a service's) is refused with what to set instead.
    pub fn check(&self) -> Result<(), String> {
        if self.group_protocol != GroupProtocol::Consumer {
            return Ok(());
        }
        let all = std::iter::once(&self.properties).chain(self.services.values());
        for properties in all {
            for key in properties.keys() {
                let name = rdkafka_name(key);
                if let Some((_, instead)) =
                    BROKER_SIDE_UNDER_KIP_848.iter().find(|(k, _)| *k == name)
                {
                    return Err(format!(
                        "kafka.properties.{key}: with kafka.group_protocol = \"consumer\" (KIP-848) it is set by {instead}; remove it, or set kafka.group_protocol = \"classic\""
                    ));
                }
            }
        }
        Ok(())
    }

    /// The configuration a service's clients use: its own properties over the shared ones.
    pub fn for_service(&self, service: &str) -> KafkaConfig {
        let mut c = self.clone();
        if let Some(own) = self.services.get(service) {
            for (k, v) in own {
                // One spelling per property: `sasl_username` and `sasl.username` are one key.
                c.properties
                    .retain(|key, _| rdkafka_name(key) != rdkafka_name(k));
                c.properties.insert(k.clone(), v.clone());
            }
        }
        c.services.clear();
        c
    }

    /// A pass-through property, by its librdkafka name (either spelling in configuration).
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| rdkafka_name(k) == name)
            .map(|(_, v)| v.as_str())
    }

    /// The principal the brokers see these clients as, for error messages: the SASL user,
    /// or the anonymous principal of an unauthenticated listener.
    pub fn principal(&self) -> String {
        match self.property("sasl.username") {
            Some(user) => format!("User:{user}"),
            None if self
                .property("security.protocol")
                .is_some_and(|p| p.eq_ignore_ascii_case("ssl")) =>
            {
                "the principal of the client certificate".to_owned()
            }
            None => "User:ANONYMOUS".to_owned(),
        }
    }

    /// A librdkafka client configuration with the bootstrap servers and the pass-through
    /// properties.
    pub fn client(&self) -> ClientConfig {
        let mut c = self.member_client();
        // Not a member of the services' groups (producers, restore and global readers, the
        // admin client, `tail`): their membership settings do not apply, and librdkafka
        // refuses some combinations of them with its default protocol.
        for k in MEMBER_PROPERTIES {
            c.remove(k);
        }
        c
    }

    /// The configuration of a service's group consumer: [`client`](Self::client) with the
    /// group membership properties (`max.poll.interval.ms`, and under the classic protocol
    /// `session.timeout.ms`, `heartbeat.interval.ms`).
    pub fn member_client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        // Explicit: the codec keeps every value it writes below it (a property may raise it).
        c.set(
            "message.max.bytes",
            fitstream_contracts::codec::PRODUCER_MAX_MESSAGE_BYTES.to_string(),
        );
        for (k, v) in &self.properties {
            c.set(rdkafka_name(k), v);
        }
        c
    }
}

/// librdkafka properties of a consumer group member's membership.
const MEMBER_PROPERTIES: [&str; 6] = [
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.protocol",
    "group.remote.assignor",
];

/// Properties the KIP-848 `consumer` protocol takes from the broker, not the client: with
/// it, setting them is a mistake (librdkafka refuses them).
const BROKER_SIDE_UNDER_KIP_848: [(&str, &str); 3] = [
    (
        "session.timeout.ms",
        "the broker's group.consumer.session.timeout.ms, or the group config consumer.session.timeout.ms",
    ),
    (
        "heartbeat.interval.ms",
        "the broker's group.consumer.heartbeat.interval.ms, or the group config consumer.heartbeat.interval.ms",
    ),
    (
        "partition.assignment.strategy",
        "the broker's range assignor, which fitstream selects",
    ),
];

/// A pass-through property's librdkafka name. Environment variables cannot carry dots:
/// `SASL_USERNAME` means `sasl.username` (no librdkafka property has an underscore).
fn rdkafka_name(key: &str) -> String {
    key.replace('_', ".")
}

/// `e` as [`KafkaError::Denied`] when it is an authorization failure of a consumer in
/// `group` reading `topics`, else as it is.
pub fn classify_read_error(
    e: rdkafka::error::KafkaError,
    config: &KafkaConfig,
    group: &str,
    topics: &[&str],
) -> KafkaError {
    use rdkafka::types::RDKafkaErrorCode as C;
    let (operation, resource) = match e.rdkafka_error_code() {
        Some(C::GroupAuthorizationFailed) => ("Read", format!("group {group}")),
        Some(C::TopicAuthorizationFailed) => ("Read", format!("topic {}", topics.join(", "))),
        _ => return KafkaError::Client(e),
    };
    KafkaError::Denied {
        principal: config.principal(),
        operation: operation.to_owned(),
        resource,
        cause: e.to_string(),
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
    /// The brokers refused this client's principal an operation on a resource. Not retried:
    /// only a change of ACLs helps.
    #[error(
        "{principal} may not {operation} {resource} ({cause}); grant it with an ACL (k8s/base/users.yaml) or run as a principal that has it"
    )]
    Denied {
        /// The principal (`User:fitstream-planner`).
        principal: String,
        /// What it did (`Read`, `Write`, `Describe`, `IdempotentWrite`).
        operation: String,
        /// On what (`topic iob.clickstream.v1`, `group fitstream-planner`).
        resource: String,
        /// The broker's error.
        cause: String,
    },
    /// The client could not connect: the address, TLS or SASL failed. TLS and SASL failures
    /// are not retried.
    #[error("cannot connect to {bootstrap} as {principal}: {cause}")]
    Connect {
        /// `bootstrap.servers`.
        bootstrap: String,
        /// The principal.
        principal: String,
        /// librdkafka's last error.
        cause: String,
    },
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

/// Waits until a threaded producer has no record left unacknowledged, or `timeout` passed
/// (what is then still in flight is for the caller's own flush or commit to report).
///
/// rdkafka's `flush` on a [`ThreadedProducer`] polls the event queue that the producer's
/// own thread serves: the delivery reports go to that thread, so each turn of `flush`
/// waited its whole 100 ms. A transaction commit flushes first, so every commit took at
/// least 100 ms, during which the driver did nothing. This only watches the count, while
/// the producer's thread serves the reports.
pub fn wait_delivered<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) {
    let started = Instant::now();
    while producer.in_flight_count() > 0 && started.elapsed() < timeout {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `send_offsets_to_transaction`, bounded by `timeout`. librdkafka waits for its
/// TxnOffsetCommit request to the group coordinator without the call's timeout
/// (librdkafka#5456: the coordinator request's deadline is never checked), so a broker frozen
/// past the session timeout held the driver in this call for ten minutes, far past
/// `max.poll.interval.ms`. The call runs on a thread of its own; past `timeout` (and a short
/// grace for librdkafka's own timeout to fire) it fails as librdkafka's own timeouts do
/// (`OperationTimedOut`): the driver aborts the transaction and restarts with a new producer,
/// whose initialisation fences this one. The thread holds its producer until librdkafka
/// returns.
pub fn send_offsets_bounded<C: ProducerContext + 'static>(
    producer: &Arc<ThreadedProducer<C>>,
    offsets: TopicPartitionList,
    group: ConsumerGroupMetadata,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let p = Arc::clone(producer);
    let sent = within("send-offsets", timeout + SEND_OFFSETS_GRACE, move || {
        p.send_offsets_to_transaction(&offsets, &group, timeout)
    })
    .map_err(|e| KafkaError::Timeout(format!("no thread for sending offsets: {e}")))?;
    match sent {
        Some(r) => Ok(r?),
        None => {
            tracing::warn!(
                "sending the offsets to the transaction took more than {:?}: given up (librdkafka#5456 ignores the call's timeout)",
                timeout + SEND_OFFSETS_GRACE
            );
            // As librdkafka's own timeouts: the driver aborts and restarts.
            Err(KafkaError::Client(rdkafka::error::KafkaError::Global(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            )))
        }
    }
}

/// Runs `work` on a thread named `name` and waits at most `limit` for it: `None` past the
/// limit (the thread goes on, and ends when `work` does). For librdkafka calls that do not
/// keep a limit of their own.
pub(crate) fn within<T: Send + 'static>(
    name: &str,
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<Option<T>> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // The caller may have given up waiting: nothing to tell then.
            let _ = done.send(work());
        })?;
    Ok(result.recv_timeout(limit).ok())
}

/// How long past its own timeout `send_offsets_to_transaction` may take before it is given up.
const SEND_OFFSETS_GRACE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_settings_reach_the_group_consumer_only() {
        let mut k = KafkaConfig::default();
        k.properties
            .insert("max_poll_interval_ms".into(), "6000".into());
        k.properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        let member = k.member_client();
        assert_eq!(member.get("max.poll.interval.ms"), Some("6000"));
        let other = k.client();
        assert_eq!(
            other.get("max.poll.interval.ms"),
            None,
            "a restore reader is no member"
        );
        assert_eq!(other.get("security.protocol"), Some("SASL_SSL"));
    }

    #[test]
    fn the_broker_side_settings_of_kip_848_are_refused_in_properties() {
        let mut k = KafkaConfig::default();
        assert_eq!(k.check(), Ok(()));
        k.services.insert(
            "planner".into(),
            BTreeMap::from([("session_timeout_ms".to_owned(), "10000".to_owned())]),
        );
        let e = k.check().expect_err("refused");
        assert!(e.contains("group.consumer.session.timeout.ms"), "{e}");
        k.group_protocol = GroupProtocol::Classic;
        assert_eq!(k.check(), Ok(()), "the classic protocol takes it");
    }
}
