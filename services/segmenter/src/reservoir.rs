//! A bounded, seeded sample of customers, keyed by customer: a bottom-k sample.
//!
//! The segmenter reads every profile update from the profiles topic but fits on a bounded
//! sample. Each customer gets a priority, a seeded hash of its id (the first 8 bytes of
//! SHA-256 over the seed and the id); the sample holds the `capacity` customers of smallest
//! priority among those offered (Cohen and Kaplan's bottom-k sketch, a reservoir sample by
//! random keys). The hash is a uniform random key per customer, so the sample is a uniform
//! sample of the customers seen, whatever how often each one is updated.
//!
//! Why not Vitter's Algorithm R: its sample depends on how many offers were made and in which
//! order. The number of profile versions a customer gets, and how two partitions of the
//! profiles topic interleave, differ between a replay and a run on Kafka; a bottom-k sample
//! depends only on the *set* of customers seen, so both run modes fit on the same customers.
//!
//! Keyed by customer: an update of a sampled customer replaces its item in place. A customer
//! that was evicted (or rejected) never gets back in: the priorities of the sample only go
//! down. A restore that offers the changelog's rows (the sampled customers) therefore gives
//! exactly the sample of the uninterrupted run.
//!
//! Deterministic and portable: SHA-256 gives the same priorities on every platform and Rust
//! version (unlike the standard library's hasher).

use std::collections::{BTreeSet, HashMap};

use sha2::{Digest, Sha256};

/// What [`ReservoirSample::offer`] did with an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservoirOffer {
    /// The customer was in the sample; its item was replaced by the newer one.
    Updated,
    /// The sample was not full; the item was added.
    Inserted,
    /// The item replaced another customer's (the one of highest priority), which left.
    Replaced {
        /// The customer who left the sample.
        evicted: String,
    },
    /// The item was not kept: the sample is full of customers of lower priority.
    Rejected,
}

/// A uniform sample of at most `capacity` customers, holding the latest item of each.
#[derive(Clone, Debug)]
pub struct ReservoirSample<T> {
    /// Slots in use; never more than `capacity`.
    items: Vec<T>,
    /// Customer of each slot (parallel to `items`).
    keys: Vec<String>,
    /// Priority of each slot (parallel to `items`).
    priorities: Vec<u64>,
    /// Customer -> slot, to replace a customer's item in place.
    index: HashMap<String, usize>,
    /// (priority, slot): the last one is evicted first.
    order: BTreeSet<(u64, usize)>,
    /// Most slots.
    capacity: usize,
    /// Seed of the priorities.
    seed: u64,
    /// New customers offered so far (in-place updates not counted).
    seen: u64,
}

impl<T> ReservoirSample<T> {
    /// An empty sample of at most `capacity` customers; `seed` chooses the priorities.
    pub fn new(capacity: usize, seed: u64) -> ReservoirSample<T> {
        let reserve = capacity.min(1 << 20);
        ReservoirSample {
            items: Vec::with_capacity(reserve),
            keys: Vec::with_capacity(reserve),
            priorities: Vec::with_capacity(reserve),
            index: HashMap::with_capacity(reserve),
            order: BTreeSet::new(),
            capacity,
            seed,
            seen: 0,
        }
    }

    /// The priority of `customer` under this sample's seed (smaller is kept first).
    pub fn priority(&self, customer: &str) -> u64 {
        let mut h = Sha256::new();
        h.update(self.seed.to_be_bytes());
        h.update(customer.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// Offers the latest item of `customer`.
    pub fn offer(&mut self, customer: &str, item: T) -> ReservoirOffer {
        if let Some(&slot) = self.index.get(customer) {
            self.items[slot] = item;
            return ReservoirOffer::Updated;
        }
        self.seen += 1;
        let priority = self.priority(customer);
        if self.items.len() < self.capacity {
            let slot = self.items.len();
            self.index.insert(customer.to_owned(), slot);
            self.items.push(item);
            self.keys.push(customer.to_owned());
            self.priorities.push(priority);
            self.order.insert((priority, slot));
            return ReservoirOffer::Inserted;
        }
        match self.order.last().copied() {
            Some((highest, slot)) if (priority, customer) < (highest, self.keys[slot].as_str()) => {
                self.order.remove(&(highest, slot));
                self.order.insert((priority, slot));
                let evicted = std::mem::replace(&mut self.keys[slot], customer.to_owned());
                self.index.remove(&evicted);
                self.index.insert(customer.to_owned(), slot);
                self.items[slot] = item;
                self.priorities[slot] = priority;
                ReservoirOffer::Replaced { evicted }
            }
            _ => ReservoirOffer::Rejected,
        }
    }

    /// Removes a customer (e.g. on a tombstone in the profile topic); returns its item.
    pub fn remove(&mut self, customer: &str) -> Option<T> {
        let slot = self.index.remove(customer)?;
        let last = self.items.len() - 1;
        self.order.remove(&(self.priorities[slot], slot));
        if slot != last {
            // The last slot moves into the freed one.
            self.order.remove(&(self.priorities[last], last));
            self.order.insert((self.priorities[last], slot));
        }
        let item = self.items.swap_remove(slot);
        self.keys.swap_remove(slot);
        self.priorities.swap_remove(slot);
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
    fn the_sample_depends_only_on_the_set_of_customers_offered() {
        let ids: Vec<String> = (0..2_000).map(|i| format!("c{i}")).collect();
        let sampled = |s: &ReservoirSample<usize>| {
            let mut keys: Vec<String> = s.iter().map(|(k, _)| k.to_owned()).collect();
            keys.sort();
            keys
        };
        let mut once = ReservoirSample::new(100, 9);
        for (i, id) in ids.iter().enumerate() {
            once.offer(id, i);
        }
        // Reversed, and every customer offered three times, interleaved.
        let mut shuffled = ReservoirSample::new(100, 9);
        for round in 0..3 {
            for (i, id) in ids.iter().enumerate().rev() {
                shuffled.offer(id, i + round);
            }
        }
        assert_eq!(sampled(&once), sampled(&shuffled));
        // The kept customers are those of the 100 smallest priorities.
        let mut priorities: Vec<(u64, &String)> =
            ids.iter().map(|id| (once.priority(id), id)).collect();
        priorities.sort();
        let mut smallest: Vec<String> = priorities[..100]
            .iter()
            .map(|(_, id)| (*id).clone())
            .collect();
        smallest.sort();
        assert_eq!(sampled(&once), smallest);
        // Offering the sampled rows to a fresh sample (a restore) gives the same sample.
        let mut restored = ReservoirSample::new(100, 9);
        for (k, v) in once.iter() {
            restored.offer(k, *v);
        }
        for id in &ids {
            restored.offer(id, 0);
        }
        assert_eq!(sampled(&restored), sampled(&once));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut s = ReservoirSample::new(0, 0);
        assert_eq!(s.offer("a", 1), ReservoirOffer::Rejected);
        assert!(s.is_empty());
    }
}
