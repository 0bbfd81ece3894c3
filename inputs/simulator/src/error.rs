//! Errors of history-file replay: one bad line is one error item, never the end of a replay.

/// A line of a history file that did not become an [`crate::InputRecord`].
///
/// Replays yield these as items and carry on with the next line (except after an I/O error,
/// which ends the replay). `line` is 1-based and counts the header of a CSV file.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading failed; the replay ends after this item.
    #[error("line {line}: read failed: {source}")]
    Io {
        /// Line being read.
        line: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The line is not valid JSON (or not UTF-8).
    #[error("line {line}: not valid JSON: {message}")]
    Json {
        /// Line number.
        line: u64,
        /// The parser's message.
        message: String,
    },
    /// Valid JSON or CSV, but not an input record (unknown topic and shape, missing fields).
    #[error("line {line}: not an input record: {message}")]
    NotARecord {
        /// Line number.
        line: u64,
        /// Why.
        message: String,
    },
    /// A CSV row that cannot be read at all (wrong number of fields, not UTF-8).
    #[error("line {line}: bad CSV row: {message}")]
    Csv {
        /// Line number.
        line: u64,
        /// The CSV reader's message.
        message: String,
    },
    /// A line longer than the format's bound ([`crate::lines`]): read past, not kept.
    #[error("line {line}: {bytes} bytes, longer than a line may be")]
    TooLong {
        /// Line number.
        line: u64,
        /// Its length.
        bytes: u64,
    },
    /// A field whose value cannot be used (unparseable time or price, unknown event type).
    #[error("line {line}: bad {field} `{value}`: {message}")]
    Field {
        /// Line number.
        line: u64,
        /// Column name.
        field: &'static str,
        /// The value found.
        value: String,
        /// What is wrong with it.
        message: &'static str,
    },
    /// An error item of a row that could not be read, found when the file was put in
    /// event-time order ([`crate::sort`]) and reported again in that order; `message` is the
    /// original error's.
    #[error("line {line}: {message}")]
    Sorted {
        /// Line number.
        line: u64,
        /// The original error's message.
        message: String,
    },
}

impl ReplayError {
    /// The 1-based line of the file the error is about.
    pub fn line(&self) -> u64 {
        match self {
            ReplayError::Io { line, .. }
            | ReplayError::Json { line, .. }
            | ReplayError::NotARecord { line, .. }
            | ReplayError::Csv { line, .. }
            | ReplayError::Field { line, .. }
            | ReplayError::TooLong { line, .. }
            | ReplayError::Sorted { line, .. } => *line,
        }
    }
}
