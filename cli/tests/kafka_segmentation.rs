//! Segmentation on a real broker, as deployed: the profiler and the segmenter as two
//! processes, against the embedded run of the same input.
//!
//! Each run uses its own topics, consumer group and internal topics (random suffix).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fitstream::{commands, inputs};
use fitstream_runtime::embedded::Produced;
use fitstream_runtime::kafka::reader::read_until_idle;
use fitstream_runtime::kafka::writer::TopicWriter;
use fitstream_simulator::{InputRecord, SimConfig, Simulator};

use common::*;

/// Segmentation through Kafka, as deployed: the profiler and the segmenter as two processes,
/// profiles flowing to the segmenter and models back to the profiler (a global table, with
/// the segmenter's progress markers). The same input gives the same records as the embedded
/// run, read_committed, compared as multisets of (key, event time, bytes):
/// - every profile version;
/// - every model and segment profile, but the embedded run's last fit (at the end of the
///   input, which a service that keeps running never reaches);
/// - every assignment before that last fit's cutoff.
///
/// The input ends with closing clicks on every partition a minute and two minutes after its
/// last record, as a live feed's next records would come ([`closing_clicks`]): each profiler
/// task's time passes the end of the input at once. Without them a task whose partition went quiet early
/// moves on with the wall clock from its own last record, and the segmenter, which takes the
/// minimum over the profiler tasks, waited minutes for it (293 s of a 316 s run).
///
/// And on what came out: model versions 1, 2, 3, ..., a segment profile for every segment of
/// every model, assignments that name a segment of their model and form one unbroken chain
/// per customer, customers moved by newer models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_models_and_assignments_equal_the_embedded_run() {
    use fitstream_contracts::{SegmentAssignment, SegmentModel};

    let id = run_id();
    let cfg = fresh_with(&id, true).await;
    // The simulator's default input: out of order, late, duplicated and malformed records.
    let sim = SimConfig {
        seconds: 86_400,
        ..SimConfig::default()
    };
    let mut records: Vec<InputRecord> = Simulator::new(sim).expect("simulator").collect();
    let closing = closing_clicks(&cfg, &mut records);
    let codec = commands::codec(&cfg);
    let embedded = segmentation_reference(&cfg, &records, None);
    let mut writer = TopicWriter::new(&cfg.kafka).expect("producer");
    inputs::produce(&mut writer, &codec, &cfg.topics, records, |_| {}).expect("produce");

    let of = |out: &[Produced], topic: &str| -> Vec<Produced> {
        out.iter()
            .filter(|p| p.topic == topic && p.progress().is_none())
            .cloned()
            .collect()
    };
    let decode_models = |out: &[Produced]| -> Vec<SegmentModel> {
        out.iter()
            .map(|p| {
                codec
                    .decode(
                        &cfg.topics.segment_models,
                        p.value.as_deref().unwrap_or_default(),
                    )
                    .expect("a model")
            })
            .collect()
    };
    let decode_assignments = |out: &[Produced]| -> Vec<SegmentAssignment> {
        out.iter()
            .map(|p| {
                codec
                    .decode(
                        &cfg.topics.segment_assignments,
                        p.value.as_deref().unwrap_or_default(),
                    )
                    .expect("an assignment")
            })
            .collect()
    };
    let models = decode_models(&of(&embedded, &cfg.topics.segment_models));
    let last = models.last().expect("the embedded run fitted").clone();
    println!(
        "embedded: {} models, the last at the end of the input (cutoff {})",
        models.len(),
        last.cutoff_event_time
    );
    // (key, event time, bytes) of what a running service publishes too.
    let comparable = |out: Vec<Produced>, topic: &str| -> BTreeMap<String, u32> {
        let keep = |p: &Produced| -> bool {
            if topic == cfg.topics.segment_models {
                return decode_models(std::slice::from_ref(p))[0].version < last.version;
            }
            // The closing clicks' own profiles and what follows from them wait for the
            // wall clock, as the last records of any live feed do.
            p.timestamp < closing.0
        };
        multiset(out.iter().filter(|p| keep(p)).map(|p| {
            format!(
                "{} {} {}",
                String::from_utf8_lossy(p.key.as_deref().unwrap_or_default()),
                p.timestamp,
                hex::encode(p.value.as_deref().unwrap_or_default())
            )
        }))
    };
    let topics = [
        cfg.topics.profiles.clone(),
        cfg.topics.segment_models.clone(),
        cfg.topics.segment_profiles.clone(),
        cfg.topics.segment_assignments.clone(),
    ];
    let expected: Vec<BTreeMap<String, u32>> = topics
        .iter()
        .map(|t| comparable(of(&embedded, t), t))
        .collect();
    for (t, e) in topics.iter().zip(&expected) {
        println!("  {t}: {} records expected", e.values().sum::<u32>());
    }

    let started = Instant::now();
    // Idle inputs move the watermarks with the wall clock after 5 s (not 30): the purchases
    // partitions, which get no closing record, stop holding the profilers' watermarks back
    // sooner. It changes no record (a replay has no idleness).
    let idle = [("FITSTREAM__WATERMARK__IDLE_TIMEOUT_MS", "5000")];
    let mut profiler = Stopped(spawn_with(
        &cfg,
        "profiler",
        Membership::Static,
        false,
        &idle,
    ));
    let mut segmenter = Stopped(spawn_with(
        &cfg,
        "segmenter",
        Membership::Static,
        false,
        &idle,
    ));
    let read = |topic: &str| -> Vec<Produced> {
        let mut out = Vec::new();
        read_until_idle(
            &cfg.kafka,
            &[topic],
            Duration::from_secs(3),
            Duration::from_secs(120),
            |r| out.push(Produced::from_consumed(r)),
        )
        .expect("read");
        out.retain(|p| p.progress().is_none());
        out
    };
    // Until every topic has what the embedded run says (the service's watermarks pass the
    // end of the input with the wall clock once it is idle).
    let mut got: Vec<BTreeMap<String, u32>>;
    loop {
        for (name, child) in [
            ("profiler", &mut profiler.0),
            ("segmenter", &mut segmenter.0),
        ] {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!("the {name} stopped by itself ({status})");
            }
        }
        got = topics.iter().map(|t| comparable(read(t), t)).collect();
        let counts: Vec<u32> = got.iter().map(|g| g.values().sum()).collect();
        println!(
            "after {:.0} s: {counts:?} records",
            started.elapsed().as_secs_f64()
        );
        if got == expected || started.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    for child in [&mut profiler.0, &mut segmenter.0] {
        assert!(terminate(child, Duration::from_secs(60)).success());
    }
    for ((t, e), g) in topics.iter().zip(&expected).zip(&got) {
        let missing: Vec<&String> = e.keys().filter(|k| g.get(*k) != e.get(*k)).collect();
        let extra: Vec<&String> = g.keys().filter(|k| e.get(*k) != g.get(*k)).collect();
        for k in missing.iter().take(3) {
            println!("  {t}: embedded only: {k:.200}");
        }
        for k in extra.iter().take(3) {
            println!("  {t}: kafka only: {k:.200}");
        }
        assert!(e == g, "{t}: {} differ", missing.len() + extra.len());
    }

    let models = decode_models(&read(&cfg.topics.segment_models));
    let versions: Vec<i64> = models.iter().map(|m| m.version).collect();
    assert_eq!(versions, (1..=models.len() as i64).collect::<Vec<_>>());
    assert!(models.len() >= 10, "{} models", models.len());
    let segments: std::collections::HashSet<(i64, i32)> = models
        .iter()
        .flat_map(|m| m.segments.iter().map(move |s| (m.version, s.segment_id)))
        .collect();
    let profiles: std::collections::HashSet<(i64, i32)> = read(&cfg.topics.segment_profiles)
        .iter()
        .map(|p| {
            let sp: fitstream_contracts::SegmentProfile = codec
                .decode(
                    &cfg.topics.segment_profiles,
                    p.value.as_deref().unwrap_or_default(),
                )
                .expect("a segment profile");
            (sp.model_version, sp.segment_id)
        })
        .collect();
    assert!(
        segments.is_subset(&profiles),
        "a segment of a model without its segment profile"
    );
    let assignments = decode_assignments(&read(&cfg.topics.segment_assignments));
    let mut latest: BTreeMap<String, i32> = BTreeMap::new();
    let mut broken = 0;
    for a in &assignments {
        assert!(
            segments.contains(&(a.model_version, a.segment_id)),
            "{a:?} names a segment its model does not have"
        );
        if a.previous_segment_id != latest.get(&a.customer_id).copied() {
            broken += 1;
        }
        latest.insert(a.customer_id.clone(), a.segment_id);
    }
    let by_model: BTreeMap<i64, usize> = assignments.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.model_version).or_default() += 1;
        m
    });
    println!(
        "{} models in {:.0} s; {} assignments for {} customers, by model version {by_model:?}",
        models.len(),
        started.elapsed().as_secs_f64(),
        assignments.len(),
        latest.len()
    );
    assert_eq!(broken, 0, "assignment chains with a gap or a repeat");
    assert!(
        by_model.keys().any(|v| *v > 1),
        "no customer moved by a newer model"
    );
}

