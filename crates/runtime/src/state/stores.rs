//! The general stores: one value, a sorted map, a whole structure in chunks.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};

use fitstream_contracts::EventTime;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Changes, StateError, Store, codec, decode, time_key, time_of_key};

/// A key of a [`Keyed`] store: bytes that read back as the same key.
pub trait StoreKey: Ord + Clone {
    /// The key's bytes in the changelog.
    fn to_bytes(&self) -> Vec<u8>;
    /// The key from its bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self, StateError>;
}

fn utf8(bytes: &[u8]) -> Result<&str, StateError> {
    std::str::from_utf8(bytes).map_err(|e| StateError::Key(format!("not UTF-8: {e}")))
}

impl StoreKey for String {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        utf8(bytes).map(str::to_owned)
    }
}

impl StoreKey for Box<str> {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        utf8(bytes).map(Into::into)
    }
}

/// An event time and a name: sorted by time in the changelog too.
impl StoreKey for (EventTime, Box<str>) {
    fn to_bytes(&self) -> Vec<u8> {
        [&time_key(self.0)[..], self.1.as_bytes()].concat()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let t = time_of_key(bytes).ok_or_else(|| StateError::Key("no event time".into()))?;
        Ok((t, utf8(&bytes[8..])?.into()))
    }
}

/// An event time and a sequence number (the order of arrival): sorted by time in the
/// changelog too.
impl StoreKey for (EventTime, u64) {
    fn to_bytes(&self) -> Vec<u8> {
        [&time_key(self.0)[..], &self.1.to_be_bytes()].concat()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let malformed = || StateError::Key("expected an event time and a number".into());
        let t = time_of_key(bytes).ok_or_else(malformed)?;
        let seq: [u8; 8] = bytes
            .get(8..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(malformed)?;
        Ok((t, u64::from_be_bytes(seq)))
    }
}

/// One value, written when it changed. Reading goes through `Deref`; any mutable access marks
/// it changed.
#[derive(Debug, Default)]
pub struct Value<T> {
    value: T,
    changed: bool,
}

impl<T> Value<T> {
    /// A store holding `value` (not yet written).
    pub fn new(value: T) -> Value<T> {
        Value {
            value,
            changed: false,
        }
    }
}

impl<T> Deref for Value<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Value<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.changed = true;
        &mut self.value
    }
}

impl<T: Serialize + DeserializeOwned + Default> Store for Value<T> {
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        if std::mem::take(&mut self.changed) {
            out.put(b"", &self.value)?;
        }
        Ok(())
    }

    fn restore(&mut self, _key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        self.value = value.map(decode).transpose()?.unwrap_or_default();
        Ok(())
    }
}

/// A sorted map written per changed key (a tombstone for a removed one). Reading goes
/// through `Deref` to the map.
///
/// A key added and removed between two checkpoints is never written and leaves nothing
/// behind, so what the store remembers between checkpoints is bounded by its live keys and
/// the keys written before, however long it runs without one (a replay checkpoints only at
/// its end).
#[derive(Clone, Debug)]
pub struct Keyed<K, V> {
    map: BTreeMap<K, V>,
    /// Keys whose value differs from what the changelog has.
    changed: BTreeSet<K>,
    /// Of those, the keys the changelog does not have (added since the last checkpoint).
    unwritten: BTreeSet<K>,
}

impl<K, V> Default for Keyed<K, V> {
    fn default() -> Self {
        Keyed {
            map: BTreeMap::new(),
            changed: BTreeSet::new(),
            unwritten: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone, V> Keyed<K, V> {
    /// Marks `key` changed before a write; remembers whether the changelog lacks it.
    fn touch(&mut self, key: &K) {
        // Absent now and unchanged since the checkpoint: absent from the changelog too.
        if !self.map.contains_key(key) && self.changed.insert(key.clone()) {
            self.unwritten.insert(key.clone());
        } else {
            self.changed.insert(key.clone());
        }
    }

    /// Marks `key` removed: a tombstone at the next checkpoint, unless it was never written.
    fn removed(&mut self, key: &K) {
        if self.unwritten.remove(key) {
            self.changed.remove(key);
        } else {
            self.changed.insert(key.clone());
        }
    }

    /// The value of `key` to change in place, inserted as the default when absent.
    pub fn get_or_insert_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.touch(&key);
        self.map.entry(key).or_default()
    }

    /// Inserts or replaces a value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touch(&key);
        self.map.insert(key, value)
    }

    /// Removes a value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let old = self.map.remove(key);
        if old.is_some() {
            self.removed(key);
        }
        old
    }

