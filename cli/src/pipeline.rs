//! The profiler and the segmenter wired together in embedded mode, and [`evaluate`], which
//! measures the segments they find against the simulator's personas.
//!
//! [`SegmentationPipeline`] runs both topologies on the runtime's embedded driver, as the two
//! services would run beside a broker: profiles the profiler emits are fed to the segmenter
//! (its input topic), and models the segmenter publishes are fed back to the profiler as its
//! global table. After every input record the loop runs until neither side produces anything
//! the other reads, so a model reaches the profiler as soon as it is published (on Kafka it
//! would arrive a little later: assignments emitted in between would use the previous model).
//!
//! The end of the input ([`SegmentationPipeline::finish`]) moves the profiler's watermark to
//! the end of time (every pending profile is emitted), then the segmenter's (a last fit on the
//! final profiles), whose model then reassigns every customer.

use std::collections::BTreeMap;

use fitstream_contracts::topics::TopicsConfig;
use fitstream_contracts::{
    Codec, CustomerProfile, EncodeError, SegmentAssignment, SegmentModel, SegmentProfile,
};
use fitstream_runtime::embedded::{Embedded, EmbeddedConfig, Produced};
use fitstream_runtime::state::StateError;
use fitstream_runtime::watermark::WatermarkConfig;
use fitstream_segmenter::adjusted_rand_index;
use fitstream_segmenter::app::{SegmenterApp, SegmenterConfig, SegmenterStats};
use fitstream_simulator::{ConfigError, InputRecord, InputTopic, SimConfig, Simulator};
use serde::Serialize;

use fitstream_profiler::app::{ProfilerApp, ProfilerConfig, ProfilerStats};

/// The profiler and the segmenter on the embedded driver, each feeding the other.
pub struct SegmentationPipeline {
    topics: TopicsConfig,
    profiler: Embedded,
    segmenter: Embedded,
    out: Vec<Produced>,
}

impl SegmentationPipeline {
    /// Both topologies with `config` (partitions, watermark rules, dead-letter topic); the
    /// segmenter's dead letters name the service `segmenter`.
    pub fn new(
        profiler: &ProfilerApp,
        segmenter: &SegmenterApp,
        config: EmbeddedConfig,
    ) -> SegmentationPipeline {
        let segmenter_config = EmbeddedConfig {
            service: "segmenter".into(),
            ..config.clone()
        };
        // The segmenter runs alongside: the profiler's placements wait for it to the end.
        let mut profiler = profiler.clone();
        profiler.await_segmenter_at_end = true;
        SegmentationPipeline {
            topics: profiler.topics.clone(),
            profiler: Embedded::new(profiler.topology(), config),
            segmenter: Embedded::new(segmenter.topology(), segmenter_config),
            out: Vec::new(),
        }
    }

    /// Feeds one input record (clickstream or purchases) to the profiler.
    pub fn push(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8]) {
        self.profiler.push(topic, key, value);
        self.pump();
    }

    /// Announces a record of a bounded input that [`push_at`](Self::push_at) feeds later
    /// ([`Embedded::announce`]): the profiler then takes its inputs in event-time order.
    pub fn announce(&mut self, topic: &str, key: Option<&[u8]>) {
        self.profiler.announce(topic, key);
    }

    /// Feeds an announced input record with its timestamp ([`Embedded::push_at`]).
    pub fn push_at(&mut self, topic: &str, key: Option<&[u8]>, value: &[u8], timestamp: i64) {
        self.profiler.push_at(topic, key, value, timestamp);
        self.pump();
    }

    /// The end of the input: every watermark moves to the end of time, profiler first.
    pub fn finish(&mut self) -> Result<(), StateError> {
        self.profiler.finish()?;
        self.pump();
        self.segmenter.finish()?;
        self.pump();
        // The last model reached the profiler after its end: what it placed is committed too.
        self.profiler.commit()
    }

    /// The profiler commits (the embedded driver's checkpoint): its state as of now is
    /// what the lookup API answers from. Outputs do not depend on it.
    pub fn commit(&mut self) -> Result<(), StateError> {
        self.profiler.commit()
    }

    /// Records produced so far by both services (drained), in production order.
    pub fn drain(&mut self) -> Vec<Produced> {
        std::mem::take(&mut self.out)
    }

    /// How the profiler's input records ended so far, by topic.
    pub fn profiler_outcomes(&self) -> &BTreeMap<String, fitstream_runtime::embedded::Outcomes> {
        self.profiler.outcomes()
    }

    /// State entries and approximate bytes of the profiler's tasks.
    pub fn profiler_state_size(&self) -> (usize, usize) {
        self.profiler.state_size()
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for p in self.profiler.drain() {
                if p.topic == self.topics.profiles
                    && let Some(v) = &p.value
                {
                    self.segmenter.push(&p.topic, p.key.as_deref(), v);
                    moved = true;
                }
                self.out.push(p);
            }
            for p in self.segmenter.drain() {
                if p.topic == self.topics.segment_models {
                    moved = true;
                    if let Some(wm) = p.progress() {
                        // A control record between the services, not an output.
                        self.profiler.push_global_progress(&p.topic, wm);
                        continue;
                    }
                    self.profiler
                        .push_global(&p.topic, p.key.as_deref(), p.value.as_deref());
                }
                self.out.push(p);
            }
            if !moved {
                break;
            }
        }
    }
}

