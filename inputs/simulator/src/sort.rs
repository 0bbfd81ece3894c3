//! Event-time order with bounded memory: an external merge sort of a history's records.
//!
//! Public histories are not all sorted by time (UserBehavior is sorted by user), and a
//! pipeline fed in file order would find most of such a file late. [`sort_by_event_time`]
//! reads a replay once and keeps its items, each encoded as MessagePack, in a buffer of at
//! most [`SortConfig::memory_bytes`] (the encoded items as the allocator holds them, plus the
//! buffer's index, counted at its largest, while it grows); when the next item would not fit,
//! the buffer is sorted in place and written to a temporary file as a sorted run. The
//! result ([`Sorted`]) is read as many times as needed ([`Sorted::iter`]): from memory when
//! everything fitted, otherwise by a k-way merge of the runs with a binary heap (at most
//! [`MAX_FAN_IN`] runs at once; more are first merged in groups of consecutive runs). The
//! temporary files go when the last [`Sorted`] and iterator over it are dropped.
//!
//! The order is stable: items of equal event time keep their file order, so a file that is
//! already in time order comes out exactly as it went in. Items without an event time (raw
//! bytes, and the error items of rows that could not be read) take the time of the item
//! before them in the file, and so stay next to it; error items are reported again, in that
//! place, on every read, as [`ReplayError::Sorted`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use fitstream_contracts::{ClickEvent, PurchaseEvent};
use serde::{Deserialize, Serialize};

use crate::defects::Defect;
use crate::error::ReplayError;
use crate::record::{InputRecord, InputTopic};

/// Default memory bound of the sort buffer: 256 MiB.
pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;
/// Most runs merged at once (each holds a read buffer and a file descriptor).
pub const MAX_FAN_IN: usize = 64;
/// Read buffer of each run during a merge.
const RUN_BUFFER: usize = 64 << 10;

/// How to sort.
#[derive(Clone, Debug)]
pub struct SortConfig {
    /// Most bytes the buffer of items in memory may take before it is written as a run.
    pub memory_bytes: usize,
    /// Where the runs go (the system's temporary directory when `None`).
    pub dir: Option<PathBuf>,
}

impl Default for SortConfig {
    fn default() -> Self {
        SortConfig {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            dir: None,
        }
    }
}

/// What a sort did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SortStats {
    /// Records sorted (clicks, purchases, raw bytes).
    pub records: u64,
    /// Error items (rows that could not be read), kept in place.
    pub errors: u64,
    /// Sorted runs written to disk (0: everything fitted in memory).
    pub runs: usize,
    /// Bytes written to the runs (including intermediate merges).
    pub spilled_bytes: u64,
    /// Whether the items were already in time order.
    pub was_in_order: bool,
}

/// One item as kept while sorting.
#[derive(Serialize, Deserialize)]
enum Item {
    Click(ClickEvent),
    Purchase(PurchaseEvent),
    Raw {
        purchases: bool,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        defect: Defect,
    },
    Error {
        line: u64,
        message: String,
    },
}

impl Item {
    fn new(r: Result<InputRecord, ReplayError>) -> Item {
        match r {
            Ok(InputRecord::Click(c)) => Item::Click(c),
            Ok(InputRecord::Purchase(p)) => Item::Purchase(p),
            Ok(InputRecord::Raw {
                topic,
                key,
                value,
                defect,
            }) => Item::Raw {
                purchases: topic == InputTopic::Purchases,
                key,
                value,
                defect,
            },
            Err(e) => {
                let line = e.line();
                let text = e.to_string();
                let prefix = format!("line {line}: ");
                let message = text.strip_prefix(&prefix).unwrap_or(&text).to_owned();
                Item::Error { line, message }
            }
        }
    }

