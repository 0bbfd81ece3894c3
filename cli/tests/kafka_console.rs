//! `fitstream console` on a real broker: it reads the output topics read_committed from their
//! beginning, and an open page hears of records written later (server-sent events).

mod common;

use std::time::{Duration, Instant};

use fitstream::commands::{self, ConsoleOptions};
use fitstream::config::FitstreamConfig;
use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};
use serde_json::Value;

use common::*;

fn write_orders(cfg: &FitstreamConfig, from: usize, quantities: &[&str]) {
    let codec = commands::codec(cfg);
    let topic = cfg.topics.build_orders_topic("berlin");
    let mut w = TopicWriter::new(&cfg.kafka).expect("a producer");
    for (i, q) in quantities.iter().enumerate() {
        let mut o = fitstream_contracts::samples::build_order();
        o.request_id = format!("pr-console-{}", from + i);
        o.request_state = fitstream_contracts::RequestState::Released;
        o.quantity = q.parse().expect("decimal");
        w.send(&OutRecord {
            topic: topic.clone(),
            key: Some(o.material_definition_id.clone().into_bytes()),
            value: Some(codec.encode(&topic, &o).expect("encoded")),
            partition: Some(0),
            ..OutRecord::default()
        })
        .expect("sent");
    }
    w.flush().expect("flushed");
}

async fn status(base: &str) -> Value {
    reqwest::get(format!("{base}/status.json"))
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON")
}

async fn wait_records(base: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(base).await;
        if s["records"].as_u64() == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the console read {s}, not {n} records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_reads_kafka_and_pages_hear_of_new_records() {
    let id = run_id();
    let cfg = fresh(&id).await;
    write_orders(&cfg, 0, &["2.000", "1.500"]);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let options = ConsoleOptions {
        from: None,
        listen: String::new(),
        metrics: Vec::new(),
    };
    let served = cfg.clone();
    tokio::spawn(async move {
        commands::console_on(&served, &options, listener, std::future::pending())
            .await
            .expect("console serves");
    });
    wait_records(&base, 2).await;
    let page = reqwest::get(format!("{base}/orders"))
        .await
        .expect("orders")
        .text()
        .await
        .expect("page");
    assert!(page.contains("class=\"n released\">3.500<"), "{page}");
    assert!(
        page.contains(&format!("Kafka {}", cfg.kafka.bootstrap_servers)),
        "{page}"
    );

    let mut events = reqwest::get(format!("{base}/events"))
        .await
        .expect("events");
    write_orders(&cfg, 2, &["0.500"]);
    let update = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let c = events.chunk().await.expect("chunk").expect("stream open");
            let text = String::from_utf8_lossy(&c).into_owned();
            if text.contains("event: update") {
                return text;
            }
        }
    })
    .await
    .expect("an update event after a new record");
    assert!(update.contains("data: 3"), "{update}");
    let page = reqwest::get(format!("{base}/orders"))
        .await
        .expect("orders")
        .text()
        .await
        .expect("page");
    assert!(page.contains("class=\"n released\">4.000<"), "{page}");
}
