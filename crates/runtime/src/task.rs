//! The one operator shape every stateful step has, and the topology that strings them.
//!
//! A [`Task`] is the processing of one partition number of a [`Stage`]'s co-partitioned input
//! topics. It takes records ([`Task::process`], which decodes and checks a record, then asks
//! the [`Gate`] to apply the event-time rules before it changes any state) and watermarks
//! ([`Task::advance`]); its state lives in stores it declares ([`Task::stores`]), which the
//! runtime checkpoints and restores. It knows nothing of rdkafka and never reads a clock: the
//! same tasks run on the Kafka driver and on the embedded driver.
//!
//! A stage may write to a repartition topic that another stage of the same topology reads
//! (records keyed by something else than the input key). Drivers then send watermark markers
//! from every upstream task to every partition of that topic (a record with the header
//! [`WATERMARK_HEADER`]), and the downstream task's watermark is the minimum over its
//! upstream sources, as Flink propagates watermarks.

use fitstream_contracts::EventTime;

use crate::deadletter::{DeadLetter, Reason, Source};
use crate::watermark::{Admission, Watermarks};

/// Header of a watermark marker on a repartition topic (decimal milliseconds).
pub const WATERMARK_HEADER: &str = "fitstream.watermark";
/// Header naming the upstream task that sent a marker (`<stage>/<partition>`).
pub const WATERMARK_SOURCE_HEADER: &str = "fitstream.watermark.source";

/// A record as a driver delivers it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset (or input line number in embedded mode).
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
}

/// Why a task refused a record: it goes to the dead-letter topic with this reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Dead-letter reason.
    pub reason: Reason,
    /// Details for people.
    pub message: String,
}

/// An input that cannot be decoded is rejected with the reason the codec gives
/// (`decode`, `schema`, `validation`, `too-large`).
impl From<fitstream_contracts::DecodeError> for Rejection {
    fn from(e: fitstream_contracts::DecodeError) -> Rejection {
        Rejection::new(
            Reason::parse(e.reason()).unwrap_or(Reason::Decode),
            e.to_string(),
        )
    }
}

impl Rejection {
    /// A rejection.
    pub fn new(reason: Reason, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// The runtime's rules for one record, applied at the moment its task knows the record's
/// event time: the task decodes and checks the record, asks the gate, and applies it at the
/// watermark the gate returns. A task that has nothing to do with a record (a duplicate, an
/// event type the stage ignores) returns without asking, and so does a record of a table
/// input (`Stage::tables`): it moves no watermark and is never late.
pub struct Gate<'a> {
    /// The task's input watermarks, for an event-time stage (None: the stage's watermark
    /// comes from markers, or the caller applies no rule).
    watermarks: Option<&'a mut Watermarks<String>>,
    source: String,
    current: EventTime,
    now_ms: i64,
    /// A live run: `now_ms` is the wall clock (the future rule compares with it).
    live: bool,
}

impl<'a> Gate<'a> {
    /// The gate of a record of `topic`/`partition` for a task at watermark `current`;
    /// `watermarks` are the task's input watermarks when its stage's watermark comes from
    /// event times; `live` when `now_ms` is a wall clock to judge the future by (a bounded
    /// run judges by the inputs' own times).
    pub fn new(
        watermarks: Option<&'a mut Watermarks<String>>,
        topic: &str,
        partition: i32,
        current: EventTime,
        now_ms: i64,
        live: bool,
    ) -> Gate<'a> {
        Gate {
            watermarks,
            source: format!("{topic}/{partition}"),
            current,
            now_ms,
            live,
        }
    }