    fn into_result(self) -> Result<InputRecord, ReplayError> {
        match self {
            Item::Click(c) => Ok(InputRecord::Click(c)),
            Item::Purchase(p) => Ok(InputRecord::Purchase(p)),
            Item::Raw {
                purchases,
                key,
                value,
                defect,
            } => Ok(InputRecord::Raw {
                topic: if purchases {
                    InputTopic::Purchases
                } else {
                    InputTopic::Clickstream
                },
                key,
                value,
                defect,
            }),
            Item::Error { line, message } => Err(ReplayError::Sorted { line, message }),
        }
    }
}

/// An encoded item, its sort time and its place in the buffer (ties keep it: the in-place
/// unstable sort then gives the stable order without scratch memory).
struct Entry {
    time: i64,
    seq: u32,
    bytes: Box<[u8]>,
}

impl Entry {
    fn key(&self) -> (i64, u32) {
        (self.time, self.seq)
    }
}

/// Heap bytes an allocation of `len` bytes takes: the allocator's 8-byte header, rounded up to
/// 16 bytes (glibc's chunks; at least 32).
fn allocated(len: usize) -> usize {
    ((len + 8).div_ceil(16) * 16).max(32)
}

/// Bytes the buffer's index takes while it pushes one more entry: its capacity, and when the
/// push grows it, the new allocation beside the old one.
fn index_bytes(buffer: &Vec<Entry>) -> usize {
    let cap = buffer.capacity();
    let during_push = if buffer.len() == cap {
        cap + (2 * cap).max(4)
    } else {
        cap
    };
    during_push * size_of::<Entry>()
}

/// A history in event-time order, to be read any number of times.
#[derive(Clone)]
pub struct Sorted {
    storage: Arc<Storage>,
    stats: SortStats,
}

enum Storage {
    Memory(Vec<Entry>),
    Runs(Vec<tempfile::NamedTempFile>),
}

/// Sorts a replay's items by event time (stable), in at most `cfg.memory_bytes` of buffer.
/// Fails only when a run cannot be written.
pub fn sort_by_event_time<I>(items: I, cfg: &SortConfig) -> io::Result<Sorted>
where
    I: IntoIterator<Item = Result<InputRecord, ReplayError>>,
{
    let mut stats = SortStats {
        was_in_order: true,
        ..SortStats::default()
    };
    let mut buffer: Vec<Entry> = Vec::new();
    // Heap bytes of the encoded items in the buffer.
    let mut buffered = 0_usize;
    let mut runs: Vec<tempfile::NamedTempFile> = Vec::new();
    let mut time = i64::MIN;
    let mut scratch = Vec::new();
    for item in items {
        match &item {
            Ok(r) => {
                stats.records += 1;
                if let Some(t) = r.event_time() {
                    stats.was_in_order &= t.0 >= time;
                    time = t.0;
                }
            }
            Err(_) => stats.errors += 1,
        }
        // Encoded in a scratch buffer, then copied to an allocation of its exact size (a grown
        // vector shrunk in place would leave a hole beside every item).
        scratch.clear();
        rmp_serde::encode::write(&mut scratch, &Item::new(item)).map_err(io::Error::other)?;
        let bytes: Box<[u8]> = Box::from(scratch.as_slice());
        let size = allocated(bytes.len());
        let full = buffered + size + index_bytes(&buffer) > cfg.memory_bytes
            || buffer.len() == u32::MAX as usize;
        if full && !buffer.is_empty() {
            // The index keeps its allocation: the next run is about as long.
            runs.push(write_run(&mut buffer, cfg, &mut stats)?);
            buffered = 0;
        }
        let seq = buffer.len() as u32;
        buffered += size;
        buffer.push(Entry { time, seq, bytes });
    }
    let storage = if runs.is_empty() {
        buffer.sort_unstable_by_key(Entry::key);
        Storage::Memory(buffer)
    } else {
        if !buffer.is_empty() {
            runs.push(write_run(&mut buffer, cfg, &mut stats)?);
        }
        drop(buffer);
        while runs.len() > MAX_FAN_IN {
            // Merge groups of consecutive runs, so that the order between runs still follows
            // the file and equal times keep it.
            let mut merged = Vec::new();
            let mut rest = runs.into_iter().peekable();
            while rest.peek().is_some() {
                let group: Vec<_> = rest.by_ref().take(MAX_FAN_IN).collect();
                if group.len() == 1 {
                    merged.extend(group);
                    continue;
                }
                let mut out = new_run(cfg)?;
                let mut w = BufWriter::with_capacity(RUN_BUFFER, out.as_file_mut());
                let mut merge = Merge::new(&group)?;
                while let Some((t, bytes)) = merge.next_entry()? {
                    stats.spilled_bytes += write_entry(&mut w, t, &bytes)?;
                }
                w.flush()?;
                drop(w);
                merged.push(out);
            }
            runs = merged;
        }
        Storage::Runs(runs)
    };
    Ok(Sorted {
        storage: Arc::new(storage),
        stats,
    })
}

