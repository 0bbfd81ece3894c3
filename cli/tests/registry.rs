//! fitstream with a real schema registry (Apicurio Registry 2.4.2's Confluent API, installed
//! and started by `deploy/registry.sh`). `tests/registry.sh` runs these ignored tests with
//! `FITSTREAM_TEST_REGISTRY` (the plain instance's URL) and `FITSTREAM_TEST_REGISTRY_SECURE`
//! (the secure instance's `client.env`: HTTPS with its own CA, basic authentication), against
//! the test broker.

mod common;

use std::process::Command;

use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};

use common::*;

fn plain_url() -> String {
    std::env::var("FITSTREAM_TEST_REGISTRY").expect("tests/registry.sh sets the registry's URL")
}

/// The secure instance's settings: URL, user, password, CA.
fn secure() -> (String, String, String, String) {
    let path = std::env::var("FITSTREAM_TEST_REGISTRY_SECURE")
        .expect("tests/registry.sh sets the secure registry's client.env");
    let text = std::fs::read_to_string(&path).expect("client.env");
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {path}"))
            .to_owned()
    };
    (
        get("FITSTREAM_REGISTRY_URL"),
        get("FITSTREAM_REGISTRY_USER"),
        get("FITSTREAM_REGISTRY_PASSWORD"),
        get("FITSTREAM_REGISTRY_CA"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs deploy/registry.sh: tests/registry.sh"]
async fn the_pipeline_through_a_real_registry_equals_the_embedded_run() {
    let id = run_id();
    let cfg = fresh_with(&id, true).await;
    let mut env = env_of(&cfg);
    env.retain(|(k, _)| k != "FITSTREAM__REGISTRY__PINNED_IDS");
    env.push(("FITSTREAM__REGISTRY__URL".into(), plain_url()));

    // The schemas first, with their subjects' levels; then a check finds them so.
    let registered = succeeded(
        fitstream_output(&["schemas", "register"], &env),
        "schemas register",
    );
    print!("{registered}");
    for spec in cfg
        .topics
        .specs(&plants())
        .iter()
        .filter(|s| s.value.is_some())
    {
        assert!(
            registered.contains(&format!("{}-value", spec.name)),
            "{registered}"
        );
    }
    let checked = succeeded(
        fitstream_output(&["schemas", "check"], &env),
        "schemas check",
    );
    assert_eq!(
        checked.matches("  ok").count(),
        registered.lines().count() - 1,
        "{checked}"
    );

    // produce, run all and tail in registry mode against replay (embedded, pinned ids): the
    // same records, decoded.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("sim.jsonl");
    write_in_order_simulation(&input, 2 * 3_600);
    let input_arg = input.to_string_lossy().into_owned();
    let replayed = dir.path().join("replay");
    succeeded(
        fitstream_output(
            &[
                "replay",
                "--input",
                &input_arg,
                "--format",
                "jsonl",
                "--out",
                &replayed.to_string_lossy(),
            ],
            &env_of(&cfg),
        ),
        "replay",
    );
    succeeded(
        fitstream_output(
            &["produce", "--input", &input_arg, "--format", "jsonl"],
            &env,
        ),
        "produce",
    );
    succeeded(
        fitstream_output(
            &[
                "run",
                "all",
                "--until-end",
                "--metrics-listen",
                "127.0.0.1:0",
            ],
            &env,
        ),
        "run all with a registry",
    );
    let tailed = dir.path().join("kafka");
    std::fs::create_dir_all(&tailed).expect("dir");
    let mut total = 0;
    for spec in cfg.topics.specs(&plants()) {
        let topic = &spec.name;
        if *topic == cfg.topics.clickstream || *topic == cfg.topics.purchases {
            continue;
        }
        let file = tailed.join(format!("{topic}.jsonl"));
        succeeded(
            fitstream_output(
                &[
                    "tail",
                    topic,
                    "--until-idle",
                    "3",
                    "--out",
                    &file.to_string_lossy(),
                ],
                &env,
            ),
            "tail",
        );
        // The simulator frames its malformed records with fitstream's pinned ids (1001 for a
        // click): without a registry such a record fails as what it is (`decode`,
        // `validation`, ...); here the registry has no id 1001, so the same bytes are a
        // `schema` error first. Every bad record is dead-lettered in both, from the same
        // source offset; only the reason may differ, and only that way.
        let is_dead_letter = *topic == cfg.topics.dead_letter;
        let kafka_lines = read_jsonl(&tailed, topic);
        if is_dead_letter {
            let source = |l: &serde_json::Value| {
                let h = &l["headers"];
                [
                    "fitstream.service",
                    "fitstream.source.topic",
                    "fitstream.source.partition",
                    "fitstream.source.offset",
                ]
                .map(|k| h[k].to_string())
            };
            let replayed_reasons: std::collections::BTreeMap<_, _> = read_jsonl(&replayed, topic)
                .iter()
                .map(|l| (source(l), l["headers"]["fitstream.error.reason"].clone()))
                .collect();
            for l in &kafka_lines {
                let h = &l["headers"];
                let message = h["fitstream.error.message"].as_str().unwrap_or("");
                let pinned_id =
                    (1001..=1008).any(|id| message == format!("unknown schema id {id}"));
                assert!(
                    replayed_reasons.get(&source(l)) == Some(&h["fitstream.error.reason"])
                        || pinned_id,
                    "{l}"
                );
            }
        }
        let key = |mut l: serde_json::Value| {
            if is_dead_letter && let Some(h) = l["headers"].as_object_mut() {
                h.remove("fitstream.error.reason");
                h.remove("fitstream.error.message");
            }
            normalise(l)
        };
        total += assert_same_records(
            &format!("{topic} (registry ids on Kafka)"),
            read_jsonl(&replayed, topic),
            kafka_lines,
            key,
        );
    }
    assert!(total > 0);

    // A consumer of another team with Confluent's own AvroDeserializer (Python), looking the
    // ids up in the registry, reads the build orders as fitstream wrote them.
    let python = std::env::var("FITSTREAM_TEST_PYTHON").expect("tests/registry.sh sets the venv");
    let orders = cfg.topics.build_orders_topic("berlin");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../consumers/python/consume.py"
    );
    let out = Command::new(&python)
        .args([
            script,
            "--bootstrap",
            &cfg.kafka.bootstrap_servers,
            "--topic",
            &orders,
        ])
        .args(["--registry", &plain_url(), "--idle", "3"])
        .output()
        .expect("python consumer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let expected = read_jsonl(&replayed, &orders);
    assert_eq!(
        read.len(),
        expected.len(),
        "the Python consumer read another count"
    );
    let ids: std::collections::BTreeSet<String> = read
        .iter()
        .map(|r| r["value"]["request_id"].to_string())
        .collect();
    let want: std::collections::BTreeSet<String> = expected
        .iter()
        .map(|r| r["value"]["request_id"].to_string())
        .collect();
    assert_eq!(ids, want);
    println!(
        "the Confluent AvroDeserializer (Python) read {} build orders, schema id {}",
        read.len(),
        read.first()
            .map_or(serde_json::Value::Null, |r| r["schema_id"].clone())
    );

    // Another producer writes clicks with a newer version of the schema (a field fitstream
    // does not know, with a default): registered by it, fetched by id and read by fitstream.
    let subject = format!("{}-value", cfg.topics.clickstream);
    let mut schema: serde_json::Value =
        serde_json::from_str(fitstream_contracts::SchemaKind::ClickEvent.text()).expect("json");
    schema["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!(
            {"name": "campaign", "type": ["null", "string"], "default": null}
        ));
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/subjects/{subject}/versions", plain_url()))
        .json(&serde_json::json!({ "schema": schema.to_string() }))
        .send()
        .await
        .expect("register v2")
        .json()
        .await
        .expect("id");
    let v2_id = answer["id"].as_u64().expect("an id") as u32;
    let v2 = apache_avro::Schema::parse(&schema).expect("v2 parses");
    let mut click = fitstream_contracts::samples::click();
    click.event_id = format!("from-another-producer-{id}");
    let mut value = fitstream_contracts::Contract::to_avro(&click).expect("avro");
    if let apache_avro::types::Value::Record(fields) = &mut value {
        fields.push((
            "campaign".into(),
            apache_avro::types::Value::Union(
                1,
                Box::new(apache_avro::types::Value::String("spring".into())),
            ),
        ));
    }
    #[allow(deprecated)]
    let datum = apache_avro::to_avro_datum(&v2, value).expect("v2 datum");
    let mut w = TopicWriter::new(&cfg.kafka).expect("producer");
    w.send(&OutRecord {
        topic: cfg.topics.clickstream.clone(),
        key: Some(click.customer_id.clone().into_bytes()),
        value: Some(fitstream_contracts::codec::frame(v2_id, &datum)),
        partition: Some(0),
        ..OutRecord::default()
    })
    .expect("send");
    w.flush().expect("flush");
    let file = tailed.join("clicks.jsonl");
    succeeded(
        fitstream_output(
            &[
                "tail",
                &cfg.topics.clickstream,
                "--until-idle",
                "3",
                "--out",
                &file.to_string_lossy(),
            ],
            &env,
        ),
        "tail the clickstream",
    );
    let read = std::fs::read_to_string(&file).expect("tailed");
    let line = read
        .lines()
        .find(|l| l.contains(&click.event_id))
        .unwrap_or_else(|| panic!("the other producer's click was not read"));
    assert!(!line.contains("\"error\""), "{line}");
    println!("schema v2 (id {v2_id}) of another producer read: {line:.200}");
    println!("{total} output records equal through the registry");
}

#[test]
#[ignore = "needs deploy/registry.sh: tests/registry.sh"]
fn tls_and_basic_authentication_to_the_registry() {
    let (url, user, password, ca) = secure();
    let with = |password: &str, ca: Option<&str>| {
        let mut env = vec![
            ("FITSTREAM__REGISTRY__URL".to_owned(), url.clone()),
            ("FITSTREAM__REGISTRY__USERNAME".to_owned(), user.clone()),
            (
                "FITSTREAM__REGISTRY__PASSWORD".to_owned(),
                password.to_owned(),
            ),
        ];
        if let Some(ca) = ca {
            env.push(("FITSTREAM__REGISTRY__CA_LOCATION".to_owned(), ca.to_owned()));
        }
        fitstream_output(&["schemas", "register"], &env)
    };
    let good = succeeded(
        with(&password, Some(&ca)),
        "schemas register over TLS with basic auth",
    );
    assert!(good.contains("iob.clickstream.v1-value"), "{good}");
    let bad = with("not-the-password", Some(&ca));
    let err = String::from_utf8_lossy(&bad.stderr).into_owned();
    println!("wrong password: {err}");
    assert!(!bad.status.success() && err.contains("401"), "{err}");
    let untrusted = with(&password, None);
    let err = String::from_utf8_lossy(&untrusted.stderr).into_owned();
    println!("CA not given: {err}");
    assert!(
        !untrusted.status.success() && err.contains("certificate"),
        "{err}"
    );
}
