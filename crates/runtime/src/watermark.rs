//! Event time and watermarks (semantics.md, "Time").
//!
//! - A partition's watermark is the max event time seen on it minus the allowed
//!   out-of-orderness (default 0).
//! - The operator's watermark is the min over its assigned partitions that are not idle. A
//!   partition is idle after `idle_timeout_ms` of wall-clock time without records; it rejoins
//!   the min with its next record (whose lateness is then judged as usual: the watermark never
//!   moves back).
//! - When every partition is idle the watermark moves with wall-clock time from the last max
//!   event time (unless `advance_when_idle` is off, as for file replays, where the end of the
//!   input closes every window instead: [`Watermarks::finish`]).
//! - A record far ahead of everything else is from the future, and is refused before it can
//!   move any watermark ([`Watermarks::admit`]): live, more than `max_future_skew_ms` ahead of
//!   the wall clock (or of the latest event time seen, if that is later); in a bounded run
//!   (a replay, `--until-end`), where no clock says what "now" is, more than
//!   `max_history_gap_ms` ahead of the latest event time of the task's inputs. The rule
//!   holds on a partition's first record too, and a partition that was quiet for a while is
//!   judged against the others, not against its own last record.
//!
//! Time is injected: callers pass `now_ms`, the wall clock, so tests drive time by hand.

use std::collections::BTreeMap;

use fitstream_contracts::EventTime;
use serde::{Deserialize, Serialize};

/// Watermark settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatermarkConfig {
    /// Allowed out-of-orderness within a partition, ms.
    pub out_of_orderness_ms: i64,
    /// Wall-clock time without records after which a partition is idle, ms.
    pub idle_timeout_ms: i64,
    /// Live runs: how far ahead of the wall clock a record may be, ms.
    pub max_future_skew_ms: i64,
    /// Bounded runs (replays): how far ahead of the latest event time of the task's inputs a
    /// record may be, ms. Longer than any silence a history may hold (nights, holidays, the
    /// bundled excerpt's 24 days between its two blocks, a stray early row before a file
    /// sorted by time): five years by default, which still refuses a record dated 2099 among
    /// records of 2019.
    pub max_history_gap_ms: i64,
    /// Whether time advances with the wall clock when every partition is idle.
    pub advance_when_idle: bool,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            out_of_orderness_ms: 0,
            idle_timeout_ms: 30_000,
            max_future_skew_ms: 3_600_000,
            max_history_gap_ms: 5 * 365 * 24 * 3_600_000,
            advance_when_idle: true,
        }
    }
}

#[derive(Clone, Debug)]
struct PartitionClock {
    max_event_time: Option<EventTime>,
    last_record_wall_ms: i64,
    /// Declared idle by its source (an upstream task's idle marker) until its next record.
    declared_idle: bool,
}

impl WatermarkConfig {
    /// The same rules without idleness, for watermarks made of upstream tasks' markers: a
    /// live upstream task always sends markers (its own idleness already moves its time), so
    /// one that sends none is behind or restarting, and skipping it would make its records
    /// late.
    pub fn without_idleness(mut self) -> Self {
        self.idle_timeout_ms = i64::MAX;
        self.advance_when_idle = false;
        self
    }
}

/// Whether a record's event time is acceptable on its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Fine.
    Accept,
    /// Too far ahead of the reference (the wall clock live, the latest event time in a
    /// bounded run).
    TooFarAhead {
        /// What it was compared with.
        reference: EventTime,
        /// How far ahead it may be, ms.
        allowed_ms: i64,
    },
}

/// The watermark of one operator over its input partitions, identified by `P`.
#[derive(Clone, Debug)]
pub struct Watermarks<P: Ord + Clone> {
    config: WatermarkConfig,
    partitions: BTreeMap<P, PartitionClock>,
    current: EventTime,
    finished: bool,
}

impl<P: Ord + Clone> Watermarks<P> {
    /// No partitions yet; the watermark is [`EventTime::MIN`].
    pub fn new(config: WatermarkConfig) -> Self {
        Watermarks {
            config,
            partitions: BTreeMap::new(),
            current: EventTime::MIN,
            finished: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &WatermarkConfig {
        &self.config
    }

    /// A partition is assigned at wall time `now_ms`; its idleness counts from then.
    pub fn assign(&mut self, partition: P, now_ms: i64) {
        self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_time: None,
            last_record_wall_ms: now_ms,
            declared_idle: false,
        });
    }

    /// A partition is revoked.
    pub fn revoke(&mut self, partition: &P) {
        self.partitions.remove(partition);
    }

    /// The latest event time seen on any partition.
    pub fn latest(&self) -> Option<EventTime> {
        self.partitions
            .values()
            .filter_map(|c| c.max_event_time)
            .max()
    }

