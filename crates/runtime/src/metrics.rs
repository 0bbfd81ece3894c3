//! Every Prometheus metric fitstream exports, registered once per process.
//!
//! Names follow Prometheus conventions (base units, `_total` on counters, `fitstream_`
//! prefix); labels are bounded (topic, partition, operator, store, reason, state, outcome),
//! never a customer id or SKU. [`NAMES`] lists them all; a test checks that the Grafana
//! dashboard in `deploy/grafana/` queries only these.

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The metrics of one process.
pub struct Metrics {
    /// The registry `/metrics` serves.
    pub registry: Registry,
    /// Records read, by topic.
    pub records_in: IntCounterVec,
    /// Records written, by topic.
    pub records_out: IntCounterVec,
    /// Late records, by operator.
    pub late_records: IntCounterVec,
    /// Dead-lettered records, by reason.
    pub dead_letters: IntCounterVec,
    /// Duplicates dropped, by operator.
    pub duplicates: IntCounterVec,
    /// Records a task took out of event-time order because an input it waited for stayed
    /// empty for `kafka.max_task_idle_ms` (live runs), by stage.
    pub enforced_order: IntCounterVec,
    /// Segment assignments that changed.
    pub assignments_changed: IntCounter,
    /// Records routed to no plant (sent to the default plant).
    pub unrouted: IntCounter,
    /// Build orders emitted, by request state.
    pub build_orders: IntCounterVec,
    /// Transactions, by outcome (committed, aborted).
    pub transactions: IntCounterVec,
    /// Time to process one record, by operator.
    pub processing_seconds: HistogramVec,
    /// Output time minus event time, by output topic.
    pub event_latency_seconds: HistogramVec,
    /// Duration of a transaction commit.
    pub transaction_commit_seconds: Histogram,
    /// Duration of a model fit.
    pub model_fit_seconds: Histogram,
    /// Consumer lag, by topic and partition (librdkafka's `consumer_lag`).
    pub consumer_lag: IntGaugeVec,
    /// Entries per state store.
    pub state_entries: IntGaugeVec,
    /// Approximate bytes per state store.
    pub state_bytes: IntGaugeVec,
    /// Duration of the last restore, by store, in milliseconds... exported as seconds.
    pub restore_seconds: prometheus::GaugeVec,
    /// Event-time watermark, by operator, as Unix seconds.
    pub watermark_seconds: prometheus::GaugeVec,
    /// Current segment model version.
    pub model_version: IntGauge,
    /// Segments in the current model.
    pub segments: IntGauge,
    /// Quality score of the current model.
    pub model_quality: prometheus::Gauge,
    /// 1 once state is restored and processing runs.
    pub ready: IntGauge,
    /// Tasks of the current assignment whose state is not yet restored.
    pub restore_pending: IntGauge,
    /// Changelog records read by restores.
    pub restore_records: prometheus::IntCounter,
    /// Broker connection state from librdkafka's statistics, by broker.
    pub kafka_broker_up: IntGaugeVec,
    /// Mean request round trip to each broker, from librdkafka's statistics.
    pub kafka_broker_rtt_seconds: prometheus::GaugeVec,
    /// Messages received by the consumer, from librdkafka's statistics.
    pub kafka_messages_received: IntCounter,
}

