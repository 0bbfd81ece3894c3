//! Event-time windows (semantics.md, "Windows").
//!
//! Windows are `[start, start + size)`, aligned to the epoch in UTC, or to local midnight of
//! an IANA time zone for daily windows (a DST day lasts 23 or 25 hours). A window is closed
//! when `watermark >= end + grace`; from then on every record that belongs to it is late.
//! [`WindowedAggregate`] keeps open windows in a `BTreeMap` ordered by end and emits each
//! window's result once, when it closes. As a [`Store`] it writes each (window, key)
//! aggregate that changed since the previous checkpoint, and a tombstone for each written one
//! whose window closed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveTime, TimeZone};
use chrono_tz::Tz;
use fitstream_contracts::EventTime;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::state::{Changes, StateError, Store, codec, decode, time_key, time_of_key};

/// A window `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub start: EventTime,
    /// Exclusive end.
    pub end: EventTime,
}

impl Window {
    /// Whether the window is closed at `watermark` with `grace_ms`.
    pub fn is_closed(&self, watermark: EventTime, grace_ms: i64) -> bool {
        watermark >= self.end.plus(grace_ms)
    }
}

/// How records are assigned to windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowSpec {
    /// Fixed-size, non-overlapping, aligned to the epoch.
    Tumbling {
        /// Size, ms.
        size_ms: i64,
    },
    /// Fixed-size windows starting every `advance_ms`, aligned to the epoch.
    Hopping {
        /// Size, ms.
        size_ms: i64,
        /// Advance, ms (divides nothing in particular; `0 < advance <= size`).
        advance_ms: i64,
    },
    /// Local hours of a time zone (hours of 30- or 45-minute offset zones included).
    Hourly {
        /// IANA time zone, e.g. `Europe/Berlin`.
        time_zone: String,
    },
    /// Local days of a time zone, midnight to midnight.
    Daily {
        /// IANA time zone, e.g. `Europe/Berlin`.
        time_zone: String,
    },
}

/// A window spec that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid window: {0}")]
pub struct WindowError(pub String);

impl WindowSpec {
    /// Checks sizes and time zones.
    pub fn validate(&self) -> Result<(), WindowError> {
        match self {
            WindowSpec::Tumbling { size_ms } if *size_ms <= 0 => {
                Err(WindowError("size must be positive".into()))
            }
            WindowSpec::Hopping {
                size_ms,
                advance_ms,
            } if *advance_ms <= 0 || advance_ms > size_ms => {
                Err(WindowError("need 0 < advance <= size".into()))
            }
            WindowSpec::Hourly { time_zone } | WindowSpec::Daily { time_zone } => time_zone
                .parse::<Tz>()
                .map(|_| ())
                .map_err(|e| WindowError(format!("{time_zone}: {e}"))),
            _ => Ok(()),
        }
    }

    /// The windows a record at `t` belongs to, oldest first.
    pub fn windows(&self, t: EventTime) -> Vec<Window> {
        match self {
            WindowSpec::Tumbling { size_ms } => {
                let start = t.0.div_euclid(*size_ms) * size_ms;
                vec![Window {
                    start: EventTime(start),
                    end: EventTime(start + size_ms),
                }]
            }
            WindowSpec::Hopping {
                size_ms,
                advance_ms,
            } => {
                let last_start = t.0.div_euclid(*advance_ms) * advance_ms;
                let mut out = Vec::new();
                let mut start = last_start;
                while start > t.0 - size_ms {
                    out.push(Window {
                        start: EventTime(start),
                        end: EventTime(start + size_ms),
                    });
                    start -= advance_ms;
                }
                out.reverse();
                out
            }
            WindowSpec::Hourly { time_zone } => local_window(time_zone, t, Unit::Hour),
            WindowSpec::Daily { time_zone } => local_window(time_zone, t, Unit::Day),
        }
    }
}

enum Unit {
    Hour,
    Day,
}

