//! fitstream on a broker secured the way `k8s/` prescribes: SASL_SSL (SCRAM-SHA-512), the
//! StandardAuthorizer and the ACLs of `k8s/base/users.yaml`, every service as its own
//! principal. `tests/secured.sh` starts that broker (`deploy/kafka.sh start --secure`) and runs
//! these ignored tests against it with `FITSTREAM_SECURED_DIR` set to its data directory.
//!
//! The ACLs name the product's real topics and groups, so these tests use them (no prefix)
//! and begin by deleting them as the admin; they run one at a time.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fitstream::config::FitstreamConfig;
use fitstream_runtime::kafka::{KafkaConfig, admin};
use rand::Rng;

use common::*;

/// The secured broker's data directory (clients, CA).
fn secured_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("FITSTREAM_SECURED_DIR")
            .expect("tests/secured.sh runs these tests against deploy/kafka.sh start --secure"),
    )
}

/// A user's `FITSTREAM__KAFKA__*` settings, as `deploy/kafka.sh` writes them.
fn user_env(user: &str) -> Vec<(String, String)> {
    let path = secured_dir().join("clients").join(format!("{user}.env"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The connection settings without a principal, and each service's principal under
/// `kafka.services.<name>`: one process, three principals.
fn services_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = user_env("admin")
        .into_iter()
        .filter(|(k, _)| !k.contains("SASL_USERNAME") && !k.contains("SASL_PASSWORD"))
        .collect();
    env.push(("FITSTREAM__REGISTRY__PINNED_IDS".into(), "true".into()));
    for service in ["profiler", "segmenter", "planner"] {
        for (k, v) in user_env(&format!("fitstream-{service}")) {
            if let Some(p) = k.strip_prefix("FITSTREAM__KAFKA__PROPERTIES__SASL_") {
                env.push((
                    format!(
                        "FITSTREAM__KAFKA__SERVICES__{}__SASL_{p}",
                        service.to_uppercase()
                    ),
                    v,
                ));
            }
        }
    }
    env
}

/// The admin's client configuration, for the test's own setup.
fn admin_config() -> KafkaConfig {
    let mut k = KafkaConfig::default();
    for (key, v) in user_env("admin") {
        if key == "FITSTREAM__KAFKA__BOOTSTRAP_SERVERS" {
            k.bootstrap_servers = v;
        } else if let Some(p) = key.strip_prefix("FITSTREAM__KAFKA__PROPERTIES__") {
            k.properties.insert(p.to_lowercase(), v);
        }
    }
    k
}

fn config() -> FitstreamConfig {
    let mut kafka = admin_config();
    kafka.group_instance_id = Some("secured-1".into());
    FitstreamConfig {
        kafka,
        ..FitstreamConfig::default()
    }
}

/// Deletes the product's topics, the services' internal topics and their groups, then
/// creates the product's topics as the admin (retention and compaction off: the test reads
/// every version).
async fn fresh_secured(cfg: &FitstreamConfig) {
    let k = &cfg.kafka;
    let names: Vec<String> = admin::list_topics(k)
        .expect("topics")
        .into_iter()
        .filter(|n| {
            ["fitstream-", "iob.", "marketing.", "factory."]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if !refs.is_empty() {
        admin::delete_topics(k, &refs).await.expect("delete topics");
    }
    let groups = [
        "fitstream-profiler",
        "fitstream-segmenter",
        "fitstream-planner",
    ];
    // A static member of a run killed before (a failed test's) holds its group until its
    // session times out: wait for that, then delete.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match admin::delete_groups(k, &groups).await {
            Ok(_) => break,
            Err(e) if e.to_string().contains("NonEmptyGroup") && Instant::now() < deadline => {
                println!("groups still have members: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("delete groups: {e}"),
        }
    }
    let mut specs = cfg.topics.specs(&plants());
    for s in &mut specs {
        s.configs.insert("retention.ms".into(), "-1".into());
        if s.configs.get("cleanup.policy").map(String::as_str) == Some("compact") {
            s.configs.insert("cleanup.policy".into(), "delete".into());
        }
    }
    // Deleted topics linger a moment: retry creation until it takes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match admin::ensure_topics(k, &specs).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                println!("topics not ready yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("topics: {e}"),
        }
    }
}

/// `fitstream` against the secured broker (no registry there: fitstream's own ids).
fn fitstream(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let mut env = env.to_vec();
    env.push(("FITSTREAM__REGISTRY__PINNED_IDS".into(), "true".into()));
    fitstream_output(args, &env)
}

fn run_all(env: &[(String, String)], log: &str, to: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_fitstream"))
        .args([
            "run",
            "all",
            "--until-end",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", log)
        .env("FITSTREAM__KAFKA__GROUP_INSTANCE_ID", "secured-1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(log_file(to))
        .spawn()
        .expect("start run all")
}

/// `tail` of `topic` as `user` into `dir`.
fn tail_as(user: &str, topic: &str, dir: &Path) {
    let file = dir.join(format!("{topic}.jsonl"));
    succeeded(
        fitstream(
            &[
                "tail",
                topic,
                "--until-idle",
                "5",
                "--out",
                &file.to_string_lossy(),
            ],
            &user_env(user),
        ),
        &format!("tail {topic} as {user}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the secured broker: tests/secured.sh"]
async fn secured_every_service_its_own_principal_through_kill_9_equals_the_embedded_run() {
    let cfg = config();
    fresh_secured(&cfg).await;
    // Kept when the test fails: both runs' logs, the replay and what the readers read.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("sim.jsonl");
    // In order per partition, as the other equivalence tests (see kafka_replay.rs).
    let n = write_in_order_simulation(&input, 6 * 3_600);
    let input_arg = input.to_string_lossy().into_owned();
    let replayed = dir.path().join("replay");
    succeeded(
        fitstream(
            &[
                "replay",
                "--input",
                &input_arg,
                "--format",
                "jsonl",
                "--out",
                &replayed.to_string_lossy(),
            ],
            &[],
        ),
        "replay",
    );
    // The collectors' side: the admin writes the input.
    succeeded(
        fitstream(
            &["produce", "--input", &input_arg, "--format", "jsonl"],
            &user_env("admin"),
        ),
        "produce as admin",
    );

    let env = services_env();
    let mut first = Stopped(run_all(
        &env,
        "fitstream_runtime=info,warn",
        &dir.path().join("first.log"),
    ));
    // Mid-run at any speed, anywhere in the bounded run's two phases (the profiler with the
    // segmenter, then the planner): once a random 5 % to 95 % of the input is committed by
    // the profiler or by the planner, or just as the profiler committed the last of it while the
    // segmenter still reads its profiles (where CI's run of 2026-12-07 was killed: a fixed
    // delay may also kill the run before it committed anything).
    let mut rng = rand::rng();
    let (service, at) = match rng.random_range(0..3) {
        0 => ("profiler", rng.random_range(0.05..0.95)),
        // (The input's end offsets count transaction markers too: 1.0 may never show.)
        1 => ("profiler", 0.999),
        _ => ("planner", rng.random_range(0.05..0.95)),
    };
    let done = until_progress(&cfg, &mut first.0, service, at, "run all");
    kill_mid_run(&mut first.0, "run all as three principals");
    println!("SIGKILL at {done:.2} of the input committed by the {service}");
    let started = Instant::now();
    let second_log = dir.path().join("second.log");
    let mut second = Stopped(run_all(&env, "fitstream_runtime=info,warn", &second_log));
    let status = wait_for(&mut second.0, Duration::from_secs(600));
    let log = std::fs::read_to_string(&second_log).expect("the second run's log");
    assert!(status.success(), "the restarted run failed: {log}");
    let restored: u64 = log
        .lines()
        .filter(|l| l.contains("task restored"))
        .filter_map(|l| l.split("restored=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    println!(
        "{n} records; the run after kill -9 took {:.1} s and restored {restored} changelog records",
        started.elapsed().as_secs_f64()
    );
    assert!(restored > 0, "the restart restored no state: {log}");

    // The readers: marketing reads marketing.*, operations the build orders, each as its own
    // principal in a throwaway group of the readers' prefix; the admin reads the iob.* topics.
    let tailed = dir.path().join("kafka");
    std::fs::create_dir_all(&tailed).expect("dir");
    let t = &cfg.topics;
    let mut readers: BTreeMap<String, &str> = BTreeMap::new();
    for topic in [
        &t.segment_assignments,
        &t.segment_profiles,
        &t.cart_abandonment,
    ] {
        readers.insert(topic.clone(), "fitstream-marketing-reader");
    }
    for plant in plants() {
        readers.insert(t.build_orders_topic(&plant), "fitstream-operations-reader");
    }
    for topic in [&t.profiles, &t.segment_models, &t.dead_letter] {
        readers.insert(topic.clone(), "admin");
    }
    let mut total = 0;
    let mut differing = Vec::new();
    for (topic, user) in &readers {
        tail_as(user, topic, &tailed);
        match compare_records(
            &format!("{topic} as {user}"),
            read_jsonl(&replayed, topic),
            read_jsonl(&tailed, topic),
            normalise,
        ) {
            Ok(n) => total += n,
            Err(e) => differing.push(e),
        }
    }
    if !differing.is_empty() {
        let kept = dir.keep();
        panic!("{} (runs kept in {})", differing.join("; "), kept.display());
    }
    assert!(total > 0);
    println!("{total} output records equal, read by their readers' principals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the secured broker: tests/secured.sh"]
async fn a_denied_principal_is_told_what_it_may_not_do() {
    let cfg = config();
    fresh_secured(&cfg).await;
    // The planner run as the marketing reader: told at start, not retried.
    let started = Instant::now();
    let out = fitstream(
        &[
            "run",
            "planner",
            "--until-end",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &user_env("fitstream-marketing-reader"),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "run planner as the marketing reader ({:.1} s): {err}",
        started.elapsed().as_secs_f64()
    );
    assert!(!out.status.success());
    assert!(
        err.contains("User:fitstream-marketing-reader may not Describe topic "),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );

    // A reader in a group outside its prefix.
    let out = fitstream(
        &[
            "tail",
            &cfg.topics.segment_assignments,
            "--group",
            "other-group",
            "--until-idle",
            "5",
        ],
        &user_env("fitstream-marketing-reader"),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("tail --group other-group as the marketing reader: {err}");
    assert!(!out.status.success());
    assert!(
        err.contains("User:fitstream-marketing-reader may not Read group other-group"),
        "{err}"
    );

    // A wrong password: the cause, within seconds.
    let started = Instant::now();
    let mut env = user_env("fitstream-planner");
    for (k, v) in &mut env {
        if k.ends_with("SASL_PASSWORD") {
            *v = "not-the-password".into();
        }
    }
    let out = fitstream(
        &[
            "run",
            "planner",
            "--until-end",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "run planner with a wrong password ({:.1} s): {err}",
        started.elapsed().as_secs_f64()
    );
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cannot connect to {} as User:fitstream-planner",
            cfg.kafka.bootstrap_servers
        )) && err.contains("Authentication failed"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
