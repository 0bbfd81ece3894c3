//! Deduplication by event id within a retention of event time (default 24 h).
//!
//! An id seen within the retention is a duplicate. Ids leave the memory when the watermark is
//! more than the retention past their event time; a duplicate arriving after that cannot be
//! recognised, and is judged by the lateness rules of the operators behind.

use std::collections::{BTreeSet, HashMap};

use fitstream_contracts::EventTime;

/// Remembers ids for `retention_ms` of event time.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Deduplicator {
    retention_ms: i64,
    seen: HashMap<String, EventTime>,
    by_time: BTreeSet<(EventTime, String)>,
    /// Changes since the last [`Deduplicator::take_changes`]: id -> Some(time) added, None
    /// forgotten. A changelog writes these instead of the whole memory.
    #[serde(skip)]
    changes: HashMap<String, Option<EventTime>>,
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
            changes: HashMap::new(),
        }
    }

    /// True when `id` is new (and remembers it), false for a duplicate.
    pub fn first_time(&mut self, id: &str, t: EventTime) -> bool {
        if self.seen.contains_key(id) {
            return false;
        }
        self.seen.insert(id.to_owned(), t);
        self.by_time.insert((t, id.to_owned()));
        self.changes.insert(id.to_owned(), Some(t));
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
                self.changes.insert(id, None);
            }
        }
    }

    /// Changes since the last call, sorted by id: `Some(time)` remembered, `None` forgotten.
    pub fn take_changes(&mut self) -> Vec<(String, Option<EventTime>)> {
        let mut c: Vec<(String, Option<EventTime>)> = self.changes.drain().collect();
        c.sort();
        c
    }

    /// Puts back one id from a changelog (`None`: forgotten).
    pub fn restore_entry(&mut self, id: &str, t: Option<EventTime>) {
        if let Some(old) = self.seen.remove(id) {
            self.by_time.remove(&(old, id.to_owned()));
        }
        if let Some(t) = t {
            self.seen.insert(id.to_owned(), t);
            self.by_time.insert((t, id.to_owned()));
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

    /// Remembered ids with their times, for snapshots.
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

    #[test]
    fn changes_rebuild_the_same_memory() {
        let mut d = Deduplicator::new(1_000);
        let mut copy = Deduplicator::new(1_000);
        d.first_time("a", EventTime(100));
        d.first_time("b", EventTime(2_000));
        for (id, t) in d.take_changes() {
            copy.restore_entry(&id, t);
        }
        d.expire(EventTime(1_500));
        assert_eq!(d.take_changes(), vec![("a".to_owned(), None)]);
        copy.restore_entry("a", None);
        assert!(!copy.first_time("b", EventTime(2_000)));
        assert!(copy.first_time("a", EventTime(100)));
        assert!(d.take_changes().is_empty());
    }
}
