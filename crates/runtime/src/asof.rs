//! The as-of stream-table join (semantics.md, "Stream-table join").
//!
//! The table keeps versions per key (`(valid from, value)`) for a retention period. A stream
//! record at `t` joins the version valid at `t`: the latest with timestamp `<= t`. While the
//! table may still be behind (`table watermark < t`), the stream record waits; it is released
//! when the table's watermark reaches `t`, or when the stream's watermark passes `t + grace`,
//! whichever comes first, and then joins with what is there. A left join emits `None` when no
//! version is found; records are emitted in event-time order of release.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use fitstream_contracts::EventTime;

/// A joined stream record: key, event time, the record, and the table version valid then.
#[derive(Clone, Debug, PartialEq)]
pub struct AsOf<K, S, V> {
    /// Key.
    pub key: K,
    /// The stream record's event time.
    pub t: EventTime,
    /// The stream record.
    pub record: S,
    /// The version valid at `t`, if any.
    pub version: Option<V>,
}

/// An as-of join of a stream (`S`) with a versioned table (`V`), both keyed by `K`.
#[derive(Clone, Debug)]
pub struct AsOfJoin<K, S, V> {
    grace_ms: i64,
    retention_ms: i64,
    versions: HashMap<K, BTreeMap<EventTime, V>>,
    table_watermark: EventTime,
    pending: BTreeMap<(EventTime, u64), (K, S)>,
    seq: u64,
}

impl<K: Clone + Eq + Hash, S, V: Clone> AsOfJoin<K, S, V> {
    /// Stream records wait at most `grace_ms` of stream time for the table; versions older
    /// than `retention_ms` behind the table watermark are dropped (the latest one before that
    /// horizon is kept, it is still valid).
    pub fn new(grace_ms: i64, retention_ms: i64) -> Self {
        AsOfJoin {
            grace_ms,
            retention_ms,
            versions: HashMap::new(),
            table_watermark: EventTime::MIN,
            pending: BTreeMap::new(),
            seq: 0,
        }
    }

    /// A table version: `value` is valid for `key` from `t` on.
    pub fn table(&mut self, key: K, t: EventTime, value: V) {
        self.versions.entry(key).or_default().insert(t, value);
    }

    /// The version of `key` valid at `t`.
    pub fn lookup(&self, key: &K, t: EventTime) -> Option<&V> {
        self.versions
            .get(key)?
            .range(..=t)
            .next_back()
            .map(|(_, v)| v)
    }

    /// The table's watermark moved: releases waiting records it now covers, and expires old
    /// versions.
    pub fn table_advance(&mut self, watermark: EventTime, out: &mut Vec<AsOf<K, S, V>>) {
        if watermark <= self.table_watermark {
            return;
        }
        self.table_watermark = watermark;
        self.release(|t| t <= watermark, out);
        let horizon = watermark.minus(self.retention_ms);
        for versions in self.versions.values_mut() {
            // Keep the latest version at or before the horizon: it is valid after it.
            let keep_from = versions.range(..=horizon).next_back().map(|(t, _)| *t);
            if let Some(k) = keep_from {
                *versions = versions.split_off(&k);
            }
        }
    }

    /// A stream record: joined now when the table has caught up with `t`, else it waits.
    pub fn stream(&mut self, key: K, t: EventTime, record: S, out: &mut Vec<AsOf<K, S, V>>) {
        if t <= self.table_watermark {
            let version = self.lookup(&key, t).cloned();
            out.push(AsOf {
                key,
                t,
                record,
                version,
            });
        } else {
            self.seq += 1;
            self.pending.insert((t, self.seq), (key, record));
        }
    }

    /// The stream's watermark moved: records waiting longer than the grace join with what is
    /// there.
    pub fn stream_advance(&mut self, watermark: EventTime, out: &mut Vec<AsOf<K, S, V>>) {
        let grace = self.grace_ms;
        self.release(|t| watermark >= t.plus(grace), out);
    }

    fn release(&mut self, ready: impl Fn(EventTime) -> bool, out: &mut Vec<AsOf<K, S, V>>) {
        while let Some(entry) = self.pending.first_entry() {
            let (t, _) = *entry.key();
            if !ready(t) {
                break;
            }
            let (key, record) = entry.remove();
            let version = self.lookup(&key, t).cloned();
            out.push(AsOf {
                key,
                t,
                record,
                version,
            });
        }
    }

    /// Waiting stream records and table versions held.
    pub fn len(&self) -> (usize, usize) {
        (
            self.pending.len(),
            self.versions.values().map(BTreeMap::len).sum(),
        )
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type J = AsOfJoin<&'static str, &'static str, i32>;

    #[test]
    fn the_version_valid_at_t_is_the_latest_at_or_before_t() {
        let mut j: J = AsOfJoin::new(60_000, i64::MAX / 4);
        let mut out = Vec::new();
        j.table("c", EventTime(100), 1);
        j.table("c", EventTime(200), 2);
        j.table_advance(EventTime(1_000), &mut out);
        j.stream("c", EventTime(99), "before any", &mut out);
        j.stream("c", EventTime(100), "exactly at v1", &mut out);
        j.stream("c", EventTime(199), "just before v2", &mut out);
        j.stream("c", EventTime(200), "exactly at v2", &mut out);
        j.stream("x", EventTime(500), "other key", &mut out);
        let got: Vec<(&str, Option<i32>)> = out.iter().map(|a| (a.record, a.version)).collect();
        assert_eq!(
            got,
            vec![
                ("before any", None),
                ("exactly at v1", Some(1)),
                ("just before v2", Some(1)),
                ("exactly at v2", Some(2)),
                ("other key", None)
            ]
        );
    }

    #[test]
    fn a_record_ahead_of_the_table_waits_until_the_table_reaches_it() {
        let mut j: J = AsOfJoin::new(60_000, i64::MAX / 4);
        let mut out = Vec::new();
        j.table_advance(EventTime(100), &mut out);
        j.stream("c", EventTime(150), "p", &mut out);
        assert!(
            out.is_empty(),
            "the table may still get a version at or before 150"
        );
        j.table("c", EventTime(140), 7);
        j.table_advance(EventTime(149), &mut out);
        assert!(out.is_empty());
        j.table_advance(EventTime(150), &mut out);
        assert_eq!(
            out,
            vec![AsOf {
                key: "c",
                t: EventTime(150),
                record: "p",
                version: Some(7)
            }]
        );
    }

    #[test]
    fn the_grace_bounds_the_wait_exactly() {
        let mut j: J = AsOfJoin::new(60_000, i64::MAX / 4);
        let mut out = Vec::new();
        j.stream("c", EventTime(1_000), "p", &mut out);
        j.stream_advance(EventTime(60_999), &mut out);
        assert!(out.is_empty(), "one ms before t + grace");
        j.stream_advance(EventTime(61_000), &mut out);
        assert_eq!(
            out,
            vec![AsOf {
                key: "c",
                t: EventTime(1_000),
                record: "p",
                version: None
            }]
        );
        assert!(j.is_empty());
    }

    #[test]
    fn retention_keeps_the_version_still_valid_at_the_horizon() {
        let mut j: J = AsOfJoin::new(0, 1_000);
        let mut out = Vec::new();
        j.table("c", EventTime(100), 1);
        j.table("c", EventTime(200), 2);
        j.table("c", EventTime(5_000), 3);
        j.table_advance(EventTime(5_000), &mut out);
        assert_eq!(
            j.len().1,
            2,
            "v1 is gone; v2 is still valid at the horizon 4000"
        );
        assert_eq!(j.lookup(&"c", EventTime(4_500)), Some(&2));
    }
}