fn local_window(time_zone: &str, t: EventTime, unit: Unit) -> Vec<Window> {
    let tz: Tz = time_zone.parse().unwrap_or(Tz::UTC);
    let Some(utc) = chrono::DateTime::from_timestamp_millis(t.0) else {
        return Vec::new();
    };
    let local = utc.with_timezone(&tz);
    match unit {
        Unit::Day => {
            let day = local.date_naive();
            let start = local_midnight(&tz, day);
            let end = day
                .succ_opt()
                .map(|d| local_midnight(&tz, d))
                .unwrap_or(EventTime::MAX);
            vec![Window { start, end }]
        }
        Unit::Hour => {
            // Local hours have the length of the zone's offset changes between them, but a UTC
            // offset is a whole number of minutes: align on the local clock's hour.
            let offset_ms = (local.naive_local() - utc.naive_utc()).num_milliseconds();
            let local_ms = t.0 + offset_ms;
            let start_local = local_ms.div_euclid(3_600_000) * 3_600_000;
            let start = EventTime(start_local - offset_ms);
            vec![Window {
                start,
                end: start.plus(3_600_000),
            }]
        }
    }
}

/// The instant of local midnight at the start of `day` (the first valid instant of the day
/// where midnight itself is skipped by a DST change).
fn local_midnight(tz: &Tz, day: chrono::NaiveDate) -> EventTime {
    let mut time = NaiveTime::MIN;
    for _ in 0..4 {
        if let Some(dt) = tz.from_local_datetime(&day.and_time(time)).earliest() {
            return EventTime(dt.timestamp_millis());
        }
        time += chrono::Duration::minutes(30);
    }
    EventTime(day.and_time(NaiveTime::MIN).and_utc().timestamp_millis())
}

/// A late record: every window it belongs to was closed on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Late {
    /// The window that closed most recently among them.
    pub window: Window,
}

/// Per-key aggregates in event-time windows, each emitted once when its window closes.
#[derive(Clone, Debug)]
pub struct WindowedAggregate<K: Ord + Clone, A> {
    spec: WindowSpec,
    grace_ms: i64,
    /// Open windows by (end, start), each key's aggregate with what the changelog knows of
    /// it.
    open: BTreeMap<(EventTime, EventTime), BTreeMap<K, Cell<A>>>,
    entries: usize,
    /// Windows holding an aggregate changed since the previous checkpoint.
    changed: BTreeSet<(EventTime, EventTime)>,
    /// Written aggregates whose window closed since the previous checkpoint.
    closed: Vec<((EventTime, EventTime), K)>,
    /// Encoded bytes of the open aggregates as last written or restored.
    written_bytes: usize,
}

/// An aggregate, whether it changed since the previous checkpoint, and its encoded size as
/// last written or restored (0: the changelog does not have it; an encoded value is never
/// empty).
#[derive(Clone, Debug)]
struct Cell<A> {
    value: A,
    changed: bool,
    bytes: usize,
}

impl<K: Ord + Clone, A> WindowedAggregate<K, A> {
    /// Windows of `spec`, closed `grace_ms` after their end.
    pub fn new(spec: WindowSpec, grace_ms: i64) -> Self {
        WindowedAggregate {
            spec,
            grace_ms,
            open: BTreeMap::new(),
            entries: 0,
            changed: BTreeSet::new(),
            closed: Vec::new(),
            written_bytes: 0,
        }
    }

    /// Adds a record at `t` under `key`: `update` is applied to the aggregate of every open
    /// window of `t` (created with `init`). Windows already closed at `watermark` are skipped;
    /// when all of them are closed the record is [`Late`].
    pub fn add(
        &mut self,
        key: &K,
        t: EventTime,
        watermark: EventTime,
        init: impl Fn() -> A,
        mut update: impl FnMut(&mut A),
    ) -> Result<usize, Late> {
        let windows = self.spec.windows(t);
        let mut added = 0;
        let mut last_closed = None;
        for w in windows {
            if w.is_closed(watermark, self.grace_ms) {
                last_closed = Some(w);
                continue;
            }
            let per_key = self.open.entry((w.end, w.start)).or_default();
            let cell = match per_key.get_mut(key) {
                Some(cell) => cell,
                None => {
                    self.entries += 1;
                    per_key.entry(key.clone()).or_insert(Cell {
                        value: init(),
                        changed: false,
                        bytes: 0,
                    })
                }
            };
            update(&mut cell.value);
            cell.changed = true;
            self.changed.insert((w.end, w.start));
            added += 1;
        }
        match (added, last_closed) {
            (0, Some(window)) => Err(Late { window }),
            _ => Ok(added),
        }
    }

