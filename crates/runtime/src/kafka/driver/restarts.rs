//! How the driver meets its own failures: restarts forgiven after a healthy period, and the
//! errors no restart fixes (authorization, a duplicate instance id).

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;

use super::DriverConfig;
use crate::kafka::KafkaError;
use crate::task::Topology;

/// Failures of the driver in a row, forgiven after a healthy period: a driver that ran
/// [`Restarts::HEALTHY`] before it failed starts a new streak, so a service that meets a
/// broker fault once a day is never ended by it. Within a streak each restart waits longer
/// (1 s, doubling, at most 30 s); a streak ends the driver once it has lasted `limit`
/// (`kafka.unavailable_limit_ms`).
#[derive(Debug)]
pub(super) struct Restarts {
    pub(super) limit: Duration,
    pub(super) failures: u32,
    streak_since: Option<Instant>,
}

impl Restarts {
    const HEALTHY: Duration = Duration::from_secs(120);

    pub(super) fn new(limit: Duration) -> Restarts {
        Restarts {
            limit,
            failures: 0,
            streak_since: None,
        }
    }

    /// A run that lasted `ran_for` failed at `now`: the pause before the next run, or None
    /// when the streak has lasted the limit.
    pub(super) fn failed(&mut self, ran_for: Duration, now: Instant) -> Option<Duration> {
        if ran_for >= Self::HEALTHY {
            self.failures = 0;
            self.streak_since = None;
        }
        let since = *self.streak_since.get_or_insert(now);
        self.failures += 1;
        if now.duration_since(since) >= self.limit {
            return None;
        }
        Some(Duration::from_secs(1 << (self.failures - 1).min(5)).min(Duration::from_secs(30)))
    }
}

/// Whether `e` says another client took this one's identity: its static membership
/// (`FENCED_INSTANCE_ID`) or its transactional id (`PRODUCER_FENCED`, librdkafka's fatal
/// `_FENCED`).
pub(super) fn is_fencing(e: &RdError) -> bool {
    let code = match e {
        RdError::Transaction(t) => Some(t.code()),
        other => other.rdkafka_error_code(),
    };
    matches!(
        code,
        Some(
            RDKafkaErrorCode::FencedInstanceId
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::Fenced
        )
    )
}

/// `e` as a [`KafkaError::Denied`] naming the principal, the operation and the resource, if
/// it is an authorization failure: no restart fixes those.
pub(super) fn denied(
    e: &RdError,
    topology: &Topology,
    config: &DriverConfig,
) -> Option<KafkaError> {
    let code = match e {
        RdError::Transaction(t) => Some(t.code()),
        other => other.rdkafka_error_code(),
    }?;
    let group = topology.group_id();
    let (operation, resource) = match code {
        RDKafkaErrorCode::GroupAuthorizationFailed => (
            "Read".to_owned(),
            format!(
                "group {group} (its groups are {group}, {group}-restore-*, {group}-globals-*: one prefix)"
            ),
        ),
        RDKafkaErrorCode::TransactionalIdAuthorizationFailed => (
            "Write".to_owned(),
            format!("transactional id {group}-<instance> (prefix {group}-)"),
        ),
        RDKafkaErrorCode::ClusterAuthorizationFailed => {
            ("IdempotentWrite".to_owned(), "the cluster".to_owned())
        }
        RDKafkaErrorCode::TopicAuthorizationFailed => {
            let mut outputs: Vec<String> = topology
                .stages
                .iter()
                .flat_map(|s| s.repartitions.iter().cloned())
                .collect();
            outputs.push(config.dead_letter_topic.clone());
            (
                "Read or Write".to_owned(),
                format!(
                    "one of its topics (reads {}; writes its outputs, {})",
                    topology.input_topics().join(", "),
                    outputs.join(", ")
                ),
            )
        }
        _ => return None,
    };
    Some(KafkaError::Denied {
        principal: config.kafka.principal(),
        operation,
        resource,
        cause: format!("{code:?}: {e}"),
    })
}

/// A static member fenced twice within this long stops, as does one the group refuses for
/// this long (see [`run`]).
pub(super) const FENCED_AGAIN: Duration = Duration::from_secs(120);

/// How long a member refused for its `group.instance.id` waits before it joins again.
pub(super) const UNRELEASED_RETRY: Duration = Duration::from_secs(2);

/// Whether `e` says the group refused this member because another member holds its
/// `group.instance.id` (KIP-848's `UNRELEASED_INSTANCE_ID`).
pub(super) fn is_unreleased(e: &RdError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnreleasedInstanceId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_end_the_driver_after_the_limit_but_a_healthy_period_forgives_them() {
        let limit = Duration::from_secs(300);
        let quick = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut r = Restarts::new(limit);
        // Quick failures: pauses of 1, 2, 4, ... 30 s, until the streak has lasted the limit.
        let mut now = t0 + quick;
        let mut pauses = Vec::new();
        while let Some(pause) = r.failed(quick, now) {
            pauses.push(pause.as_secs());
            now += pause + quick;
        }
        assert_eq!(&pauses[..6], [1, 2, 4, 8, 16, 30]);
        assert!(pauses[6..].iter().all(|p| *p == 30), "{pauses:?}");
        assert!(now.duration_since(t0) >= limit, "not before the limit");
        assert!(now.duration_since(t0) < limit + Duration::from_secs(40));

        // A failure a day, each after a healthy run: never given up.
        let mut r = Restarts::new(limit);
        let mut now = t0;
        for day in 0..50 {
            now += Duration::from_secs(86_400);
            assert_eq!(
                r.failed(Duration::from_secs(86_000), now),
                Some(Duration::from_secs(1)),
                "day {day}"
            );
            assert_eq!(r.failures, 1);
            now += Duration::from_secs(1);
        }
    }
}
