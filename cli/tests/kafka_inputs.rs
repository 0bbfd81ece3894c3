//! Inputs through a real Kafka broker (started by `deploy/kafka.sh`; address from
//! `FITSTREAM_TEST_BOOTSTRAP`, default 127.0.0.1:9092). Each test uses its own random topic
//! names. A broker that cannot be reached fails the test: it is not skipped.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use fitstream::config::FitstreamConfig;
use fitstream::{commands, inputs};
use fitstream_contracts::records::{ClickEvent, PurchaseEvent};
use fitstream_contracts::topics::TopicsConfig;
use fitstream_runtime::kafka::reader::{ConsumedRecord, read_until_idle};
use fitstream_runtime::kafka::writer::TopicWriter;
use fitstream_runtime::kafka::{KafkaConfig, admin};
use fitstream_simulator::{Defect, InputRecord, SimConfig, Simulator};

use common::{bootstrap, java_murmur2, java_partition};

/// A configuration whose topics are unique to one test.
async fn fresh(partitions: i32) -> FitstreamConfig {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topics = TopicsConfig {
        partitions,
        ..TopicsConfig::default().with_prefix(&format!("t-{id}"))
    };
    let mut kafka = KafkaConfig {
        bootstrap_servers: bootstrap(),
        ..KafkaConfig::default()
    };
    // Room for the oversized-record test.
    kafka
        .properties
        .insert("message.max.bytes".into(), "4194304".into());
    let cfg = FitstreamConfig {
        kafka,
        topics,
        ..FitstreamConfig::default()
    };
    let mut specs = cfg.topics.specs(&["berlin".into()]);
    for s in &mut specs {
        s.configs
            .insert("max.message.bytes".into(), "4194304".into());
        // The records carry event times from 2019 (REES46) and early 2026 (simulator):
        // time-based retention would delete them while the test reads.
        s.configs.insert("retention.ms".into(), "-1".into());
    }
    let created = admin::ensure_topics(&cfg.kafka, &specs)
        .await
        .expect("create topics (is the broker running?)");
    assert!(
        created
            .iter()
            .all(|(_, p)| *p == admin::Provisioned::Created)
    );
    // Provisioning is idempotent: a second run finds every topic as it should be.
    let again = admin::ensure_topics(&cfg.kafka, &specs)
        .await
        .expect("second provisioning");
    assert!(
        again.iter().all(|(_, p)| *p == admin::Provisioned::Existed),
        "{again:?}"
    );
    cfg
}

fn read_all(cfg: &FitstreamConfig) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    read_until_idle(
        &cfg.kafka,
        &[&cfg.topics.clickstream, &cfg.topics.purchases],
        Duration::from_secs(10),
        Duration::from_secs(300),
        |r| out.push(r),
    )
    .expect("read");
    out
}

fn write(cfg: &FitstreamConfig, records: impl IntoIterator<Item = InputRecord>) -> u64 {
    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    inputs::produce(
        &mut writer,
        &commands::codec(cfg),
        &cfg.topics,
        records,
        |_| {},
    )
    .expect("produce")
}