    /// Removes and returns every window closed at `watermark`, in order of end, then start,
    /// then key.
    pub fn close(&mut self, watermark: EventTime) -> Vec<(Window, K, A)> {
        let mut out = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            let (end, start) = *entry.key();
            let w = Window { start, end };
            if !w.is_closed(watermark, self.grace_ms) {
                break;
            }
            for (k, cell) in entry.remove() {
                self.entries -= 1;
                self.written_bytes -= cell.bytes;
                if cell.bytes > 0 {
                    self.closed.push(((end, start), k.clone()));
                }
                out.push((w, k, cell.value));
            }
            self.changed.remove(&(end, start));
        }
        out
    }

    /// The aggregate of `key` in an open window, if any (marked changed).
    pub fn get_mut(&mut self, window: Window, key: &K) -> Option<&mut A> {
        let id = (window.end, window.start);
        let cell = self.open.get_mut(&id)?.get_mut(key)?;
        cell.changed = true;
        self.changed.insert(id);
        Some(&mut cell.value)
    }

    /// The window spec.
    pub fn spec(&self) -> &WindowSpec {
        &self.spec
    }

    /// Open (window, key) aggregates.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Encoded bytes of the open aggregates as last written to the changelog or restored
    /// from it (aggregates not written yet count as their previous write, or 0).
    pub fn written_bytes(&self) -> usize {
        self.written_bytes
    }

    /// Every open aggregate, in order of window end, then start, then key.
    pub fn iter(&self) -> impl Iterator<Item = (Window, &K, &A)> {
        self.open.iter().flat_map(|((end, start), m)| {
            m.iter().map(move |(k, cell)| {
                (
                    Window {
                        start: *start,
                        end: *end,
                    },
                    k,
                    &cell.value,
                )
            })
        })
    }
}

/// A changelog key: the window's end and start (8 bytes each, sorting like the times), then
/// the key ([`codec`]).
fn cell_key<K: Serialize>(
    (end, start): (EventTime, EventTime),
    key: &K,
) -> Result<Vec<u8>, StateError> {
    Ok([
        &time_key(end)[..],
        &time_key(start)[..],
        &codec::encode(key)?,
    ]
    .concat())
}