/// Appends one click per partition of the clickstream, each from a customer of its own, 61 s
/// after the input's latest event time: past the minute of the last record, so that every
/// profiler task's watermark passes the end of the input as soon as it reads them (the
/// purchases partitions, with no record after the end, turn idle). Then a second round 61 s
/// later, which flushes the first round's profiles: the segmenter reports progress only up
/// to the latest profile it received, and the profiler places a profile once the progress
/// passed it, so the last assignments before the first round wait for a profile after them.
/// The embedded run gets the same records. Returns the first round's event time: what comes
/// before it is comparable.
fn closing_clicks(
    cfg: &fitstream::config::FitstreamConfig,
    records: &mut Vec<InputRecord>,
) -> fitstream_contracts::EventTime {
    use fitstream_contracts::{ClickEvent, ClickEventType, EventTime};
    let latest = records
        .iter()
        .filter_map(|r| match r {
            InputRecord::Click(c) => Some(c.event_time.0),
            InputRecord::Purchase(p) => Some(p.event_time.0),
            InputRecord::Raw { .. } => None,
        })
        .max()
        .expect("the simulator made records");
    let at = EventTime(latest + 61_000);
    let partitions = cfg.topics.partitions;
    let mut customers = std::collections::BTreeMap::new();
    for n in 0.. {
        if customers.len() == partitions as usize {
            break;
        }
        let customer = format!("closing-{n}");
        customers
            .entry(java_partition(customer.as_bytes(), partitions))
            .or_insert(customer);
    }
    for (round, customer) in [0, 1]
        .into_iter()
        .flat_map(|round| customers.values().map(move |c| (round, c)))
    {
        records.push(InputRecord::Click(ClickEvent {
            event_id: format!("{customer}-click-{round}"),
            customer_id: customer.clone(),
            session_id: format!("{customer}-session"),
            event_type: ClickEventType::PageView,
            product_id: None,
            sku: None,
            options: Default::default(),
            category: None,
            price: None,
            query: None,
            channel: "web".to_owned(),
            region: "EU".to_owned(),
            event_time: EventTime(at.0 + round * 61_000),
        }));
    }
    at
}