/// How [`evaluate`] runs the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluateOptions {
    /// Partitions of every topic.
    pub partitions: i32,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Profiler settings.
    pub profiler: ProfilerConfig,
    /// Segmenter settings.
    pub segmenter: SegmenterConfig,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        let topics = TopicsConfig::default();
        EvaluateOptions {
            partitions: topics.partitions,
            topics,
            profiler: ProfilerConfig::default(),
            segmenter: SegmenterConfig::default(),
        }
    }
}

/// One segment of the final model, with the customers the profiler placed in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentRow {
    /// Segment id.
    pub segment_id: i32,
    /// Label.
    pub label: String,
    /// Customers whose final assignment is this segment.
    pub customers: usize,
    /// Their personas in the simulator's ground truth, most frequent first.
    pub personas: Vec<(String, usize)>,
    /// The segment profile of the final model (centroid in original units, sample size).
    pub profile: SegmentProfile,
}

/// What [`evaluate`] found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Adjusted Rand index between final segments and personas, over customers with a
    /// final assignment.
    pub ari: f64,
    /// Customers with a final assignment.
    pub customers: usize,
    /// Customers in the ground truth (some never visit in the simulated span).
    pub ground_truth_customers: usize,
    /// Input records.
    pub inputs: u64,
    /// Dead letters, both services.
    pub dead_letters: u64,
    /// Profile records emitted.
    pub profile_records: u64,
    /// Assignment records emitted (segment changes).
    pub assignment_records: u64,
    /// Models published.
    pub models: u64,
    /// The final model's version.
    pub model_version: i64,
    /// Its quality metric's name.
    pub quality_metric: String,
    /// Its quality score.
    pub quality_score: f64,
    /// The final model's segments, by id (retired ones left out).
    pub segments: Vec<SegmentRow>,
    /// Profiler counters.
    pub profiler: ProfilerStats,
    /// Segmenter counters.
    pub segmenter: SegmenterStats,
}

