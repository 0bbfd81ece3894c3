//! The task host: what both drivers do for one task, so that a driver only moves bytes and
//! transactions.
//!
//! A [`TaskHost`] owns one [`Task`] with its watermarks and marker bookkeeping:
//! - set-up: the watermark sources of its stage (its input partitions, or the upstream tasks
//!   whose markers it reads) with the stage's rules ([`TaskHost::new`]);
//! - records: through the task with the [`Gate`] of the event-time rules ([`TaskHost::deliver`]),
//!   and markers from upstream tasks ([`TaskHost::marker`]);
//! - time: when its watermark moved, the task advances ([`TaskHost::tick`]); the watermark it
//!   owes downstream ([`TaskHost::marker_due`]);
//! - state: the changes of its stores and of its watermarks ([`TaskHost::checkpoint`]), and
//!   their restore ([`TaskHost::restore`], [`TaskHost::restored`]).
//!
//! Where emitted records land is decided here too ([`targets`]), so that both drivers place
//! them alike.

use std::collections::BTreeSet;

use fitstream_contracts::EventTime;
use serde::{Deserialize, Serialize};

use crate::deadletter::{DeadLetter, Reason};
use crate::metrics::METRICS;
use crate::partition::partition_for;
use crate::state::{self, Change, StateError};
use crate::task::{Ctx, Emit, EmitKind, Gate, Record, Rejection, Task, Topology, WatermarkSource};
use crate::watermark::{WatermarkConfig, Watermarks};

/// The changelog key of the host's own entry (a store name no task may use).
const WATERMARKS_KEY: &[u8] = b"runtime/watermarks";

/// The host's changelog entry: per-source max event times, so that a restored task's
/// watermark resumes where it was.
#[derive(Serialize, Deserialize, Default)]
struct WatermarkSnapshot {
    sources: Vec<(String, i64)>,
}

/// One task of a topology with its watermarks.
pub struct TaskHost {
    /// The task.
    pub task: Box<dyn Task>,
    /// Its input watermarks (input partitions or upstream tasks).
    pub watermarks: Watermarks<String>,
    /// The watermark the task has advanced to.
    pub current: EventTime,
    /// The latest watermark sent downstream in a marker.
    pub marker_sent: EventTime,
    /// Inputs idle at the last tick (logged when the set changes).
    pub idle: Vec<String>,
    /// An idle marker went downstream since the last regular one.
    pub idle_marker_sent: bool,
    /// The stage's watermark gauge, looked up once (it moves with nearly every record).
    watermark_gauge: prometheus::Gauge,
    stage: String,
    partition: i32,
    by_event_time: bool,
    /// The upstream tasks whose markers this task reads (none for an event-time stage).
    marker_sources: BTreeSet<String>,
    /// An event-time stage's input partitions as watermark sources, in the order of the
    /// stage's inputs (none for a stage whose watermark comes from markers).
    inputs: Vec<String>,
}

impl TaskHost {
    /// The task of partition `p` of stage `stage_idx`, with `rules` for its watermarks
    /// (idleness is left out for a stage whose watermark comes from markers).
    pub fn new(
        topology: &Topology,
        stage_idx: usize,
        p: i32,
        rules: WatermarkConfig,
        now_ms: i64,
    ) -> TaskHost {
        let stage = &topology.stages[stage_idx];
        let (rules, sources): (WatermarkConfig, Vec<String>) = match &stage.watermark {
            WatermarkSource::EventTime => (
                rules,
                stage.inputs.iter().map(|t| format!("{t}/{p}")).collect(),
            ),
            WatermarkSource::Markers { upstream_tasks } => {
                let upstream = topology
                    .stages
                    .iter()
                    .find(|s| s.repartitions.iter().any(|r| stage.inputs.contains(r)))
                    .map(|s| s.name.as_str())
                    .unwrap_or_default();
                (
                    rules.without_idleness(),
                    (0..*upstream_tasks)
                        .map(|u| format!("{upstream}/{u}"))
                        .collect(),
                )
            }
        };
        let by_event_time = stage.watermark == WatermarkSource::EventTime;
        let marker_sources = if by_event_time {
            BTreeSet::new()
        } else {
            sources.iter().cloned().collect()
        };
        let mut watermarks = Watermarks::new(rules);
        for s in &sources {
            watermarks.assign(s.clone(), now_ms);
        }
        let inputs = if by_event_time { sources } else { Vec::new() };
        TaskHost {
            task: (stage.factory)(p),
            watermarks,
            current: EventTime::MIN,
            marker_sent: EventTime::MIN,
            idle: Vec::new(),
            idle_marker_sent: false,
            watermark_gauge: METRICS.watermark_seconds.with_label_values(&[&stage.name]),
            stage: stage.name.clone(),
            partition: p,
            by_event_time,
            marker_sources,
            inputs,
        }
    }

