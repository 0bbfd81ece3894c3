//! A bounded, seeded reservoir sample of customers (Vitter's Algorithm R), keyed by customer.
//!
//! The segmenter reads every profile update from the compacted profile topic but fits on a
//! bounded sample. Algorithm R keeps a uniform sample of the items offered so far in `capacity`
//! slots: item number `i` (0-based) is kept with probability `capacity / (i + 1)`, replacing a
//! slot chosen uniformly at random.
//!
//! Keyed by customer: an update of a customer who is in the sample replaces that customer's
//! earlier version in place (a map customer -> slot), so the sample always holds the latest
//! profile of each sampled customer and never two versions of one customer. Such an update does
//! not count as a new item and draws no random number.
//!
//! Known bias, accepted: an update of a customer who is *not* in the sample (never admitted,
//! or evicted) counts as a new item, because remembering every customer ever seen would make
//! the memory unbounded. Customers whose profile changes often therefore get more chances to
//! enter than quiet ones; the sample leans towards active customers, which are the ones
//! marketing acts on. After a restart the segmenter re-reads the compacted topic, where each
//! customer appears once, and the sample is uniform again.
//!
//! Deterministic: the same seed and the same sequence of offers give the same sample, in the
//! same slot order (a ChaCha8 generator, which is portable across platforms).

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What [`ReservoirSample::offer`] did with an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservoirOffer {
    /// The customer was in the sample; its item was replaced by the newer one.
    Updated,
    /// The sample was not full; the item was added.
    Inserted,
    /// The item replaced another customer's, which left the sample.
    Replaced {
        /// The customer who left the sample.
        evicted: String,
    },
    /// The item was not kept.
    Rejected,
}

/// A uniform sample of at most `capacity` customers, holding the latest item of each.
#[derive(Clone, Debug)]
pub struct ReservoirSample<T> {
    /// Slots in use; never more than `capacity`.
    items: Vec<T>,
    /// Customer of each slot (parallel to `items`).
    keys: Vec<String>,
    /// Customer -> slot, to replace a customer's item in place.
    index: HashMap<String, usize>,
    /// Most slots.
    capacity: usize,
    /// New items offered so far (not counting in-place updates): Algorithm R's `i + 1`.
    seen: u64,
    /// Draws the slot to replace.
    rng: ChaCha8Rng,
}

impl<T> ReservoirSample<T> {
    /// An empty sample of at most `capacity` customers; `seed` makes it reproducible.
    pub fn new(capacity: usize, seed: u64) -> ReservoirSample<T> {
        ReservoirSample {
            items: Vec::with_capacity(capacity.min(1 << 20)),
            keys: Vec::with_capacity(capacity.min(1 << 20)),
            index: HashMap::with_capacity(capacity.min(1 << 20)),
            capacity,
            seen: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Offers the latest item of `customer`.
    pub fn offer(&mut self, customer: &str, item: T) -> ReservoirOffer {
        if let Some(&slot) = self.index.get(customer) {
            self.items[slot] = item;
            return ReservoirOffer::Updated;
        }
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.index.insert(customer.to_owned(), self.items.len());
            self.items.push(item);
            self.keys.push(customer.to_owned());
            return ReservoirOffer::Inserted;
        }
        if self.capacity == 0 {
            return ReservoirOffer::Rejected;
        }
        let j = self.rng.random_range(0..self.seen);
        match usize::try_from(j) {
            Ok(slot) if slot < self.capacity => {
                let evicted = std::mem::replace(&mut self.keys[slot], customer.to_owned());
                self.index.remove(&evicted);
                self.index.insert(customer.to_owned(), slot);
                self.items[slot] = item;
                ReservoirOffer::Replaced { evicted }
            }
            _ => ReservoirOffer::Rejected,
        }
    }

    /// Removes a customer (e.g. on a tombstone in the profile topic); returns its item.
    pub fn remove(&mut self, customer: &str) -> Option<T> {
        let slot = self.index.remove(customer)?;
        let item = self.items.swap_remove(slot);
        self.keys.swap_remove(slot);
        if let Some(moved) = self.keys.get(slot) {
            self.index.insert(moved.clone(), slot);
        }
        Some(item)
    }

    /// The latest item of `customer`, when sampled.
    pub fn get(&self, customer: &str) -> Option<&T> {
        self.index.get(customer).map(|&slot| &self.items[slot])
    }

    /// Whether `customer` is in the sample.
    pub fn contains(&self, customer: &str) -> bool {
        self.index.contains_key(customer)
    }

    /// The sampled items, in slot order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// `(customer, item)` pairs, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.keys.iter().map(String::as_str).zip(&self.items)
    }