/// Why [`evaluate`] could not measure anything.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The simulator configuration is invalid.
    #[error(transparent)]
    Simulator(#[from] ConfigError),
    /// An input record could not be encoded (a bug or a schema configuration error).
    #[error("cannot encode an input record: {0}")]
    Encode(#[from] EncodeError),
    /// A task's state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// No model was fitted (too few customers with events, or every fit failed).
    #[error("no segment model was fitted")]
    NoModel,
}

/// What the outputs say at the end, folded as they come.
#[derive(Default)]
struct Tally {
    latest_profiles: BTreeMap<String, CustomerProfile>,
    assignments: BTreeMap<String, SegmentAssignment>,
    profiles: BTreeMap<i32, SegmentProfile>,
    models: Vec<SegmentModel>,
    dead_letters: u64,
    profile_records: u64,
    assignment_records: u64,
}

impl Tally {
    fn add(&mut self, codec: &Codec, topics: &TopicsConfig, produced: Vec<Produced>) {
        for p in produced {
            let value = p.value.as_deref().unwrap_or_default();
            if p.topic == topics.dead_letter {
                self.dead_letters += 1;
            } else if p.topic == topics.profiles {
                self.profile_records += 1;
                match codec.decode::<CustomerProfile>(&p.topic, value) {
                    Ok(c) => {
                        self.latest_profiles.insert(c.customer_id.clone(), c);
                    }
                    Err(e) => tracing::error!("unreadable profile: {e}"),
                }
            } else if p.topic == topics.segment_assignments {
                self.assignment_records += 1;
                match codec.decode::<SegmentAssignment>(&p.topic, value) {
                    Ok(a) => {
                        self.assignments.insert(a.customer_id.clone(), a);
                    }
                    Err(e) => tracing::error!("unreadable assignment: {e}"),
                }
            } else if p.topic == topics.segment_models {
                match codec.decode::<SegmentModel>(&p.topic, value) {
                    Ok(m) => self.models.push(m),
                    Err(e) => tracing::error!("unreadable model: {e}"),
                }
            } else if p.topic == topics.segment_profiles {
                match codec.decode::<SegmentProfile>(&p.topic, value) {
                    Ok(s) => {
                        self.profiles.insert(s.segment_id, s);
                    }
                    Err(e) => tracing::error!("unreadable segment profile: {e}"),
                }
            }
        }
    }
}

/// An input record as it goes on its topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedInput {
    /// Topic (clickstream or purchases, by the record's kind).
    pub topic: String,
    /// Key (the customer id).
    pub key: Option<Vec<u8>>,
    /// Value (framed Avro, or the raw bytes of a malformed record).
    pub value: Vec<u8>,
}

/// Encodes an input record for its topic.
pub fn encode_input(
    codec: &Codec,
    topics: &TopicsConfig,
    record: &InputRecord,
) -> Result<EncodedInput, EncodeError> {
    let topic = match record.topic() {
        InputTopic::Clickstream => &topics.clickstream,
        InputTopic::Purchases => &topics.purchases,
    };
    Ok(EncodedInput {
        value: record.encode_value(codec, topic)?,
        topic: topic.clone(),
        key: record.key().map(<[u8]>::to_vec),
    })
}

/// The final tables of a simulated run (what a consumer of each compacted topic would hold
/// at the end), with the ground truth.
#[derive(Clone, Debug)]
pub struct SimulationRun {
    /// Customer id -> persona name, every simulated customer.
    pub truth: BTreeMap<String, String>,
    /// Latest profile per customer.
    pub profiles: BTreeMap<String, CustomerProfile>,
    /// Latest assignment per customer.
    pub assignments: BTreeMap<String, SegmentAssignment>,
    /// Every model published, in order.
    pub models: Vec<SegmentModel>,
    /// Latest segment profile per segment id.
    pub segment_profiles: BTreeMap<i32, SegmentProfile>,
    /// Input records.
    pub inputs: u64,
    /// Dead letters, both services.
    pub dead_letters: u64,
    /// Profile records emitted.
    pub profile_records: u64,
    /// Assignment records emitted.
    pub assignment_records: u64,
    /// Profiler counters.
    pub profiler: ProfilerStats,
    /// Segmenter counters.
    pub segmenter: SegmenterStats,
    /// State entries and approximate bytes of the profiler's tasks at the end.
    pub profiler_state: (usize, usize),
}

/// Simulates `sim` and runs the profiler and the segmenter on it in embedded mode.
pub fn run_simulation(
    sim: &SimConfig,
    options: &EvaluateOptions,
) -> Result<SimulationRun, EvaluateError> {
    let simulator = Simulator::new(sim.clone())?;
    let truth: BTreeMap<String, String> = simulator
        .ground_truth()
        .into_iter()
        .map(|(c, p)| (c, p.to_owned()))
        .collect();
    let codec = Codec::pinned();
    let topics = TopicsConfig {
        partitions: options.partitions,
        ..options.topics.clone()
    };
    let profiler = ProfilerApp::new(
        "profiler",
        options.profiler.clone(),
        topics.clone(),
        codec.clone(),
    );
    let segmenter = SegmenterApp::new(
        "segmenter",
        options.segmenter.clone(),
        topics.clone(),
        codec.clone(),
    );
    let mut pipeline = SegmentationPipeline::new(
        &profiler,
        &segmenter,
        EmbeddedConfig {
            partitions: options.partitions,
            output_partitions: options.partitions,
            topic_partitions: Default::default(),
            watermark: WatermarkConfig {
                advance_when_idle: false,
                ..WatermarkConfig::default()
            },
            dead_letter_topic: topics.dead_letter.clone(),
            service: "profiler".into(),
        },
    );
    let mut tally = Tally::default();
    let mut inputs = 0;
    for record in simulator {
        let input = encode_input(&codec, &topics, &record)?;
        pipeline.push(&input.topic, input.key.as_deref(), &input.value);
        inputs += 1;
        tally.add(&codec, &topics, pipeline.drain());
    }
    pipeline.finish()?;
    tally.add(&codec, &topics, pipeline.drain());
    Ok(SimulationRun {
        truth,
        profiles: tally.latest_profiles,
        assignments: tally.assignments,
        models: tally.models,
        segment_profiles: tally.profiles,
        inputs,
        dead_letters: tally.dead_letters,
        profile_records: tally.profile_records,
        assignment_records: tally.assignment_records,
        profiler: profiler.counters.snapshot(),
        segmenter: segmenter.counters.snapshot(),
        profiler_state: pipeline.profiler_state_size(),
    })
}

