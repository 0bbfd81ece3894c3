//! Health from the services' own metrics endpoints (`--metrics URL`): watermarks, lag,
//! readiness and broker connections, read from the Prometheus text each service serves.

use std::collections::BTreeMap;
use std::time::Duration;

/// What one service's `/metrics` says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceHealth {
    /// The endpoint.
    pub url: String,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
    /// `fitstream_ready`: state restored and processing.
    pub ready: Option<bool>,
    /// Watermark per stage, Unix seconds.
    pub watermarks: BTreeMap<String, f64>,
    /// Consumer lag per topic, records (summed over partitions).
    pub lag: BTreeMap<String, f64>,
    /// Records read.
    pub records_in: f64,
    /// Records dead-lettered.
    pub dead_letters: f64,
    /// Tasks still restoring.
    pub restore_pending: f64,
    /// Brokers connected, of those known.
    pub brokers_up: (u32, u32),
}

/// Reads the health out of a Prometheus text exposition.
pub fn parse(url: &str, text: &str) -> ServiceHealth {
    use prometheus_parse::Value as V;
    let mut h = ServiceHealth {
        url: url.to_owned(),
        ..ServiceHealth::default()
    };
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = match prometheus_parse::Scrape::parse(lines) {
        Ok(s) => s,
        Err(e) => {
            h.error = Some(format!("not Prometheus text: {e}"));
            return h;
        }
    };
    for s in scrape.samples {
        let value = match s.value {
            V::Counter(v) | V::Gauge(v) | V::Untyped(v) => v,
            _ => continue,
        };
        let label = |name: &str| s.labels.get(name).unwrap_or("").to_owned();
        match s.metric.as_str() {
            "fitstream_ready" => h.ready = Some(value >= 1.0),
            "fitstream_watermark_timestamp_seconds" => {
                h.watermarks.insert(label("stage"), value);
            }
            "fitstream_consumer_lag_records" => {
                *h.lag.entry(label("topic")).or_default() += value;
            }
            "fitstream_records_in_total" => h.records_in += value,
            "fitstream_dead_letter_records_total" => h.dead_letters += value,
            "fitstream_restore_pending_tasks" => h.restore_pending += value,
            "fitstream_kafka_broker_up" => {
                h.brokers_up.1 += 1;
                if value >= 1.0 {
                    h.brokers_up.0 += 1;
                }
            }
            _ => {}
        }
    }
    h
}

/// Scrapes every endpoint at once, each within `timeout`.
pub async fn scrape_all(
    client: &reqwest::Client,
    urls: &[String],
    timeout: Duration,
) -> Vec<ServiceHealth> {
    let one = |url: String| async move {
        let body = async {
            let r = client.get(&url).timeout(timeout).send().await?;
            r.error_for_status()?.text().await
        };
        match body.await {
            Ok(text) => parse(&url, &text),
            Err(e) => ServiceHealth {
                url,
                error: Some(e.to_string()),
                ..ServiceHealth::default()
            },
        }
    };
    futures::future::join_all(urls.iter().cloned().map(one)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_comes_from_the_services_metric_names() {
        // The names as the runtime registers them (a drift breaks this test).
        for name in [
            "fitstream_ready",
            "fitstream_watermark_timestamp_seconds",
            "fitstream_consumer_lag_records",
            "fitstream_records_in_total",
            "fitstream_dead_letter_records_total",
            "fitstream_restore_pending_tasks",
            "fitstream_kafka_broker_up",
        ] {
            assert!(
                fitstream_runtime::metrics::NAMES.contains(&name),
                "{name} is not a runtime metric"
            );
        }
        let text = "\
# TYPE fitstream_ready gauge
fitstream_ready 1
# TYPE fitstream_watermark_timestamp_seconds gauge
fitstream_watermark_timestamp_seconds{stage=\"planner\"} 1569888000
# TYPE fitstream_consumer_lag_records gauge
fitstream_consumer_lag_records{partition=\"0\",topic=\"a\"} 3
fitstream_consumer_lag_records{partition=\"1\",topic=\"a\"} 4
# TYPE fitstream_records_in_total counter
fitstream_records_in_total{stage=\"planner\",topic=\"a\"} 10
# TYPE fitstream_kafka_broker_up gauge
fitstream_kafka_broker_up{broker=\"1\"} 1
fitstream_kafka_broker_up{broker=\"2\"} 0
";
        let h = parse("u", text);
        assert_eq!(h.ready, Some(true));
        assert_eq!(h.watermarks["planner"], 1_569_888_000.0);
        assert_eq!(h.lag["a"], 7.0);
        assert_eq!(h.records_in, 10.0);
        assert_eq!(h.brokers_up, (1, 2));
        assert_eq!(h.error, None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_endpoint_that_does_not_answer_is_reported_not_fatal() {
        let client = reqwest::Client::new();
        let h = scrape_all(
            &client,
            &["http://127.0.0.1:9/metrics".to_owned()],
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(h.len(), 1);
        assert!(h[0].error.is_some());
    }
}
