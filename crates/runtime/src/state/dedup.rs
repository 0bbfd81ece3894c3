//! Ids seen within a retention of event time (24 h by default), restorable from the
//! changelog without writing the whole memory at every commit: the one deduplication store
//! of every service.
//!
//! The memory itself is the runtime's [`Deduplicator`]. What reaches the changelog:
//! - At each checkpoint, the ids first seen since the previous one, grouped by the minute of
//!   their event time: one entry per (minute, checkpoint), key `<minute start, 8 bytes
//!   BE><sequence, 8 bytes BE>`, value the list of `(id, event time)`. Each id is written once.
//! - When the watermark passes a minute's end plus the retention, every entry of that minute is
//!   expired, and gets a tombstone (compaction then drops it).
//!
//! A record older than the watermark minus the retention cannot be checked (its id may have
//! been forgotten), so a task refuses it as late before asking this memory; hence no id is
//! ever added to a minute that already has tombstones.
//!
//! Memory stays bounded without checkpoints too (the embedded driver checkpoints only at the
//! end): ids not yet written are kept by minute and dropped when their minute expires.
//!
//! Restore collects entries first (a later entry of a key wins, a tombstone removes it) and
//! applies them once every entry is read ([`Store::restored`]), because the changelog is read
//! key by key and the memory cannot forget an id on a tombstone.

use std::collections::{BTreeMap, HashMap};

use fitstream_contracts::EventTime;

use super::{Changes, StateError, Store, decode};
use crate::dedup::Deduplicator;

/// Event-time granularity of the entries.
const BUCKET_MS: i64 = 60_000;

type Batch = Vec<(String, i64)>;

/// A [`Deduplicator`] with its changelog entries.
#[derive(Debug)]
pub struct DedupStore {
    memory: Deduplicator,
    retention_ms: i64,
    /// Ids first seen since the last checkpoint, by minute.
    fresh: BTreeMap<i64, Batch>,
    /// Changelog entries alive: minute start -> sequences.
    entries: BTreeMap<i64, Vec<u64>>,
    /// Tombstones to write at the next checkpoint.
    expired: Vec<Vec<u8>>,
    next_seq: u64,
    /// Entries read during a restore, applied once the restore is complete.
    restoring: HashMap<Vec<u8>, Batch>,
}

fn bucket_of(t: EventTime) -> i64 {
    t.0.div_euclid(BUCKET_MS).saturating_mul(BUCKET_MS)
}

fn key(bucket: i64, seq: u64) -> Vec<u8> {
    [bucket.to_be_bytes(), seq.to_be_bytes()].concat()
}

fn parse_key(k: &[u8]) -> Option<(i64, u64)> {
    let bucket = i64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    (k.len() == 16).then_some((bucket, seq))
}

impl DedupStore {
    /// Remembers ids for `retention_ms` of event time.
    pub fn new(retention_ms: i64) -> DedupStore {
        DedupStore {
            memory: Deduplicator::new(retention_ms),
            retention_ms,
            fresh: BTreeMap::new(),
            entries: BTreeMap::new(),
            expired: Vec::new(),
            next_seq: 0,
            restoring: HashMap::new(),
        }
    }

    /// The retention.
    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    /// True when `id` is new (and remembers it), false for a duplicate.
    pub fn first_time(&mut self, id: &str, t: EventTime) -> bool {
        if self.memory.first_time(id, t) {
            self.fresh
                .entry(bucket_of(t))
                .or_default()
                .push((id.to_owned(), t.0));
            true
        } else {
            false
        }
    }

    /// Forgets ids older than the retention at `watermark`; their entries get tombstones.
    pub fn expire(&mut self, watermark: EventTime) {
        self.memory.expire(watermark);
        let horizon = watermark.minus(self.retention_ms).0;
        // Never written and already forgotten: nothing to write, nothing to tombstone.
        while let Some((&bucket, _)) = self.fresh.first_key_value() {
            if bucket.saturating_add(BUCKET_MS) > horizon {
                break;
            }
            self.fresh.pop_first();
        }
        while let Some((&bucket, _)) = self.entries.first_key_value() {
            if bucket.saturating_add(BUCKET_MS) > horizon {
                break;
            }
            if let Some((bucket, seqs)) = self.entries.pop_first() {
                self.expired
                    .extend(seqs.into_iter().map(|seq| key(bucket, seq)));
            }
        }
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.memory.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty()
    }

