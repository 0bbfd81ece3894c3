//! Topic provisioning: every topic created with its partitions, replication, cleanup policy,
//! retention and `min.insync.replicas`. Idempotent: an existing topic is left as it is, after
//! checking that its partition count matches (co-partitioning depends on it).

use std::time::Duration;

use fitstream_contracts::topics::TopicSpec;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaError};

/// What provisioning did to a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provisioned {
    /// Created now.
    Created,
    /// Existed already with the expected partition count.
    Existed,
}

/// Creates every topic in `specs` that does not exist yet.
pub async fn ensure_topics(
    config: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<(String, Provisioned)>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.client().create()?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(s.replication_factor),
            );
            for (k, v) in &s.configs {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    // No request waits longer than `kafka.unavailable_limit_ms` (librdkafka's own default is
    // 60 s): a service whose broker dies as it starts gives up after the limit.
    let opts = AdminOptions::new()
        .request_timeout(Some(config.broker_wait(Duration::from_secs(60))))
        .operation_timeout(Some(config.broker_wait(Duration::from_secs(30))));
    let results = admin.create_topics(new_topics.iter(), &opts).await?;
    let mut out = Vec::new();
    for (spec, result) in specs.iter().zip(results) {
        match result {
            Ok(_) => out.push((spec.name.clone(), Provisioned::Created)),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let found = partition_count(config, &spec.name)?;
                if found != spec.partitions {
                    return Err(KafkaError::Topic {
                        topic: spec.name.clone(),
                        message: format!("has {found} partitions, expected {}", spec.partitions),
                    });
                }
                out.push((spec.name.clone(), Provisioned::Existed))
            }
            Err((name, code)) => {
                return Err(KafkaError::Topic {
                    topic: name,
                    message: format!("create failed: {code}"),
                });
            }
        }
    }
    // Created is not yet visible: producers right after this look the partitions up.
    let created: Vec<&TopicSpec> = specs
        .iter()
        .zip(&out)
        .filter(|(_, (_, p))| *p == Provisioned::Created)
        .map(|(s, _)| s)
        .collect();
    wait_visible(
        config,
        &created,
        config.broker_wait(Duration::from_secs(30)),
    )?;
    Ok(out)
}

/// Waits until the metadata shows every partition of `specs` with a leader, at most
/// `timeout` ([`KafkaError::Timeout`] after it).
///
/// Blocking, like the metadata requests it makes, and needing no async runtime: the Kafka
/// driver and the tests call [`ensure_topics`] through `futures::executor::block_on`, where a
/// Tokio timer panics ("no reactor running"). CI met that panic when a broker under load
/// showed created topics a moment late.
pub fn wait_visible(
    config: &KafkaConfig,
    specs: &[&TopicSpec],
    timeout: Duration,
) -> Result<(), KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    if specs.is_empty() {
        return Ok(());
    }
    let consumer: BaseConsumer = config.client().create()?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        let ready = specs.iter().all(|s| {
            md.topics().iter().any(|t| {
                t.name() == s.name
                    && t.error().is_none()
                    && t.partitions().len() as i32 == s.partitions
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        });
        if ready {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Timeout(format!(
                "created topics not visible in metadata after {} ms",
                timeout.as_millis()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The partition count of a topic (0 when it does not exist).
pub fn partition_count(config: &KafkaConfig, topic: &str) -> Result<i32, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = config.client().create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0))
}

/// Topic configs as the broker reports them.
pub async fn describe_configs(
    config: &KafkaConfig,
    topic: &str,
) -> Result<std::collections::BTreeMap<String, String>, KafkaError> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = config.client().create()?;
    let res = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await?;
    let mut out = std::collections::BTreeMap::new();
    for r in res {
        let r = r.map_err(|e| KafkaError::Topic {
            topic: topic.into(),
            message: e.to_string(),
        })?;
        for e in r.entries {
            if let Some(v) = e.value {
                out.insert(e.name, v);
            }
        }
    }
    Ok(out)
}

/// Deletes topics (tests clean up after themselves).
pub async fn delete_topics(config: &KafkaConfig, names: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.client().create()?;
    admin.delete_topics(names, &AdminOptions::new()).await?;
    Ok(())
}

/// Remembers a client's last error: librdkafka reports a refused connection, a failed TLS
/// handshake or a failed SASL login through the error callback, not through the call that
/// waits for the broker.
#[derive(Default)]
pub struct Probe {
    last: std::sync::Mutex<Option<(Option<RDKafkaErrorCode>, String)>>,
}

impl Probe {
    /// The last error: its code and librdkafka's text.
    pub fn last(&self) -> Option<(Option<RDKafkaErrorCode>, String)> {
        self.last.lock().map(|l| l.clone()).unwrap_or(None)
    }
}

impl rdkafka::ClientContext for Probe {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
        if let Ok(mut l) = self.last.lock() {
            *l = Some((error.rdkafka_error_code(), reason.to_owned()));
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Probe {}

/// Whether a connection error is one only a change of configuration fixes (TLS, SASL).
fn is_login_failure(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SSL
                | RDKafkaErrorCode::SaslAuthenticationFailed
        )
    )
}

/// How long [`connect`] tries before it reports the cause (and keeps trying).
pub const CONNECT_REPORT_AFTER: Duration = Duration::from_secs(5);

/// Connects to the brokers and returns a metadata client. A TLS or SASL failure is an error
/// at once ([`KafkaError::Connect`]: it names the address, the principal and librdkafka's
/// cause); an unreachable broker is logged with its cause every [`CONNECT_REPORT_AFTER`] and
/// waited for, up to `limit` ([`KafkaError::Unavailable`] after it).
pub fn connect(
    config: &KafkaConfig,
    limit: Duration,
) -> Result<rdkafka::consumer::BaseConsumer<Probe>, KafkaError> {
    connect_until(config, limit, &std::sync::atomic::AtomicBool::new(false))
}

/// [`connect`], giving up when `stop` is set (a signal while waiting for the brokers).
pub fn connect_until(
    config: &KafkaConfig,
    limit: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<rdkafka::consumer::BaseConsumer<Probe>, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer<Probe> = config.client().create_with_context(Probe::default())?;
    let started = std::time::Instant::now();
    let mut reported = std::time::Instant::now();
    let failure = |probe: &Probe| {
        probe
            .last()
            .map_or_else(|| "no answer".to_owned(), |(_, text)| text)
    };
    loop {
        match consumer.fetch_metadata(None, Duration::from_secs(1)) {
            Ok(_) => return Ok(consumer),
            Err(e) => {
                // Callbacks (the error callback among them) are served by polling.
                let _ = consumer.poll(Duration::ZERO);
                let probe = consumer.context();
                if let Some((code, text)) = probe.last()
                    && is_login_failure(code)
                {
                    return Err(KafkaError::Connect {
                        bootstrap: config.bootstrap_servers.clone(),
                        principal: config.principal(),
                        cause: text,
                    });
                }
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(KafkaError::Unavailable(format!(
                        "stopped while waiting for a broker at {}: {}",
                        config.bootstrap_servers,
                        failure(probe)
                    )));
                }
                if started.elapsed() >= limit {
                    return Err(KafkaError::Unavailable(format!(
                        "no broker at {} answered within {} s: {} ({e})",
                        config.bootstrap_servers,
                        limit.as_secs(),
                        failure(probe)
                    )));
                }
                if reported.elapsed() >= CONNECT_REPORT_AFTER {
                    reported = std::time::Instant::now();
                    tracing::warn!(
                        "cannot reach a broker at {} yet ({} s): {}; retrying up to {} s (kafka.unavailable_limit_ms)",
                        config.bootstrap_servers,
                        started.elapsed().as_secs(),
                        failure(probe),
                        limit.as_secs()
                    );
                }
            }
        }
    }
}

