//! `fitstream tail` as a subscriber uses it, on a real broker: it ends cleanly when its reader
//! goes away (`tail ... | head`), reads only what comes with `--from-end`, and resumes where
//! it stopped with `--group`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fitstream::config::FitstreamConfig;
use fitstream_runtime::kafka::writer::{OutRecord, TopicWriter};

use common::*;

fn write(cfg: &FitstreamConfig, from: usize, n: usize) {
    let mut w = TopicWriter::new(&cfg.kafka).expect("a producer");
    for i in from..from + n {
        w.send(&OutRecord {
            topic: cfg.topics.clickstream.clone(),
            key: Some(format!("k-{i}").into_bytes()),
            value: Some(format!("record {i}").into_bytes()),
            partition: Some(0),
            ..OutRecord::default()
        })
        .expect("sent");
    }
    w.flush().expect("flushed");
}

/// `fitstream tail <clickstream> <args>` to its end: its standard output's lines.
fn tail(cfg: &FitstreamConfig, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_fitstream"))
        .args(["tail", &cfg.topics.clickstream, "--bootstrap", &bootstrap()])
        .args(args)
        .envs(env_of(cfg))
        .output()
        .expect("tail runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_ends_on_a_closed_pipe_reads_from_the_end_and_resumes_as_a_group() {
    let id = run_id();
    let cfg = fresh(&id).await;
    write(&cfg, 0, 5);

    // Following the topic, with a reader that takes one line and goes away.
    let mut child = Command::new(env!("CARGO_BIN_EXE_fitstream"))
        .args(["tail", &cfg.topics.clickstream, "--bootstrap", &bootstrap()])
        .envs(env_of(&cfg))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tail starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a line");
    assert!(first.contains("\"k-0\""), "{first}");
    // The pipe is closed now; the next record written makes tail notice.
    write(&cfg, 5, 3);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            panic!("tail still runs a minute after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "tail ended with {status}");

    // From the end: what was there before is not read.
    let from_end = tail(&cfg, &["--from-end", "--until-idle", "3"]);
    assert!(from_end.is_empty(), "{from_end:?}");

    // As a group: everything once, then only what came since.
    let group = format!("tail-{id}");
    let first = tail(&cfg, &["--group", &group, "--until-idle", "3"]);
    assert_eq!(first.len(), 8, "{first:?}");
    // A group that read everything ends when idle, as an empty topic does, not after the
    // minute a reader gives partitions that hold records it cannot read (it took 63 s).
    let started = Instant::now();
    assert!(tail(&cfg, &["--group", &group, "--until-idle", "3"]).is_empty());
    let took = started.elapsed();
    println!("a group with nothing new: {:.1} s", took.as_secs_f64());
    assert!(
        took < Duration::from_secs(30),
        "a group with nothing new read for {took:?}"
    );
    write(&cfg, 8, 2);
    let next = tail(&cfg, &["--group", &group, "--until-idle", "3"]);
    assert_eq!(next.len(), 2, "{next:?}");
    assert!(
        next[0].contains("\"k-8\"") && next[1].contains("\"k-9\""),
        "{next:?}"
    );
}
