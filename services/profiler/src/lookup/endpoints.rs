//! Which instance answers for which partition: every profiler instance with the lookup API
//! publishes its endpoint and the partitions whose committed state it holds (a [`Claim`],
//! keyed by its instance id) on a compacted topic of one partition,
//! `fitstream-<profiler>-endpoints`, and reads the topic whole.
//!
//! The topic's order decides: a partition belongs to the instance whose latest claim naming
//! it came last. An instance claims a partition once it is restored and drops it when it is
//! revoked, so during a rebalance a partition has no owner for a moment (the API says 503,
//! Retry-After). An instance killed without a goodbye leaves its claim behind, and the
//! instance that takes its partitions over claims them later: its claim wins. The group
//! itself stays Kafka's: this only tells readers where the group put each partition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use fitstream_runtime::kafka::{KafkaConfig, KafkaError};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde::{Deserialize, Serialize};

use super::Lookup;

/// One instance's claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Instance id (the key).
    pub instance: String,
    /// Where its API answers (`host:port`).
    pub endpoint: String,
    /// Partitions whose committed state it holds.
    pub partitions: Vec<i32>,
}

/// Every instance's latest claim, by position on the endpoints topic.
#[derive(Debug)]
pub struct Directory {
    me: String,
    claims: RwLock<BTreeMap<String, (i64, Claim)>>,
}

impl Directory {
    /// The directory as seen by instance `me`.
    pub fn new(me: impl Into<String>) -> Directory {
        Directory {
            me: me.into(),
            claims: RwLock::default(),
        }
    }

    /// This instance's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// A claim read at `offset` (None: the instance's tombstone).
    pub fn observe(&self, offset: i64, instance: &str, claim: Option<Claim>) {
        if let Ok(mut c) = self.claims.write() {
            match claim {
                Some(claim) => {
                    c.insert(instance.to_owned(), (offset, claim));
                }
                None => {
                    c.remove(instance);
                }
            }
        }
    }

    /// The endpoint of the other instance that answers for partition `p`, if any.
    pub fn owner(&self, p: i32) -> Option<String> {
        let claims = self.claims.read().ok()?;
        let (_, claim) = claims
            .values()
            .filter(|(_, c)| c.partitions.contains(&p))
            .max_by_key(|(offset, _)| *offset)?;
        (claim.instance != self.me).then(|| claim.endpoint.clone())
    }

    /// Every partition's owner as the topic says (the latest claim naming it).
    pub fn owners(&self) -> BTreeMap<i32, String> {
        let mut out: BTreeMap<i32, (i64, String)> = BTreeMap::new();
        if let Ok(claims) = self.claims.read() {
            for (offset, c) in claims.values() {
                for p in &c.partitions {
                    if out.get(p).is_none_or(|(o, _)| o < offset) {
                        out.insert(*p, (*offset, c.endpoint.clone()));
                    }
                }
            }
        }
        out.into_iter().map(|(p, (_, e))| (p, e)).collect()
    }
}

/// The endpoints topic of a profiler whose consumer group is `group`.
pub fn topic(group: &str) -> String {
    format!("{group}-endpoints")
}

/// Publishes this instance's claim whenever its ready partitions change, and follows every
/// claim on `topic`, until `stop`; then withdraws the claim. Runs on its own thread.
pub fn run(
    kafka: &KafkaConfig,
    topic: &str,
    endpoint: &str,
    lookup: &Lookup,
    directory: &Directory,
    stop: &AtomicBool,
) -> Result<(), KafkaError> {
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .client()
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()?;
    let consumer: BaseConsumer = kafka
        .client()
        // Assigned, never joined nor committed: the name only has to be the profiler's.
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let me = directory.me().to_owned();
    let claim = |partitions: Vec<i32>| Claim {
        instance: me.clone(),
        endpoint: endpoint.to_owned(),
        partitions,
    };
    let send = |c: &Claim| -> Result<(), KafkaError> {
        // Strings and integers: it always encodes.
        let value = serde_json::to_vec(c).unwrap_or_default();
        producer
            .send(BaseRecord::to(topic).key(&c.instance).payload(&value))
            .map_err(|(e, _)| KafkaError::Client(e))?;
        Ok(())
    };
    let mut published: Option<Vec<i32>> = None;
    let mut last_sent = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let ready = lookup.ready();
        // Claims are re-sent now and then: a compacted topic keeps the latest anyway, and a
        // reader that lost its place still learns where everything is.
        if published.as_ref() != Some(&ready) || last_sent.elapsed() > Duration::from_secs(60) {
            send(&claim(ready.clone()))?;
            tracing::info!(partitions = ?ready, endpoint, "lookup API: claimed");
            published = Some(ready);
            last_sent = Instant::now();
        }
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            let Some(instance) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            let claim = m
                .payload()
                .and_then(|v| serde_json::from_slice::<Claim>(v).ok())
                .filter(|c| c.instance == instance);
            directory.observe(m.offset(), instance, claim);
        }
    }
    // Going away: nothing of this instance is to be asked for any more.
    send(&claim(Vec::new()))?;
    producer.flush(kafka.broker_wait(Duration::from_secs(5)))?;
    Ok(())
}

/// [`run`] on a thread of its own, logging how it ended.
pub fn spawn(
    kafka: KafkaConfig,
    topic: String,
    endpoint: String,
    lookup: Arc<Lookup>,
    directory: Arc<Directory>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        if let Err(e) = run(&kafka, &topic, &endpoint, &lookup, &directory, &stop) {
            tracing::error!("lookup API: the endpoints topic {topic} failed: {e}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(instance: &str, partitions: &[i32]) -> Option<Claim> {
        Some(Claim {
            instance: instance.into(),
            endpoint: format!("{instance}:80"),
            partitions: partitions.to_vec(),
        })
    }

    #[test]
    fn the_latest_claim_of_a_partition_wins_and_a_dead_instances_claim_is_overtaken() {
        let d = Directory::new("me");
        d.observe(0, "a", claim("a", &[0, 1]));
        d.observe(1, "b", claim("b", &[2]));
        assert_eq!(d.owner(0).as_deref(), Some("a:80"));
        assert_eq!(d.owner(2).as_deref(), Some("b:80"));
        // b takes partition 1 over while a's claim (a killed instance) still names it.
        d.observe(2, "b", claim("b", &[1, 2]));
        assert_eq!(d.owner(1).as_deref(), Some("b:80"));
        assert_eq!(d.owner(0).as_deref(), Some("a:80"));
        // A rebalance under way: a dropped 0, nobody claimed it yet.
        d.observe(3, "a", claim("a", &[]));
        assert_eq!(d.owner(0), None);
        // This instance's own claim is never an owner to forward to.
        d.observe(4, "me", claim("me", &[0]));
        assert_eq!(d.owner(0), None);
        assert_eq!(d.owners().get(&0).map(String::as_str), Some("me:80"));
        d.observe(5, "b", None);
        assert_eq!(d.owner(1), None);
    }
}
