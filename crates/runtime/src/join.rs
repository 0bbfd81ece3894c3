//! The interval join, inner and left (semantics.md, "Stream-stream join").
//!
//! Match predicate, both bounds inclusive:
//! `left.key == right.key && left.ts - before <= right.ts <= left.ts + after`.
//!
//! One notion of "closed", used for everything: a left record at `t` is closed when
//! `watermark > t + after + grace`. At that moment, and not before, an unmatched left record of
//! a left join is emitted null-padded, and the left record leaves the state. A right record at
//! `u` can only meet left records in `[u - after, u + before]`; it is closed (and leaves the
//! state) when the latest of them is: `watermark > u + before + after + grace`. A record that is
//! closed on arrival is late: it does not join and is refused with a [`LateRecord`].
//! Matches are emitted as soon as both sides are there, with event time `max(left.ts,
//! right.ts)`. A left record yields its matches or exactly one null-padded row, never both.
//!
//! State per side is ordered by event time so that expiry is a range delete.
//!
//! Each side is a [`Keyed`] store of its own ([`IntervalJoin::stores`]), keyed by event time
//! and arrival number: a checkpoint writes the records that arrived, changed (a left record's
//! match count) or left since the previous one, not the whole join. The per-key indexes and
//! the arrival numbering are derived again after a restore ([`IntervalJoin::restored`]).

use std::collections::HashMap;
use std::hash::Hash;

use fitstream_contracts::EventTime;
use serde::{Deserialize, Serialize};

use crate::state::{Keyed, Store};

/// A record's place in a side of the join: its event time, then its arrival number.
type Id = (EventTime, u64);

/// Inner or left join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinKind {
    /// Only matches.
    Inner,
    /// Matches, or one null-padded row per unmatched left record.
    Left,
}

/// Join bounds, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinWindow {
    /// How far before the left record a right record may be.
    pub before_ms: i64,
    /// How far after the left record a right record may be.
    pub after_ms: i64,
    /// How long after that a left record waits for stragglers.
    pub grace_ms: i64,
}

/// What the join produces.
#[derive(Clone, Debug, PartialEq)]
pub enum JoinEvent<K, L, R> {
    /// A left and a right record met; event time `max` of both.
    Matched {
        /// Key.
        key: K,
        /// Left record and its time.
        left: (EventTime, L),
        /// Right record and its time.
        right: (EventTime, R),
    },
    /// A left record closed without a match (left joins only).
    Unmatched {
        /// Key.
        key: K,
        /// Left record and its time.
        left: (EventTime, L),
    },
    /// A left record closed after at least one match (for callers counting outcomes).
    Closed {
        /// Key.
        key: K,
        /// Left record and its time.
        left: (EventTime, L),
        /// How many right records it met.
        matches: u32,
    },
}

/// A record that was already closed on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LateRecord {
    /// Its event time.
    pub event_time: EventTime,
    /// The watermark at arrival.
    pub watermark: EventTime,
}

/// A left record waiting for its matches (its store's values). The record is boxed: the
/// store's B-tree nodes hold eleven entries each and are often half full, so a large record
/// inline (a cart is a few hundred bytes) would leave that much room empty per free slot. The
/// changelog is the same either way (serde writes a box as its content).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeftEntry<K, L> {
    key: K,
    value: Box<L>,
    matches: u32,
}

/// An interval join between a left and a right stream of records keyed by `K`. Built for keys
/// with few records open at once on each side (see `Ids`).
#[derive(Clone, Debug)]
pub struct IntervalJoin<K, L, R> {
    kind: JoinKind,
    window: JoinWindow,
    seq: u64,
    left: Keyed<Id, LeftEntry<K, L>>,
    right: Keyed<Id, (K, R)>,
    left_by_key: HashMap<K, Ids>,
    right_by_key: HashMap<K, Ids>,
}

