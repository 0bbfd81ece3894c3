//! Records held by event time until the watermark passes them: a store of the runtime.
//!
//! A task whose outputs must not depend on how its watermark stepped, nor on how its input
//! partitions interleaved, holds what it receives and applies it in (event time, arrival)
//! order once the watermark is past it (the profiler with its input records, the segmenter
//! with its profiles). [`Held`] is that buffer:
//! - [`Held::hold`] adds an item; [`Held::pop_before`] takes the earliest one the watermark
//!   has passed.
//! - As a [`Store`], it writes the items added since the previous checkpoint and a tombstone
//!   for each written item taken since (an item held and taken between two checkpoints is
//!   never written), keyed by the event time as 8 bytes that sort like it
//!   ([`time_key`]) and the arrival number; on restore, the arrival numbering resumes after
//!   the highest one.

use std::collections::{BTreeMap, BTreeSet};

use fitstream_contracts::EventTime;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Changes, StateError, Store, StoreKey, decode};

/// An event time as 8 bytes whose byte order is its order (big-endian, sign bit flipped).
pub fn time_key(t: EventTime) -> [u8; 8] {
    ((t.0 as u64) ^ (1 << 63)).to_be_bytes()
}

/// The event time of the first 8 bytes written by [`time_key`].
pub fn time_of_key(bytes: &[u8]) -> Option<EventTime> {
    let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(EventTime((u64::from_be_bytes(b) ^ (1 << 63)) as i64))
}

/// Items held by (event time, arrival number) until the watermark passes them.
#[derive(Debug)]
pub struct Held<T> {
    items: BTreeMap<(EventTime, u64), T>,
    next: u64,
    dirty: BTreeSet<(EventTime, u64)>,
}

impl<T: Serialize + DeserializeOwned> Held<T> {
    /// An empty buffer.
    pub fn new() -> Held<T> {
        Held {
            items: BTreeMap::new(),
            next: 0,
            dirty: BTreeSet::new(),
        }
    }

    /// Holds `item` of event time `t`, after every item held before at the same time.
    pub fn hold(&mut self, t: EventTime, item: T) {
        let key = (t, self.next);
        self.next += 1;
        self.items.insert(key, item);
        self.dirty.insert(key);
    }

    /// The event time of the earliest item.
    pub fn first_time(&self) -> Option<EventTime> {
        self.items.first_key_value().map(|((t, _), _)| *t)
    }

    /// Takes the earliest item if the watermark has passed it (its time is before
    /// `watermark`, or the watermark is the end of time).
    pub fn pop_before(&mut self, watermark: EventTime) -> Option<(EventTime, T)> {
        let t = self.first_time()?;
        if t >= watermark && watermark != EventTime::MAX {
            return None;
        }
        let (key, item) = self.items.pop_first()?;
        // Held since the last checkpoint: never written, so nothing to delete (and nothing
        // to remember: a buffer that is never checkpointed, as in a replay, stays bounded by
        // what it holds). Else it was written: a tombstone at the next checkpoint.
        if !self.dirty.remove(&key) {
            self.dirty.insert(key);
        }
        Some((t, item))
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T: Serialize + DeserializeOwned> Default for Held<T> {
    fn default() -> Self {
        Held::new()
    }
}

impl<T: Serialize + DeserializeOwned> Store for Held<T> {
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        for k in std::mem::take(&mut self.dirty) {
            match self.items.get(&k) {
                Some(item) => {
                    out.put(&k.to_bytes(), item)?;
                }
                None => out.delete(&k.to_bytes()),
            }
        }
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let k = <(EventTime, u64)>::from_bytes(key)?;
        self.next = self.next.max(k.1 + 1);
        match value {
            Some(v) => self.items.insert(k, decode(v)?),
            None => self.items.remove(&k),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_like_times() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_767_571_200_000, i64::MAX];
        for w in times.windows(2) {
            assert!(time_key(EventTime(w[0])) < time_key(EventTime(w[1])));
        }
        for t in times {
            assert_eq!(time_of_key(&time_key(EventTime(t))), Some(EventTime(t)));
        }
    }

    #[test]
    fn items_come_out_in_time_then_arrival_order_once_passed() {
        let mut h: Held<u8> = Held::new();
        h.hold(EventTime(20), b'b');
        h.hold(EventTime(10), b'a');
        h.hold(EventTime(20), b'c');
        assert_eq!(h.pop_before(EventTime(10)), None, "not passed yet");
        assert_eq!(h.pop_before(EventTime(11)), Some((EventTime(10), b'a')));
        assert_eq!(h.pop_before(EventTime(20)), None);
        assert_eq!(h.pop_before(EventTime::MAX), Some((EventTime(20), b'b')));
        assert_eq!(h.pop_before(EventTime::MAX), Some((EventTime(20), b'c')));
        assert!(h.is_empty());
    }

    #[test]
    fn an_item_held_and_taken_between_checkpoints_is_never_written() {
        let mut h: Held<u32> = Held::new();
        for i in 0..10_000 {
            h.hold(EventTime(i64::from(i)), i);
            assert!(h.pop_before(EventTime::MAX).is_some());
        }
        assert!(h.dirty.is_empty(), "{} keys remembered", h.dirty.len());
        let mut changelog = Vec::new();
        h.checkpoint(&mut Changes {
            store: "h",
            out: &mut changelog,
        })
        .expect("checkpoints");
        assert!(changelog.is_empty(), "{changelog:?}");
    }

    #[test]
    fn a_restore_gives_the_held_items_and_continues_the_arrival_order() {
        let mut h: Held<String> = Held::new();
        let mut changelog = Vec::new();
        let mut out = |h: &mut Held<String>| {
            h.checkpoint(&mut Changes {
                store: "h",
                out: &mut changelog,
            })
            .expect("checkpoints")
        };
        h.hold(EventTime(5), "x".into());
        h.hold(EventTime(5), "y".into());
        h.hold(EventTime(1), "gone".into());
        out(&mut h);
        assert!(h.pop_before(EventTime(2)).is_some());
        out(&mut h);
        assert_eq!(changelog.len(), 4, "three puts, then a tombstone");

        let mut r: Held<String> = Held::new();
        for (k, v) in &changelog {
            let k = k.strip_prefix(b"h/").expect("the store's prefix");
            r.restore(k, v.as_deref()).expect("restores");
        }
        assert_eq!(r.len(), 2);
        r.hold(EventTime(5), "z".into());
        let order: Vec<String> = std::iter::from_fn(|| r.pop_before(EventTime::MAX))
            .map(|(_, s)| s)
            .collect();
        assert_eq!(order, ["x", "y", "z"]);
    }
}
