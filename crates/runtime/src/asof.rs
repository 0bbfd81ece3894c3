//! The as-of stream-table join (semantics.md, "Stream-table join").
//!
//! The table keeps versions per key (`(valid from, value)`) for a retention period. A stream
//! record at `t` joins the version valid at `t`: the latest with timestamp `<= t`. While the
//! table may still be behind (`table watermark < t`), the stream record waits; it is released
//! when the table's watermark reaches `t`, or when the stream's watermark passes `t + grace`,
//! whichever comes first, and then joins with what is there. A left join emits `None` when no
//! version is found; records are emitted in event-time order of release.
//!
//! State for a changelog: the waiting records and the table watermark serialise with the
//! join (small: bounded by the grace); the versions, which grow with the keys, are kept out
//! of it and written key by key ([`AsOfJoin::take_changed`], [`AsOfJoin::restore_versions`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use fitstream_contracts::EventTime;
use serde::{Deserialize, Serialize};

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
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, S: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, S: Deserialize<'de>"
))]
pub struct AsOfJoin<K, S, V> {
    grace_ms: i64,
    retention_ms: i64,
    #[serde(skip)]
    versions: HashMap<K, BTreeMap<EventTime, V>>,
    #[serde(skip)]
    changed: HashSet<K>,
    table_watermark: EventTime,
    stream_watermark: EventTime,
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
            changed: HashSet::new(),
            table_watermark: EventTime::MIN,
            stream_watermark: EventTime::MIN,
            pending: BTreeMap::new(),
            seq: 0,
        }
    }

    /// A table version: `value` is valid for `key` from `t` on. The key's versions older than
    /// the retention behind both sides' watermarks go (a table read ahead of the stream keeps
    /// what the stream still needs), but the latest one before that horizon stays: it is
    /// still valid after it.
    pub fn table(&mut self, key: K, t: EventTime, value: V) {
        let horizon = self
            .table_watermark
            .max(t)
            .min(self.stream_watermark)
            .minus(self.retention_ms);
        let versions = self.versions.entry(key.clone()).or_default();
        versions.insert(t, value);
        let keep_from = versions.range(..=horizon).next_back().map(|(t, _)| *t);
        if let Some(k) = keep_from {
            *versions = versions.split_off(&k);
        }
        self.changed.insert(key);
    }

    /// Keys whose versions changed since the last call, with their versions now.
    pub fn take_changed(&mut self) -> Vec<(K, Vec<(EventTime, V)>)> {
        let keys: Vec<K> = self.changed.drain().collect();
        keys.into_iter()
            .map(|k| {
                let v = self
                    .versions
                    .get(&k)
                    .map(|m| m.iter().map(|(t, v)| (*t, v.clone())).collect())
                    .unwrap_or_default();
                (k, v)
            })
            .collect()
    }

    /// Every key's versions, taken out (a restore merging two halves of the state).
    pub fn take_changed_all(&mut self) -> Vec<(K, Vec<(EventTime, V)>)> {
        self.changed.clear();
        std::mem::take(&mut self.versions)
            .into_iter()
            .map(|(k, m)| (k, m.into_iter().collect()))
            .collect()
    }

    /// Puts back a key's versions from the changelog.
    pub fn restore_versions(&mut self, key: K, versions: Vec<(EventTime, V)>) {
        if versions.is_empty() {
            self.versions.remove(&key);
        } else {
            self.versions.insert(key, versions.into_iter().collect());
        }
    }

    /// The table's watermark.
    pub fn table_watermark(&self) -> EventTime {
        self.table_watermark
    }

    /// The version of `key` valid at `t`.
    pub fn lookup(&self, key: &K, t: EventTime) -> Option<&V> {
        self.versions
            .get(key)?
            .range(..=t)
            .next_back()
            .map(|(_, v)| v)
    }

    /// The table's watermark moved: releases the waiting records it now covers.
    pub fn table_advance(&mut self, watermark: EventTime, out: &mut Vec<AsOf<K, S, V>>) {
        if watermark <= self.table_watermark {
            return;
        }
        self.table_watermark = watermark;
        self.release(|t| t <= watermark, out);
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
        self.stream_watermark = self.stream_watermark.max(watermark);
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

    /// The event time of the earliest waiting stream record.
    pub fn earliest_waiting(&self) -> Option<EventTime> {
        self.pending.first_key_value().map(|((t, _), _)| *t)
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
        j.table("c", EventTime(100), 1);
        j.table("c", EventTime(200), 2);
        // The table is far ahead of the stream: nothing the stream may need goes.
        j.table("c", EventTime(5_000), 3);
        assert_eq!(j.len().1, 3);
        j.stream_advance(EventTime(5_000), &mut Vec::new());
        j.table("c", EventTime(5_001), 4);
        assert_eq!(
            j.len().1,
            3,
            "v1 is gone; v2 is still valid at the horizon 4000"
        );
        assert_eq!(j.lookup(&"c", EventTime(4_500)), Some(&2));
        let changed = j.take_changed();
        assert_eq!(
            changed,
            vec![(
                "c",
                vec![
                    (EventTime(200), 2),
                    (EventTime(5_000), 3),
                    (EventTime(5_001), 4)
                ]
            )]
        );
        assert!(j.take_changed().is_empty());
        let mut restored: J = AsOfJoin::new(0, 1_000);
        for (k, v) in changed {
            restored.restore_versions(k, v);
        }
        assert_eq!(restored.lookup(&"c", EventTime(4_500)), Some(&2));
        assert_eq!(restored.lookup(&"c", EventTime(5_000)), Some(&3));
        assert_eq!(restored.lookup(&"c", EventTime(6_000)), Some(&4));
    }
}
