//! The as-of stream-table join (semantics.md, "Stream-table join").
//!
//! The table keeps versions per key (`(valid from, value)`) for a retention period. A stream
//! record at `t` joins the version valid at `t`: the latest with timestamp `<= t`. While the
//! table may still be behind (`table watermark < t`), the stream record waits; it is released
//! when the table's watermark reaches `t`, or when the stream's watermark passes `t + grace`,
//! whichever comes first, and then joins with what is there. A left join emits `None` when no
//! version is found; records are emitted in event-time order of release.
//!
//! State: two stores ([`AsOfJoin::stores`]). The versions, which grow with the keys, are
//! written key by key when they change; the waiting records and the watermarks (small:
//! bounded by the grace) are a snapshot.

use std::collections::BTreeMap;

use fitstream_contracts::EventTime;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::state::{Keyed, Snapshot, Store, StoreKey};

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
#[derive(Debug)]
pub struct AsOfJoin<K, S, V> {
    grace_ms: i64,
    retention_ms: i64,
    /// The table's versions per key (written key by key when they change).
    versions: Keyed<K, BTreeMap<EventTime, V>>,
    waiting: Snapshot<Waiting<K, S>>,
}

/// Stream records waiting for the table, and both watermarks.
#[derive(Debug, Serialize, Deserialize)]
struct Waiting<K, S> {
    table_watermark: EventTime,
    stream_watermark: EventTime,
    pending: BTreeMap<(EventTime, u64), (K, S)>,
    seq: u64,
}

impl<K, S, V> AsOfJoin<K, S, V>
where
    K: StoreKey + Serialize + DeserializeOwned,
    S: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Its stores: the versions (written key by key) and the waiting records with the
    /// watermarks (a snapshot).
    pub fn stores(&mut self) -> (&mut dyn Store, &mut dyn Store) {
        (&mut self.versions, &mut self.waiting)
    }
}

impl<K: Ord + Clone, S, V: Clone> AsOfJoin<K, S, V> {
    /// Stream records wait at most `grace_ms` of stream time for the table; versions older
    /// than `retention_ms` behind the table watermark are dropped (the latest one before that
    /// horizon is kept, it is still valid).
    pub fn new(grace_ms: i64, retention_ms: i64) -> Self {
        AsOfJoin {
            grace_ms,
            retention_ms,
            versions: Keyed::default(),
            waiting: Snapshot::new(Waiting {
                table_watermark: EventTime::MIN,
                stream_watermark: EventTime::MIN,
                pending: BTreeMap::new(),
                seq: 0,
            }),
        }
    }

    /// A table version: `value` is valid for `key` from `t` on. The key's versions older than
    /// the retention behind both sides' watermarks go (a table read ahead of the stream keeps
    /// what the stream still needs), but the latest one before that horizon stays: it is
    /// still valid after it.
    pub fn table(&mut self, key: K, t: EventTime, value: V) {
        let horizon = self
            .waiting
            .table_watermark
            .max(t)
            .min(self.waiting.stream_watermark)
            .minus(self.retention_ms);
        let versions = self.versions.get_or_insert_default(key);
        versions.insert(t, value);
        let keep_from = versions.range(..=horizon).next_back().map(|(t, _)| *t);
        if let Some(k) = keep_from {
            *versions = versions.split_off(&k);
        }
    }

    /// The table's watermark.
    pub fn table_watermark(&self) -> EventTime {
        self.waiting.table_watermark
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
        if watermark <= self.waiting.table_watermark {
            return;
        }
        self.waiting.table_watermark = watermark;
        self.release(|t| t <= watermark, out);
    }

    /// A stream record: joined now when the table has caught up with `t`, else it waits.
    pub fn stream(&mut self, key: K, t: EventTime, record: S, out: &mut Vec<AsOf<K, S, V>>) {
        if t <= self.waiting.table_watermark {
            let version = self.lookup(&key, t).cloned();
            out.push(AsOf {
                key,
                t,
                record,
                version,
            });
        } else {
            let waiting = &mut *self.waiting;
            waiting.seq += 1;
            waiting.pending.insert((t, waiting.seq), (key, record));
        }
    }

    /// The stream's watermark moved: records waiting longer than the grace join with what is
    /// there.
    pub fn stream_advance(&mut self, watermark: EventTime, out: &mut Vec<AsOf<K, S, V>>) {
        if watermark > self.waiting.stream_watermark {
            self.waiting.stream_watermark = watermark;
        }
        let grace = self.grace_ms;
        self.release(|t| watermark >= t.plus(grace), out);
    }

    fn release(&mut self, ready: impl Fn(EventTime) -> bool, out: &mut Vec<AsOf<K, S, V>>) {
        while let Some((&(t, _), _)) = self.waiting.pending.first_key_value() {
            if !ready(t) {
                break;
            }
            let Some((_, (key, record))) = self.waiting.pending.pop_first() else {
                break;
            };
            let version = self.lookup(&key, t).cloned();
            out.push(AsOf {
                key,
                t,
                record,
                version,
            });
        }
    }

    /// Bytes of the last snapshot of the waiting records written or restored.
    pub fn snapshot_bytes(&self) -> usize {
        self.waiting.bytes()
    }

    /// The event time of the earliest waiting stream record.
    pub fn earliest_waiting(&self) -> Option<EventTime> {
        self.waiting.pending.first_key_value().map(|((t, _), _)| *t)
    }

    /// Waiting stream records and table versions held.
    pub fn len(&self) -> (usize, usize) {
        (
            self.waiting.pending.len(),
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
    use crate::state::checkpoint_store;

    type J = AsOfJoin<&'static str, &'static str, i32>;
    type Stored = AsOfJoin<String, String, i32>;

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
    }

    #[test]
    fn versions_and_waiting_records_restore_from_their_stores() {
        let mut j: Stored = AsOfJoin::new(60_000, 1_000);
        let mut out = Vec::new();
        j.table("c".into(), EventTime(100), 1);
        j.table("c".into(), EventTime(200), 2);
        j.table_advance(EventTime(300), &mut out);
        j.stream("c".into(), EventTime(400), "waits".into(), &mut out);
        let (versions, waiting) = j.stores();
        let mut log = checkpoint_store("v", versions).expect("checkpoints");
        log.extend(checkpoint_store("w", waiting).expect("checkpoints"));
        let (versions, _) = j.stores();
        assert!(
            checkpoint_store("v", versions)
                .expect("checkpoints")
                .is_empty(),
            "nothing changed since"
        );

        let mut r: Stored = AsOfJoin::new(60_000, 1_000);
        for (k, v) in &log {
            let (versions, waiting) = r.stores();
            let (store, key): (&mut dyn Store, &[u8]) = match k.strip_prefix(b"v/") {
                Some(key) => (versions, key),
                None => (waiting, k.strip_prefix(b"w/").expect("prefix")),
            };
            store.restore(key, v.as_deref()).expect("restores");
        }
        let (versions, waiting) = r.stores();
        versions.restored().expect("restored");
        waiting.restored().expect("restored");
        assert_eq!(r.lookup(&"c".to_owned(), EventTime(150)), Some(&1));
        assert_eq!(r.table_watermark(), EventTime(300));
        r.table_advance(EventTime(400), &mut out);
        assert_eq!(
            out,
            vec![AsOf {
                key: "c".to_owned(),
                t: EventTime(400),
                record: "waits".to_owned(),
                version: Some(2)
            }]
        );
    }
}