    /// A gate that applies no rule (tests driving a task by hand).
    pub fn open(current: EventTime) -> Gate<'static> {
        Gate {
            watermarks: None,
            source: String::new(),
            current,
            now_ms: 0,
            live: false,
        }
    }

    /// A record of event time `t`: refused as `future` when it is far ahead of everything
    /// else (see [`Watermarks::admit`]), else its partition's watermark observes it. Returns
    /// the watermark the record is applied at.
    pub fn at(&mut self, t: EventTime) -> Result<EventTime, Rejection> {
        if let Some(w) = self.watermarks.as_deref_mut() {
            let clock = self.live.then_some(self.now_ms);
            if let Admission::TooFarAhead {
                reference,
                allowed_ms,
            } = w.admit(t, clock)
            {
                let what = if self.live {
                    "the wall clock"
                } else {
                    "the latest event time of the task's inputs"
                };
                return Err(Rejection::new(
                    Reason::Future,
                    format!(
                        "event time {t} is more than {allowed_ms} ms ahead of {what} ({reference})"
                    ),
                ));
            }
            w.observe(self.source.clone(), t, self.now_ms);
        }
        Ok(self.current)
    }
}

/// Where an emitted record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitKind {
    /// To the partition its key chooses.
    Record,
    /// A copy to every partition of the topic (to every downstream task).
    Broadcast,
    /// A progress marker on an output topic: no value, no record timestamp (a watermark may
    /// be the end of time, which brokers refuse), and the marker headers with `event_time` as
    /// the watermark (see [`Ctx::emit_progress`]).
    Progress,
}

/// A record a task emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emit {
    /// Topic.
    pub topic: String,
    /// Key bytes (the partition is chosen from them, as Kafka's Java client would).
    pub key: Option<Vec<u8>>,
    /// Value bytes (None: a tombstone).
    pub value: Option<Vec<u8>>,
    /// Event time of the output (the record timestamp).
    pub event_time: EventTime,
    /// Where it goes.
    pub kind: EmitKind,
}

/// Where a task's work goes during one call.
#[derive(Debug, Default)]
pub struct Ctx {
    /// Output records.
    pub emits: Vec<Emit>,
    /// Records counted as late by the task but still used (e.g. for a later window).
    pub late: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Outputs the task could not write (see [`Ctx::reject_output`]).
    pub rejected: Vec<RejectedOutput>,
}

/// An output a task made but could not write (too large to encode): it goes to the
/// dead-letter topic in its place, with its topic as the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedOutput {
    /// The topic it was meant for.
    pub topic: String,
    /// Its key (its value could not be encoded: the dead letter has none).
    pub key: Option<Vec<u8>>,
    /// Why.
    pub reason: Reason,
    /// Details for people.
    pub message: String,
}

impl RejectedOutput {
    /// Its dead letter, written by `service` at `failed_at_ms`.
    pub fn dead_letter(&self, service: &str, failed_at_ms: i64) -> DeadLetter {
        DeadLetter::new(
            self.key.as_deref(),
            None,
            self.reason,
            self.message.clone(),
            Source {
                topic: self.topic.clone(),
                partition: -1,
                offset: -1,
            },
            service,
            failed_at_ms,
        )
    }
}

impl Ctx {
    /// Whether the call produced nothing to write (no output, no rejected output).
    pub fn is_empty(&self) -> bool {
        self.emits.is_empty() && self.rejected.is_empty()
    }

    /// An output for `topic` that could not be encoded: dead-lettered with `error`'s reason
    /// (`too-large` for a value over the codec's limit), never dropped and never a crash.
    pub fn reject_output(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        error: &fitstream_contracts::EncodeError,
    ) {
        let reason = match error {
            fitstream_contracts::EncodeError::TooLarge { .. } => Reason::TooLarge,
            _ => Reason::Schema,
        };
        tracing::error!(topic, "an output could not be written: {error}");
        self.rejected.push(RejectedOutput {
            topic: topic.to_owned(),
            key,
            reason,
            message: format!("output for {topic}: {error}"),
        });
    }

    /// Emits a record.
    pub fn emit(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        event_time: EventTime,
    ) {
        self.emits.push(Emit {
            topic: topic.to_owned(),
            key,
            value: Some(value),
            event_time,
            kind: EmitKind::Record,
        });
    }

    /// Emits a progress marker to an output topic that other services read as a global table:
    /// "this task has published everything it will publish for event times up to
    /// `watermark`". The record has `key` (compacted topics refuse records without one), no
    /// value (a tombstone, so readers that decode values skip it) and the watermark marker
    /// headers; readers get it through [`Task::global_progress`], never as a table entry.
    pub fn emit_progress(&mut self, topic: &str, key: Vec<u8>, watermark: EventTime) {
        self.emits.push(Emit {
            topic: topic.to_owned(),
            key: Some(key),
            value: None,
            event_time: watermark,
            kind: EmitKind::Progress,
        });
    }

