//! The ACLs of `k8s/base/users.yaml` (which the secured test broker applies, through
//! `deploy/kafka/acls.py`) against what the code touches: each service's principal may read
//! every topic it reads, write every topic it writes, use its group prefix for its groups,
//! transactional ids and internal topics; the readers may read the outputs they subscribe to
//! in the readers' group prefix. A new topic or a renamed group fails this test until the
//! manifests follow.

use std::collections::BTreeSet;
use std::process::Command;

use fitstream::commands;
use fitstream::config::FitstreamConfig;
use fitstream_runtime::kafka::reader::READER_GROUP_PREFIX;

/// One ALLOW entry: principal, operation, resource type, name, pattern.
type Acl = (String, String, String, String, String);

fn acls() -> BTreeSet<Acl> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("python3")
        .args(["deploy/kafka/acls.py", "table", "k8s/base/users.yaml"])
        .current_dir(root)
        .output()
        .expect("python3 deploy/kafka/acls.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ALLOW User:fitstream-planner * READ TOPIC:iob.clickstream.v1 (LITERAL)
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (kind, name) = f.get(4)?.split_once(':')?;
            (f.first() == Some(&"ALLOW")).then(|| {
                (
                    f[1].to_owned(),
                    f[3].to_owned(),
                    kind.to_owned(),
                    name.to_owned(),
                    f.get(5)?.trim_matches(|c| c == '(' || c == ')').to_owned(),
                )
                    .into()
            })?
        })
        .collect()
}

fn allows(acls: &BTreeSet<Acl>, principal: &str, operation: &str, kind: &str, name: &str) -> bool {
    acls.iter().any(|(p, op, k, n, pattern)| {
        p == principal
            && (op == operation || op == "ALL")
            && k == kind
            && match pattern.as_str() {
                "PREFIXED" => name.starts_with(n.as_str()),
                _ => n == name || n == "*",
            }
    })
}

#[test]
fn users_yaml_grants_every_principal_what_the_code_touches() {
    let acls = acls();
    assert!(acls.len() > 20, "too few ACLs parsed: {acls:?}");
    let cfg = FitstreamConfig::default();
    let mut missing = Vec::new();
    let mut need = |principal: &str, op: &str, kind: &str, name: &str| {
        if !allows(&acls, principal, op, kind, name) {
            missing.push(format!("{principal} {op} {kind}:{name}"));
        }
    };
    for s in commands::service_needs(&cfg).expect("needs") {
        let principal = format!("User:{}", s.group);
        for t in &s.reads {
            need(&principal, "READ", "TOPIC", t);
            need(&principal, "DESCRIBE", "TOPIC", t);
        }
        for t in &s.writes {
            need(&principal, "WRITE", "TOPIC", t);
            need(&principal, "DESCRIBE", "TOPIC", t);
        }
        for g in [
            s.group.clone(),
            format!("{}-restore-x", s.group),
            format!("{}-globals-x", s.group),
        ] {
            need(&principal, "READ", "GROUP", &g);
        }
        need(
            &principal,
            "WRITE",
            "TRANSACTIONAL_ID",
            &format!("{}-instance", s.group),
        );
        need(&principal, "IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster");
        for op in ["CREATE", "READ", "WRITE", "DESCRIBE"] {
            need(
                &principal,
                op,
                "TOPIC",
                &format!("{}-stage-changelog", s.group),
            );
        }
    }
    let t = &cfg.topics;
    let group = format!("{READER_GROUP_PREFIX}x");
    for topic in [
        &t.segment_assignments,
        &t.segment_profiles,
        &t.cart_abandonment,
    ] {
        need("User:fitstream-marketing-reader", "READ", "TOPIC", topic);
    }
    need("User:fitstream-marketing-reader", "READ", "GROUP", &group);
    for plant in commands::DEFAULT_PLANTS {
        need(
            "User:fitstream-operations-reader",
            "READ",
            "TOPIC",
            &t.build_orders_topic(plant),
        );
    }
    need("User:fitstream-operations-reader", "READ", "GROUP", &group);
    assert!(
        missing.is_empty(),
        "users.yaml does not grant: {missing:#?}"
    );
}

#[test]
fn a_principal_gets_nothing_it_does_not_need() {
    let acls = acls();
    // Spot checks of least privilege: no service writes another's outputs or reads the
    // readers' groups; readers write nothing.
    assert!(!allows(
        &acls,
        "User:fitstream-planner",
        "WRITE",
        "TOPIC",
        "iob.customer-profiles.v1"
    ));
    assert!(!allows(
        &acls,
        "User:fitstream-profiler",
        "READ",
        "GROUP",
        "fitstream-planner"
    ));
    assert!(!allows(
        &acls,
        "User:fitstream-marketing-reader",
        "WRITE",
        "TOPIC",
        "marketing.segment-assignments.v1"
    ));
    assert!(!allows(
        &acls,
        "User:fitstream-marketing-reader",
        "READ",
        "TOPIC",
        "iob.clickstream.v1"
    ));
    assert!(!allows(
        &acls,
        "User:fitstream-operations-reader",
        "READ",
        "TOPIC",
        "marketing.cart-abandonment.v1"
    ));
}
