//! The interval join with late records and grace, against a reference model written here from
//! semantics.md ("Stream-stream join"; the right side's close time follows from its rules):
//!
//! - a left record at `t` matches right records at `u` with the same key and
//!   `t - before <= u <= t + after`;
//! - a left record is closed when `watermark > t + after + grace`; a right record when no left
//!   record it could match can still be open (the latest such left is at `u + before`):
//!   `watermark > u + before + after + grace`;
//! - a record already closed when it arrives is late: it is refused and joins nothing;
//! - two records meet when the later one arrives while the earlier one is still open (state is
//!   deleted at the same moment the record closes); the match is emitted then;
//! - a left record closes at the first watermark past its close time, and then, and not
//!   before, emits one null-padded row (left join) if it met nothing, or its count of matches;
//!   never both;
//! - the state held is exactly the records that arrived on time and are not closed yet.
//!
//! The watermark moves forward by random steps and records arrive at random distances from it
//! (well behind it, near the grace boundary, or ahead), so many are late and many arrive
//! within the grace.

use fitstream_contracts::EventTime;
use fitstream_runtime::join::{IntervalJoin, JoinEvent, JoinKind, JoinWindow, LateRecord};
use fitstream_runtime::state::{Change, Store, checkpoint_store};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// One arrival: side, key, event time relative to the watermark, and how far the watermark
/// moves just before it.
type Step = (Side, u8, i64, i64);

/// When, in a step, something was emitted: by the watermark's advance before the arrival, by
/// the arrival, or by the final advance after the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Advance,
    Arrival,
}

/// What the join produced, by step (record indices are arrival steps).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Matched {
        key: u8,
        left: (i64, usize),
        right: (i64, usize),
    },
    Unmatched {
        key: u8,
        left: (i64, usize),
    },
    Closed {
        key: u8,
        left: (i64, usize),
        matches: u32,
    },
    Late {
        record: usize,
        event_time: i64,
        watermark: i64,
    },
}

type Timeline = Vec<(usize, Phase, Seen)>;

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            prop_oneof![Just(Side::Left), Just(Side::Right)],
            0u8..2,
            -70i64..50,
            0i64..30,
        ),
        0..80,
    )
}

const START: i64 = 10_000;

/// Watermark at each step and event time of each record.
fn times(steps: &[Step]) -> (Vec<i64>, Vec<i64>) {
    let mut wm = START;
    let mut watermarks = Vec::new();
    let mut ts = Vec::new();
    for (_, _, offset, inc) in steps {
        wm += inc;
        watermarks.push(wm);
        ts.push(wm + offset);
    }
    (watermarks, ts)
}

/// What happens to the join's state after a step: nothing, a checkpoint (its changes go to
/// the changelog), or a checkpoint and a restart (a new join restored from the changelog).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Nothing,
    Checkpoint,
    Restart,
}

fn afters() -> impl Strategy<Value = Vec<After>> {
    prop::collection::vec(
        prop_oneof![
            6 => Just(After::Nothing),
            2 => Just(After::Checkpoint),
            1 => Just(After::Restart),
        ],
        80,
    )
}

type Join = IntervalJoin<u8, usize, usize>;

/// Appends the join's changes since its previous checkpoint to `log`.
fn checkpoint(join: &mut Join, log: &mut Vec<Change>) {
    let (left, right) = join.stores();
    log.extend(checkpoint_store("left", left).expect("the left side checkpoints"));
    log.extend(checkpoint_store("right", right).expect("the right side checkpoints"));
}

/// A new join with the state `log` holds, as a restore after a restart builds it.
fn restore(kind: JoinKind, window: JoinWindow, log: &[Change]) -> Join {
    let mut join = IntervalJoin::new(kind, window);
    {
        let (left, right) = join.stores();
        for (key, value) in log {
            let (store, rest): (&mut dyn Store, &[u8]) = match key.strip_prefix(b"left/") {
                Some(rest) => (&mut *left, rest),
                None => (&mut *right, key.strip_prefix(b"right/").expect("a side")),
            };
            store
                .restore(rest, value.as_deref())
                .expect("the entry restores");
        }
    }
    join.restored();
    join
}