/// The test's partitioner is Kafka's: the murmur2 vectors of Kafka's own
/// `org.apache.kafka.common.utils.UtilsTest.testMurmur2`, and partitions that Kafka 4.4.0's
/// Java client (`BuiltInPartitioner.partitionForKey`, run in jshell against
/// `kafka-clients-4.4.0.jar`) chose for these keys.
#[test]
fn the_reference_partitioner_is_kafkas() {
    for (key, hash) in [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
    ] {
        assert_eq!(java_murmur2(key.as_bytes()), hash, "murmur2 of {key:?}");
    }
    for (key, p3, p6, p12) in [
        ("", 0, 3, 9),
        ("a", 1, 4, 4),
        ("ab", 2, 2, 2),
        ("abc", 0, 3, 3),
        ("abcd", 2, 2, 8),
        ("c-1", 2, 5, 11),
        ("customer-42", 0, 3, 9),
        ("p-1/rose/50ml", 2, 2, 2),
    ] {
        let got = [3, 6, 12].map(|n| java_partition(key.as_bytes(), n));
        assert_eq!(
            got,
            [p3, p6, p12],
            "partitions of {key:?} among 3, 6 and 12"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_events_come_back_decoded_and_equal() {
    let cfg = fresh(6).await;
    let sim = SimConfig {
        duplicate_fraction: 0.0,
        malformed_fraction: 0.0,
        late_fraction: 0.0,
        ..SimConfig::default()
    };
    let sent: Vec<InputRecord> = Simulator::new(sim)
        .expect("simulator")
        .take(100_000)
        .collect();
    assert_eq!(sent.len(), 100_000);
    assert_eq!(write(&cfg, sent.clone()), 100_000);

    let codec = commands::codec(&cfg);
    let got = read_all(&cfg);
    assert_eq!(got.len(), 100_000, "every record arrives once");
    let mut clicks: Vec<ClickEvent> = Vec::new();
    let mut purchases: Vec<PurchaseEvent> = Vec::new();
    for r in &got {
        let bytes = r.value.as_deref().expect("value");
        // Keyed by customer id, on the partition Kafka's Java client would choose (computed
        // by the test's own transcription of the Java partitioner, not the writer's).
        let key = r.key.as_deref().expect("key");
        assert_eq!(r.partition, java_partition(key, 6));
        if r.topic == cfg.topics.clickstream {
            let c: ClickEvent = codec.decode(&r.topic, bytes).expect("decode click");
            assert_eq!(key, c.customer_id.as_bytes());
            assert_eq!(r.timestamp, Some(c.event_time.millis()));
            clicks.push(c);
        } else {
            purchases.push(codec.decode(&r.topic, bytes).expect("decode purchase"));
        }
    }
    let mut want_clicks: Vec<ClickEvent> = Vec::new();
    let mut want_purchases: Vec<PurchaseEvent> = Vec::new();
    for r in sent {
        match r {
            InputRecord::Click(c) => want_clicks.push(c),
            InputRecord::Purchase(p) => want_purchases.push(p),
            InputRecord::Raw { .. } => unreachable!("malformed_fraction is 0"),
        }
    }
    clicks.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    want_clicks.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    purchases.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    want_purchases.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    assert!(!want_purchases.is_empty());
    println!(
        "round trip: {} clicks, {} purchases",
        clicks.len(),
        purchases.len()
    );
    assert_eq!(clicks, want_clicks);
    assert_eq!(purchases, want_purchases);
}

fn rees46() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/rees46/cosmetics-2019-10.csv"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rees46_replay_through_kafka_matches_the_readme() {
    let cfg = fresh(3).await;
    let records =
        commands::read_inputs(&rees46(), commands::InputFormat::Rees46).expect("open excerpt");
    let sent = write(&cfg, records);
    let codec = commands::codec(&cfg);
    let got = read_all(&cfg);
    assert_eq!(got.len() as u64, sent);
    let (mut clicks, mut orders, mut lines, mut units) = (0, 0, 0, 0);
    let mut click_ids = HashSet::new();
    let mut customers = HashSet::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for r in &got {
        let bytes = r.value.as_deref().expect("value");
        if r.topic == cfg.topics.clickstream {
            let c: ClickEvent = codec.decode(&r.topic, bytes).expect("click");
            clicks += 1;
            *by_type.entry(c.event_type.symbol().to_owned()).or_default() += 1;
            click_ids.insert(c.event_id);
            customers.insert(c.customer_id);
        } else {
            let p: PurchaseEvent = codec.decode(&r.topic, bytes).expect("purchase");
            orders += 1;
            lines += p.lines.len();
            units += p.lines.iter().map(|l| l.quantity as u64).sum::<u64>();
            customers.insert(p.customer_id);
        }
    }
    println!(
        "rees46 via kafka: clicks {clicks} {by_type:?}, distinct click ids {}, orders {orders}, lines {lines}, units {units}, customers {}",
        click_ids.len(),
        customers.len()
    );
    assert_eq!(clicks, 20_561);
    assert_eq!(by_type["PRODUCT_VIEW"], 9_371);
    assert_eq!(by_type["ADD_TO_CART"], 6_565);
    assert_eq!(by_type["REMOVE_FROM_CART"], 4_625);
    assert_eq!(click_ids.len(), 19_321);
    assert_eq!(clicks - click_ids.len(), 1_240, "duplicate click ids");
    assert_eq!(orders, 191);
    assert_eq!(units, 1_720);
    assert_eq!(customers.len(), 3_270);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_malformed_input_is_rejected_with_its_reason() {
    let cfg = fresh(1).await;
    let codec = commands::codec(&cfg);
    let mut sim = Simulator::new(SimConfig {
        malformed_fraction: 0.0,
        duplicate_fraction: 0.0,
        ..SimConfig::default()
    })
    .expect("simulator");
    let base_click = sim
        .find(|r| matches!(r, InputRecord::Click(_)))
        .expect("a click");
    let base_purchase = sim
        .find(|r| matches!(r, InputRecord::Purchase(_)))
        .expect("a purchase");
    let mut raws = Vec::new();
    for defect in Defect::ALL {
        for base in [&base_click, &base_purchase] {
            // Corrupt with the codec of this test's topic names.
            let raw = defect.corrupt(base, &codec).expect("corrupt");
            raws.push(raw);
        }
    }
    let expected: Vec<(String, &str, &str)> = raws
        .iter()
        .map(|r| match r {
            InputRecord::Raw { topic, defect, .. } => (
                inputs::topic_name(&cfg.topics, *topic).to_owned(),
                defect.name(),
                defect.reason(),
            ),
            _ => unreachable!(),
        })
        .collect();
    write(&cfg, raws);
    let got = read_all(&cfg);
    assert_eq!(got.len(), expected.len());
    // One partition per topic: records come back in the order they were written, per topic.
    for topic in [&cfg.topics.clickstream, &cfg.topics.purchases] {
        let want: Vec<_> = expected.iter().filter(|(t, _, _)| t == topic).collect();
        let have: Vec<_> = got.iter().filter(|r| &r.topic == topic).collect();
        assert_eq!(want.len(), have.len());
        for ((_, defect, reason), r) in want.iter().zip(have) {
            let bytes = r.value.as_deref().unwrap_or_default();
            let err = if *topic == cfg.topics.clickstream {
                codec.decode::<ClickEvent>(topic, bytes).err()
            } else {
                codec.decode::<PurchaseEvent>(topic, bytes).err()
            };
            let err = err.unwrap_or_else(|| panic!("{defect} decoded on {topic}"));
            println!("{defect:>16} on {topic}: {} ({err})", err.reason());
            assert_eq!(err.reason(), *reason, "{defect}: {err}");
        }
    }
}

/// `produce` of a history file with rows that are not records: the records reach the input
/// topics, and each other row reaches the dead-letter topic with reason `parse`, its raw
/// line, and its line number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_sends_rows_that_are_not_records_to_the_dead_letter_topic() {
    let cfg = fresh(1).await;
    // `produce` checks every topic the history's outputs go to: every plant's keeps it too.
    let plants = commands::routing(&cfg).expect("routing").plant_ids();
    let mut specs = cfg.topics.specs(&plants);
    for s in &mut specs {
        s.configs.insert("retention.ms".into(), "-1".into());
    }
    admin::ensure_topics(&cfg.kafka, &specs)
        .await
        .expect("every plant's topic");
    let dir =
        std::env::temp_dir().join(format!("fitstream-produce-parse-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("history.csv");
    let stray = "2,2019-10-01 00:00:02 UTC,view,1,10,,\"acme,2.50,100,s-1";
    std::fs::write(
        &input,
        format!(
            ",event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n\
             0,2019-10-01 00:00:00 UTC,view,1,10,,acme,2.50,100,s-1\n\
             1,2019-10-01 00:00:01 UTC,view,1,10,,acme,NaN,100,s-1\n\
             {stray}\n\
             3,2019-10-01 00:00:03 UTC,cart,1,10,,acme,2.50,100,s-1\n"
        ),
    )
    .expect("write");
    let sent = commands::produce(
        &cfg,
        &input,
        commands::InputFormat::Rees46,
        &commands::InputOptions::default(),
    )
    .expect("produce");
    assert_eq!(sent, 2);
    assert_eq!(read_all(&cfg).len(), 2);
    let mut dead = Vec::new();
    read_until_idle(
        &cfg.kafka,
        &[&cfg.topics.dead_letter],
        Duration::from_secs(5),
        Duration::from_secs(120),
        |r| dead.push(r),
    )
    .expect("read dead letters");
    let header = |r: &ConsumedRecord, k: &str| {
        r.headers
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    assert_eq!(dead.len(), 2, "the NaN price and the stray quote, no more");
    let by_line: BTreeMap<String, &ConsumedRecord> = dead
        .iter()
        .map(|r| (header(r, "fitstream.source.offset"), r))
        .collect();
    assert_eq!(by_line.keys().collect::<Vec<_>>(), ["3", "4"]);
    for r in &dead {
        assert_eq!(header(r, "fitstream.error.reason"), "parse");
        assert_eq!(header(r, "fitstream.service"), "produce");
    }
    assert_eq!(by_line["4"].value.as_deref(), Some(stray.as_bytes()));
    std::fs::remove_dir_all(&dir).ok();
}
