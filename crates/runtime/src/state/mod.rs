//! State the runtime keeps: typed stores that a task declares, whose changelog the runtime
//! writes and restores.
//!
//! A task owns its stores as fields and lists them by name in [`Task::stores`], the way a
//! Kafka Streams processor declares its state stores. At a commit the driver asks every
//! store for its changes ([`checkpoint`]) and sends them to the task's changelog partition
//! in the transaction that carries the input offsets; after a rebalance or a restart it
//! reads the partition back into the stores ([`restore`], then [`restored`]). A task writes
//! no changelog key and decodes no changelog value itself.
//!
//! - Keys: `<store name>/<key inside the store>`; the store name routes a restored entry.
//! - Values: [`codec`], versioned; a value another build wrote fails with its version named.
//! - Failures are typed ([`StateError`]) and never silent: a checkpoint that cannot encode
//!   fails the commit (the Kafka driver aborts the transaction, the embedded driver fails
//!   the run), and a restore that cannot read an entry fails the restore. Nothing is skipped
//!   and no entry is turned into a tombstone.
//!
//! Stores:
//! - [`Value`]: one value (a task's bookkeeping);
//! - [`Keyed`]: a sorted map, written per changed key;
//! - [`Held`]: records held by event time until the watermark passes them;
//! - [`DedupStore`]: ids seen within a retention of event time;
//! - [`Snapshot`]: a whole structure written at once, in chunks under the broker's size limit;
//! - or a task's own structure implementing [`Store`] (the profiler's customer store).

pub mod codec;
pub mod dedup;
pub mod held;
pub mod stores;

use crate::task::Task;

pub use dedup::DedupStore;
pub use held::{Held, time_key, time_of_key};
pub use stores::{Keyed, Snapshot, StoreKey, Value};

/// A changelog record: key, and value or tombstone.
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// Why state could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A value could not be encoded.
    #[error("cannot encode a state value: {0}")]
    Encode(String),
    /// A value could not be decoded.
    #[error("cannot decode a state value: {0}")]
    Decode(String),
    /// A value of another format version.
    #[error(
        "state format version {found} cannot be read by this build (it reads version {supported}); \
         rebuild the state from the inputs (reset the changelog topics) or run the build that wrote it"
    )]
    Version {
        /// The version found (0: written before values had a version).
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A key that no store of the task could have written.
    #[error("malformed state key: {0}")]
    Key(String),
    /// A key naming a store the task does not have.
    #[error("no store named {0:?} in this task (a changelog of another topology or version?)")]
    UnknownStore(String),
    /// A failure at one entry of one store.
    #[error("store {store:?}{}: {source}", if key.is_empty() { String::new() } else { format!(", key {key}") })]
    At {
        /// Store name.
        store: String,
        /// The key inside the store, printable.
        key: String,
        /// What went wrong.
        source: Box<StateError>,
    },
}

/// A store the runtime checkpoints and restores.
pub trait Store {
    /// Writes what changed since the previous checkpoint.
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError>;
    /// One changelog entry, oldest first (a later entry of a key wins; `None`: a tombstone).
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError>;
    /// Every entry has been restored: put together what needs all of them.
    fn restored(&mut self) -> Result<(), StateError> {
        Ok(())
    }
}

/// Where a store writes its changes during a checkpoint.
pub struct Changes<'a> {
    store: &'a str,
    out: &'a mut Vec<Change>,
}

impl Changes<'_> {
    /// Writes `value` (encoded with [`codec`]) under `key`; returns the encoded length.
    pub fn put<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &[u8],
        value: &T,
    ) -> Result<usize, StateError> {
        let bytes = codec::encode(value).map_err(|e| at(self.store, key, e))?;
        let len = bytes.len();
        self.out.push((self.key(key), Some(bytes)));
        Ok(len)
    }

    /// Writes bytes already encoded with [`codec`] (a chunk of a [`Snapshot`]).
    fn put_encoded(&mut self, key: &[u8], bytes: Vec<u8>) {
        self.out.push((self.key(key), Some(bytes)));
    }

    /// Deletes `key` (a tombstone).
    pub fn delete(&mut self, key: &[u8]) {
        self.out.push((self.key(key), None));
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        [self.store.as_bytes(), b"/", key].concat()
    }
}

fn at(store: &str, key: &[u8], e: StateError) -> StateError {
    StateError::At {
        store: store.to_owned(),
        key: printable(key),
        source: Box::new(e),
    }
}

fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => format!(
            "0x{}",
            key.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// Decodes a value read back by a store (the [`codec`]).
pub fn decode<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, StateError> {
    codec::decode(value)
}

/// The changes of every store of `task` since its previous checkpoint, appended to `out`.
/// On an error, `out` may hold part of them: the caller discards the whole commit.
pub fn checkpoint(task: &mut dyn Task, out: &mut Vec<Change>) -> Result<(), StateError> {
    for (name, store) in task.stores() {
        store.checkpoint(&mut Changes { store: name, out })?;
    }
    Ok(())
}

/// The changes of one store since its previous checkpoint, under the store name `name`.
pub fn checkpoint_store(name: &str, store: &mut dyn Store) -> Result<Vec<Change>, StateError> {
    let mut out = Vec::new();
    store.checkpoint(&mut Changes {
        store: name,
        out: &mut out,
    })?;
    Ok(out)
}

/// One changelog entry of `task`, routed to the store its key names.
pub fn restore(task: &mut dyn Task, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
    let slash = key
        .iter()
        .position(|b| *b == b'/')
        .ok_or_else(|| StateError::Key(printable(key)))?;
    let (name, rest) = (&key[..slash], &key[slash + 1..]);
    let name = std::str::from_utf8(name).map_err(|_| StateError::Key(printable(key)))?;
    let mut stores = task.stores();
    let (_, store) = stores
        .iter_mut()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| StateError::UnknownStore(name.to_owned()))?;
    store.restore(rest, value).map_err(|e| match e {
        e @ StateError::At { .. } => e,
        e => at(name, rest, e),
    })
}

/// Every entry of `task` has been restored: stores and task rebuild what they derive.
pub fn restored(task: &mut dyn Task) -> Result<(), StateError> {
    for (name, store) in task.stores() {
        store.restored().map_err(|e| at(name, b"", e))?;
    }
    task.restored();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Ctx, Gate, Record, Rejection};
    use fitstream_contracts::EventTime;

    #[derive(Default)]
    struct Counting {
        seen: Value<u64>,
        by_key: Keyed<String, i64>,
    }

    impl Task for Counting {
        fn process(
            &mut self,
            _: &Record<'_>,
            _: &mut Gate<'_>,
            _: &mut Ctx,
        ) -> Result<(), Rejection> {
            Ok(())
        }
        fn advance(&mut self, _: EventTime, _: &mut Ctx) {}
        fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
            vec![("seen", &mut self.seen), ("by-key", &mut self.by_key)]
        }
    }

    #[test]
    fn a_task_restores_from_the_changes_its_stores_wrote() {
        let mut a = Counting::default();
        *a.seen += 3;
        a.by_key.insert("x".into(), 1);
        a.by_key.insert("y".into(), 2);
        let mut log = Vec::new();
        checkpoint(&mut a, &mut log).expect("checkpoints");
        a.by_key.remove(&"x".to_owned());
        checkpoint(&mut a, &mut log).expect("checkpoints");
        assert_eq!(log.len(), 4, "seen, x, y, then x's tombstone");
        assert!(
            log.iter()
                .all(|(k, _)| k.starts_with(b"seen/") || k.starts_with(b"by-key/"))
        );

        let mut b = Counting::default();
        for (k, v) in &log {
            restore(&mut b, k, v.as_deref()).expect("restores");
        }
        restored(&mut b).expect("restored");
        assert_eq!(*b.seen, 3);
        assert_eq!(b.by_key.iter().collect::<Vec<_>>(), [(&"y".to_owned(), &2)]);
    }

    #[test]
    fn entries_of_unknown_stores_or_versions_fail_with_what_they_were() {
        let mut t = Counting::default();
        let e = restore(&mut t, b"other/k", Some(b"v")).expect_err("no such store");
        assert_eq!(
            e.to_string(),
            "no store named \"other\" in this task (a changelog of another topology or version?)"
        );
        let e = restore(&mut t, b"by-key/x", Some(&[codec::MAGIC, 2, 0])).expect_err("v2");
        assert!(
            e.to_string().starts_with(
                "store \"by-key\", key x: state format version 2 cannot be read by this build (it reads version 1)"
            ),
            "{e}"
        );
        let e = restore(&mut t, b"seen/", Some(&7u64.to_le_bytes())).expect_err("v0");
        assert!(e.to_string().contains("version 0"), "{e}");
        assert!(restore(&mut t, b"noslash", None).is_err());
    }
}
