//! Dead-letter records: bad input is never dropped and never stops a service.
//!
//! A dead-lettered record keeps its key and value bytes unchanged and gains headers saying
//! why (semantics.md, "Dead-letter records"), readable like Kafka Connect's
//! `__connect.errors.*` headers:
//! `fitstream.error.reason`, `fitstream.error.message`, `fitstream.source.topic`,
//! `fitstream.source.partition`, `fitstream.source.offset`, `fitstream.service`,
//! `fitstream.error.time` (wall-clock milliseconds of the failure, as a decimal string).

use serde::{Deserialize, Serialize};

/// Why a record was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Bytes that are not a framed Avro datum.
    Decode,
    /// Unknown or incompatible schema, missing fields.
    Schema,
    /// Content that breaks a rule (negative quantity, absurd timestamp, ...).
    Validation,
    /// Arrived after the window it belongs to closed.
    Late,
    /// Larger than the configured limit.
    TooLarge,
    /// Watermark marker headers on a record that no upstream task of the reading task wrote
    /// (an input topic, or a writer the runtime does not know): time is never moved from
    /// outside.
    MarkerOnInput,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 6] = [
        Reason::Decode,
        Reason::Schema,
        Reason::Validation,
        Reason::Late,
        Reason::TooLarge,
        Reason::MarkerOnInput,
    ];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Decode => "decode",
            Reason::Schema => "schema",
            Reason::Validation => "validation",
            Reason::Late => "late",
            Reason::TooLarge => "too-large",
            Reason::MarkerOnInput => "marker-on-input",
        }
    }

    /// Parses a header value or a codec reason.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Where a record came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset (-1 when unknown, e.g. a file line in embedded mode is given as its number).
    pub offset: i64,
}

/// A record on its way to the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Original key bytes.
    pub key: Option<Vec<u8>>,
    /// Original value bytes.
    pub value: Option<Vec<u8>>,
    /// Why.
    pub reason: Reason,
    /// Details for people.
    pub message: String,
    /// Where it came from.
    pub source: Source,
    /// Service that gave up on it.
    pub service: String,
    /// Wall-clock time of the failure, ms since the epoch (set by the driver).
    pub failed_at_ms: i64,
}

impl DeadLetter {
    /// The headers, in a fixed order.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("fitstream.error.reason", self.reason.as_str().to_owned()),
            ("fitstream.error.message", self.message.clone()),
            ("fitstream.source.topic", self.source.topic.clone()),
            (
                "fitstream.source.partition",
                self.source.partition.to_string(),
            ),
            ("fitstream.source.offset", self.source.offset.to_string()),
            ("fitstream.service", self.service.clone()),
            ("fitstream.error.time", self.failed_at_ms.to_string()),
        ]
    }
}
