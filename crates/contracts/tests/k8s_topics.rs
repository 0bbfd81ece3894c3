//! The Strimzi `KafkaTopic` manifests in `k8s/base/topics.yaml` declare exactly the topics
//! and settings that topic provisioning in code creates (`TopicsConfig::specs` with the
//! defaults and the three plants of `deploy/plants.toml`).

use std::collections::BTreeMap;

use fitstream_contracts::topics::TopicsConfig;

#[derive(Debug, Default, PartialEq)]
struct Declared {
    partitions: i32,
    replicas: i32,
    config: BTreeMap<String, String>,
}

/// A small reader for the manifest's regular shape (one KafkaTopic per document).
fn declared(text: &str) -> BTreeMap<String, Declared> {
    let mut out = BTreeMap::new();
    for doc in text.split("\n---") {
        if !doc.lines().any(|l| l.trim() == "kind: KafkaTopic") {
            continue;
        }
        let mut name = None;
        let mut d = Declared::default();
        let mut section = "";
        for line in doc.lines() {
            let indent = line.len() - line.trim_start().len();
            let t = line.trim();
            if indent == 0 {
                section = t.trim_end_matches(':');
                continue;
            }
            if indent == 2 && t.ends_with(':') {
                section = t.trim_end_matches(':');
                continue;
            }
            let Some((k, v)) = t.split_once(": ") else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match (section, indent, k) {
                ("metadata", 2, "name") => name = Some(v.to_owned()),
                ("spec", 2, "partitions") => d.partitions = v.parse().expect("partitions"),
                ("spec", 2, "replicas") => d.replicas = v.parse().expect("replicas"),
                ("config", 4, _) => {
                    d.config.insert(k.to_owned(), v.to_owned());
                }
                _ => {}
            }
        }
        out.insert(name.expect("metadata.name"), d);
    }
    out
}

#[test]
fn kafka_topic_manifests_match_the_provisioning_code() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../k8s/base/topics.yaml"
    ))
    .expect("k8s/base/topics.yaml");
    let manifests = declared(&text);
    let plants: Vec<String> = ["berlin", "lyon", "porto"].map(String::from).to_vec();
    let code: BTreeMap<String, Declared> = TopicsConfig::default()
        .specs(&plants)
        .into_iter()
        .map(|s| {
            (
                s.name,
                Declared {
                    partitions: s.partitions,
                    replicas: s.replication_factor,
                    config: s.configs,
                },
            )
        })
        .collect();
    assert_eq!(
        manifests.keys().collect::<Vec<_>>(),
        code.keys().collect::<Vec<_>>(),
        "the same topics"
    );
    for (name, want) in &code {
        assert_eq!(&manifests[name], want, "{name}");
    }
}

#[test]
fn the_reader_sees_a_drift() {
    let text = "---\napiVersion: kafka.strimzi.io/v1\nkind: KafkaTopic\nmetadata:\n  name: x\nspec:\n  partitions: 6\n  replicas: 1\n  config:\n    cleanup.policy: \"compact\"\n";
    let d = declared(text);
    assert_eq!(d["x"].partitions, 6);
    assert_eq!(d["x"].config["cleanup.policy"], "compact");
}