/// The join under test, driven step by step: advance to the step's watermark, then the
/// arrival at that watermark; after the last step, the end of input. After each step the
/// state may be checkpointed, or checkpointed and restored into a new join (`afters`).
fn run(
    kind: JoinKind,
    window: JoinWindow,
    steps: &[Step],
    afters: &[After],
) -> (Timeline, Vec<(usize, usize)>) {
    let (watermarks, ts) = times(steps);
    let mut join: Join = IntervalJoin::new(kind, window);
    let mut log = Vec::new();
    let mut timeline = Vec::new();
    let mut held = Vec::new();
    let seen = |e: JoinEvent<u8, usize, usize>| match e {
        JoinEvent::Matched { key, left, right } => Seen::Matched {
            key,
            left: (left.0.0, left.1),
            right: (right.0.0, right.1),
        },
        JoinEvent::Unmatched { key, left } => Seen::Unmatched {
            key,
            left: (left.0.0, left.1),
        },
        JoinEvent::Closed { key, left, matches } => Seen::Closed {
            key,
            left: (left.0.0, left.1),
            matches,
        },
    };
    for (i, (side, key, _, _)) in steps.iter().enumerate() {
        let wm = EventTime(watermarks[i]);
        let mut out = Vec::new();
        join.advance(wm, &mut out);
        timeline.extend(out.drain(..).map(|e| (i, Phase::Advance, seen(e))));
        let t = EventTime(ts[i]);
        let r = match side {
            Side::Left => join.left(*key, t, i, wm, &mut out),
            Side::Right => join.right(*key, t, i, wm, &mut out),
        };
        timeline.extend(out.drain(..).map(|e| (i, Phase::Arrival, seen(e))));
        if let Err(LateRecord {
            event_time,
            watermark,
        }) = r
        {
            timeline.push((
                i,
                Phase::Arrival,
                Seen::Late {
                    record: i,
                    event_time: event_time.0,
                    watermark: watermark.0,
                },
            ));
        }
        held.push(join.len());
        match afters.get(i).copied().unwrap_or(After::Nothing) {
            After::Nothing => {}
            After::Checkpoint => checkpoint(&mut join, &mut log),
            After::Restart => {
                checkpoint(&mut join, &mut log);
                join = restore(kind, window, &log);
            }
        }
    }
    let mut out = Vec::new();
    join.advance(EventTime::MAX, &mut out);
    timeline.extend(
        out.into_iter()
            .map(|e| (steps.len(), Phase::Advance, seen(e))),
    );
    held.push(join.len());
    timeline.sort();
    (timeline, held)
}

