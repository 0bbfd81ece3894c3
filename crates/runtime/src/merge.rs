//! Event-time order across a task's input partitions.
//!
//! A task of a stage with several co-partitioned inputs (the profiler's and the planner's
//! clickstream and purchases) takes their records in event-time order, as Kafka Streams'
//! `PartitionGroup` does: the next record is the head with the smallest timestamp, provided
//! every other input either has a head too or will bring nothing before it. Whether an empty
//! input will bring more is the driver's knowledge: in a bounded run, whether it is read to
//! its end; live, whether the broker shows it has records not fetched yet, waited for at most
//! `kafka.max_task_idle_ms`. Within an input the order is the partition's, never changed.
//!
//! Ties go to the input listed first (a click before the purchase of the same millisecond).
//! The timestamp is the record's (fitstream's producers set it to the event time); a record
//! whose timestamp is wrong is only taken at another point, never lost or changed.
//!
//! Both drivers merge the same way, so a bounded run through Kafka and a replay take every
//! task's records in the same order, however fetches interleave the partitions (see
//! [`Merge::pop`]'s property test).

use std::collections::VecDeque;

use crate::task::{Stage, WatermarkSource};

/// Whether the tasks of `stage` merge their inputs: an event-time stage with several.
pub fn merges(stage: &Stage) -> bool {
    stage.watermark == WatermarkSource::EventTime && stage.inputs.len() > 1
}

/// The records of a task's inputs not taken yet, one queue per input in partition order.
#[derive(Debug)]
pub struct Merge<T> {
    queues: Vec<VecDeque<(i64, T)>>,
}

impl<T> Merge<T> {
    /// A merge of `inputs` inputs, all empty.
    pub fn new(inputs: usize) -> Merge<T> {
        Merge {
            queues: (0..inputs).map(|_| VecDeque::new()).collect(),
        }
    }

    /// A record of `input`, after every record of it pushed before.
    pub fn push(&mut self, input: usize, timestamp: i64, item: T) {
        if let Some(q) = self.queues.get_mut(input) {
            q.push_back((timestamp, item));
        }
    }

    /// Records of `input` waiting.
    pub fn len(&self, input: usize) -> usize {
        self.queues.get(input).map_or(0, VecDeque::len)
    }

    /// The number of inputs.
    pub fn inputs(&self) -> usize {
        self.queues.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// Records waiting over every input.
    pub fn waiting(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// The next record in event-time order, with its input, if it can be taken now: the
    /// smallest head timestamp (ties to the lower input), when every input without a head is
    /// `exhausted` (will bring nothing more for now). None when nothing waits or an empty
    /// input may still bring an earlier record. `exhausted` is asked only of empty inputs.
    pub fn pop(&mut self, mut exhausted: impl FnMut(usize) -> bool) -> Option<(usize, T)> {
        let mut best: Option<(usize, i64)> = None;
        for (i, q) in self.queues.iter().enumerate() {
            match q.front() {
                Some((ts, _)) => {
                    if best.is_none_or(|(_, b)| *ts < b) {
                        best = Some((i, *ts));
                    }
                }
                None => {
                    if !exhausted(i) {
                        return None;
                    }
                }
            }
        }
        let (i, _) = best?;
        self.queues[i].pop_front().map(|(_, item)| (i, item))
    }

    /// Every waiting record in event-time order, as if every input had ended.
    pub fn drain(&mut self) -> Vec<(usize, T)> {
        let mut out = Vec::with_capacity(self.waiting());
        while let Some(next) = self.pop(|_| true) {
            out.push(next);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pushes `inputs` in the arrival order `arrivals` (input indexes, each input's records
    /// in its own order), popping whatever can be taken after each arrival, with an input
    /// exhausted once all its records arrived; then drains. The order records were taken in.
    fn merged(inputs: &[Vec<i64>], arrivals: &[usize]) -> Vec<(usize, i64)> {
        let mut merge = Merge::new(inputs.len());
        let mut next = vec![0; inputs.len()];
        let mut out = Vec::new();
        for &i in arrivals {
            merge.push(i, inputs[i][next[i]], inputs[i][next[i]]);
            next[i] += 1;
            while let Some(r) = merge.pop(|j| next[j] == inputs[j].len()) {
                out.push(r);
            }
        }
        out.extend(merge.drain());
        out
    }

    fn inputs_and_two_arrival_orders()
    -> impl Strategy<Value = (Vec<Vec<i64>>, Vec<usize>, Vec<usize>)> {
        prop::collection::vec(prop::collection::vec(0i64..50, 0..30), 1..4).prop_flat_map(
            |inputs| {
                let tags: Vec<usize> = inputs
                    .iter()
                    .enumerate()
                    .flat_map(|(i, q)| std::iter::repeat_n(i, q.len()))
                    .collect();
                let a = Just(tags.clone()).prop_shuffle();
                let b = Just(tags).prop_shuffle();
                (Just(inputs), a, b)
            },
        )
    }

    proptest! {
        /// However fetches interleave the inputs, the task takes the same records in the
        /// same order: each input's records in their own order, and the whole the k-way
        /// merge of the inputs by timestamp (ties to the lower input).
        #[test]
        fn the_order_does_not_depend_on_how_the_inputs_arrive(
            (inputs, a, b) in inputs_and_two_arrival_orders()
        ) {
            let first = merged(&inputs, &a);
            let second = merged(&inputs, &b);
            prop_assert_eq!(&first, &second);
            // The reference merge: everything known up front.
            let mut whole = Merge::new(inputs.len());
            for (i, q) in inputs.iter().enumerate() {
                for t in q {
                    whole.push(i, *t, *t);
                }
            }
            prop_assert_eq!(first, whole.drain());
        }
    }

    #[test]
    fn the_smallest_head_goes_first_and_ties_go_to_the_first_input() {
        let mut m = Merge::new(2);
        m.push(0, 10, "click 10");
        m.push(1, 5, "purchase 5");
        m.push(1, 10, "purchase 10");
        m.push(0, 20, "click 20");
        let order: Vec<&str> = m.drain().into_iter().map(|(_, r)| r).collect();
        assert_eq!(order, ["purchase 5", "click 10", "purchase 10", "click 20"]);
    }

    #[test]
    fn an_empty_input_that_may_bring_more_holds_the_others_back() {
        let mut m = Merge::new(2);
        m.push(0, 10, "click");
        assert_eq!(
            m.pop(|_| false),
            None,
            "the purchases may bring an earlier one"
        );
        assert_eq!(m.len(0), 1);
        assert_eq!(m.pop(|i| i == 1), Some((0, "click")), "the purchases ended");
        assert!(m.is_empty());
        assert_eq!(m.pop(|_| true), None);
    }

    #[test]
    fn within_an_input_the_partition_order_stands() {
        // A late record stays behind the records before it in its partition.
        let mut m = Merge::new(2);
        m.push(0, 50, "click 50");
        m.push(0, 10, "late click 10");
        m.push(1, 20, "purchase 20");
        let order: Vec<&str> = m.drain().into_iter().map(|(_, r)| r).collect();
        assert_eq!(order, ["purchase 20", "click 50", "late click 10"]);
    }
}