    /// Approximate heap bytes: the runtime memory's (fingerprints, see [`Deduplicator`]),
    /// the bookkeeping of the changelog entries, and the ids not written yet.
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self.entries.values().map(|v| 64 + v.capacity() * 8).sum();
        let fresh: usize = self
            .fresh
            .values()
            .flatten()
            .map(|(id, _)| size_of::<(String, i64)>() + id.len())
            .sum();
        self.memory.heap_bytes() + entries + fresh
    }
}

impl Store for DedupStore {
    /// New batches, then tombstones of expired minutes.
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        for (bucket, batch) in std::mem::take(&mut self.fresh) {
            let seq = self.next_seq;
            self.next_seq += 1;
            out.put(&key(bucket, seq), &batch)?;
            self.entries.entry(bucket).or_default().push(seq);
        }
        for k in self.expired.drain(..) {
            out.delete(&k);
        }
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        if parse_key(key).is_none() {
            return Err(StateError::Key(
                "a deduplication key is a minute and a sequence number".into(),
            ));
        }
        match value {
            Some(v) => {
                self.restoring.insert(key.to_vec(), decode(v)?);
            }
            None => {
                self.restoring.remove(key);
            }
        }
        Ok(())
    }

    fn restored(&mut self) -> Result<(), StateError> {
        let mut restored: Vec<(Vec<u8>, Batch)> = self.restoring.drain().collect();
        restored.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (k, batch) in restored {
            let Some((bucket, seq)) = parse_key(&k) else {
                continue;
            };
            self.entries.entry(bucket).or_default().push(seq);
            self.next_seq = self.next_seq.max(seq + 1);
            for (id, t) in batch {
                self.memory.first_time(&id, EventTime(t));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Change;

    const H: i64 = 3_600_000;

    fn checkpoint(d: &mut DedupStore) -> Vec<Change> {
        let mut out = Vec::new();
        d.checkpoint(&mut Changes {
            store: "d",
            out: &mut out,
        })
        .expect("checkpoints");
        out.into_iter().map(|(k, v)| (k[2..].to_vec(), v)).collect()
    }

    #[test]
    fn restored_memory_recognises_duplicates_and_tombstones_expired_minutes() {
        let mut d = DedupStore::new(24 * H);
        assert!(d.first_time("a", EventTime(10)));
        assert!(d.first_time("b", EventTime(2 * H)));
        assert!(!d.first_time("a", EventTime(10)));
        let mut log = checkpoint(&mut d);
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|(_, v)| v.is_some()));

        // The minute of "a" expires once the watermark is past its end plus 24 h.
        d.expire(EventTime(24 * H + BUCKET_MS - 1));
        assert!(checkpoint(&mut d).is_empty());
        d.expire(EventTime(24 * H + BUCKET_MS));
        let tombstones = checkpoint(&mut d);
        assert_eq!(tombstones.len(), 1);
        assert!(tombstones[0].1.is_none());
        log.extend(tombstones);

        let mut r = DedupStore::new(24 * H);
        for (k, v) in &log {
            r.restore(k, v.as_deref()).expect("valid entry");
        }
        r.restored().expect("restored");
        assert!(!r.first_time("b", EventTime(2 * H)), "b is remembered");
        assert!(r.first_time("a", EventTime(10)), "a was expired");
        let next = checkpoint(&mut r);
        assert_eq!(next.len(), 1);
        assert_ne!(next[0].0, log[0].0, "sequences continue after a restore");
        assert_ne!(next[0].0, log[1].0, "sequences continue after a restore");
    }

    #[test]
    fn unwritten_ids_are_dropped_when_they_expire() {
        let mut d = DedupStore::new(H);
        for i in 0..1_000 {
            let t = EventTime(i * 60_000);
            assert!(d.first_time(&format!("id-{i}"), t));
            d.expire(t);
        }
        // An hour of minutes is remembered and waits to be written; the rest is gone.
        assert!(d.fresh.len() <= 62, "{} minutes kept", d.fresh.len());
        assert!(d.len() <= 62);
        let written = checkpoint(&mut d);
        assert!(written.len() <= 62 && written.iter().all(|(_, v)| v.is_some()));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let mut d = DedupStore::new(H);
        assert!(d.restore(b"short", Some(b"")).is_err());
        assert!(d.restore(&key(0, 0), None).is_ok());
    }
}
