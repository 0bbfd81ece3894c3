//! Deduplication by event id within a retention of event time (default 24 h).
//!
//! An id seen within the retention is a duplicate. Ids leave the memory when the watermark is
//! more than the retention past their event time; a duplicate arriving after that cannot be
//! recognised, and is judged by the lateness rules of the operators behind.
//!
//! The memory holds a 64-bit fingerprint of each id, not the id: SipHash-1-3 under a key drawn
//! at random for each memory, so that nobody who writes ids can make two of them collide.
//! Two ids of one memory share a fingerprint with probability about `n / 2^64` for each new
//! id among `n` remembered (with 4 million ids remembered, about one in 4.6 * 10^12 new ids
//! would be taken for a duplicate). The ids themselves are what a changelog keeps
//! ([`crate::state::DedupStore`]); a restored memory fingerprints them under its own key.
//!
//! Per id: 8 bytes in a set of fingerprints (plus its free slots: 9.4 to 11.8 bytes in all,
//! see `dedup/set.rs`), and 10 bytes in the minute of its event time (the fingerprint, and the
//! time as 2 bytes of milliseconds into the minute), which is how ids are forgotten in order. A minute's lists grow by an eighth at a
//! time, not by doubling, so that they keep few free places: ids of a minute may come at any
//! time until it is forgotten, so there is no moment to shrink them.

mod set;

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use fitstream_contracts::EventTime;

use self::set::FingerprintSet;

/// Event-time granularity of the forgetting order.
const MINUTE_MS: i64 = 60_000;

/// The ids of one minute of event time, in the order they came; sorted by time once the
/// minute is the one being forgotten, then forgotten from the front. `fingerprints[i]` came at
/// `offsets[i]` milliseconds into the minute.
#[derive(Clone, Debug, Default)]
struct Minute {
    fingerprints: Vec<u64>,
    offsets: Vec<u16>,
    sorted: bool,
    /// Ids at the front already forgotten.
    gone: usize,
}

impl Minute {
    fn push(&mut self, offset: u16, fingerprint: u64) {
        if self.fingerprints.len() == self.fingerprints.capacity() {
            let more = (self.fingerprints.len() / 8).max(16);
            self.fingerprints.reserve_exact(more);
            self.offsets.reserve_exact(more);
        }
        self.fingerprints.push(fingerprint);
        self.offsets.push(offset);
        self.sorted = false;
    }

    /// Drops the forgotten front and sorts the rest by time (then fingerprint).
    fn sort(&mut self) {
        let mut ids: Vec<(u16, u64)> = self.offsets[self.gone..]
            .iter()
            .copied()
            .zip(self.fingerprints[self.gone..].iter().copied())
            .collect();
        ids.sort_unstable();
        self.offsets.clear();
        self.fingerprints.clear();
        for (o, f) in ids {
            self.offsets.push(o);
            self.fingerprints.push(f);
        }
        self.gone = 0;
        self.sorted = true;
    }

    fn heap_bytes(&self) -> usize {
        self.fingerprints.capacity() * size_of::<u64>() + self.offsets.capacity() * size_of::<u16>()
    }
}

/// Remembers ids for `retention_ms` of event time.
#[derive(Clone, Debug)]
pub struct Deduplicator {
    retention_ms: i64,
    key: RandomState,
    seen: FingerprintSet,
    minutes: BTreeMap<i64, Minute>,
}

impl Default for Deduplicator {
    fn default() -> Self {
        Deduplicator::new(Deduplicator::DEFAULT_RETENTION_MS)
    }
}

fn minute_of(t: EventTime) -> i64 {
    t.0.div_euclid(MINUTE_MS).saturating_mul(MINUTE_MS)
}

impl Deduplicator {
    /// Default retention: 24 hours.
    pub const DEFAULT_RETENTION_MS: i64 = 24 * 3_600_000;

    /// An empty memory.
    pub fn new(retention_ms: i64) -> Self {
        Deduplicator {
            retention_ms,
            key: RandomState::new(),
            seen: FingerprintSet::default(),
            minutes: BTreeMap::new(),
        }
    }

    /// True when `id` is new (and remembers it), false for a duplicate.
    pub fn first_time(&mut self, id: &str, t: EventTime) -> bool {
        // Never 0, which marks a free slot of the set (1 stands for it: one more way for two
        // ids to collide, in 2^64).
        let fingerprint = self.key.hash_one(id).max(1);
        if !self.seen.insert(fingerprint) {
            return false;
        }
        let start = minute_of(t);
        // Within the minute: 0..60,000 ms, which 2 bytes hold.
        let offset = u16::try_from(t.0.saturating_sub(start)).unwrap_or(u16::MAX);
        self.minutes
            .entry(start)
            .or_default()
            .push(offset, fingerprint);
        true
    }

    /// Forgets ids older than the retention at `watermark`.
    pub fn expire(&mut self, watermark: EventTime) {
        let horizon = watermark.minus(self.retention_ms);
        while let Some(mut entry) = self.minutes.first_entry() {
            let start = *entry.key();
            if start >= horizon.0 {
                break;
            }
            // (A minute that would end past the end of time ends after any horizon.)
            if start
                .checked_add(MINUTE_MS)
                .is_some_and(|end| end <= horizon.0)
            {
                // Every id of the minute is older than the horizon.
                for f in &entry.get().fingerprints[entry.get().gone..] {
                    self.seen.remove(*f);
                }
                entry.remove();
                continue;
            }
            // The horizon is inside this minute: its ids before the horizon go.
            let minute = entry.get_mut();
            if !minute.sorted {
                minute.sort();
            }
            // The horizon's offset into this minute (it is inside it: 1..60,000).
            let before = horizon.0 - start;
            while let Some(o) = minute.offsets.get(minute.gone) {
                if i64::from(*o) >= before {
                    break;
                }
                self.seen.remove(minute.fingerprints[minute.gone]);
                minute.gone += 1;
            }
            if minute.gone < minute.offsets.len() {
                break;
            }
            // All gone: the next minute may start before the horizon too (the first minute
            // of time is shorter: its start saturates at the smallest time).
            entry.remove();
        }
    }