impl<K, A> Store for WindowedAggregate<K, A>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    A: Serialize + DeserializeOwned,
{
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        for (window, key) in std::mem::take(&mut self.closed) {
            out.delete(&cell_key(window, &key)?);
        }
        for window in std::mem::take(&mut self.changed) {
            let Some(cells) = self.open.get_mut(&window) else {
                continue;
            };
            for (key, cell) in cells.iter_mut().filter(|(_, c)| c.changed) {
                let bytes = out.put(&cell_key(window, key)?, &cell.value)?;
                self.written_bytes = self.written_bytes - cell.bytes + bytes;
                cell.bytes = bytes;
                cell.changed = false;
            }
        }
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let malformed = || StateError::Key("expected a window's end and start, then a key".into());
        let end = time_of_key(key).ok_or_else(malformed)?;
        let start = key.get(8..).and_then(time_of_key).ok_or_else(malformed)?;
        let k: K = decode(key.get(16..).ok_or_else(malformed)?)?;
        let cells = self.open.entry((end, start)).or_default();
        match value {
            Some(v) => {
                let cell = Cell {
                    value: decode(v)?,
                    changed: false,
                    bytes: v.len(),
                };
                self.written_bytes += v.len();
                match cells.insert(k, cell) {
                    Some(old) => self.written_bytes -= old.bytes,
                    None => self.entries += 1,
                }
            }
            None => {
                if let Some(old) = cells.remove(&k) {
                    self.entries -= 1;
                    self.written_bytes -= old.bytes;
                }
                if cells.is_empty() {
                    self.open.remove(&(end, start));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn tumbling_windows_are_half_open_and_epoch_aligned() {
        let spec = WindowSpec::Tumbling { size_ms: 15 * MIN };
        assert_eq!(
            spec.windows(EventTime(0)),
            vec![Window {
                start: EventTime(0),
                end: EventTime(15 * MIN)
            }]
        );
        assert_eq!(spec.windows(EventTime(15 * MIN - 1))[0].start, EventTime(0));
        assert_eq!(
            spec.windows(EventTime(15 * MIN))[0].start,
            EventTime(15 * MIN)
        );
        assert_eq!(spec.windows(EventTime(-1))[0].start, EventTime(-15 * MIN));
    }

    #[test]
    fn hopping_windows_cover_a_record_size_over_advance_times() {
        let spec = WindowSpec::Hopping {
            size_ms: 10,
            advance_ms: 5,
        };
        let w = spec.windows(EventTime(7));
        assert_eq!(
            w,
            vec![
                Window {
                    start: EventTime(0),
                    end: EventTime(10)
                },
                Window {
                    start: EventTime(5),
                    end: EventTime(15)
                }
            ]
        );
        let w = spec.windows(EventTime(10));
        assert_eq!(w[0].start, EventTime(5));
        assert_eq!(w.len(), 2);
    }

    fn at(s: &str) -> EventTime {
        EventTime::parse(s).expect("time")
    }

    #[test]
    fn daily_windows_follow_local_midnight_through_dst() {
        let spec = WindowSpec::Daily {
            time_zone: "Europe/Berlin".into(),
        };
        // 2026-03-29: clocks go from 02:00 to 03:00 in Berlin, a 23-hour day.
        let w = spec.windows(at("2026-03-29T12:00:00Z"))[0];
        assert_eq!(w.start, at("2026-03-28T23:00:00Z"));
        assert_eq!(w.end, at("2026-03-29T22:00:00Z"));
        assert_eq!(w.end.0 - w.start.0, 23 * 60 * MIN);
        // 2026-10-25: 03:00 back to 02:00, a 25-hour day.
        let w = spec.windows(at("2026-10-25T12:00:00Z"))[0];
        assert_eq!(w.start, at("2026-10-24T22:00:00Z"));
        assert_eq!(w.end.0 - w.start.0, 25 * 60 * MIN);
        // A record at local midnight belongs to the new day.
        let w = spec.windows(at("2026-10-24T22:00:00Z"))[0];
        assert_eq!(w.start, at("2026-10-24T22:00:00Z"));
        let w = spec.windows(at("2026-10-24T21:59:59.999Z"))[0];
        assert_eq!(w.end, at("2026-10-24T22:00:00Z"));
    }

    #[test]
    fn hourly_windows_align_to_local_hours_in_half_hour_zones() {
        let spec = WindowSpec::Hourly {
            time_zone: "Asia/Kolkata".into(),
        };
        let w = spec.windows(at("2026-01-01T00:10:00Z"))[0];
        assert_eq!(w.start, at("2025-12-31T23:30:00Z"));
        assert_eq!(w.end, at("2026-01-01T00:30:00Z"));
        assert!(
            WindowSpec::Daily {
                time_zone: "Mars/Olympus".into()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn a_window_closes_exactly_at_end_plus_grace() {
        let mut agg: WindowedAggregate<&str, u32> =
            WindowedAggregate::new(WindowSpec::Tumbling { size_ms: 100 }, 10);
        agg.add(&"k", EventTime(50), EventTime::MIN, || 0, |a| *a += 1)
            .expect("open");
        assert!(
            agg.close(EventTime(109)).is_empty(),
            "open until end + grace - 1"
        );
        // Still open at 109: a record for it is accepted.
        agg.add(&"k", EventTime(99), EventTime(109), || 0, |a| *a += 1)
            .expect("still open");
        let closed = agg.close(EventTime(110));
        assert_eq!(
            closed,
            vec![(
                Window {
                    start: EventTime(0),
                    end: EventTime(100)
                },
                "k",
                2
            )]
        );
        // From then on it is late, and emitted nothing more.
        let late = agg.add(&"k", EventTime(0), EventTime(110), || 0, |a| *a += 1);
        assert_eq!(
            late,
            Err(Late {
                window: Window {
                    start: EventTime(0),
                    end: EventTime(100)
                }
            })
        );
        assert!(agg.close(EventTime(10_000)).is_empty());
        assert!(agg.is_empty());
    }
}