/// The reference: what semantics.md says the join emits, and when; and what it holds.
fn model(kind: JoinKind, w: JoinWindow, steps: &[Step]) -> (Timeline, Vec<(usize, usize)>) {
    let (watermarks, ts) = times(steps);
    let n = steps.len();
    let close = |i: usize| match steps[i].0 {
        Side::Left => ts[i] + w.after_ms + w.grace_ms,
        Side::Right => ts[i] + w.before_ms + w.after_ms + w.grace_ms,
    };
    let late = |i: usize| watermarks[i] > close(i);
    let mut timeline = Vec::new();
    for i in (0..n).filter(|i| late(*i)) {
        timeline.push((
            i,
            Phase::Arrival,
            Seen::Late {
                record: i,
                event_time: ts[i],
                watermark: watermarks[i],
            },
        ));
    }
    for l in (0..n).filter(|l| steps[*l].0 == Side::Left && !late(*l)) {
        let key = steps[l].1;
        let mut matches = 0;
        for r in (0..n).filter(|r| steps[*r].0 == Side::Right && !late(*r)) {
            let in_range = ts[l] - w.before_ms <= ts[r] && ts[r] <= ts[l] + w.after_ms;
            let (earlier, later) = (l.min(r), l.max(r));
            let met = watermarks[later] <= close(earlier);
            if steps[r].1 == key && in_range && met {
                matches += 1;
                timeline.push((
                    later,
                    Phase::Arrival,
                    Seen::Matched {
                        key,
                        left: (ts[l], l),
                        right: (ts[r], r),
                    },
                ));
            }
        }
        // Closed by the first watermark past its close time, or by the end of input.
        let closed_at = (l + 1..n).find(|k| watermarks[*k] > close(l)).unwrap_or(n);
        let left = (ts[l], l);
        if matches > 0 {
            timeline.push((
                closed_at,
                Phase::Advance,
                Seen::Closed { key, left, matches },
            ));
        } else if kind == JoinKind::Left {
            timeline.push((closed_at, Phase::Advance, Seen::Unmatched { key, left }));
        }
    }
    timeline.sort();
    let mut held = Vec::new();
    for (k, wm) in watermarks.iter().enumerate() {
        let open = |side: Side| {
            (0..=k)
                .filter(|i| steps[*i].0 == side && !late(*i) && close(*i) >= *wm)
                .count()
        };
        held.push((open(Side::Left), open(Side::Right)));
    }
    held.push((0, 0));
    (timeline, held)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn late_records_and_grace_follow_the_reference(
        steps in steps(),
        before in 0i64..40, after in 0i64..40, grace in 0i64..40,
        left_join in any::<bool>(),
    ) {
        let kind = if left_join { JoinKind::Left } else { JoinKind::Inner };
        let window = JoinWindow { before_ms: before, after_ms: after, grace_ms: grace };
        let (got, got_held) = run(kind, window, &steps, &[]);
        let (want, want_held) = model(kind, window, &steps);
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_held, want_held);
    }

    /// The same, with checkpoints and restarts between arrivals: a join restored from what
    /// its stores wrote goes on exactly as the one that never stopped (its matches, its
    /// null-padded rows, its counts and what it holds).
    #[test]
    fn a_join_restored_from_its_changelog_goes_on_as_the_reference(
        steps in steps(),
        afters in afters(),
        before in 0i64..40, after in 0i64..40, grace in 0i64..40,
        left_join in any::<bool>(),
    ) {
        let kind = if left_join { JoinKind::Left } else { JoinKind::Inner };
        let window = JoinWindow { before_ms: before, after_ms: after, grace_ms: grace };
        let (got, got_held) = run(kind, window, &steps, &afters);
        let (want, want_held) = model(kind, window, &steps);
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_held, want_held);
    }
}

/// The property's inputs reach the cases it is about: over a fixed seed's worth of inputs,
/// records late on arrival, records that arrive within the grace (after `t + after`, on
/// time), left records met by a right record in their grace, and right records that arrive
/// on time for themselves but after the left they would have matched had closed.
#[test]
fn the_inputs_cover_late_records_and_the_grace() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let w = JoinWindow {
        before_ms: 10,
        after_ms: 20,
        grace_ms: 15,
    };
    let (mut late, mut in_grace, mut met_in_grace, mut missed_closed) = (0, 0, 0, 0);
    for _ in 0..200 {
        let steps = steps().new_tree(&mut runner).expect("a value").current();
        let (wm, ts) = times(&steps);
        for (i, (side, key, _, _)) in steps.iter().enumerate() {
            let close = match side {
                Side::Left => ts[i] + w.after_ms + w.grace_ms,
                Side::Right => ts[i] + w.before_ms + w.after_ms + w.grace_ms,
            };
            if wm[i] > close {
                late += 1;
                continue;
            }
            if *side == Side::Left && wm[i] > ts[i] + w.after_ms {
                in_grace += 1;
            }
            if *side == Side::Right {
                for l in 0..i {
                    let left_close = ts[l] + w.after_ms + w.grace_ms;
                    let pair = steps[l].0 == Side::Left
                        && steps[l].1 == *key
                        && wm[l] <= left_close
                        && ts[l] - w.before_ms <= ts[i]
                        && ts[i] <= ts[l] + w.after_ms;
                    if pair && wm[i] > ts[l] + w.after_ms && wm[i] <= left_close {
                        met_in_grace += 1;
                    }
                    if pair && wm[i] > left_close {
                        missed_closed += 1;
                    }
                }
            }
        }
    }
    println!(
        "late {late}, left in grace {in_grace}, met in grace {met_in_grace}, missed closed {missed_closed}"
    );
    assert!(late > 100 && in_grace > 100 && met_in_grace > 20 && missed_closed > 20);
}