    /// Emits a copy of a record to every partition of `topic`.
    pub fn broadcast(&mut self, topic: &str, value: Vec<u8>, event_time: EventTime) {
        self.emits.push(Emit {
            topic: topic.to_owned(),
            key: None,
            value: Some(value),
            event_time,
            kind: EmitKind::Broadcast,
        });
    }
}

/// The processing of one partition of a stage.
pub trait Task: Send {
    /// One record: decode and check it without changing state, ask the [`Gate`] (which
    /// applies the runtime's event-time rules and gives the watermark), then apply it. A
    /// rejection is the record's dead letter.
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), Rejection>;
    /// The watermark moved forward.
    fn advance(&mut self, watermark: EventTime, ctx: &mut Ctx);
    /// The task's state stores by name (unique within the task, without `/`): the runtime
    /// writes their changes to the task's changelog at every commit and restores them (see
    /// [`crate::state`]). A task without state has none.
    fn stores(&mut self) -> Vec<(&'static str, &mut dyn crate::state::Store)> {
        Vec::new()
    }
    /// Every store has been restored: rebuild what is derived from them.
    fn restored(&mut self) {}
    /// The state as of the latest checkpoint is durable: the Kafka transaction that carried
    /// the checkpoint committed, or the state was just restored from the changelog, or an
    /// embedded run checkpointed. The task's state is what it checkpointed (nothing was
    /// processed in between): what a reader of committed state may now see (the profiler's
    /// lookup API). Never called for an aborted transaction.
    fn committed(&mut self) {}
    /// The driver no longer runs this task (its partition was revoked, or the driver stops
    /// or restarts): whatever it published of its state is no longer its own to answer for.
    fn revoked(&mut self) {}
    /// A record of one of the stage's global tables (every task sees every record, in order;
    /// a task created later first receives every record seen so far).
    fn global(&mut self, _topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, _ctx: &mut Ctx) {
    }
    /// A progress marker on a global table (see [`Ctx::emit_progress`]): its writer has
    /// published everything up to `watermark` of event time.
    fn global_progress(&mut self, _topic: &str, _watermark: EventTime, _ctx: &mut Ctx) {}
    /// Whether a bounded run may end once this task passed the end of time: false while it
    /// still waits for another service (the profiler for the segmenter's last model).
    fn settled(&self) -> bool {
        true
    }
    /// The watermark that goes downstream (markers) when the task's own is `watermark`: the
    /// same by default; a task holding records back (waiting for a table) holds it at the
    /// earliest of them, so downstream windows wait for what it will still emit.
    fn output_watermark(&self, watermark: EventTime) -> EventTime {
        watermark
    }
    /// State entries and approximate bytes, for metrics.
    fn state_size(&self) -> (usize, usize) {
        (0, 0)
    }
}

/// Where a stage's watermark comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatermarkSource {
    /// The event times of its input records, per input partition.
    EventTime,
    /// Markers from the tasks of an upstream stage with this many partitions.
    Markers {
        /// Number of upstream tasks.
        upstream_tasks: i32,
    },
}

/// A factory of tasks.
pub type TaskFactory = Box<dyn Fn(i32) -> Box<dyn Task> + Send + Sync>;

/// One stage of a topology.
pub struct Stage {
    /// Name (used in changelog topic names and marker sources).
    pub name: String,
    /// Co-partitioned input topics; their event times make the watermark of an `EventTime`
    /// stage.
    pub inputs: Vec<String>,
    /// Co-partitioned table inputs (e.g. segment assignments for an as-of join): read like
    /// inputs, but outside the watermark; a bounded run reads them to their end too.
    pub tables: Vec<String>,
    /// Repartition topics this stage writes to (watermark markers go there too).
    pub repartitions: Vec<String>,
    /// Where its watermark comes from.
    pub watermark: WatermarkSource,
    /// Global tables: topics every task of the stage reads whole (e.g. the segment model),
    /// outside the consumer group's partitioning.
    pub globals: Vec<String>,
    /// Makes the task of a partition.
    pub factory: TaskFactory,
}

