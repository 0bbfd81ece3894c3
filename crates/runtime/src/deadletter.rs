//! Dead-letter records: bad input is never dropped and never stops a service.
//!
//! A dead-lettered record keeps its key and value bytes unchanged and gains headers saying
//! why (semantics.md, "Dead-letter records"), readable like Kafka Connect's
//! `__connect.errors.*` headers:
//! `fitstream.error.reason`, `fitstream.error.message`, `fitstream.source.topic`,
//! `fitstream.source.partition`, `fitstream.source.offset`, `fitstream.service`,
//! `fitstream.error.time` (wall-clock milliseconds of the failure, as a decimal string).
//!
//! Bounded: a dead letter always fits the broker's message size limit, whatever came in. A
//! key or value longer than [`MAX_KEY_BYTES`] / [`MAX_VALUE_BYTES`] keeps its first bytes and
//! says its original size in `fitstream.error.key.bytes` / `fitstream.error.value.bytes`; the
//! message is cut at [`MAX_MESSAGE_BYTES`] (on a character boundary).

use serde::{Deserialize, Serialize};

/// The most key bytes a dead letter copies.
pub const MAX_KEY_BYTES: usize = 1_024;
/// The most value bytes a dead letter copies (a 1 MB broker limit leaves room for the key and
/// headers).
pub const MAX_VALUE_BYTES: usize = 512 * 1_024;
/// The longest message a dead letter carries, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1_024;

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
    /// Far ahead of everything else (the wall clock live, the latest event time of the
    /// task's inputs in a bounded run): it would move the watermark past every other record.
    Future,
    /// Watermark marker headers on a record that no upstream task of the reading task wrote
    /// (an input topic, or a writer the runtime does not know): time is never moved from
    /// outside.
    MarkerOnInput,
    /// A line of a history file (`replay`, `produce`) that is not a record at all (not CSV
    /// or JSON of the format, a field that does not parse, longer than a line may be): the
    /// value is the raw line, the source offset its line number.
    Parse,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 8] = [
        Reason::Decode,
        Reason::Schema,
        Reason::Validation,
        Reason::Late,
        Reason::TooLarge,
        Reason::Future,
        Reason::MarkerOnInput,
        Reason::Parse,
    ];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Decode => "decode",
            Reason::Schema => "schema",
            Reason::Validation => "validation",
            Reason::Late => "late",
            Reason::TooLarge => "too-large",
            Reason::Future => "future",
            Reason::MarkerOnInput => "marker-on-input",
            Reason::Parse => "parse",
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
    /// The original sizes of a key and a value that were cut to the bounds.
    pub cut: Cut,
}

/// The original sizes of what a dead letter cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    /// The key's original size, when it was cut.
    pub key_bytes: Option<usize>,
    /// The value's original size, when it was cut.
    pub value_bytes: Option<usize>,
}

/// At most `max` bytes of `bytes`, and the original size when it was longer.
fn bounded(bytes: Option<&[u8]>, max: usize) -> (Option<Vec<u8>>, Option<usize>) {
    match bytes {
        Some(b) if b.len() > max => (Some(b[..max].to_vec()), Some(b.len())),
        b => (b.map(<[u8]>::to_vec), None),
    }
}

impl DeadLetter {
    /// The dead letter of a record with `key` and `value`, both kept up to their bounds, and
    /// a message cut to its bound.
    pub fn new(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        reason: Reason,
        message: String,
        source: Source,
        service: &str,
        failed_at_ms: i64,
    ) -> DeadLetter {
        let (key, key_bytes) = bounded(key, MAX_KEY_BYTES);
        let (value, value_bytes) = bounded(value, MAX_VALUE_BYTES);
        let mut message = message;
        if message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES - 3;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
        DeadLetter {
            key,
            value,
            reason,
            message,
            source,
            service: service.to_owned(),
            failed_at_ms,
            cut: Cut {
                key_bytes,
                value_bytes,
            },
        }
    }

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
        .into_iter()
        .chain(
            self.cut
                .key_bytes
                .map(|n| ("fitstream.error.key.bytes", n.to_string())),
        )
        .chain(
            self.cut
                .value_bytes
                .map(|n| ("fitstream.error.value.bytes", n.to_string())),
        )
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_is_bounded_and_says_what_it_cut() {
        let key = vec![b'k'; MAX_KEY_BYTES + 5];
        let value = vec![7u8; MAX_VALUE_BYTES * 3];
        let message = "é".repeat(MAX_MESSAGE_BYTES);
        let dl = DeadLetter::new(
            Some(&key),
            Some(&value),
            Reason::TooLarge,
            message,
            Source::default(),
            "planner",
            0,
        );
        assert_eq!(dl.key.as_ref().map(Vec::len), Some(MAX_KEY_BYTES));
        assert_eq!(dl.value.as_ref().map(Vec::len), Some(MAX_VALUE_BYTES));
        assert!(dl.message.len() <= MAX_MESSAGE_BYTES && dl.message.ends_with("é..."));
        let headers = dl.headers();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header("fitstream.error.key.bytes"),
            Some((MAX_KEY_BYTES + 5).to_string())
        );
        assert_eq!(
            header("fitstream.error.value.bytes"),
            Some((MAX_VALUE_BYTES * 3).to_string())
        );

        let small = DeadLetter::new(
            Some(b"k"),
            Some(b"v"),
            Reason::Decode,
            "m".into(),
            Source::default(),
            "planner",
            0,
        );
        assert_eq!(
            (small.key.clone(), small.value.clone()),
            (Some(b"k".to_vec()), Some(b"v".to_vec()))
        );
        assert_eq!(small.headers().len(), 7, "nothing cut, nothing said");
    }
}