    /// Input `input` (its index in the stage's inputs) has records on their way: waiting in
    /// the driver's merge (fetched, not taken yet: other inputs' earlier records go first), or
    /// on the broker (its lag). It is not idle, however long since its last record: counted
    /// idle, it would leave the watermark to the other inputs, ahead of where the same records
    /// put it in a replay. Nothing for a stage whose watermark comes from markers.
    pub fn records_coming(&mut self, input: usize, now_ms: i64) {
        if let Some(source) = self.inputs.get(input) {
            self.watermarks.backlogged(source, now_ms);
        }
    }

    /// The name of the task as a marker source (`<stage>/<partition>`).
    pub fn source(&self) -> String {
        format!("{}/{}", self.stage, self.partition)
    }

    /// One record through the task (with the future rule and the watermark for event-time
    /// stages): what it emitted, or its dead letter. `live`: `now_ms` is a wall clock (not a
    /// bounded run).
    pub fn deliver(
        &mut self,
        record: &Record<'_>,
        service: &str,
        now_ms: i64,
        live: bool,
    ) -> (Ctx, Option<DeadLetter>) {
        let mut ctx = Ctx::default();
        let watermarks = self.by_event_time.then_some(&mut self.watermarks);
        let mut gate = Gate::new(
            watermarks,
            record.topic,
            record.partition,
            self.current,
            now_ms,
            live,
        );
        let result = self.task.process(record, &mut gate, &mut ctx);
        let dead = result.err().map(|r| r.dead_letter(record, service, now_ms));
        (ctx, dead)
    }

    /// A record of `topic` with marker headers naming `source` and `watermark` (`None`: the
    /// source is idle). A marker counts only from one of this task's upstream tasks (on the
    /// repartition topic it reads); anything else claiming to be one (on an input topic, or
    /// from a writer the runtime does not know) is refused: time is never moved from outside.
    pub fn marker(
        &mut self,
        topic: &str,
        source: String,
        watermark: Option<EventTime>,
        now_ms: i64,
    ) -> Result<(), Rejection> {
        if !self.marker_sources.contains(&source) {
            return Err(Rejection::new(
                Reason::MarkerOnInput,
                format!(
                    "watermark marker headers naming {source:?} on {topic}: task {} reads markers only from its upstream tasks on its repartition topics",
                    self.source()
                ),
            ));
        }
        match watermark {
            Some(wm) => self.watermarks.observe(source, wm, now_ms),
            None => self.watermarks.declare_idle(&source),
        }
        Ok(())
    }

    /// Recomputes the watermark; when it moved, the task advances and its outputs are
    /// returned.
    pub fn tick(&mut self, now_ms: i64) -> Option<Ctx> {
        let wm = self.watermarks.current(now_ms);
        if wm <= self.current {
            return None;
        }
        self.current = wm;
        self.watermark_gauge.set(wm.0 as f64 / 1000.0);
        let mut ctx = Ctx::default();
        self.task.advance(wm, &mut ctx);
        Some(ctx)
    }

    /// The watermark owed downstream, if it passed the last one sent (marked as sent).
    pub fn marker_due(&mut self) -> Option<EventTime> {
        let output = self.task.output_watermark(self.current);
        (output > self.marker_sent).then(|| {
            self.marker_sent = output;
            self.idle_marker_sent = false;
            output
        })
    }

    /// Whether an idle marker is owed downstream (marked as sent): the task has no time of
    /// its own and nothing to read (every one of its `inputs` idle, none backlogged), so
    /// downstream must not wait for it. Once per stretch without regular markers.
    pub fn idle_marker_due(&mut self, inputs: usize) -> bool {
        let due =
            self.current == EventTime::MIN && !self.idle_marker_sent && self.idle.len() == inputs;
        self.idle_marker_sent |= due;
        due
    }

    /// The changes of the task's stores since the previous checkpoint, then the host's
    /// watermarks.
    pub fn checkpoint(&mut self) -> Result<Vec<Change>, StateError> {
        let mut out = Vec::new();
        state::checkpoint(self.task.as_mut(), &mut out)?;
        let snapshot = WatermarkSnapshot {
            sources: self
                .watermarks
                .maxima()
                .into_iter()
                .map(|(s, t)| (s, t.0))
                .collect(),
        };
        out.push((
            WATERMARKS_KEY.to_vec(),
            Some(state::codec::encode(&snapshot)?),
        ));
        Ok(out)
    }

