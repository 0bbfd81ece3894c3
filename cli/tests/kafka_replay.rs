//! The command-line contract end to end on a real broker, through the binary: `replay`
//! (embedded) against `produce`, `run all --until-end` and `tail` (Kafka).
//!
//! Each run uses its own topics, consumer group and internal topics (random suffix).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The command-line contract end to end, through the binary: `replay` of a JSON-lines file
/// (embedded), and `produce` of the same file, `run all --until-end` and `tail` of every
/// output topic (Kafka, read_committed) give the same records on every output topic:
/// profiles, segment models and profiles, assignments, build orders, abandonments and dead
/// letters. The input is the simulator's default, defects included: records out of order by
/// up to 2 s, 0.1 % of them an hour or two late, 1 % duplicated, 0.1 % malformed (whether a
/// record is late depends on the order a task takes its inputs in: event time, in both modes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_run_all_and_tail_match_replay() {
    let id = run_id();
    let dir = std::env::temp_dir().join(format!("fitstream-cli-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("sim.jsonl");
    let n = write_default_simulation(&input, 6 * 3_600);
    equivalence(&id, &dir, &input, "jsonl", n, true).await;
}

/// The same on the bundled REES46 excerpt: real history from 2019, in time order, with 24
/// days of silence between its two blocks, through topics whose retention keeps it
/// (`produce` refuses topics that would delete it). The future rule judges a record against
/// the latest event time of the task's inputs, not against its own partition's last record:
/// judged that way, 2,146 records of the second block were refused as an hour ahead of
/// quiet partitions on Kafka while `replay` took them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_run_all_and_tail_match_replay_on_the_rees46_excerpt() {
    let id = run_id();
    let dir = std::env::temp_dir().join(format!("fitstream-cli-{id}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/rees46/cosmetics-2019-10.csv");
    let n = std::fs::read_to_string(&input)
        .expect("the excerpt")
        .lines()
        .count() as u64
        - 1;
    equivalence(&id, &dir, &input, "rees46", n, false).await;
}

/// `replay` of `input` against `produce` + `run all --until-end` + `tail` of every output
/// topic: the same records on each; `dead_letters` says whether the input has bad records.
async fn equivalence(id: &str, dir: &Path, input: &Path, format: &str, n: u64, dead_letters: bool) {
    // Every version on the table topics: compaction would keep only the latest per key.
    let cfg = fresh_with(id, true).await;
    // Every command within ten minutes (a debug build takes about a minute at most): a run
    // that hangs fails the test with its log.
    let env = env_of(&cfg);
    let fitstream = |args: &[&str]| {
        let out = fitstream_within(args, &env, Duration::from_secs(600));
        assert!(
            out.status.success(),
            "fitstream {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let input_arg = input.to_string_lossy().into_owned();
    let replayed = dir.join("replay");
    fitstream(&[
        "replay",
        "--input",
        &input_arg,
        "--format",
        format,
        "--out",
        &replayed.to_string_lossy(),
    ]);
    let bootstrap = bootstrap();
    print!(
        "{}",
        fitstream(&[
            "produce",
            "--input",
            &input_arg,
            "--format",
            format,
            "--bootstrap",
            &bootstrap
        ])
    );
    let started = Instant::now();
    fitstream(&[
        "run",
        "all",
        "--until-end",
        "--bootstrap",
        &bootstrap,
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    println!(
        "{n} records: run all --until-end took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tailed = dir.join("kafka");
    std::fs::create_dir_all(&tailed).expect("dir");
    let plants = plants();
    let outputs: Vec<String> = cfg
        .topics
        .specs(&plants)
        .into_iter()
        .map(|s| s.name)
        .filter(|t| *t != cfg.topics.clickstream && *t != cfg.topics.purchases)
        .collect();
    for topic in &outputs {
        let file = tailed.join(format!("{topic}.jsonl"));
        fitstream(&[
            "tail",
            topic,
            "--bootstrap",
            &bootstrap,
            "--from-beginning",
            "--until-idle",
            "3",
            "--out",
            &file.to_string_lossy(),
        ]);
    }

    // Every output topic, record for record (partition, key, timestamp, decoded value; dead
    // letters with their headers but the wall-clock time of failure).
    let mut total = 0;
    for topic in &outputs {
        total += assert_same_records(
            topic,
            read_jsonl(&replayed, topic),
            read_jsonl(&tailed, topic),
            normalise,
        );
    }
    let mut expected = vec![
        &cfg.topics.profiles,
        &cfg.topics.segment_models,
        &cfg.topics.segment_assignments,
        &cfg.topics.cart_abandonment,
    ];
    if dead_letters {
        expected.push(&cfg.topics.dead_letter);
    }
    for topic in expected {
        assert!(
            !read_jsonl(&replayed, topic).is_empty(),
            "nothing on {topic}"
        );
    }
    println!("{total} output records equal");
    std::fs::remove_dir_all(dir).ok();
}