impl SimulationRun {
    /// The final model.
    pub fn final_model(&self) -> Option<&SegmentModel> {
        self.models.last()
    }

    /// Adjusted Rand index between final segments and personas, over customers with a final
    /// assignment; and the number of those customers.
    pub fn ari(&self) -> (f64, usize) {
        let mut names: Vec<&str> = Vec::new();
        let mut personas = Vec::new();
        let mut segments = Vec::new();
        for (customer, a) in &self.assignments {
            let Some(persona) = self.truth.get(customer) else {
                continue;
            };
            let index = match names.iter().position(|n| n == persona) {
                Some(i) => i,
                None => {
                    names.push(persona);
                    names.len() - 1
                }
            };
            personas.push(index);
            segments.push(usize::try_from(a.segment_id).unwrap_or(usize::MAX));
        }
        (adjusted_rand_index(&personas, &segments), personas.len())
    }

    /// The evaluation of this run.
    pub fn evaluation(&self) -> Result<Evaluation, EvaluateError> {
        let model = self.final_model().ok_or(EvaluateError::NoModel)?;
        let (ari, customers) = self.ari();
        let mut mix: BTreeMap<i32, BTreeMap<&str, usize>> = BTreeMap::new();
        for (customer, a) in &self.assignments {
            if let Some(persona) = self.truth.get(customer) {
                *mix.entry(a.segment_id)
                    .or_default()
                    .entry(persona)
                    .or_default() += 1;
            }
        }
        let segments = model
            .segments
            .iter()
            .filter_map(|s| {
                let profile = self.segment_profiles.get(&s.segment_id)?.clone();
                let mut personas: Vec<(String, usize)> = mix
                    .get(&s.segment_id)
                    .map(|m| m.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect())
                    .unwrap_or_default();
                personas.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                Some(SegmentRow {
                    segment_id: s.segment_id,
                    label: s.label.clone(),
                    customers: personas.iter().map(|p| p.1).sum(),
                    personas,
                    profile,
                })
            })
            .collect();
        Ok(Evaluation {
            ari,
            customers,
            ground_truth_customers: self.truth.len(),
            inputs: self.inputs,
            dead_letters: self.dead_letters,
            profile_records: self.profile_records,
            assignment_records: self.assignment_records,
            models: self.models.len() as u64,
            model_version: model.version,
            quality_metric: model.quality_metric.clone(),
            quality_score: model.quality_score,
            segments,
            profiler: self.profiler.clone(),
            segmenter: self.segmenter.clone(),
        })
    }
}

/// Simulates `sim`, runs the profiler and the segmenter on it in embedded mode, and compares
/// the final segment of every customer with its persona (for `fitstream segments`).
pub fn evaluate(sim: &SimConfig, options: &EvaluateOptions) -> Result<Evaluation, EvaluateError> {
    run_simulation(sim, options)?.evaluation()
}

/// Decodes the profiles in `produced` (for tests and tools).
pub fn profiles_of(
    codec: &Codec,
    topics: &TopicsConfig,
    produced: &[Produced],
) -> Vec<CustomerProfile> {
    produced
        .iter()
        .filter(|p| p.topic == topics.profiles)
        .filter_map(|p| codec.decode(&p.topic, p.value.as_deref()?).ok())
        .collect()
}