/// The grace, by hand (before 10, after 20, grace 15): a left record at 100 is open through
/// watermark 135 and closed at 136.
#[test]
fn a_left_record_is_open_through_its_grace_and_late_one_ms_after() {
    let w = JoinWindow {
        before_ms: 10,
        after_ms: 20,
        grace_ms: 15,
    };
    let mut join: IntervalJoin<u8, &str, &str> = IntervalJoin::new(JoinKind::Left, w);
    let mut out = Vec::new();
    // On time at watermark 135 = 100 + 20 + 15; late at 136.
    assert!(
        join.left(1, EventTime(100), "a", EventTime(135), &mut out)
            .is_ok()
    );
    assert_eq!(
        join.left(1, EventTime(100), "late", EventTime(136), &mut out),
        Err(LateRecord {
            event_time: EventTime(100),
            watermark: EventTime(136)
        })
    );
    // A right record at 120 (= t + after) arriving at 135, within the grace: it matches.
    assert!(
        join.right(1, EventTime(120), "p", EventTime(135), &mut out)
            .is_ok()
    );
    assert_eq!(
        out,
        vec![JoinEvent::Matched {
            key: 1,
            left: (EventTime(100), "a"),
            right: (EventTime(120), "p")
        }]
    );
    out.clear();
    // At 136 the left closes with its one match; no null-padded row.
    join.advance(EventTime(136), &mut out);
    assert_eq!(
        out,
        vec![JoinEvent::Closed {
            key: 1,
            left: (EventTime(100), "a"),
            matches: 1
        }]
    );
    out.clear();
    // A second left at 100 would be late now; one at 101 is on time (101 + 35 = 136) and, as
    // the right at 120 is still held (120 + 10 + 20 + 15 = 165), meets it at once.
    assert!(
        join.left(1, EventTime(100), "b", EventTime(136), &mut out)
            .is_err()
    );
    assert!(
        join.left(1, EventTime(101), "c", EventTime(136), &mut out)
            .is_ok()
    );
    assert_eq!(out.len(), 1);
    out.clear();
    // At 137 it closes with that match.
    join.advance(EventTime(137), &mut out);
    assert_eq!(
        out,
        vec![JoinEvent::Closed {
            key: 1,
            left: (EventTime(101), "c"),
            matches: 1
        }]
    );
    out.clear();
    // A right record at 110 arriving at 140 is on time for itself (110 + 10 + 20 + 15 = 155),
    // but a left at 101 it would match closed at 137: they do not meet, and the left is
    // null-padded.
    let mut j2: IntervalJoin<u8, &str, &str> = IntervalJoin::new(JoinKind::Left, w);
    assert!(
        j2.left(1, EventTime(101), "d", EventTime(100), &mut out)
            .is_ok()
    );
    j2.advance(EventTime(137), &mut out);
    assert!(
        j2.right(1, EventTime(110), "q", EventTime(140), &mut out)
            .is_ok()
    );
    assert_eq!(
        out,
        vec![JoinEvent::Unmatched {
            key: 1,
            left: (EventTime(101), "d")
        }]
    );
    // ... and the right record is held until no left can still meet it.
    assert_eq!(j2.len(), (0, 1));
    j2.advance(EventTime(155), &mut out);
    assert_eq!(j2.len(), (0, 1));
    j2.advance(EventTime(156), &mut out);
    assert_eq!(j2.len(), (0, 0));
}