/// One key's records on a side of the join, in order. A key has few records open at once (a
/// customer's carts of one SKU within the window), so they are kept in a sorted vector: 16
/// bytes a record, where a B-tree allocates a whole node of eleven. Inserting and removing
/// cost the key's record count, so a key with thousands of open records would make them slow.
#[derive(Clone, Debug, Default)]
struct Ids(Vec<Id>);

impl Ids {
    fn insert(&mut self, id: Id) {
        let at = self.0.partition_point(|x| *x < id);
        if self.0.get(at) == Some(&id) {
            return;
        }
        if self.0.len() == self.0.capacity() {
            self.0.reserve_exact(self.0.len().max(1));
        }
        self.0.insert(at, id);
    }

    fn remove(&mut self, id: &Id) {
        if let Ok(at) = self.0.binary_search(id) {
            self.0.remove(at);
        }
    }

    /// The ids within `lo..=hi`, in order.
    fn range(&self, lo: Id, hi: Id) -> &[Id] {
        let from = self.0.partition_point(|x| *x < lo);
        let to = self.0.partition_point(|x| *x <= hi);
        self.0.get(from..to.max(from)).unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Clone + Eq + Hash, L: Clone, R: Clone> IntervalJoin<K, L, R> {
    /// An empty join.
    pub fn new(kind: JoinKind, window: JoinWindow) -> Self {
        IntervalJoin {
            kind,
            window,
            seq: 0,
            left: Keyed::default(),
            right: Keyed::default(),
            left_by_key: HashMap::new(),
            right_by_key: HashMap::new(),
        }
    }

    fn left_close_time(&self, t: EventTime) -> EventTime {
        t.plus(self.window.after_ms + self.window.grace_ms)
    }

    fn right_close_time(&self, u: EventTime) -> EventTime {
        u.plus(self.window.before_ms + self.window.after_ms + self.window.grace_ms)
    }

    /// Whether a left record at `t` would be late at `watermark` (what [`IntervalJoin::left`]
    /// refuses), for callers that check before holding a record back.
    pub fn is_closed_left(&self, t: EventTime, watermark: EventTime) -> bool {
        watermark > self.left_close_time(t)
    }

    /// A left record arrives while the watermark is `watermark`.
    pub fn left(
        &mut self,
        key: K,
        t: EventTime,
        value: L,
        watermark: EventTime,
        out: &mut Vec<JoinEvent<K, L, R>>,
    ) -> Result<(), LateRecord> {
        if watermark > self.left_close_time(t) {
            return Err(LateRecord {
                event_time: t,
                watermark,
            });
        }
        let lo = t.minus(self.window.before_ms);
        let hi = t.plus(self.window.after_ms);
        let mut matches = 0;
        if let Some(index) = self.right_by_key.get(&key) {
            for id in index.range((lo, 0), (hi, u64::MAX)) {
                if let Some((_, r)) = self.right.get(id) {
                    matches += 1;
                    out.push(JoinEvent::Matched {
                        key: key.clone(),
                        left: (t, value.clone()),
                        right: (id.0, r.clone()),
                    });
                }
            }
        }
        self.seq += 1;
        let id = (t, self.seq);
        self.left_by_key.entry(key.clone()).or_default().insert(id);
        self.left.insert(
            id,
            LeftEntry {
                key,
                value: Box::new(value),
                matches,
            },
        );
        Ok(())
    }

    /// A right record arrives while the watermark is `watermark`.
    pub fn right(
        &mut self,
        key: K,
        u: EventTime,
        value: R,
        watermark: EventTime,
        out: &mut Vec<JoinEvent<K, L, R>>,
    ) -> Result<(), LateRecord> {
        if watermark > self.right_close_time(u) {
            return Err(LateRecord {
                event_time: u,
                watermark,
            });
        }
        // Left records at t with t - before <= u <= t + after, i.e. t in [u - after, u + before].
        let lo = u.minus(self.window.after_ms);
        let hi = u.plus(self.window.before_ms);
        if let Some(index) = self.left_by_key.get(&key) {
            for id in index.range((lo, 0), (hi, u64::MAX)) {
                if let Some(entry) = self.left.get_mut(id) {
                    entry.matches += 1;
                    out.push(JoinEvent::Matched {
                        key: key.clone(),
                        left: (id.0, L::clone(&entry.value)),
                        right: (u, value.clone()),
                    });
                }
            }
        }
        self.seq += 1;
        let id = (u, self.seq);
        self.right_by_key.entry(key.clone()).or_default().insert(id);
        self.right.insert(id, (key, value));
        Ok(())
    }

    /// The watermark moved to `watermark`: closes left records (emitting null-padded rows for
    /// unmatched ones in a left join) and expires right records, in event-time order.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<JoinEvent<K, L, R>>) {
        let span = self.window.after_ms + self.window.grace_ms;
        while let Some((&id, _)) = self.left.first_key_value() {
            let t = id.0;
            if watermark <= t.plus(span) {
                break;
            }
            let Some((_, e)) = self.left.pop_first() else {
                break;
            };
            remove_index(&mut self.left_by_key, &e.key, &id);
            if e.matches == 0 {
                if self.kind == JoinKind::Left {
                    out.push(JoinEvent::Unmatched {
                        key: e.key,
                        left: (t, *e.value),
                    });
                }
            } else {
                out.push(JoinEvent::Closed {
                    key: e.key,
                    left: (t, *e.value),
                    matches: e.matches,
                });
            }
        }
        let span = self.window.before_ms + span;
        while let Some((&id, _)) = self.right.first_key_value() {
            if watermark <= id.0.plus(span) {
                break;
            }
            let Some((_, (key, _))) = self.right.pop_first() else {
                break;
            };
            remove_index(&mut self.right_by_key, &key, &id);
        }
    }

    /// Its stores (left, right): each side's records, written per record that changed.
    pub fn stores(&mut self) -> (&mut dyn Store, &mut dyn Store)
    where
        K: Serialize + serde::de::DeserializeOwned,
        L: Serialize + serde::de::DeserializeOwned,
        R: Serialize + serde::de::DeserializeOwned,
    {
        (&mut self.left, &mut self.right)
    }

    /// Both stores are restored: derives the per-key indexes again, and resumes the arrival
    /// numbering after the highest number held (a new record comes after every record held,
    /// as it would have without the restore).
    pub fn restored(&mut self) {
        self.left_by_key.clear();
        self.right_by_key.clear();
        for (id, e) in self.left.iter() {
            self.left_by_key
                .entry(e.key.clone())
                .or_default()
                .insert(*id);
        }
        for (id, (key, _)) in self.right.iter() {
            self.right_by_key
                .entry(key.clone())
                .or_default()
                .insert(*id);
        }
        self.seq = self
            .left
            .keys()
            .chain(self.right.keys())
            .map(|id| id.1)
            .max()
            .unwrap_or(0);
    }

    /// Entries held (left, right).
    pub fn len(&self) -> (usize, usize) {
        (self.left.len(), self.right.len())
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.left.is_empty() && self.right.is_empty()
    }
}

fn remove_index<K: Eq + Hash>(index: &mut HashMap<K, Ids>, key: &K, id: &Id) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Ev = JoinEvent<&'static str, &'static str, &'static str>;