    /// Customers in the sample.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the sample is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Most customers the sample holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// New items offered so far (in-place updates not counted).
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_then_stays_bounded() {
        let mut s = ReservoirSample::new(10, 7);
        for i in 0..1000 {
            s.offer(&format!("c{i}"), i);
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.seen(), 1000);
        for (k, v) in s.iter() {
            assert_eq!(k, format!("c{v}"));
            assert!(s.contains(k));
        }
    }

    #[test]
    fn update_replaces_in_place() {
        let mut s = ReservoirSample::new(3, 1);
        assert_eq!(s.offer("a", 1), ReservoirOffer::Inserted);
        assert_eq!(s.offer("b", 2), ReservoirOffer::Inserted);
        assert_eq!(s.offer("a", 3), ReservoirOffer::Updated);
        assert_eq!(s.len(), 2);
        assert_eq!(s.seen(), 2);
        assert_eq!(s.get("a"), Some(&3));
        assert_eq!(s.items(), &[3, 2]);
    }

    #[test]
    fn eviction_keeps_the_index_consistent() {
        let mut s = ReservoirSample::new(5, 3);
        let mut evicted = 0;
        for i in 0..500 {
            if let ReservoirOffer::Replaced { evicted: who } = s.offer(&format!("c{i}"), i) {
                assert!(!s.contains(&who));
                evicted += 1;
            }
            // Updates of sampled customers never grow the sample.
            let sampled: Vec<String> = s.iter().map(|(k, _)| k.to_owned()).collect();
            for k in &sampled {
                assert_eq!(s.offer(k, -1), ReservoirOffer::Updated);
            }
            assert!(s.len() <= 5);
        }
        assert!(evicted > 0);
        assert_eq!(s.remove("nobody"), None);
        let first = s
            .iter()
            .next()
            .map(|(k, _)| k.to_owned())
            .unwrap_or_default();
        assert_eq!(s.remove(&first), Some(-1));
        assert_eq!(s.len(), 4);
        for (k, _) in s.iter() {
            assert_eq!(s.get(k), Some(&-1));
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let run = |seed| {
            let mut s = ReservoirSample::new(50, seed);
            for i in 0..5000 {
                s.offer(&format!("c{}", i % 3000), i);
            }
            s.iter()
                .map(|(k, v)| (k.to_owned(), *v))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn sample_is_roughly_uniform() {
        // 200 trials of keeping 10 of 100: each customer should be kept ~20 times.
        let mut hits = [0u32; 100];
        for seed in 0..200 {
            let mut s = ReservoirSample::new(10, seed);
            for i in 0..100 {
                s.offer(&i.to_string(), i);
            }
            for &i in s.items() {
                hits[i] += 1;
            }
        }
        let first: u32 = hits[..50].iter().sum();
        let last: u32 = hits[50..].iter().sum();
        assert_eq!(first + last, 2000);
        assert!(
            (first as i64 - last as i64).abs() < 200,
            "first half {first}, second half {last}"
        );
        assert!(hits.iter().all(|&h| h < 50));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut s = ReservoirSample::new(0, 0);
        assert_eq!(s.offer("a", 1), ReservoirOffer::Rejected);
        assert!(s.is_empty());
    }
}
