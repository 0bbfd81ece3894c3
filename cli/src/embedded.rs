//! The embedded mode: the pipeline in one process on the runtime's embedded driver, no
//! broker. Input records are encoded exactly as on Kafka and decoded by the same tasks, so bad
//! input is dead-lettered for the same reasons; the end of the input closes every window.
//! Outputs are written to `out/<topic>.jsonl`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use fitstream_contracts::Codec;
use fitstream_planner::PlannerConfig;
use fitstream_planner::app::PlannerApp;
use fitstream_planner::planner::{PlannerCounters, PlannerStats};
use fitstream_planner::routing::Routing;
use fitstream_runtime::embedded::{Embedded, EmbeddedConfig, Outcomes, Produced};
use fitstream_runtime::watermark::WatermarkConfig;
use fitstream_simulator::InputRecord;
use serde_json::json;

use crate::config::FitstreamConfig;
use crate::{inputs, jsonl};
use fitstream_runtime::kafka::writer::OutRecord;

/// What a run produced.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// The segments of the last model (retired ones left out), by id.
    pub segments: Vec<fitstream_contracts::SegmentProfile>,
    /// Version of the last model.
    pub model_version: i64,
    /// The latest build orders per plant (for views).
    #[serde(skip)]
    pub latest_orders: BTreeMap<String, fitstream_contracts::BuildOrder>,
    /// The operator watermark (event time) last seen in outputs.
    pub last_output_time: i64,
    /// Input records read.
    pub inputs: u64,
    /// Records written per output topic.
    pub outputs: BTreeMap<String, u64>,
    /// Dead letters per reason.
    pub dead_letters: BTreeMap<String, u64>,
    /// Planner counters.
    pub planner: PlannerStats,
    /// How the input records ended in each service that reads them (`profiler`, `planner`),
    /// by input topic.
    pub outcomes: BTreeMap<String, BTreeMap<String, Outcomes>>,
}

impl Summary {
    /// Whether every input record read by every service has exactly one outcome.
    pub fn accounted(&self) -> bool {
        self.outcomes
            .values()
            .flat_map(BTreeMap::values)
            .all(Outcomes::accounted)
    }
}

/// Appends dead letters made outside the pipeline (rows of the input file that are not
/// records) to `out/<dead-letter topic>.jsonl`, counted in the summary like the others.
pub fn append_dead_letters(
    cfg: &FitstreamConfig,
    out: &Path,
    dead_letters: Vec<fitstream_runtime::deadletter::DeadLetter>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    if dead_letters.is_empty() {
        return Ok(());
    }
    let codec = pinned_codec(cfg);
    let topic = &cfg.topics.dead_letter;
    let mut file = BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out.join(format!("{topic}.jsonl")))?,
    );
    for dl in dead_letters {
        *summary
            .dead_letters
            .entry(dl.reason.as_str().to_owned())
            .or_default() += 1;
        *summary.outputs.entry(topic.clone()).or_default() += 1;
        let p = Produced {
            topic: topic.clone(),
            partition: 0,
            headers: dl
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            key: dl.key,
            value: dl.value,
            timestamp: 0,
        };
        writeln!(file, "{}", to_json_line(&codec, cfg, &p))?;
    }
    file.flush()?;
    Ok(())
}

/// The planner application of a configuration (pinned codec, given partitions).
pub fn planner_app(
    cfg: &FitstreamConfig,
    planner: PlannerConfig,
    routing: Routing,
    codec: Codec,
) -> PlannerApp {
    PlannerApp {
        name: cfg.application("planner"),
        config: planner,
        topics: cfg.topics.clone(),
        codec,
        routing: Arc::new(routing),
        counters: Arc::new(PlannerCounters::default()),
        partitions: cfg.topics.partitions,
    }
}

