//! Repeated errors logged at a bounded rate. With its broker gone, a client reports the same
//! error at every poll: the group consumer's loop polls every 10 ms, and a planner logged 40
//! lines a second of it (64 KiB in 10 s; in CI on 2026-12-07 a test that read the planner's
//! stderr only once it ended blocked it there). An error is logged the first time, then at
//! most once per period, saying how many like it were left out since.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// Distinct messages remembered at most; past it the memory starts over (a message then
/// logs once more), so that messages that differ in every repeat cannot grow it.
const KINDS: usize = 64;

/// The last time each message was logged, and how many of it were left out since.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Repeats {
    /// Each message at most once per `every`.
    pub fn new(every: Duration) -> Repeats {
        Repeats {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `message` is logged at `now`: `Some(n)` with the `n` repeats left out since it
    /// was last logged, `None` when this one is left out.
    pub fn admit(&self, message: &str, now: Instant) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else {
            return Some(0);
        };
        if let Some((at, left_out)) = seen.get_mut(message) {
            if now.duration_since(*at) < self.every {
                *left_out += 1;
                return None;
            }
            let n = *left_out;
            *at = now;
            *left_out = 0;
            return Some(n);
        }
        if seen.len() >= KINDS {
            seen.clear();
        }
        seen.insert(message.to_owned(), (now, 0));
        Some(0)
    }
}

/// How often one error is logged at most while it repeats.
pub const EVERY: Duration = Duration::from_secs(10);

/// The context of a client whose librdkafka global errors are logged through [`Repeats`]
/// (rdkafka's default logs every one); otherwise rdkafka's defaults (deliveries unobserved).
#[derive(Debug)]
pub struct Quiet(pub Repeats);

impl Default for Quiet {
    fn default() -> Self {
        Quiet(Repeats::new(EVERY))
    }
}

impl Quiet {
    /// Logs a global error of librdkafka unless it repeats one logged within [`EVERY`].
    pub fn global_error(&self, error: &RdError, reason: &str) {
        if let Some(left_out) = self.0.admit(&error.to_string(), Instant::now()) {
            tracing::error!(repeats_left_out = left_out, "librdkafka: {error}: {reason}");
        }
    }
}

impl Quiet {
    /// Logs `message` as a warning unless it repeats one logged within [`EVERY`].
    pub fn warn(&self, message: &str) {
        if let Some(left_out) = self.0.admit(message, Instant::now()) {
            tracing::warn!(repeats_left_out = left_out, "{message}");
        }
    }
}

impl ClientContext for Quiet {
    fn error(&self, error: RdError, reason: &str) {
        self.global_error(&error, reason);
    }
}

impl ProducerContext for Quiet {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ConsumerContext for Quiet {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_logs_once_per_period_with_the_repeats_left_out() {
        let r = Repeats::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(r.admit("AllBrokersDown", t), Some(0));
        for i in 1..=99 {
            assert_eq!(
                r.admit("AllBrokersDown", t + Duration::from_millis(i * 50)),
                None
            );
        }
        assert_eq!(
            r.admit("another", t + Duration::from_secs(1)),
            Some(0),
            "apart"
        );
        assert_eq!(
            r.admit("AllBrokersDown", t + Duration::from_secs(10)),
            Some(99)
        );
        assert_eq!(r.admit("AllBrokersDown", t + Duration::from_secs(11)), None);
        assert_eq!(
            r.admit("AllBrokersDown", t + Duration::from_secs(20)),
            Some(1)
        );
    }

    #[test]
    fn messages_that_differ_every_time_keep_the_memory_bounded() {
        let r = Repeats::new(Duration::from_secs(10));
        let t = Instant::now();
        for i in 0..1_000 {
            assert_eq!(r.admit(&format!("error {i}"), t), Some(0));
        }
        assert!(r.seen.lock().expect("lock").len() <= KINDS);
    }
}