fn new_run(cfg: &SortConfig) -> io::Result<tempfile::NamedTempFile> {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("fitstream-sort-");
        b
    };
    match &cfg.dir {
        Some(dir) => builder.tempfile_in(dir),
        None => builder.tempfile(),
    }
}

/// Sorts the buffer and writes it as a run; empties the buffer.
fn write_run(
    buffer: &mut Vec<Entry>,
    cfg: &SortConfig,
    stats: &mut SortStats,
) -> io::Result<tempfile::NamedTempFile> {
    buffer.sort_unstable_by_key(Entry::key);
    let mut run = new_run(cfg)?;
    let mut w = BufWriter::with_capacity(RUN_BUFFER, run.as_file_mut());
    for e in buffer.drain(..) {
        stats.spilled_bytes += write_entry(&mut w, e.time, &e.bytes)?;
    }
    w.flush()?;
    drop(w);
    stats.runs += 1;
    Ok(run)
}

/// An entry on disk: time (i64 LE), length (u32 LE), the encoded item.
fn write_entry(w: &mut impl Write, time: i64, bytes: &[u8]) -> io::Result<u64> {
    let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
    w.write_all(&time.to_le_bytes())?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)?;
    Ok(12 + u64::from(len))
}

fn read_entry(r: &mut impl Read) -> io::Result<Option<(i64, Vec<u8>)>> {
    let mut head = [0_u8; 12];
    match r.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..])?;
    let (t, len) = head.split_at(8);
    let time = i64::from_le_bytes(t.try_into().map_err(io::Error::other)?);
    let len = u32::from_le_bytes(len.try_into().map_err(io::Error::other)?) as usize;
    let mut bytes = vec![0; len];
    r.read_exact(&mut bytes)?;
    Ok(Some((time, bytes)))
}

/// A k-way merge of runs; ties go to the earlier run.
struct Merge {
    readers: Vec<BufReader<File>>,
    heads: Vec<Option<Vec<u8>>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
}

impl Merge {
    fn new(runs: &[tempfile::NamedTempFile]) -> io::Result<Merge> {
        let mut merge = Merge {
            readers: Vec::with_capacity(runs.len()),
            heads: Vec::with_capacity(runs.len()),
            heap: BinaryHeap::with_capacity(runs.len()),
        };
        for (i, run) in runs.iter().enumerate() {
            let mut file = run.reopen()?;
            file.rewind()?;
            let mut reader = BufReader::with_capacity(RUN_BUFFER, file);
            let head = read_entry(&mut reader)?;
            if let Some((t, bytes)) = head {
                merge.heap.push(Reverse((t, i)));
                merge.heads.push(Some(bytes));
            } else {
                merge.heads.push(None);
            }
            merge.readers.push(reader);
        }
        Ok(merge)
    }