    /// Removes the first entry.
    pub fn pop_first(&mut self) -> Option<(K, V)> {
        let (k, v) = self.map.pop_first()?;
        self.removed(&k);
        Some((k, v))
    }

    /// A value to change in place.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        self.changed.insert(key.clone());
        Some(v)
    }
}

impl<K, V> Deref for Keyed<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: StoreKey, V: Serialize + DeserializeOwned> Store for Keyed<K, V> {
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        self.unwritten.clear();
        for key in std::mem::take(&mut self.changed) {
            match self.map.get(&key) {
                Some(v) => {
                    out.put(&key.to_bytes(), v)?;
                }
                None => out.delete(&key.to_bytes()),
            }
        }
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let k = K::from_bytes(key)?;
        match value {
            Some(v) => self.map.insert(k, decode(v)?),
            None => self.map.remove(&k),
        };
        Ok(())
    }
}

/// Chunk size of a [`Snapshot`]: well under the broker's message size limit.
const CHUNK: usize = 256 * 1024;

/// A whole structure, written at once when it changed: encoded, then split into chunks so
/// that a large state never meets the broker's message size limit.
///
/// Each snapshot has a version: its chunks are `chunk/<version>/<i>`, then `count` says which
/// version is current and how many chunks it has, and the previous version's chunks get
/// tombstones. Compaction keeps the latest record of each key, and it may do so for part of
/// the log only (up to a segment boundary), so the records a restore reads need not come in
/// the order they were written: the current version's chunks may come after its `count`, or
/// after a `count` of an older version. Chunks are therefore collected by version and the
/// structure is put together once every entry is read ([`Store::restored`]); a chunk of the
/// current version that is missing then fails the restore.
#[derive(Debug)]
pub struct Snapshot<T> {
    value: T,
    changed: bool,
    /// Chunks read during a restore, by (version, index).
    chunks: BTreeMap<(u64, u32), Vec<u8>>,
    /// The current version and its chunk count, as the latest `count` read says.
    current: Option<(u64, u32)>,
    /// The last snapshot written or restored: version, chunks, encoded bytes.
    written: (u64, u32, usize),
}

impl<T> Snapshot<T> {
    /// A store holding `value` (not yet written).
    pub fn new(value: T) -> Snapshot<T> {
        Snapshot {
            value,
            changed: false,
            chunks: BTreeMap::new(),
            current: None,
            written: (0, 0, 0),
        }
    }

    /// Encoded bytes of the last snapshot written or restored.
    pub fn bytes(&self) -> usize {
        self.written.2
    }
}

impl<T> Deref for Snapshot<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Snapshot<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.changed = true;
        &mut self.value
    }
}

fn chunk_key(version: u64, i: u32) -> Vec<u8> {
    format!("chunk/{version}/{i}").into_bytes()
}