    /// The future rule for a record of `event_time`: `wall_clock_ms` is the wall clock in a
    /// live run, `None` in a bounded one (see the module doc).
    pub fn admit(&self, event_time: EventTime, wall_clock_ms: Option<i64>) -> Admission {
        let (reference, allowed_ms) = match wall_clock_ms {
            Some(now) => (
                Some(
                    self.latest()
                        .map_or(EventTime(now), |l| l.max(EventTime(now))),
                ),
                self.config.max_future_skew_ms,
            ),
            None => (self.latest(), self.config.max_history_gap_ms),
        };
        match reference {
            Some(r) if event_time > r.plus(allowed_ms) => Admission::TooFarAhead {
                reference: r,
                allowed_ms,
            },
            _ => Admission::Accept,
        }
    }

    /// Records an accepted record on `partition` at wall time `now_ms`.
    pub fn observe(&mut self, partition: P, event_time: EventTime, now_ms: i64) {
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_time: None,
            last_record_wall_ms: now_ms,
            declared_idle: false,
        });
        clock.max_event_time = Some(
            clock
                .max_event_time
                .map_or(event_time, |m| m.max(event_time)),
        );
        clock.last_record_wall_ms = now_ms;
        clock.declared_idle = false;
    }

    /// `partition` declares itself idle (it has nothing and no time of its own): it leaves
    /// the minimum until its next record.
    pub fn declare_idle(&mut self, partition: &P) {
        if let Some(c) = self.partitions.get_mut(partition) {
            c.declared_idle = true;
        }
    }

    /// The partitions that are idle at wall time `now_ms` (they do not hold the watermark back).
    pub fn idle(&self, now_ms: i64) -> Vec<P> {
        self.partitions
            .iter()
            .filter(|(_, c)| {
                c.declared_idle
                    || now_ms.saturating_sub(c.last_record_wall_ms) >= self.config.idle_timeout_ms
            })
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// `partition` has records waiting (its consumer knows of a backlog) at wall time `now_ms`:
    /// it is not idle, however long since its last record.
    pub fn backlogged(&mut self, partition: &P, now_ms: i64) {
        if let Some(c) = self.partitions.get_mut(partition) {
            c.last_record_wall_ms = c.last_record_wall_ms.max(now_ms);
        }
    }

    /// Max event time per partition (for snapshots).
    pub fn maxima(&self) -> Vec<(P, EventTime)> {
        self.partitions
            .iter()
            .filter_map(|(p, c)| c.max_event_time.map(|t| (p.clone(), t)))
            .collect()
    }

    /// Whether the input ended ([`Self::finish`]).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The end of a finite input: every window may close.
    pub fn finish(&mut self) {
        self.finished = true;
        self.current = EventTime::MAX;
    }

    /// The operator's watermark at wall time `now_ms`. Never moves back.
    pub fn current(&mut self, now_ms: i64) -> EventTime {
        if self.finished {
            return EventTime::MAX;
        }
        let idle = self.config.idle_timeout_ms;
        let ooo = self.config.out_of_orderness_ms;
        let active = self
            .partitions
            .values()
            .filter(|c| !c.declared_idle && now_ms.saturating_sub(c.last_record_wall_ms) < idle);
        let min_active = active
            .map(|c| c.max_event_time.map_or(EventTime::MIN, |t| t.minus(ooo)))
            .min();
        let candidate = match min_active {
            Some(t) => t,
            None if self.config.advance_when_idle => {
                // Every partition is idle: move with the wall clock from the last max.
                let latest = self
                    .partitions
                    .values()
                    .filter_map(|c| c.max_event_time.map(|t| (t, c.last_record_wall_ms)))
                    .max_by_key(|(t, _)| *t);
                match latest {
                    Some((t, wall)) => t.minus(ooo).plus(now_ms - self.last_wall(wall)),
                    None => EventTime::MIN,
                }
            }
            None => self.current,
        };
        self.current = self.current.max(candidate);
        self.current
    }

    fn last_wall(&self, fallback: i64) -> i64 {
        self.partitions
            .values()
            .map(|c| c.last_record_wall_ms)
            .max()
            .unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm() -> Watermarks<u32> {
        let mut w = Watermarks::new(WatermarkConfig::default());
        w.assign(0, 0);
        w.assign(1, 0);
        w
    }

    #[test]
    fn minimum_over_partitions_and_none_before_every_partition_spoke() {
        let mut w = wm();
        w.observe(0, EventTime(1_000), 1);
        assert_eq!(w.current(1), EventTime::MIN);
        w.observe(1, EventTime(500), 2);
        assert_eq!(w.current(2), EventTime(500));
        w.observe(1, EventTime(2_000), 3);
        assert_eq!(w.current(3), EventTime(1_000));
    }

    #[test]
    fn out_of_orderness_holds_the_watermark_back() {
        let mut w = Watermarks::new(WatermarkConfig {
            out_of_orderness_ms: 100,
            ..Default::default()
        });
        w.observe(0u32, EventTime(1_000), 0);
        assert_eq!(w.current(0), EventTime(900));
    }

    #[test]
    fn an_idle_partition_leaves_the_min_exactly_at_the_timeout_and_rejoins() {
        let mut w = wm();
        w.observe(0, EventTime(10_000), 0);
        w.observe(1, EventTime(1_000), 0);
        // Partition 0 keeps talking; partition 1 goes quiet.
        w.observe(0, EventTime(20_000), 29_999);
        assert_eq!(
            w.current(29_999),
            EventTime(1_000),
            "one ms before the timeout"
        );
        assert_eq!(
            w.current(30_000),
            EventTime(20_000),
            "idle at exactly the timeout"
        );
        // It rejoins with an old record: the watermark does not move back.
        w.observe(1, EventTime(2_000), 30_001);
        assert_eq!(w.current(30_001), EventTime(20_000));
        w.observe(1, EventTime(25_000), 30_002);
        w.observe(0, EventTime(40_000), 30_002);
        assert_eq!(w.current(30_002), EventTime(25_000));
    }

    #[test]
    fn a_backlogged_partition_is_never_idle() {
        let mut w = wm();
        w.observe(0, EventTime(10_000), 0);
        w.observe(1, EventTime(1_000), 0);
        w.observe(0, EventTime(50_000), 40_000);
        // Partition 1 has records waiting behind partition 0's: still in the min at 40 s.
        w.backlogged(&1, 39_000);
        assert_eq!(w.current(40_000), EventTime(1_000));
        // The backlog is gone: idle 30 s after the last time it was seen.
        assert_eq!(w.current(68_999), EventTime(1_000));
        assert_eq!(w.current(69_000), EventTime(50_000));
        assert_eq!(w.idle(69_000), vec![1]);
    }

    #[test]
    fn a_watermark_of_upstream_markers_waits_for_a_silent_upstream_task() {
        let mut w = Watermarks::new(WatermarkConfig::default().without_idleness());
        w.assign("carts/0", 0);
        w.assign("carts/1", 0);
        w.observe("carts/0", EventTime(3_600_000), 1_000);
        // carts/1 is slow to send its first marker: nothing closes on carts/0's time alone.
        assert_eq!(w.current(600_000), EventTime::MIN);
        w.observe("carts/1", EventTime(60_000), 600_001);
        assert_eq!(w.current(600_001), EventTime(60_000));
        assert!(w.idle(i64::MAX / 2).is_empty());
    }

    #[test]
    fn when_everything_is_idle_time_moves_with_the_wall_clock() {
        let mut w = wm();
        w.observe(0, EventTime(10_000), 1_000);
        w.observe(1, EventTime(8_000), 1_000);
        assert_eq!(w.current(1_000), EventTime(8_000));
        // Both idle at 31 s of wall time: 30 s after the last record, from the last max.
        assert_eq!(w.current(31_000), EventTime(40_000));
        assert_eq!(w.current(41_000), EventTime(50_000));
    }

    #[test]
    fn replays_do_not_advance_on_idleness_but_finish_closes_everything() {
        let mut w = Watermarks::new(WatermarkConfig {
            advance_when_idle: false,
            ..Default::default()
        });
        w.assign(0u32, 0);
        w.observe(0, EventTime(10_000), 0);
        assert_eq!(w.current(0), EventTime(10_000));
        assert_eq!(w.current(1_000_000), EventTime(10_000));
        w.finish();
        assert_eq!(w.current(1_000_000), EventTime::MAX);
    }

    #[test]
    fn a_record_far_ahead_of_everything_else_is_refused_live_and_bounded() {
        const H: i64 = 3_600_000;
        let mut w = wm();
        // Bounded: nothing to compare the very first record with.
        assert_eq!(w.admit(EventTime(i64::MAX / 2), None), Admission::Accept);
        w.observe(0, EventTime(0), 0);
        w.assign(1, 0);
        let gap = w.config().max_history_gap_ms;
        assert_eq!(w.admit(EventTime(gap), None), Admission::Accept);
        assert_eq!(
            w.admit(EventTime(gap + 1), None),
            Admission::TooFarAhead {
                reference: EventTime(0),
                allowed_ms: gap
            },
            "partition 1's first record is judged against partition 0"
        );
        // A partition quiet for a day is judged against the others, which moved on.
        w.observe(1, EventTime(30 * H), 0);
        assert_eq!(w.admit(EventTime(31 * H), None), Admission::Accept);
        // Live: against the wall clock (or the latest event time when that is later).
        let now = 100 * H;
        assert_eq!(w.admit(EventTime(now + H), Some(now)), Admission::Accept);
        assert_eq!(
            w.admit(EventTime(now + H + 1), Some(now)),
            Admission::TooFarAhead {
                reference: EventTime(now),
                allowed_ms: H
            }
        );
        assert_eq!(
            w.admit(EventTime(31 * H), Some(0)),
            Admission::Accept,
            "a clock behind the inputs: the latest event time is the reference"
        );
    }
}