    fn next_entry(&mut self) -> io::Result<Option<(i64, Vec<u8>)>> {
        let Some(Reverse((t, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let bytes = self.heads[i].take().unwrap_or_default();
        if let Some((next_t, next)) = read_entry(&mut self.readers[i])? {
            self.heap.push(Reverse((next_t, i)));
            self.heads[i] = Some(next);
        }
        Ok(Some((t, bytes)))
    }
}

impl Sorted {
    /// What the sort did.
    pub fn stats(&self) -> SortStats {
        self.stats
    }

    /// The items in event-time order. A run that cannot be read ends the iteration with an
    /// [`ReplayError::Io`] item.
    pub fn iter(&self) -> SortedIter {
        let state = match &*self.storage {
            Storage::Memory(_) => IterState::Memory(0),
            Storage::Runs(runs) => match Merge::new(runs) {
                Ok(m) => IterState::Merge(Box::new(m)),
                Err(e) => IterState::Failed(Some(e)),
            },
        };
        SortedIter {
            storage: Arc::clone(&self.storage),
            state,
        }
    }
}

/// An iteration over a [`Sorted`] history; keeps its runs alive.
pub struct SortedIter {
    storage: Arc<Storage>,
    state: IterState,
}

enum IterState {
    Memory(usize),
    Merge(Box<Merge>),
    Failed(Option<io::Error>),
    Done,
}

fn decode(bytes: &[u8]) -> Result<InputRecord, ReplayError> {
    match rmp_serde::from_slice::<Item>(bytes) {
        Ok(item) => item.into_result(),
        Err(e) => Err(ReplayError::Io {
            line: 0,
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        }),
    }
}

impl Iterator for SortedIter {
    type Item = Result<InputRecord, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.state {
            IterState::Memory(i) => {
                let Storage::Memory(entries) = &*self.storage else {
                    return None;
                };
                let e = entries.get(*i)?;
                *i += 1;
                Some(decode(&e.bytes))
            }
            IterState::Merge(m) => match m.next_entry() {
                Ok(Some((_, bytes))) => Some(decode(&bytes)),
                Ok(None) => {
                    self.state = IterState::Done;
                    None
                }
                Err(source) => {
                    self.state = IterState::Done;
                    Some(Err(ReplayError::Io { line: 0, source }))
                }
            },
            IterState::Failed(e) => {
                let source = e.take()?;
                Some(Err(ReplayError::Io { line: 0, source }))
            }
            IterState::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::{ClickEventType, EventTime, Options};

    use super::*;

    fn click(id: usize, t: i64) -> InputRecord {
        InputRecord::Click(ClickEvent {
            event_id: format!("e{id}"),
            customer_id: format!("c{}", id % 7),
            session_id: String::new(),
            event_type: ClickEventType::ProductView,
            product_id: Some("p".into()),
            sku: Some("p".into()),
            options: Options::new(),
            category: Some("1".into()),
            price: Some(rust_decimal::Decimal::new(262, 2)),
            query: None,
            channel: "web".into(),
            region: String::new(),
            event_time: EventTime(t),
        })
    }

    fn ids(items: impl Iterator<Item = Result<InputRecord, ReplayError>>) -> Vec<String> {
        items
            .map(|r| match r {
                Ok(InputRecord::Click(c)) => c.event_id,
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("error {e}"),
            })
            .collect()
    }

    fn sort(items: Vec<InputRecord>, memory_bytes: usize) -> Sorted {
        let cfg = SortConfig {
            memory_bytes,
            dir: None,
        };
        sort_by_event_time(items.into_iter().map(Ok), &cfg).expect("sort")
    }

    /// Expected order: by time, then by position in the input.
    fn expected(times: &[i64]) -> Vec<String> {
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by_key(|&i| times[i]);
        order.into_iter().map(|i| format!("e{i}")).collect()
    }

    #[test]
    fn more_rows_than_the_memory_bound_come_out_in_stable_time_order() {
        // Shuffled times with many ties, far more than a 2 KiB buffer holds: many runs, and more
        // than the fan-in, so an intermediate merge level too.
        let n = 3_000;
        let times: Vec<i64> = (0..n as i64).map(|i| (i * 7_919) % 97).collect();
        let records: Vec<InputRecord> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| click(i, t))
            .collect();
        let sorted = sort(records.clone(), 2_048);
        let stats = sorted.stats();
        assert!(stats.runs > MAX_FAN_IN, "{stats:?}");
        assert_eq!((stats.records, stats.errors), (n as u64, 0));
        assert!(!stats.was_in_order);
        assert_eq!(ids(sorted.iter()), expected(&times));
        // Read again: the same.
        assert_eq!(ids(sorted.iter()), expected(&times));
        // Within the bound, the same order from memory.
        let in_memory = sort(records, usize::MAX);
        assert_eq!(in_memory.stats().runs, 0);
        assert_eq!(ids(in_memory.iter()), expected(&times));
    }

    #[test]
    fn a_file_in_reverse_order_is_reversed_and_records_survive_intact() {
        let records: Vec<InputRecord> = (0..500).map(|i| click(i, 1_000 - i as i64)).collect();
        let sorted = sort(records.clone(), 4_096);
        assert!(sorted.stats().runs > 1);
        let back: Vec<InputRecord> = sorted.iter().map(|r| r.expect("record")).collect();
        let mut want = records;
        want.reverse();
        assert_eq!(back, want);
    }

    #[test]
    fn a_file_in_order_comes_out_as_it_went_in() {
        let records: Vec<InputRecord> = (0..200).map(|i| click(i, i as i64 / 3)).collect();
        for bound in [1_024, usize::MAX] {
            let sorted = sort(records.clone(), bound);
            assert!(sorted.stats().was_in_order);
            let back: Vec<InputRecord> = sorted.iter().map(|r| r.expect("record")).collect();
            assert_eq!(back, records);
        }
    }

    #[test]
    fn errors_and_raw_bytes_stay_after_the_item_before_them() {
        let raw = InputRecord::Raw {
            topic: InputTopic::Purchases,
            key: Some(b"c1".to_vec()),
            value: vec![0, 1, 2],
            defect: Defect::ALL[0],
        };
        let items = [
            Ok(click(0, 50)),
            Err(ReplayError::Field {
                line: 2,
                field: "timestamp",
                value: "x".into(),
                message: "not a whole number of Unix seconds",
            }),
            Ok(click(1, 10)),
            Ok(raw.clone()),
            Ok(click(2, 30)),
        ];
        for memory_bytes in [64, usize::MAX] {
            let cfg = SortConfig {
                memory_bytes,
                dir: None,
            };
            let sorted = sort_by_event_time(items.iter().map(copy), &cfg).expect("sort");
            assert_eq!((sorted.stats().records, sorted.stats().errors), (4, 1));
            let got: Vec<_> = sorted.iter().collect();
            assert_eq!(got.len(), 5);
            assert!(matches!(&got[0], Ok(InputRecord::Click(c)) if c.event_id == "e1"));
            assert_eq!(got[1].as_ref().ok(), Some(&raw));
            assert!(matches!(&got[2], Ok(InputRecord::Click(c)) if c.event_id == "e2"));
            assert!(matches!(&got[3], Ok(InputRecord::Click(c)) if c.event_id == "e0"));
            let Err(e) = &got[4] else {
                panic!("{:?}", got[4])
            };
            assert_eq!(e.line(), 2);
            assert_eq!(
                e.to_string(),
                "line 2: bad timestamp `x`: not a whole number of Unix seconds"
            );
        }
    }

    fn copy(r: &Result<InputRecord, ReplayError>) -> Result<InputRecord, ReplayError> {
        match r {
            Ok(r) => Ok(r.clone()),
            Err(ReplayError::Field {
                line,
                field,
                value,
                message,
            }) => Err(ReplayError::Field {
                line: *line,
                field,
                value: value.clone(),
                message,
            }),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn runs_are_removed_when_the_last_reader_goes() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = SortConfig {
            memory_bytes: 512,
            dir: Some(dir.path().to_owned()),
        };
        let records: Vec<InputRecord> = (0..100).map(|i| click(i, -(i as i64))).collect();
        let sorted = sort_by_event_time(records.into_iter().map(Ok), &cfg).expect("sort");
        let iter = sorted.iter();
        drop(sorted);
        assert!(std::fs::read_dir(dir.path()).expect("ls").count() > 0);
        assert_eq!(iter.count(), 100);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