/// A topic a service reads or writes, and the partitions it must have (None: any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// Topic.
    pub name: String,
    /// Expected partition count.
    pub partitions: Option<i32>,
}

/// Checks that every needed topic exists with its partitions and that this principal may see
/// it, naming every missing topic at once. Services do not create the product's topics: an
/// admin does (`fitstream topics create`, or the `KafkaTopic` resources in `k8s/`).
pub fn check_topics(
    config: &KafkaConfig,
    needed: &[Needed],
    limit: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), KafkaError> {
    use rdkafka::consumer::Consumer;
    let consumer = connect_until(config, limit, stop)?;
    let mut missing = Vec::new();
    for n in needed {
        let md = consumer.fetch_metadata(Some(&n.name), Duration::from_secs(10))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == n.name) else {
            missing.push(n.name.clone());
            continue;
        };
        match t.error().map(RDKafkaErrorCode::from) {
            None => {}
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                missing.push(n.name.clone());
                continue;
            }
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
                return Err(KafkaError::Denied {
                    principal: config.principal(),
                    operation: "Describe".into(),
                    resource: format!("topic {}", n.name),
                    cause: "TOPIC_AUTHORIZATION_FAILED".into(),
                });
            }
            Some(code) => {
                return Err(KafkaError::Topic {
                    topic: n.name.clone(),
                    message: format!("metadata: {code}"),
                });
            }
        }
        let found = t.partitions().len() as i32;
        if let Some(expected) = n.partitions
            && found != expected
        {
            return Err(KafkaError::Topic {
                topic: n.name.clone(),
                message: format!(
                    "has {found} partitions, expected {expected} (co-partitioned joins need the same count)"
                ),
            });
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(KafkaError::Topic {
        topic: missing.join(", "),
        message: "missing: create the topics as an admin with `fitstream topics create --bootstrap ...`, or apply the KafkaTopic resources (k8s/base/topics.yaml)".into(),
    })
}

/// The names of every topic this principal may see.
pub fn list_topics(config: &KafkaConfig) -> Result<Vec<String>, KafkaError> {
    use rdkafka::consumer::Consumer;
    let consumer = connect(config, config.broker_wait(Duration::from_secs(30)))?;
    let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    Ok(md.topics().iter().map(|t| t.name().to_owned()).collect())
}

/// Deletes consumer groups (tests start over); a group that does not exist is no error.
pub async fn delete_groups(config: &KafkaConfig, groups: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.client().create()?;
    let results = admin.delete_groups(groups, &AdminOptions::new()).await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
            Err((group, code)) => {
                return Err(KafkaError::Topic {
                    topic: format!("group {group}"),
                    message: format!("delete failed: {code}"),
                });
            }
        }
    }
    Ok(())
}
