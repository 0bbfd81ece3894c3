//! Property tests: the incremental interval join and windowed aggregate, fed records in a
//! shuffled order with a watermark that trails by the disorder bound (so nothing is late),
//! produce exactly what a from-scratch recomputation over the whole input produces.

use std::collections::BTreeMap;

use fitstream_contracts::EventTime;
use fitstream_runtime::join::{IntervalJoin, JoinEvent, JoinKind, JoinWindow};
use fitstream_runtime::state::{Change, Store, checkpoint_store};
use fitstream_runtime::window::{WindowSpec, WindowedAggregate};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Side {
    Left,
    Right,
}

fn records() -> impl Strategy<Value = Vec<(Side, u8, i64)>> {
    prop::collection::vec(
        (
            prop_oneof![Just(Side::Left), Just(Side::Right)],
            0u8..4,
            0i64..2_000,
        ),
        0..120,
    )
}

/// Shuffles by a bounded delay: each record is delivered at `ts + delay`, delay < `bound`.
fn deliver(recs: &[(Side, u8, i64)], delays: &[i64]) -> Vec<(usize, (Side, u8, i64))> {
    let mut order: Vec<(i64, usize)> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.2 + delays[i % delays.len().max(1)], i))
        .collect();
    order.sort();
    order
        .into_iter()
        .map(|(_, i)| (i, recs[i].clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn interval_join_equals_recomputation(
        recs in records(),
        delays in prop::collection::vec(0i64..50, 1..20),
        before in 0i64..100, after in 0i64..100, grace in 0i64..20,
    ) {
        let bound = 50;
        let window = JoinWindow { before_ms: before, after_ms: after, grace_ms: grace };
        let mut join: IntervalJoin<u8, usize, usize> = IntervalJoin::new(JoinKind::Left, window);
        let mut out = Vec::new();
        let mut max_seen = EventTime::MIN;
        for (i, (side, key, ts)) in deliver(&recs, &delays) {
            let wm = max_seen.minus(bound + 1);
            let r = match side {
                Side::Left => join.left(key, EventTime(ts), i, wm, &mut out),
                Side::Right => join.right(key, EventTime(ts), i, wm, &mut out),
            };
            prop_assert!(r.is_ok(), "nothing is late when the watermark trails by the bound");
            max_seen = max_seen.max(EventTime(ts));
            join.advance(max_seen.minus(bound + 1), &mut out);
        }
        join.advance(EventTime::MAX, &mut out);
        prop_assert!(join.is_empty());

        let mut matched: Vec<(usize, usize)> = Vec::new();
        let mut unmatched: Vec<usize> = Vec::new();
        let mut closed: BTreeMap<usize, u32> = BTreeMap::new();
        for e in out {
            match e {
                JoinEvent::Matched { left, right, .. } => matched.push((left.1, right.1)),
                JoinEvent::Unmatched { left, .. } => unmatched.push(left.1),
                JoinEvent::Closed { left, matches, .. } => { closed.insert(left.1, matches); }
            }
        }
        matched.sort();
        unmatched.sort();
        let mut want_matched = Vec::new();
        let mut want_unmatched = Vec::new();
        for (i, (side, key, t)) in recs.iter().enumerate() {
            if !matches!(side, Side::Left) { continue; }
            let mut n = 0;
            for (j, (side2, key2, u)) in recs.iter().enumerate() {
                if matches!(side2, Side::Right) && key == key2 && t - before <= *u && *u <= t + after {
                    want_matched.push((i, j));
                    n += 1;
                }
            }
            if n == 0 { want_unmatched.push(i); } else { prop_assert_eq!(closed.get(&i), Some(&n)); }
        }
        want_matched.sort();
        prop_assert_eq!(matched, want_matched);
        prop_assert_eq!(unmatched, want_unmatched);
    }

    /// Also across checkpoints and restarts: after a record the aggregate may write its
    /// changes to a changelog (`afters`: 2), or write them and be replaced by a new one
    /// restored from that changelog (3), and the counts stay the same.
    #[test]
    fn windowed_counts_equal_recomputation(
        recs in records(),
        delays in prop::collection::vec(0i64..50, 1..20),
        afters in prop::collection::vec(0u8..4, 1..20),
        size in 1i64..300, advance_div in 1i64..4, grace in 0i64..20,
    ) {
        let bound = 50;
        let advance = (size / advance_div).max(1);
        let spec = WindowSpec::Hopping { size_ms: size, advance_ms: advance };
        let mut agg: WindowedAggregate<u8, u32> = WindowedAggregate::new(spec.clone(), grace);
        let mut log: Vec<Change> = Vec::new();
        let mut got: BTreeMap<(i64, u8), u32> = BTreeMap::new();
        let mut max_seen = EventTime::MIN;
        let mut emitted_after_close = 0;
        for (i, (_, (_, key, ts))) in deliver(&recs, &delays).into_iter().enumerate() {
            let wm = max_seen.minus(bound + 1);
            prop_assert!(agg.add(&key, EventTime(ts), wm, || 0, |c| *c += 1).is_ok());
            max_seen = max_seen.max(EventTime(ts));
            for (w, k, c) in agg.close(max_seen.minus(bound + 1)) {
                emitted_after_close += 1;
                prop_assert!(got.insert((w.start.0, k), c).is_none(), "a window is emitted once");
            }
            if afters[i % afters.len()] >= 2 {
                log.extend(checkpoint_store("agg", &mut agg).expect("checkpoints"));
            }
            if afters[i % afters.len()] == 3 {
                let mut restored = WindowedAggregate::new(spec.clone(), grace);
                for (k, v) in &log {
                    let k = k.strip_prefix(b"agg/").expect("the store's key");
                    restored.restore(k, v.as_deref()).expect("restores");
                }
                prop_assert_eq!(restored.len(), agg.len());
                prop_assert_eq!(
                    restored.iter().collect::<Vec<_>>(),
                    agg.iter().collect::<Vec<_>>()
                );
                agg = restored;
            }
        }
        for (w, k, c) in agg.close(EventTime::MAX) {
            emitted_after_close += 1;
            prop_assert!(got.insert((w.start.0, k), c).is_none(), "a window is emitted once");
        }
        let mut want: BTreeMap<(i64, u8), u32> = BTreeMap::new();
        for (_, key, ts) in &recs {
            for w in spec.windows(EventTime(*ts)) {
                prop_assert!(w.start.0 <= *ts && *ts < w.end.0);
                *want.entry((w.start.0, *key)).or_default() += 1;
            }
        }
        prop_assert_eq!(emitted_after_close, want.len());
        prop_assert_eq!(got, want);
    }
}