/// One output record as a JSON line (values decoded; dead letters with headers).
pub fn to_json_line(codec: &Codec, cfg: &FitstreamConfig, p: &Produced) -> serde_json::Value {
    if p.topic == cfg.topics.dead_letter {
        let headers: BTreeMap<&str, &str> = p
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        return json!({
            "topic": p.topic, "partition": p.partition,
            "key": p.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()),
            "timestamp": null, "headers": headers,
            "value": { "value_hex": p.value.as_deref().map(hex::encode) },
        });
    }
    let value = match p.value.as_deref() {
        Some(bytes) => jsonl::decode_value(codec, &cfg.topics, &p.topic, bytes)
            .unwrap_or_else(|e| json!({ "error": e.to_string() })),
        None => serde_json::Value::Null,
    };
    jsonl::line(
        &p.topic,
        Some(p.partition),
        p.key.as_deref(),
        Some(p.timestamp),
        value,
    )
}

/// The planner reads the segment assignments as a table (the buyer's segment, as of the
/// purchase).
fn feed_assignments(engine: &mut Embedded, topic: &str, produced: &[Produced]) {
    for p in produced.iter().filter(|p| p.topic == topic) {
        engine.push(
            &p.topic,
            p.key.as_deref(),
            p.value.as_deref().unwrap_or_default(),
        );
    }
}

/// The embedded codec: pinned schema ids, the configuration's field limits.
fn pinned_codec(cfg: &FitstreamConfig) -> Codec {
    Codec::pinned().limited(cfg.limits.clone())
}

/// Records of one topic kept in an unnamed temporary file (gone when dropped), in order: a
/// key-presence byte, the key and the value, each length-prefixed.
struct Spill {
    file: std::io::BufWriter<File>,
}

impl Spill {
    fn new() -> std::io::Result<Spill> {
        Ok(Spill {
            file: std::io::BufWriter::new(tempfile::tempfile()?),
        })
    }

    /// Keeps the records of `topic` among `produced`.
    fn keep(&mut self, topic: &str, produced: &[Produced]) -> std::io::Result<()> {
        use std::io::Write;
        for p in produced.iter().filter(|p| p.topic == topic) {
            let value = p.value.as_deref().unwrap_or_default();
            self.file.write_all(&[u8::from(p.key.is_some())])?;
            for bytes in [p.key.as_deref().unwrap_or_default(), value] {
                self.file.write_all(&(bytes.len() as u64).to_le_bytes())?;
                self.file.write_all(bytes)?;
            }
        }
        Ok(())
    }

    /// Gives every record kept, in order.
    fn replay(self, mut each: impl FnMut(Option<&[u8]>, &[u8])) -> anyhow::Result<()> {
        use std::io::{Read, Seek};
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let mut file = std::io::BufReader::new(file);
        let (mut key, mut value) = (Vec::new(), Vec::new());
        let mut present = [0u8; 1];
        loop {
            match file.read_exact(&mut present) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                other => other?,
            }
            for buf in [&mut key, &mut value] {
                let mut len = [0u8; 8];
                file.read_exact(&mut len)?;
                buf.resize(u64::from_le_bytes(len) as usize, 0);
                file.read_exact(buf)?;
            }
            each((present[0] == 1).then_some(&key[..]), &value);
        }
    }
}

/// Writes output records to `out/<topic>.jsonl` and keeps the summary.
struct Outputs<'a> {
    cfg: &'a FitstreamConfig,
    codec: Codec,
    out: &'a Path,
    files: BTreeMap<String, BufWriter<File>>,
    segments: BTreeMap<i32, fitstream_contracts::SegmentProfile>,
}

impl<'a> Outputs<'a> {
    /// Removes the outputs of an earlier run into the same directory (they would read as
    /// this run's).
    fn new(cfg: &'a FitstreamConfig, codec: Codec, out: &'a Path) -> anyhow::Result<Outputs<'a>> {
        std::fs::create_dir_all(out)?;
        for e in std::fs::read_dir(out)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(topic) = name.strip_suffix(".jsonl")
                && (cfg.topics.kind_of(topic).is_some() || topic == cfg.topics.dead_letter)
            {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(Outputs {
            cfg,
            codec,
            out,
            files: BTreeMap::new(),
            segments: BTreeMap::new(),
        })
    }