    /// One changelog entry, oldest first.
    pub fn restore(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), StateError> {
        if key != WATERMARKS_KEY {
            return state::restore(self.task.as_mut(), key, value);
        }
        if let Some(v) = value {
            let snapshot: WatermarkSnapshot = state::decode(v)?;
            for (source, ms) in snapshot.sources {
                self.watermarks.observe(source, EventTime(ms), now_ms);
            }
        }
        Ok(())
    }

    /// Every entry is restored: the task's state reflects the restored watermark already,
    /// so no advance is replayed; markers start again.
    pub fn restored(&mut self, now_ms: i64) -> Result<(), StateError> {
        state::restored(self.task.as_mut())?;
        self.current = self.watermarks.current(now_ms);
        self.marker_sent = EventTime::MIN;
        // Restored from the changelog: committed state.
        self.task.committed();
        Ok(())
    }
}

/// The partitions an emitted record goes to on a topic of `partitions` partitions: every one
/// for a broadcast, else the one its key chooses (0 without a key).
pub fn targets(emit: &Emit, partitions: i32) -> std::ops::Range<i32> {
    if emit.kind == EmitKind::Broadcast {
        return 0..partitions;
    }
    let p = emit
        .key
        .as_deref()
        .map(|k| partition_for(k, partitions))
        .unwrap_or(0);
    p..p + 1
}

/// Counts the late records and duplicates a task reported in `ctx`.
pub fn account(ctx: &Ctx, service: &str) {
    if ctx.late > 0 {
        METRICS
            .late_records
            .with_label_values(&[service])
            .inc_by(ctx.late);
    }
    if ctx.duplicates > 0 {
        METRICS
            .duplicates
            .with_label_values(&[service])
            .inc_by(ctx.duplicates);
    }
}

/// Counts a dead letter (and a late one as late).
pub fn count_dead_letter(dl: &DeadLetter, service: &str) {
    METRICS
        .dead_letters
        .with_label_values(&[dl.reason.as_str()])
        .inc();
    if dl.reason == Reason::Late {
        METRICS.late_records.with_label_values(&[service]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Stage;

    struct Nothing;

    impl Task for Nothing {
        fn process(
            &mut self,
            _: &Record<'_>,
            _: &mut Gate<'_>,
            _: &mut Ctx,
        ) -> Result<(), Rejection> {
            Ok(())
        }
        fn advance(&mut self, _: EventTime, _: &mut Ctx) {}
    }

    fn topology() -> Topology {
        let stage = |name: &str, inputs: &str, repartitions: Vec<String>, watermark| Stage {
            name: name.into(),
            inputs: vec![inputs.into()],
            tables: Vec::new(),
            repartitions,
            watermark,
            globals: Vec::new(),
            factory: Box::new(|_| Box::new(Nothing)),
        };
        Topology {
            name: "t".into(),
            stages: vec![
                stage("up", "in", vec!["rep".into()], WatermarkSource::EventTime),
                stage(
                    "down",
                    "rep",
                    Vec::new(),
                    WatermarkSource::Markers { upstream_tasks: 2 },
                ),
            ],
        }
    }

    #[test]
    fn markers_count_only_from_upstream_tasks() {
        let t = topology();
        let mut down = TaskHost::new(&t, 1, 0, WatermarkConfig::default(), 0);
        assert!(
            down.marker("rep", "up/0".into(), Some(EventTime(5)), 0)
                .is_ok()
        );
        assert!(down.marker("rep", "up/1".into(), None, 0).is_ok());
        let refused = down
            .marker("rep", "up/2".into(), Some(EventTime(9)), 0)
            .expect_err("no such upstream task");
        assert_eq!(refused.reason, Reason::MarkerOnInput);
        assert_eq!(down.watermarks.current(0), EventTime(5), "up/1 is idle");

        let mut up = TaskHost::new(&t, 0, 0, WatermarkConfig::default(), 0);
        let refused = up
            .marker("in", "in/0".into(), Some(EventTime(i64::MAX / 2)), 0)
            .expect_err("an input topic carries no markers");
        assert_eq!(
            refused.message,
            "watermark marker headers naming \"in/0\" on in: task up/0 reads markers only from its upstream tasks on its repartition topics"
        );
        assert_eq!(
            up.watermarks.current(0),
            EventTime::MIN,
            "time did not move"
        );
    }
}