    /// Remembered ids.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.len() == 0
    }

    /// Bytes this memory asks of the allocator: the set's slots (8 bytes each) and each
    /// minute's list.
    pub fn heap_bytes(&self) -> usize {
        let set = self.seen.heap_bytes();
        let minutes: usize = self
            .minutes
            .values()
            .map(|m| size_of::<(i64, Minute)>() + m.heap_bytes())
            .sum();
        set + minutes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory of retention 0 that saw `id-i` at `times[i]`.
    fn remember(times: &[i64]) -> Deduplicator {
        let mut d = Deduplicator::new(0);
        for (i, t) in times.iter().enumerate() {
            assert!(d.first_time(&format!("id-{i}"), EventTime(*t)));
        }
        d
    }

    /// After forgetting up to `horizon`, exactly the ids at or after it are still known.
    fn assert_known_exactly(d: &Deduplicator, times: &[i64], horizon: i64) {
        for (i, t) in times.iter().enumerate() {
            let known = !d.clone().first_time(&format!("id-{i}"), EventTime(*t));
            assert_eq!(known, *t >= horizon, "id at {t}, horizon {horizon}");
        }
    }

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
    fn ids_are_forgotten_exactly_at_their_time_within_a_minute_and_across_minutes() {
        // Out of order within one minute and across three.
        let times = [50_000, 10_000, 130_000, 30_000, 70_000, 10_001, 65_000];
        let mut d = remember(&times);
        for horizon in [0, 10_001, 10_002, 30_001, 60_000, 65_001, 120_000, 130_001] {
            d.expire(EventTime(horizon));
            assert_known_exactly(&d, &times, horizon);
            let alive = times.iter().filter(|t| **t >= horizon).count();
            assert_eq!(d.len(), alive, "horizon {horizon}");
        }
        assert!(d.is_empty());
    }

    #[test]
    fn an_id_seen_again_after_it_was_forgotten_is_remembered_anew() {
        let mut d = Deduplicator::new(1_000);
        assert!(d.first_time("a", EventTime(100)));
        d.expire(EventTime(70_000));
        assert!(d.first_time("a", EventTime(69_500)));
        // Forgetting the minute of the first sighting again leaves the second one.
        d.expire(EventTime(70_400));
        assert!(!d.first_time("a", EventTime(69_500)));
        d.expire(EventTime(70_501));
        assert!(d.first_time("a", EventTime(69_500)));
    }

    #[test]
    fn ids_added_to_a_minute_being_forgotten_are_forgotten_in_time_order() {
        let mut d = Deduplicator::new(0);
        assert!(d.first_time("a", EventTime(10_000)));
        assert!(d.first_time("b", EventTime(40_000)));
        d.expire(EventTime(20_000));
        assert_eq!(d.len(), 1);
        // Late ids into the minute the horizon is in (callers refuse them; the memory copes).
        assert!(d.first_time("c", EventTime(15_000)));
        assert!(d.first_time("d", EventTime(30_000)));
        d.expire(EventTime(30_000));
        assert_eq!(d.len(), 2, "b and d");
        assert!(!d.clone().first_time("d", EventTime(30_000)));
        assert!(!d.clone().first_time("b", EventTime(40_000)));
    }

    #[test]
    fn minute_edges_and_times_before_1970_are_forgotten_exactly() {
        let times = [-60_001, -60_000, -1, 0, 59_999, 60_000];
        let mut d = remember(&times);
        for horizon in [-60_001, -60_000, -59_999, -1, 0, 1, 59_999, 60_000, 60_001] {
            d.expire(EventTime(horizon));
            assert_known_exactly(&d, &times, horizon);
        }
    }

    #[test]
    fn ids_at_the_ends_of_time_are_forgotten_exactly() {
        // The first minute of time is short: minute starts below i64::MIN + 55,808 saturate.
        let first = i64::MIN + 55_808;
        let times = [
            i64::MIN,
            i64::MIN + 1,
            first - 1,
            first,
            first + 500,
            first + 70_000,
            i64::MAX - 1,
            i64::MAX,
        ];
        let mut d = remember(&times);
        let horizons = [
            i64::MIN,
            i64::MIN + 1,
            first,
            first + 400,
            first + 501,
            first + 70_001,
            i64::MAX - 1,
            i64::MAX,
        ];
        for horizon in horizons {
            d.expire(EventTime(horizon));
            assert_known_exactly(&d, &times, horizon);
        }
    }

    #[test]
    fn a_minute_keeps_ten_bytes_an_id_and_few_free_places() {
        let mut d = Deduplicator::new(Deduplicator::DEFAULT_RETENTION_MS);
        let n = 10_000;
        for i in 0..n {
            assert!(d.first_time(&format!("id-{i}"), EventTime(120_000 + (i * 7) % 60_000)));
        }
        assert_eq!(d.minutes.len(), 1);
        let lists: usize = d.minutes.values().map(Minute::heap_bytes).sum();
        assert!(lists >= n as usize * 10, "{lists}");
        assert!(
            lists <= n as usize * 10 * 9 / 8 + 16 * 10,
            "{lists} bytes for {n} ids"
        );
    }

    #[test]
    fn memories_fingerprint_under_keys_of_their_own() {
        let a = Deduplicator::new(1_000);
        let b = Deduplicator::new(1_000);
        assert_ne!(a.key.hash_one("id"), b.key.hash_one("id"));
    }
}
