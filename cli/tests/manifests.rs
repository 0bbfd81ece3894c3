//! The Kubernetes manifests and the code agree on time: the grace period a pod gets on
//! SIGTERM covers the bounded drain (`kafka.shutdown_timeout_ms`, as the manifests' own
//! configuration sets it) with room for closing the clients; the liveness timeout outlasts the
//! longest broker call of a commit, so a slow commit is not taken for a wedged loop.

use std::path::Path;

fn k8s() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../k8s"))
}

/// Closing the consumer and the producer and leaving the process, after the drain.
const CLOSE_MARGIN_MS: u64 = 15_000;

#[test]
fn the_grace_period_covers_the_bounded_drain() {
    let cfg = fitstream::config::load(Some(&k8s().join("base/config/fitstream.toml")))
        .expect("the manifests' configuration loads");
    let mut checked = 0;
    for service in ["profiler", "segmenter", "planner"] {
        let path = k8s().join(format!("base/{service}.yaml"));
        let text = std::fs::read_to_string(&path).expect("manifest");
        assert!(
            !text.contains("FITSTREAM__KAFKA__SHUTDOWN_TIMEOUT_MS"),
            "{service}: the drain is set in config/fitstream.toml, not per pod"
        );
        let grace: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
            .unwrap_or_else(|| panic!("{service}: no terminationGracePeriodSeconds"))
            .trim()
            .parse()
            .expect("seconds");
        assert!(
            grace * 1000 >= cfg.kafka.shutdown_timeout_ms + CLOSE_MARGIN_MS,
            "{service}: terminationGracePeriodSeconds {grace} s leaves no room for a drain of {} ms",
            cfg.kafka.shutdown_timeout_ms
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
    // The longest broker calls of one commit: sending offsets (30 s) and committing (60 s).
    assert!(
        cfg.kafka.liveness_timeout_ms > 90_000,
        "kafka.liveness_timeout_ms {} would take a slow commit for a wedged loop",
        cfg.kafka.liveness_timeout_ms
    );
}