    proptest! {
        /// A key's sorted ids answer as an ordered set would: inserts in any order (again
        /// included), removals, and every range.
        #[test]
        fn a_keys_ids_behave_as_an_ordered_set(
            ops in proptest::collection::vec((any::<bool>(), 0i64..20, 0u64..4), 0..60),
            lo in (0i64..22, 0u64..5),
            hi in (0i64..22, 0u64..5),
        ) {
            let mut ids = Ids::default();
            let mut set = std::collections::BTreeSet::new();
            for (add, t, n) in ops {
                let id = (EventTime(t), n);
                if add {
                    ids.insert(id);
                    set.insert(id);
                } else {
                    ids.remove(&id);
                    set.remove(&id);
                }
                prop_assert_eq!(ids.0.iter().collect::<Vec<_>>(), set.iter().collect::<Vec<_>>());
                prop_assert_eq!(ids.is_empty(), set.is_empty());
            }
            let (lo, hi) = ((EventTime(lo.0), lo.1), (EventTime(hi.0), hi.1));
            let expected: Vec<&Id> = if lo <= hi { set.range(lo..=hi).collect() } else { Vec::new() };
            prop_assert_eq!(ids.range(lo, hi).iter().collect::<Vec<_>>(), expected);
        }
    }

    fn join(kind: JoinKind) -> IntervalJoin<&'static str, &'static str, &'static str> {
        IntervalJoin::new(
            kind,
            JoinWindow {
                before_ms: 10,
                after_ms: 30,
                grace_ms: 5,
            },
        )
    }

    #[test]
    fn a_checkpoint_writes_what_changed_not_the_whole_join() {
        let mut j: IntervalJoin<String, u32, u32> = IntervalJoin::new(
            JoinKind::Left,
            JoinWindow {
                before_ms: 10,
                after_ms: 30,
                grace_ms: 5,
            },
        );
        let mut out = Vec::new();
        for i in 0..100 {
            j.left(
                "k".into(),
                EventTime(1_000 + i),
                0,
                EventTime::MIN,
                &mut out,
            )
            .expect("on time");
        }
        let changes = |j: &mut IntervalJoin<String, u32, u32>| {
            let (left, right) = j.stores();
            let l = crate::state::checkpoint_store("l", left).expect("checkpoints");
            let r = crate::state::checkpoint_store("r", right).expect("checkpoints");
            (l.len(), r.len())
        };
        assert_eq!(changes(&mut j), (100, 0), "every cart once");
        assert_eq!(changes(&mut j), (0, 0), "nothing changed");
        // A purchase at 1010 meets the carts at 980..=1020 (30 ms before it, 10 after): the
        // match counts of 21 carts change, and the purchase is added.
        j.right("k".into(), EventTime(1_010), 1, EventTime::MIN, &mut out)
            .expect("on time");
        assert_eq!(out.len(), 21);
        assert_eq!(changes(&mut j), (21, 1));
        // The first 50 carts and the purchase (1010 + 10 + 30 + 5 < 1085) close: 51
        // tombstones; a cart added and closed between two checkpoints writes nothing.
        j.left("k".into(), EventTime(900), 2, EventTime::MIN, &mut out)
            .expect("on time");
        j.advance(EventTime(1_049 + 36), &mut out);
        assert_eq!(j.len(), (50, 0));
        assert_eq!(changes(&mut j), (50, 1));
    }

    #[test]
    fn partners_exactly_at_both_bounds_match_and_one_past_does_not() {
        let mut j = join(JoinKind::Inner);
        let mut out: Vec<Ev> = Vec::new();
        j.left("k", EventTime(100), "cart", EventTime::MIN, &mut out)
            .expect("on time");
        j.right("k", EventTime(90), "at t-before", EventTime::MIN, &mut out)
            .expect("on time");
        j.right("k", EventTime(130), "at t+after", EventTime::MIN, &mut out)
            .expect("on time");
        j.right("k", EventTime(89), "one before", EventTime::MIN, &mut out)
            .expect("on time");
        j.right("k", EventTime(131), "one after", EventTime::MIN, &mut out)
            .expect("on time");
        j.right(
            "other",
            EventTime(100),
            "other key",
            EventTime::MIN,
            &mut out,
        )
        .expect("on time");
        let matched: Vec<&str> = out
            .iter()
            .filter_map(|e| match e {
                JoinEvent::Matched { right, .. } => Some(right.1),
                _ => None,
            })
            .collect();
        assert_eq!(matched, vec!["at t-before", "at t+after"]);
        // Output event time is max(left, right).
        if let JoinEvent::Matched { left, right, .. } = &out[1] {
            assert_eq!(left.0.max(right.0), EventTime(130));
        }
    }

    #[test]
    fn an_unmatched_left_is_emitted_once_exactly_when_the_watermark_passes_t_after_grace() {
        let mut j = join(JoinKind::Left);
        let mut out: Vec<Ev> = Vec::new();
        j.left("k", EventTime(100), "cart", EventTime::MIN, &mut out)
            .expect("on time");
        j.advance(EventTime(135), &mut out);
        assert!(out.is_empty(), "watermark == t + after + grace: still open");
        // A right record at the edge still matches now.
        let mut j2 = j.clone();
        j2.right("k", EventTime(130), "late-ish", EventTime(135), &mut out)
            .expect("still open");
        j2.advance(EventTime(136), &mut out);
        assert!(matches!(out[0], JoinEvent::Matched { .. }));
        assert!(matches!(out[1], JoinEvent::Closed { matches: 1, .. }));
        assert_eq!(out.len(), 2, "never both a match and a null-padded row");
        out.clear();
        j.advance(EventTime(136), &mut out);
        assert_eq!(
            out,
            vec![JoinEvent::Unmatched {
                key: "k",
                left: (EventTime(100), "cart")
            }]
        );
        j.advance(EventTime(10_000), &mut out);
        assert_eq!(out.len(), 1);
        assert!(j.is_empty());
    }

    #[test]
    fn records_closed_on_arrival_are_late_and_do_not_join() {
        let mut j = join(JoinKind::Left);
        let mut out: Vec<Ev> = Vec::new();
        assert!(
            j.left("k", EventTime(100), "cart", EventTime(135), &mut out)
                .is_ok()
        );
        assert_eq!(
            j.left("k", EventTime(100), "cart", EventTime(136), &mut out),
            Err(LateRecord {
                event_time: EventTime(100),
                watermark: EventTime(136)
            })
        );
        // A right record at u is useful until u + before + after + grace.
        assert!(
            j.right("k", EventTime(100), "p", EventTime(145), &mut out)
                .is_ok()
        );
        assert!(
            j.right("k", EventTime(100), "p", EventTime(146), &mut out)
                .is_err()
        );
    }

    #[test]
    fn right_state_expires_when_no_left_can_still_match_it() {
        let mut j = join(JoinKind::Inner);
        let mut out: Vec<Ev> = Vec::new();
        j.right("k", EventTime(100), "p", EventTime::MIN, &mut out)
            .expect("on time");
        j.advance(EventTime(145), &mut out);
        assert_eq!(j.len(), (0, 1));
        // A left at t = u + before = 110 arriving at watermark 145 is still on time and matches.
        j.left("k", EventTime(110), "cart", EventTime(145), &mut out)
            .expect("on time");
        assert_eq!(out.len(), 1);
        // At 146 both are closed: the left (110 + 30 + 5 < 146) after its one match.
        j.advance(EventTime(146), &mut out);
        assert_eq!(j.len(), (0, 0));
        assert!(matches!(out[1], JoinEvent::Closed { matches: 1, .. }));
    }

    #[test]
    fn two_lefts_before_one_right_both_match() {
        let mut j = IntervalJoin::new(
            JoinKind::Left,
            JoinWindow {
                before_ms: 0,
                after_ms: 1_800_000,
                grace_ms: 300_000,
            },
        );
        let mut out: Vec<Ev> = Vec::new();
        j.left("c", EventTime(0), "cart1", EventTime::MIN, &mut out)
            .expect("ok");
        j.left("c", EventTime(1_000), "cart2", EventTime::MIN, &mut out)
            .expect("ok");
        j.right("c", EventTime(60_000), "purchase", EventTime::MIN, &mut out)
            .expect("ok");
        assert_eq!(out.len(), 2);
        j.advance(EventTime::MAX, &mut out);
        assert_eq!(
            out.iter()
                .filter(|e| matches!(e, JoinEvent::Closed { matches: 1, .. }))
                .count(),
            2
        );
    }
}
