//! Event time: milliseconds since the Unix epoch, UTC, as in Avro's `timestamp-millis`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in event time, in milliseconds since 1970-01-01T00:00:00Z.
///
/// Event time is the time inside a record, never the Kafka record time and never the clock of
/// the machine that processes it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct EventTime(pub i64);

impl EventTime {
    /// The earliest event time fitstream accepts: 2000-01-01T00:00:00Z. Older is absurd.
    pub const MIN_VALID: EventTime = EventTime(946_684_800_000);
    /// The smallest representable time; the watermark before any record.
    pub const MIN: EventTime = EventTime(i64::MIN);
    /// The largest representable time; the watermark at the end of a finite input.
    pub const MAX: EventTime = EventTime(i64::MAX);

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time plus `ms` milliseconds, saturating at the ends of the range.
    pub fn plus(self, ms: i64) -> EventTime {
        EventTime(self.0.saturating_add(ms))
    }

    /// This time minus `ms` milliseconds, saturating at the ends of the range.
    pub fn minus(self, ms: i64) -> EventTime {
        EventTime(self.0.saturating_sub(ms))
    }

    /// Parses RFC 3339 (`2019-10-01T00:00:00Z`) or the REES46 form (`2019-10-01 00:00:00 UTC`).
    pub fn parse(text: &str) -> Option<EventTime> {
        let text = text.trim();
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return Some(EventTime(t.timestamp_millis()));
        }
        let naive = text.strip_suffix(" UTC").unwrap_or(text);
        chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| EventTime(t.and_utc().timestamp_millis()))
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EventTime::MIN => f.write_str("-inf"),
            EventTime::MAX => f.write_str("+inf"),
            EventTime(ms) => match chrono::DateTime::from_timestamp_millis(ms) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
                None => write!(f, "{ms}ms"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_to_the_same_instant() {
        let a = EventTime::parse("2019-10-01 00:00:07 UTC").expect("rees46 form");
        let b = EventTime::parse("2019-10-01T00:00:07Z").expect("rfc3339");
        assert_eq!(a, b);
        assert_eq!(a.millis(), 1_569_888_007_000);
        assert_eq!(a.to_string(), "2019-10-01T00:00:07.000Z");
        assert_eq!(EventTime::parse("yesterday"), None);
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(EventTime::MAX.plus(1), EventTime::MAX);
        assert_eq!(EventTime::MIN.minus(1), EventTime::MIN);
    }
}