/// A service's processing: stages in data-flow order.
pub struct Topology {
    /// Application name: `fitstream-<name>` is the consumer group and transactional id prefix.
    pub name: String,
    /// Stages.
    pub stages: Vec<Stage>,
}

impl Topology {
    /// The consumer group id.
    pub fn group_id(&self) -> String {
        format!("fitstream-{}", self.name)
    }

    /// The changelog topic of a stage.
    pub fn changelog_topic(&self, stage: &Stage) -> String {
        format!("fitstream-{}-{}-changelog", self.name, stage.name)
    }

    /// Every topic the topology reads.
    pub fn input_topics(&self) -> Vec<String> {
        self.stages
            .iter()
            .flat_map(|s| s.inputs.iter().chain(&s.tables).cloned())
            .collect()
    }

    /// The stage that reads `topic`.
    pub fn stage_of(&self, topic: &str) -> Option<usize> {
        self.stages
            .iter()
            .position(|s| s.inputs.iter().chain(&s.tables).any(|t| t == topic))
    }

    /// Whether a bounded run ends `topic` at an end offset: an input of an event-time stage,
    /// or a table. (A stage timed by markers ends with its upstream's last marker.)
    pub fn ends_by_event_time(&self, topic: &str) -> bool {
        self.stage_of(topic)
            .map(|i| &self.stages[i])
            .is_some_and(|s| {
                s.watermark == WatermarkSource::EventTime || s.tables.iter().any(|t| t == topic)
            })
    }

    /// Whether `topic` is a repartition topic of this topology.
    pub fn is_repartition(&self, topic: &str) -> bool {
        self.stages
            .iter()
            .any(|s| s.repartitions.iter().any(|t| t == topic))
    }
}

/// A marker's payload: (source, watermark).
pub fn marker_headers(source: &str, watermark: EventTime) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            WATERMARK_HEADER.to_owned(),
            watermark.0.to_string().into_bytes(),
        ),
        (
            WATERMARK_SOURCE_HEADER.to_owned(),
            source.as_bytes().to_vec(),
        ),
    ]
}

/// The value of [`WATERMARK_HEADER`] in an idle marker.
pub const IDLE: &str = "idle";

/// An idle marker: the upstream task has no records and no time of its own (every input
/// idle, nothing seen yet), so downstream leaves it out of the minimum until its next
/// marker, as Flink propagates an idle watermark status.
pub fn idle_marker_headers(source: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (WATERMARK_HEADER.to_owned(), IDLE.as_bytes().to_vec()),
        (
            WATERMARK_SOURCE_HEADER.to_owned(),
            source.as_bytes().to_vec(),
        ),
    ]
}

/// The watermark of a progress marker (a marker with a watermark), from a record's headers.
pub fn progress_of<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Option<EventTime> {
    parse_marker(headers).and_then(|(_, wm)| wm)
}

/// Reads a marker from headers: the source, and its watermark (None: idle).
pub fn parse_marker<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Option<(String, Option<EventTime>)> {
    let mut wm = None;
    let mut source = None;
    for (k, v) in headers {
        match k {
            WATERMARK_HEADER => {
                wm = match std::str::from_utf8(v).ok() {
                    Some(IDLE) => Some(None),
                    Some(s) => s.parse::<i64>().ok().map(|ms| Some(EventTime(ms))),
                    None => None,
                }
            }
            WATERMARK_SOURCE_HEADER => source = std::str::from_utf8(v).ok().map(str::to_owned),
            _ => {}
        }
    }
    Some((source?, wm?))
}

impl Rejection {
    /// The dead letter of `record` for this rejection.
    pub fn dead_letter(self, record: &Record<'_>, service: &str, failed_at_ms: i64) -> DeadLetter {
        DeadLetter::new(
            record.key,
            record.value,
            self.reason,
            self.message,
            Source {
                topic: record.topic.to_owned(),
                partition: record.partition,
                offset: record.offset,
            },
            service,
            failed_at_ms,
        )
    }
}
