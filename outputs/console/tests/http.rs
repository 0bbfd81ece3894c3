//! The console over HTTP: pages, the audience CSV by segment, and a live update by
//! server-sent events when the followed directory grows.

use std::io::Write;
use std::time::{Duration, Instant};

use fitstream_contracts::topics::TopicsConfig;
use serde_json::{Value, json};

fn abandonment(customer: &str, segment: Option<i32>, label: &str, t: i64) -> Value {
    json!({"topic": "marketing.cart-abandonment.v1", "partition": 0, "key": customer,
        "timestamp": t, "value": {
        "customer_id": customer, "session_id": "s", "product_id": "p1", "sku": "p1",
        "category": "lipstick, \"matte\"", "segment_id": segment, "segment_label": label,
        "carted_at": t - 1_800_000, "window_closed_at": t, "source_event_id": "e"}})
}

fn profile(segment: i32, label: &str, size: i64, version: i64, t: i64) -> Value {
    json!({"topic": "marketing.segment-profiles.v1", "partition": 0, "key": segment.to_string(),
        "timestamp": t, "value": {
        "segment_id": segment, "label": label, "description": format!("<b>{label}</b> people"),
        "size": size, "model_version": version, "quality_score": 0.5, "recency_days": 1.0,
        "orders": 1.0, "spend": 10.0, "avg_order_value": 10.0, "sessions": 2.0,
        "cart_abandonment_rate": 0.25, "conversion_rate": 0.5, "top_categories": ["a"],
        "retired": false}})
}

fn write_lines(path: &std::path::Path, lines: &[Value]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

async fn get(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("get")
        .error_for_status()
        .expect("200")
        .text()
        .await
        .expect("body")
}

async fn wait_for_records(base: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s: Value =
            serde_json::from_str(&get(&format!("{base}/status.json")).await).expect("json");
        if s["records"] == json!(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "console did not read {n} records: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn pages_csv_and_live_updates_over_a_followed_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = TopicsConfig::default();
    write_lines(
        &dir.path().join("marketing.segment-profiles.v1.jsonl"),
        &[
            profile(1, "bargain hunters", 40, 1, 3_600_000),
            profile(2, "window shoppers", 60, 1, 3_600_000),
        ],
    );
    write_lines(
        &dir.path().join("marketing.cart-abandonment.v1.jsonl"),
        &[
            abandonment("c1", Some(1), "bargain hunters", 7_200_000),
            abandonment("c2", Some(2), "window shoppers", 7_300_000),
            abandonment("c3", None, "unassigned", 7_400_000),
        ],
    );
    // Not a topic the console shows: never read.
    write_lines(
        &dir.path().join("iob.customer-profiles.v1.jsonl"),
        &[json!({"topic": "x"})],
    );
    let addr =
        fitstream_console::spawn_on_directory(topics, dir.path().to_owned(), "127.0.0.1:0", vec![])
            .expect("serve");
    let base = format!("http://{addr}");
    wait_for_records(&base, 5).await;

    let page = get(&format!("{base}/segments")).await;
    assert!(page.contains("bargain hunters") && page.contains("window shoppers"));
    // Text from the data is escaped, never markup.
    assert!(
        page.contains("&lt;b&gt;bargain hunters&lt;/b&gt; people"),
        "{page}"
    );
    assert!(page.contains("Data as of"), "{page}");
    assert!(
        page.contains("1970-01-01T02:03:20.000Z"),
        "as of the latest record: {page}"
    );

    // The CSV of one segment: its customers only, quoted where needed.
    let csv = get(&format!("{base}/audiences.csv?segment=2")).await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[1].starts_with("c2,2,window shoppers,p1,p1,\"lipstick, \"\"matte\"\"\""),
        "{csv}"
    );
    let csv = get(&format!("{base}/audiences.csv?segment=unassigned")).await;
    assert_eq!(
        csv.lines().skip(1).map(|l| &l[..2]).collect::<Vec<_>>(),
        ["c3"]
    );
    assert_eq!(
        get(&format!("{base}/audiences.csv")).await.lines().count(),
        4
    );
    let page = get(&format!("{base}/audiences?segment=1")).await;
    assert!(page.contains("1 abandonments match"), "{page}");

    // An open page hears of new records.
    let mut events = reqwest::get(format!("{base}/events"))
        .await
        .expect("events");
    write_lines(
        &dir.path().join("factory.berlin.build-orders.v1.jsonl"),
        &[
            json!({"topic": "factory.berlin.build-orders.v1", "timestamp": 9_000_000, "value": {
            "request_id": "pr-1", "request_state": "Released",
            "product_production_rule_id": "rule-1", "material_definition_id": "m-1",
            "quantity": "3.000", "unit_of_measure": "EA", "parameters": [],
            "location": {"site": "berlin", "area": "filling", "line": "B1"},
            "earliest_start": 9_000_000, "latest_end": 9_900_000, "priority": 1,
            "order_count": 1, "segment_mix": [], "window_start": 8_100_000,
            "window_end": 9_000_000, "model_version": 1}}),
        ],
    );
    let chunk = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let c = events.chunk().await.expect("chunk").expect("open");
            let text = String::from_utf8_lossy(&c).into_owned();
            if text.contains("event: update") {
                return text;
            }
        }
    })
    .await
    .expect("an update event");
    assert!(chunk.contains("data: 6"), "{chunk}");
    let page = get(&format!("{base}/orders")).await;
    assert!(page.contains("id=\"plant-berlin\""), "{page}");
    assert!(page.contains("<code>pr-1</code>"), "{page}");

    // Health without metrics endpoints says so; with one that is down, names it.
    let page = get(&format!("{base}/health")).await;
    assert!(page.contains("No metrics endpoints given"), "{page}");
}

#[tokio::test(flavor = "current_thread")]
async fn health_names_an_unreachable_metrics_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = fitstream_console::spawn_on_directory(
        TopicsConfig::default(),
        dir.path().to_owned(),
        "127.0.0.1:0",
        vec!["http://127.0.0.1:9/metrics".into()],
    )
    .expect("serve");
    let page = get(&format!("http://{addr}/health")).await;
    assert!(page.contains("http://127.0.0.1:9/metrics"), "{page}");
    assert!(page.contains("unreachable"), "{page}");
    assert!(page.contains("No records yet"), "{page}");
}