    fn write(&mut self, produced: Vec<Produced>, summary: &mut Summary) -> anyhow::Result<()> {
        let (cfg, codec) = (self.cfg, &self.codec);
        for p in produced {
            if p.topic == cfg.topics.dead_letter {
                let reason = p
                    .headers
                    .iter()
                    .find(|(k, _)| k == "fitstream.error.reason")
                    .map(|(_, v)| v.clone());
                *summary
                    .dead_letters
                    .entry(reason.unwrap_or_default())
                    .or_default() += 1;
            }
            *summary.outputs.entry(p.topic.clone()).or_default() += 1;
            summary.last_output_time = summary.last_output_time.max(p.timestamp);
            if p.topic == cfg.topics.segment_profiles
                && let Ok(sp) = codec.decode::<fitstream_contracts::SegmentProfile>(
                    &p.topic,
                    p.value.as_deref().unwrap_or_default(),
                )
            {
                if sp.retired {
                    self.segments.remove(&sp.segment_id);
                } else {
                    summary.model_version = summary.model_version.max(sp.model_version);
                    self.segments.insert(sp.segment_id, sp);
                }
                summary.segments = self.segments.values().cloned().collect();
            }
            if let Some(plant) = cfg.topics.plant_of(&p.topic)
                && let Ok(o) = codec.decode::<fitstream_contracts::BuildOrder>(
                    &p.topic,
                    p.value.as_deref().unwrap_or_default(),
                )
            {
                summary.latest_orders.insert(plant, o);
            }
            let line = to_json_line(codec, cfg, &p);
            if !self.files.contains_key(&p.topic) {
                let file = File::create(self.out.join(format!("{}.jsonl", p.topic)))?;
                self.files.insert(p.topic.clone(), BufWriter::new(file));
            }
            if let Some(f) = self.files.get_mut(&p.topic) {
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for f in self.files.values_mut() {
            f.flush()?;
        }
        Ok(())
    }
}

/// The three services of a configuration on the embedded driver.
struct Services {
    planner: Embedded,
    counters: Arc<PlannerCounters>,
    segmentation: crate::pipeline::SegmentationPipeline,
}

/// The embedded driver's settings for `service` of a configuration.
///
/// A history file may be silent for days and resume (the REES46 excerpt jumps 24 days):
/// without a wall clock to compare with, the future-skew rule would reject the whole
/// resumption, so replays check only the absolute bounds of validation (2000..2100).
pub fn embedded_config(cfg: &FitstreamConfig, service: String) -> EmbeddedConfig {
    EmbeddedConfig {
        partitions: cfg.topics.partitions,
        output_partitions: cfg.topics.partitions,
        topic_partitions: cfg
            .topics
            .specs(&[])
            .into_iter()
            .filter(|s| s.partitions != cfg.topics.partitions)
            .map(|s| (s.name, s.partitions))
            .collect(),
        watermark: WatermarkConfig {
            advance_when_idle: false,
            ..WatermarkConfig::default()
        },
        dead_letter_topic: cfg.topics.dead_letter.clone(),
        service,
    }
}

/// The profiler and the segmenter of a configuration, wired together on the embedded driver.
pub fn segmentation(cfg: &FitstreamConfig) -> crate::pipeline::SegmentationPipeline {
    segmentation_with(cfg, None)
}

/// [`segmentation`], the profiler's committed state published to `lookup` (the lookup API).
pub fn segmentation_with(
    cfg: &FitstreamConfig,
    lookup: Option<std::sync::Arc<fitstream_profiler::lookup::Lookup>>,
) -> crate::pipeline::SegmentationPipeline {
    let codec = pinned_codec(cfg);
    let mut profiler = fitstream_profiler::app::ProfilerApp::new(
        cfg.application("profiler"),
        cfg.profiler.clone(),
        cfg.topics.clone(),
        codec.clone(),
    );
    profiler.lookup = lookup;
    let segmenter = fitstream_segmenter::app::SegmenterApp::new(
        cfg.application("segmenter"),
        cfg.segmenter.clone(),
        cfg.topics.clone(),
        codec,
    );
    crate::pipeline::SegmentationPipeline::new(
        &profiler,
        &segmenter,
        embedded_config(cfg, profiler.name.clone()),
    )
}

impl Services {
    fn new(
        cfg: &FitstreamConfig,
        planner_cfg: PlannerConfig,
        routing: Routing,
        lookup: Option<std::sync::Arc<fitstream_profiler::lookup::Lookup>>,
    ) -> Services {
        let app = planner_app(cfg, planner_cfg, routing, pinned_codec(cfg));
        Services {
            counters: app.counters.clone(),
            planner: Embedded::new(app.topology(), embedded_config(cfg, app.name.clone())),
            segmentation: segmentation_with(cfg, lookup),
        }
    }

    /// Feeds an encoded input record to the segmentation (the profiler).
    fn segment(&mut self, r: &OutRecord) -> Vec<Produced> {
        let value = r.value.as_deref().unwrap_or_default();
        self.segmentation.push(&r.topic, r.key.as_deref(), value);
        self.segmentation.drain()
    }

    /// How the input records ended in the profiler and the planner, by input topic.
    fn outcomes(&self, cfg: &FitstreamConfig) -> BTreeMap<String, BTreeMap<String, Outcomes>> {
        let inputs = |o: &BTreeMap<String, Outcomes>| {
            o.iter()
                .filter(|(t, _)| **t == cfg.topics.clickstream || **t == cfg.topics.purchases)
                .map(|(t, o)| (t.clone(), o.clone()))
                .collect()
        };
        BTreeMap::from([
            (
                "profiler".to_owned(),
                inputs(self.segmentation.profiler_outcomes()),
            ),
            ("planner".to_owned(), inputs(self.planner.outcomes())),
        ])
    }

    /// Feeds an encoded input record to the planner.
    fn plan(&mut self, r: &OutRecord) -> Vec<Produced> {
        let value = r.value.as_deref().unwrap_or_default();
        self.planner.push(&r.topic, r.key.as_deref(), value);
        self.planner.drain()
    }
}

/// Runs `records` through the embedded pipeline as they come (the demo's live view), writing
/// `out/<topic>.jsonl`: each record through the profiler and the segmenter, whose assignments
/// reach the planner's segment table, then through the planner. A buyer's segment is as of
/// what the segmentation has placed by then (the planner waits `segment_grace_ms` for it).
/// With `lookup`, the profiler commits at every progress report (every 5,000 records) and
/// at the end, publishing its state to the lookup API's view.
pub fn run(
    cfg: &FitstreamConfig,
    planner_cfg: PlannerConfig,
    routing: Routing,
    records: impl IntoIterator<Item = InputRecord>,
    out: &Path,
    lookup: Option<std::sync::Arc<fitstream_profiler::lookup::Lookup>>,
    mut progress: impl FnMut(&Summary),
) -> anyhow::Result<Summary> {
    let codec = pinned_codec(cfg);
    let mut outputs = Outputs::new(cfg, codec.clone(), out)?;
    let committing = lookup.is_some();
    let mut services = Services::new(cfg, planner_cfg, routing, lookup);
    let mut summary = Summary::default();
    for record in records {
        summary.inputs += 1;
        // The profiler first: the assignments it emits reach the planner's segment table
        // before the planner's watermark moves on with the same record.
        let r = inputs::to_out_record(&codec, &cfg.topics, &record)?;
        let segmented = services.segment(&r);
        feed_assignments(
            &mut services.planner,
            &cfg.topics.segment_assignments,
            &segmented,
        );
        outputs.write(segmented, &mut summary)?;
        outputs.write(services.plan(&r), &mut summary)?;
        if summary.inputs % 5_000 == 0 {
            if committing {
                services.segmentation.commit()?;
            }
            summary.planner = services.counters.snapshot();
            progress(&summary);
        }
    }
    services.segmentation.finish()?;
    let segmented = services.segmentation.drain();
    feed_assignments(
        &mut services.planner,
        &cfg.topics.segment_assignments,
        &segmented,
    );
    outputs.write(segmented, &mut summary)?;
    services.planner.finish()?;
    outputs.write(services.planner.drain(), &mut summary)?;
    outputs.flush()?;
    summary.planner = services.counters.snapshot();
    summary.outcomes = services.outcomes(cfg);
    progress(&summary);
    Ok(summary)
}

/// Runs a bounded input through the embedded pipeline in data-flow order, writing
/// `out/<topic>.jsonl`: the profiler and the segmenter over the whole input first, then the
/// planner over it again with every segment assignment in its table. A buyer's segment is
/// then exactly the one valid at the purchase, and the outputs are those of `run all
/// --until-end` on Kafka, which runs the services in the same order. `inputs` opens the input
/// (it is read twice).
pub fn run_bounded<I: Iterator<Item = InputRecord>>(
    cfg: &FitstreamConfig,
    planner_cfg: PlannerConfig,
    routing: Routing,
    mut inputs: impl FnMut() -> anyhow::Result<I>,
    out: &Path,
    mut progress: impl FnMut(&Summary),
) -> anyhow::Result<Summary> {
    let codec = pinned_codec(cfg);
    let mut outputs = Outputs::new(cfg, codec.clone(), out)?;
    let mut services = Services::new(cfg, planner_cfg, routing, None);
    let mut summary = Summary::default();
    // The assignments wait on disk for the second pass, not in memory: they grow with the
    // input's length.
    let mut assignments = Spill::new()?;
    let topic = &cfg.topics.segment_assignments;
    // Every record is announced first, as a bounded run on Kafka knows its end offsets: a
    // task with several inputs then takes them in event-time order, as it does there.
    for record in inputs()? {
        let (topic, key) = (
            inputs::topic_name(&cfg.topics, record.topic()),
            record.key(),
        );
        services.segmentation.announce(topic, key);
        services.planner.announce(topic, key);
    }
    let mut stamps = inputs::Stamps::default();
    for record in inputs()? {
        summary.inputs += 1;
        let mut r = inputs::to_out_record(&codec, &cfg.topics, &record)?;
        let at = stamps.stamp(&mut r);
        let value = r.value.as_deref().unwrap_or_default();
        services
            .segmentation
            .push_at(&r.topic, r.key.as_deref(), value, at);
        let segmented = services.segmentation.drain();
        assignments.keep(topic, &segmented)?;
        outputs.write(segmented, &mut summary)?;
        if summary.inputs % 5_000 == 0 {
            progress(&summary);
        }
    }
    services.segmentation.finish()?;
    let segmented = services.segmentation.drain();
    assignments.keep(topic, &segmented)?;
    outputs.write(segmented, &mut summary)?;
    assignments.replay(|key, value| services.planner.push(topic, key, value))?;
    let mut stamps = inputs::Stamps::default();
    for record in inputs()? {
        let mut r = inputs::to_out_record(&codec, &cfg.topics, &record)?;
        let at = stamps.stamp(&mut r);
        let value = r.value.as_deref().unwrap_or_default();
        services
            .planner
            .push_at(&r.topic, r.key.as_deref(), value, at);
        outputs.write(services.planner.drain(), &mut summary)?;
    }
    services.planner.finish()?;
    outputs.write(services.planner.drain(), &mut summary)?;
    outputs.flush()?;
    summary.planner = services.counters.snapshot();
    summary.outcomes = services.outcomes(cfg);
    progress(&summary);
    Ok(summary)
}