impl<T: Serialize + DeserializeOwned> Store for Snapshot<T> {
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        if !std::mem::take(&mut self.changed) {
            return Ok(());
        }
        let bytes = codec::encode(&self.value)?;
        let (previous, previous_n, _) = self.written;
        let version = previous + 1;
        let n = bytes.chunks(CHUNK).len() as u32;
        for (i, c) in bytes.chunks(CHUNK).enumerate() {
            out.put_encoded(&chunk_key(version, i as u32), c.to_vec());
        }
        out.put(b"count", &(version, n))?;
        for i in 0..previous_n {
            out.delete(&chunk_key(previous, i));
        }
        self.written = (version, n, bytes.len());
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        if key == b"count" {
            self.current = value.map(decode).transpose()?;
            return Ok(());
        }
        let malformed = || StateError::Key(String::from_utf8_lossy(key).into_owned());
        let text = std::str::from_utf8(key).map_err(|_| malformed())?;
        let (version, i) = text
            .strip_prefix("chunk/")
            .and_then(|r| r.split_once('/'))
            .and_then(|(v, i)| Some((v.parse::<u64>().ok()?, i.parse::<u32>().ok()?)))
            .ok_or_else(malformed)?;
        match value {
            Some(v) => self.chunks.insert((version, i), v.to_vec()),
            None => self.chunks.remove(&(version, i)),
        };
        Ok(())
    }

    fn restored(&mut self) -> Result<(), StateError> {
        let chunks = std::mem::take(&mut self.chunks);
        let Some((version, n)) = self.current.take() else {
            return Ok(());
        };
        let mut whole = Vec::new();
        for i in 0..n {
            let chunk = chunks.get(&(version, i)).ok_or_else(|| {
                StateError::Decode(format!(
                    "snapshot version {version}: chunk {i} of {n} missing"
                ))
            })?;
            whole.extend_from_slice(chunk);
        }
        self.value = decode(&whole)?;
        self.written = (version, n, whole.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Change;

    fn write(store: &mut dyn Store, log: &mut Vec<Change>) {
        store
            .checkpoint(&mut Changes {
                store: "s",
                out: log,
            })
            .expect("checkpoints");
    }

    fn read(store: &mut dyn Store, log: &[Change]) {
        for (k, v) in log {
            let k = k.strip_prefix(b"s/").expect("the store's prefix");
            store.restore(k, v.as_deref()).expect("restores");
        }
        store.restored().expect("restored");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u16),
        Remove(u8),
        PopFirst,
        Bump(u8),
        Checkpoint,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..12, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u8..12).prop_map(Op::Remove),
            Just(Op::PopFirst),
            (0u8..12).prop_map(Op::Bump),
            Just(Op::Checkpoint),
        ]
    }

    proptest::proptest! {
        /// Whatever the operations, a restore of the changelog gives the map as of each
        /// checkpoint; a tombstone is written only for a key the changelog has; and what
        /// the store remembers between checkpoints never exceeds its live keys plus the
        /// keys written before (a key added and removed in between leaves nothing).
        #[test]
        fn a_keyed_store_writes_what_restores_it_and_remembers_no_more(
            ops in proptest::collection::vec(op(), 0..200)
        ) {
            let mut s: Keyed<String, u16> = Keyed::default();
            let mut log = Vec::new();
            let mut logged: BTreeSet<String> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => { s.insert(k.to_string(), v); }
                    Op::Remove(k) => { s.remove(&k.to_string()); }
                    Op::PopFirst => { s.pop_first(); }
                    Op::Bump(k) => {
                        *s.get_or_insert_default(k.to_string()) += 1;
                        if let Some(v) = s.get_mut(&k.to_string()) { *v = v.wrapping_add(1); }
                    }
                    Op::Checkpoint => {
                        let from = log.len();
                        write(&mut s, &mut log);
                        for (k, v) in &log[from..] {
                            let k = String::from_utf8(k[2..].to_vec()).expect("utf-8");
                            match v {
                                Some(_) => { logged.insert(k); }
                                None => proptest::prop_assert!(
                                    logged.remove(&k), "a tombstone for {k}, never written"
                                ),
                            }
                        }
                        let mut r: Keyed<String, u16> = Keyed::default();
                        read(&mut r, &log);
                        proptest::prop_assert_eq!(&*r, &*s);
                    }
                }
                let remembered = s.changed.len();
                let bound = s.map.len() + logged.len();
                proptest::prop_assert!(remembered <= bound, "{remembered} > {bound}");
                proptest::prop_assert!(s.changed.iter().all(|k| s.map.contains_key(k) || logged.contains(k)));
            }
        }
    }

    #[test]
    fn a_key_added_and_removed_between_checkpoints_is_never_written() {
        let mut s: Keyed<String, u8> = Keyed::default();
        let mut log = Vec::new();
        for i in 0..10_000u32 {
            s.insert(i.to_string(), 1);
            s.remove(&i.to_string());
        }
        assert!(s.changed.is_empty() && s.unwritten.is_empty());
        s.insert("kept".into(), 2);
        write(&mut s, &mut log);
        assert_eq!(log.len(), 1, "one put");
        s.remove(&"kept".to_string());
        s.insert("kept".into(), 3);
        s.remove(&"kept".to_string());
        write(&mut s, &mut log);
        assert_eq!(log.len(), 2, "then its tombstone");
        assert_eq!(log[1].1, None);
    }

    #[test]
    fn a_snapshot_larger_than_a_chunk_restores_and_shrinks() {
        let mut s = Snapshot::new(vec![7u64; 100_000]);
        let mut log = Vec::new();
        *s = (0..100_000).collect();
        write(&mut s, &mut log);
        let chunks = log
            .iter()
            .filter(|(k, _)| k.starts_with(b"s/chunk/"))
            .count();
        assert!(chunks > 1, "{chunks} chunks");
        let first = log.len();
        *s = vec![1, 2, 3];
        write(&mut s, &mut log);
        let tombstones = log.iter().filter(|(_, v)| v.is_none()).count();
        assert_eq!(tombstones, chunks, "the first version's chunks are deleted");

        let mut r = Snapshot::new(Vec::<u64>::new());
        read(&mut r, &log[..first]);
        assert_eq!(r.len(), 100_000);
        assert_eq!(r[99_999], 99_999);
        read(&mut r, &log[first..]);
        assert_eq!(*r, [1, 2, 3]);
    }

    /// What a compacted changelog can look like: the latest record of each key only, and not
    /// in the order written (a segment boundary between a snapshot's chunks and its count
    /// kept the chunks of one version and the count of the other in front). Found by the
    /// planner's kill -9 test: "snapshot chunk 0 missing".
    #[test]
    fn a_snapshot_restores_from_a_compacted_log_in_any_order() {
        let mut s = Snapshot::new(vec![0u64; 0]);
        let mut log = Vec::new();
        for round in 1..=3u64 {
            *s = (0..70_000 * round).collect();
            write(&mut s, &mut log);
        }
        // Compaction: the latest record of each key, tombstones included.
        let mut latest: BTreeMap<Vec<u8>, (usize, Option<Vec<u8>>)> = BTreeMap::new();
        for (at, (k, v)) in log.iter().enumerate() {
            latest.insert(k.clone(), (at, v.clone()));
        }
        let mut kept: Vec<(usize, Change)> = latest
            .into_iter()
            .map(|(k, (at, v))| (at, (k, v)))
            .collect();
        kept.sort_by_key(|(at, _)| *at);
        let kept: Vec<Change> = kept.into_iter().map(|(_, c)| c).collect();
        // The count first, then the chunks, reversed: whatever the order, the same value.
        let mut reordered = kept.clone();
        reordered.reverse();
        for order in [&kept, &reordered] {
            let mut r = Snapshot::new(Vec::<u64>::new());
            read(&mut r, order);
            assert_eq!(r.len(), 210_000);
            assert_eq!(r[209_999], 209_999);
        }
        // A chunk of the current version that compaction could not have removed, gone:
        // the restore fails instead of running on a wrong value.
        let broken: Vec<Change> = kept
            .into_iter()
            .filter(|(k, v)| !(k.starts_with(b"s/chunk/3/1") && v.is_some()))
            .collect();
        let mut r = Snapshot::new(Vec::<u64>::new());
        for (k, v) in &broken {
            let k = k.strip_prefix(b"s/").expect("the store's prefix");
            r.restore(k, v.as_deref()).expect("restores");
        }
        let e = r.restored().expect_err("chunk 1 of version 3 is missing");
        assert!(
            e.to_string().contains("snapshot version 3: chunk 1 of"),
            "{e}"
        );
    }

    #[test]
    fn a_keyed_store_writes_only_changed_keys() {
        let mut m: Keyed<(EventTime, Box<str>), f64> = Keyed::default();
        m.insert((EventTime(-5), "a".into()), 0.5);
        m.insert((EventTime(3), "b".into()), 1.5);
        let mut log = Vec::new();
        write(&mut m, &mut log);
        if let Some(v) = m.get_mut(&(EventTime(3), "b".into())) {
            *v = 2.5;
        }
        write(&mut m, &mut log);
        assert_eq!(log.len(), 3);
        let mut r: Keyed<(EventTime, Box<str>), f64> = Keyed::default();
        read(&mut r, &log);
        assert_eq!(
            r.iter()
                .map(|((t, k), v)| (t.0, &**k, *v))
                .collect::<Vec<_>>(),
            [(-5, "a", 0.5), (3, "b", 2.5)]
        );
    }

    #[test]
    fn an_unchanged_value_writes_nothing_and_a_tombstone_restores_the_default() {
        let mut v: Value<(i64, bool)> = Value::default();
        let mut log = Vec::new();
        write(&mut v, &mut log);
        assert!(log.is_empty());
        v.0 = 4;
        write(&mut v, &mut log);
        assert_eq!(log.len(), 1);
        let mut r: Value<(i64, bool)> = Value::default();
        read(&mut r, &log);
        assert_eq!(*r, (4, false));
        read(&mut r, &[(b"s/".to_vec(), None)]);
        assert_eq!(*r, (0, false));
    }
}