/// Every fitstream metric name, as Prometheus shows them (histograms by base name). The
/// process collector's `process_*` metrics come beside them.
pub const NAMES: [&str; 28] = [
    "fitstream_records_in_total",
    "fitstream_records_out_total",
    "fitstream_late_records_total",
    "fitstream_dead_letter_records_total",
    "fitstream_duplicates_total",
    "fitstream_assignments_changed_total",
    "fitstream_unrouted_records_total",
    "fitstream_build_orders_total",
    "fitstream_transactions_total",
    "fitstream_processing_seconds",
    "fitstream_event_latency_seconds",
    "fitstream_transaction_commit_seconds",
    "fitstream_model_fit_seconds",
    "fitstream_consumer_lag_records",
    "fitstream_state_entries",
    "fitstream_state_bytes",
    "fitstream_restore_seconds",
    "fitstream_watermark_timestamp_seconds",
    "fitstream_model_version",
    "fitstream_segments",
    "fitstream_model_quality",
    "fitstream_ready",
    "fitstream_restore_pending_tasks",
    "fitstream_restore_records_total",
    "fitstream_kafka_broker_up",
    "fitstream_kafka_broker_rtt_seconds",
    "fitstream_kafka_messages_received_total",
    "fitstream_build_info",
];

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn fgauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
    let g = prometheus::GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    #[allow(clippy::expect_used)] // metric definitions are constants: a failure is a bug
    pub fn new() -> Metrics {
        let r = Registry::new();
        // The process's CPU, memory, threads and file descriptors (`process_*`), from /proc.
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        let fast = prometheus::exponential_buckets(0.000_01, 4.0, 10).expect("buckets");
        let slow = prometheus::exponential_buckets(0.001, 4.0, 12).expect("buckets");
        let info = IntGaugeVec::new(
            Opts::new("fitstream_build_info", "Build information."),
            &["version"],
        )
        .expect("valid metric");
        r.register(Box::new(info.clone())).expect("registered once");
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let one = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let assignments_changed = one(
            "fitstream_assignments_changed_total",
            "Segment assignments that changed.",
        );
        let unrouted = one(
            "fitstream_unrouted_records_total",
            "Records that routed to no plant.",
        );
        let single_hist = |name: &str, help: &str, b: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(b))
                .expect("valid metric");
            r.register(Box::new(h.clone())).expect("registered once");
            h
        };
        let transaction_commit_seconds = single_hist(
            "fitstream_transaction_commit_seconds",
            "Kafka transaction commit duration.",
            slow.clone(),
        );
        let model_fit_seconds = single_hist(
            "fitstream_model_fit_seconds",
            "Segment model fit duration.",
            slow.clone(),
        );
        let int = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            r.register(Box::new(g.clone())).expect("registered once");
            g
        };
        let model_version = int("fitstream_model_version", "Current segment model version.");
        let segments = int("fitstream_segments", "Segments in the current model.");
        let ready = int(
            "fitstream_ready",
            "1 once state is restored and processing runs.",
        );
        let restore_pending = int(
            "fitstream_restore_pending_tasks",
            "Tasks of the current assignment whose state is not yet restored.",
        );
        let restore_records = one(
            "fitstream_restore_records_total",
            "Changelog records read by state restores.",
        );
        let model_quality = prometheus::Gauge::new(
            "fitstream_model_quality",
            "Quality score of the current model.",
        )
        .expect("valid metric");
        r.register(Box::new(model_quality.clone()))
            .expect("registered once");
        Metrics {
            records_in: counter(
                &r,
                "fitstream_records_in_total",
                "Records read.",
                &["topic"],
            ),
            records_out: counter(
                &r,
                "fitstream_records_out_total",
                "Records written.",
                &["topic"],
            ),
            late_records: counter(
                &r,
                "fitstream_late_records_total",
                "Records that arrived after their window closed.",
                &["service"],
            ),
            dead_letters: counter(
                &r,
                "fitstream_dead_letter_records_total",
                "Records sent to the dead-letter topic.",
                &["reason"],
            ),
            duplicates: counter(
                &r,
                "fitstream_duplicates_total",
                "Duplicate records dropped.",
                &["service"],
            ),
            enforced_order: counter(
                &r,
                "fitstream_enforced_order_total",
                "Records taken before an empty input that had records waiting on the broker, after kafka.max_task_idle_ms.",
                &["stage"],
            ),
            assignments_changed,
            unrouted,
            build_orders: counter(
                &r,
                "fitstream_build_orders_total",
                "Build orders emitted.",
                &["state"],
            ),
            transactions: counter(
                &r,
                "fitstream_transactions_total",
                "Kafka transactions by outcome.",
                &["outcome"],
            ),
            processing_seconds: histogram(
                &r,
                "fitstream_processing_seconds",
                "Time to process one record.",
                &["stage"],
                fast,
            ),
            event_latency_seconds: histogram(
                &r,
                "fitstream_event_latency_seconds",
                "Output time minus event time.",
                &["topic"],
                slow,
            ),
            transaction_commit_seconds,
            model_fit_seconds,
            consumer_lag: gauge(
                &r,
                "fitstream_consumer_lag_records",
                "Consumer lag in records.",
                &["topic", "partition"],
            ),
            state_entries: gauge(
                &r,
                "fitstream_state_entries",
                "Entries in a service's state stores (its tasks on this instance).",
                &["service"],
            ),
            state_bytes: gauge(
                &r,
                "fitstream_state_bytes",
                "Approximate bytes in a service's state stores (its tasks on this instance).",
                &["service"],
            ),
            restore_seconds: fgauge(
                &r,
                "fitstream_restore_seconds",
                "Duration of a stage's last task restore.",
                &["stage"],
            ),
            watermark_seconds: fgauge(
                &r,
                "fitstream_watermark_timestamp_seconds",
                "A stage's event-time watermark, as a Unix timestamp in seconds.",
                &["stage"],
            ),
            restore_pending,
            restore_records,
            kafka_broker_up: gauge(
                &r,
                "fitstream_kafka_broker_up",
                "1 while librdkafka's statistics show the broker connection up.",
                &["broker"],
            ),
            kafka_broker_rtt_seconds: fgauge(
                &r,
                "fitstream_kafka_broker_rtt_seconds",
                "Mean request round trip to a broker over the last statistics window.",
                &["broker"],
            ),
            kafka_messages_received: one(
                "fitstream_kafka_messages_received_total",
                "Messages the consumer received from the brokers (librdkafka statistics).",
            ),
            model_version,
            segments,
            model_quality,
            ready,
            registry: r,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    /// What a client's librdkafka statistics say: each broker connection's state and round
    /// trip, and the messages received since the previous statistics (`last` keeps the
    /// client's running total; internal brokers, id -1, are left out).
    pub fn observe_client(
        &self,
        statistics: &rdkafka::Statistics,
        last: &std::sync::atomic::AtomicI64,
    ) {
        for b in statistics.brokers.values().filter(|b| b.nodeid >= 0) {
            self.kafka_broker_up
                .with_label_values(&[&b.nodename])
                .set(i64::from(b.state == "UP"));
            if let Some(rtt) = &b.rtt {
                self.kafka_broker_rtt_seconds
                    .with_label_values(&[&b.nodename])
                    .set(rtt.avg as f64 / 1e6);
            }
        }
        let previous = last.swap(statistics.rxmsgs, std::sync::atomic::Ordering::SeqCst);
        if statistics.rxmsgs > previous {
            self.kafka_messages_received
                .inc_by((statistics.rxmsgs - previous) as u64);
        }
    }

    /// Partitions this instance no longer owns: their lag series go, so that a dashboard
    /// summing the lag does not count a revoked partition's last value forever.
    pub fn forget_partitions<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        for (topic, p) in partitions {
            let _ = self
                .consumer_lag
                .remove_label_values(&[topic, &p.to_string()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lists_exactly_what_is_registered() {
        let m = Metrics::new();
        // Touch labelled families so that they appear in the exposition.
        m.records_in.with_label_values(&["t"]).inc();
        m.records_out.with_label_values(&["t"]).inc();
        m.late_records.with_label_values(&["o"]).inc();
        m.dead_letters.with_label_values(&["decode"]).inc();
        m.duplicates.with_label_values(&["o"]).inc();
        m.build_orders.with_label_values(&["Released"]).inc();
        m.transactions.with_label_values(&["committed"]).inc();
        m.processing_seconds.with_label_values(&["o"]).observe(0.1);
        m.event_latency_seconds
            .with_label_values(&["t"])
            .observe(0.1);
        m.consumer_lag.with_label_values(&["t", "0"]).set(1);
        m.state_entries.with_label_values(&["s"]).set(1);
        m.state_bytes.with_label_values(&["s"]).set(1);
        m.restore_seconds.with_label_values(&["s"]).set(1.0);
        m.watermark_seconds.with_label_values(&["o"]).set(1.0);
        m.kafka_broker_up.with_label_values(&["b"]).set(1);
        m.kafka_broker_rtt_seconds
            .with_label_values(&["b"])
            .set(0.001);
        let gathered: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let mut registered: Vec<&String> = gathered
            .iter()
            .filter(|n| n.starts_with("fitstream_"))
            .collect();
        registered.sort();
        let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        names.sort();
        assert_eq!(registered, names.iter().collect::<Vec<_>>());
        for process in ["process_cpu_seconds_total", "process_resident_memory_bytes"] {
            assert!(gathered.iter().any(|n| n == process), "{process}");
        }
        assert!(
            m.render()
                .contains("fitstream_records_in_total{topic=\"t\"} 1")
        );
    }

    #[test]
    fn a_revoked_partition_s_lag_series_goes() {
        let m = Metrics::new();
        m.consumer_lag.with_label_values(&["t", "0"]).set(5);
        m.consumer_lag.with_label_values(&["t", "1"]).set(7);
        m.forget_partitions([("t", 0), ("never-seen", 3)]);
        let text = m.render();
        assert!(!text.contains("partition=\"0\""), "{text}");
        assert!(
            text.contains("fitstream_consumer_lag_records{partition=\"1\",topic=\"t\"} 7"),
            "{text}"
        );
    }

    #[test]
    fn the_dashboards_metric_list_is_what_the_code_registers() {
        // deploy/validate checks every Grafana query against this file; this test ties the file
        // to the code.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/grafana/metrics.txt"
        );
        let text = std::fs::read_to_string(path).expect("deploy/grafana/metrics.txt");
        let mut listed: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        listed.sort();
        let mut names = NAMES.to_vec();
        names.sort();
        assert_eq!(listed, names);
    }
}
