//! Deduplication by event id within a retention of event time (default 24 h).
//!
//! An id seen within the retention is a duplicate. Ids leave the memory when the watermark is
//! more than the retention past their event time; a duplicate arriving after that cannot be
//! recognised, and is judged by the lateness rules of the operators behind.

use std::collections::{BTreeSet, HashMap};

use fitstream_contracts::EventTime;

/// Remembers ids for `retention_ms` of event time.
#[derive(Clone, Debug)]
pub struct Deduplicator {
    retention_ms: i64,
    seen: HashMap<String, EventTime>,
    by_time: BTreeSet<(EventTime, String)>,
}

impl Default for Deduplicator {
    fn default() -> Self {
        Deduplicator::new(Deduplicator::DEFAULT_RETENTION_MS)
    }
}

impl Deduplicator {
    /// Default retention: 24 hours.
    pub const DEFAULT_RETENTION_MS: i64 = 24 * 3_600_000;

    /// An empty memory.
    pub fn new(retention_ms: i64) -> Self {
        Deduplicator {
            retention_ms,
            seen: HashMap::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// True when `id` is new (and remembers it), false for a duplicate.
    pub fn first_time(&mut self, id: &str, t: EventTime) -> bool {
        if self.seen.contains_key(id) {
            return false;
        }
        self.seen.insert(id.to_owned(), t);
        self.by_time.insert((t, id.to_owned()));
        true
    }

    /// Forgets ids older than the retention at `watermark`.
    pub fn expire(&mut self, watermark: EventTime) {
        let horizon = watermark.minus(self.retention_ms);
        while let Some((t, _)) = self.by_time.first() {
            if *t >= horizon {
                break;
            }
            if let Some((_, id)) = self.by_time.pop_first() {
                self.seen.remove(&id);
            }
        }
    }

    /// Remembered ids.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Remembered ids with their times.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &EventTime)> {
        self.seen.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_retention_are_caught_and_forgotten_after() {
        let mut d = Deduplicator::new(1_000);
        assert!(d.first_time("a", EventTime(100)));
        assert!(!d.first_time("a", EventTime(100)));
        d.expire(EventTime(1_100));
        assert!(
            !d.first_time("a", EventTime(100)),
            "exactly at the retention it is still known"
        );
        d.expire(EventTime(1_101));
        assert!(d.is_empty());
        assert!(d.first_time("a", EventTime(100)));
    }
}
