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
use fitstream_runtime::embedded::{Embedded, EmbeddedConfig, Produced};
use fitstream_runtime::watermark::WatermarkConfig;
use fitstream_simulator::InputRecord;
use serde_json::json;

use crate::config::FitstreamConfig;
use crate::{inputs, jsonl};

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

/// Runs `records` through the embedded pipeline, writing `out/<topic>.jsonl`.
pub fn run(
    cfg: &FitstreamConfig,
    planner_cfg: PlannerConfig,
    routing: Routing,
    records: impl IntoIterator<Item = InputRecord>,
    out: &Path,
    mut progress: impl FnMut(&Summary),
) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(out)?;
    let codec = Codec::pinned();
    let app = planner_app(cfg, planner_cfg, routing, codec.clone());
    // Outputs of an earlier run into the same directory would read as this run's.
    let mut known: Vec<String> = app.output_topics();
    known.push(cfg.topics.dead_letter.clone());
    for topic in &known {
        let _ = std::fs::remove_file(out.join(format!("{topic}.jsonl")));
    }
    let counters = app.counters.clone();
    let service = app.name.clone();
    let profiler = fitstream_profiler::app::ProfilerApp::new(
        cfg.application("profiler"),
        cfg.profiler.clone(),
        cfg.topics.clone(),
        codec.clone(),
    );
    let segmenter = fitstream_segmenter::app::SegmenterApp::new(
        cfg.application("segmenter"),
        cfg.segmenter.clone(),
        cfg.topics.clone(),
        codec.clone(),
    );
    known.extend([
        cfg.topics.profiles.clone(),
        cfg.topics.segment_models.clone(),
        cfg.topics.segment_assignments.clone(),
        cfg.topics.segment_profiles.clone(),
    ]);
    for topic in &known {
        let _ = std::fs::remove_file(out.join(format!("{topic}.jsonl")));
    }
    // A history file may be silent for days and resume (the REES46 excerpt jumps 24 days):
    // without a wall clock to compare with, the future-skew rule would reject the whole
    // resumption, so replays check only the absolute bounds of validation (2000..2100).
    let embedded_config = EmbeddedConfig {
        partitions: cfg.topics.partitions,
        output_partitions: cfg.topics.partitions,
        watermark: WatermarkConfig {
            advance_when_idle: false,
            max_future_skew_ms: i64::MAX / 4,
            ..WatermarkConfig::default()
        },
        dead_letter_topic: cfg.topics.dead_letter.clone(),
        service,
    };
    let mut segmentation = fitstream_profiler::pipeline::SegmentationPipeline::new(
        &profiler,
        &segmenter,
        EmbeddedConfig {
            service: profiler.name.clone(),
            ..embedded_config.clone()
        },
    );
    let mut engine = Embedded::new(app.topology(), embedded_config);
    let mut segments: BTreeMap<i32, fitstream_contracts::SegmentProfile> = BTreeMap::new();
    let mut files: BTreeMap<String, BufWriter<File>> = BTreeMap::new();
    let mut summary = Summary::default();
    let mut write = |produced: Vec<Produced>, summary: &mut Summary| -> anyhow::Result<()> {
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
                    segments.remove(&sp.segment_id);
                } else {
                    summary.model_version = summary.model_version.max(sp.model_version);
                    segments.insert(sp.segment_id, sp);
                }
                summary.segments = segments.values().cloned().collect();
            }
            if let Some(plant) = cfg.topics.plant_of(&p.topic)
                && let Ok(o) = codec.decode::<fitstream_contracts::BuildOrder>(
                    &p.topic,
                    p.value.as_deref().unwrap_or_default(),
                )
            {
                summary.latest_orders.insert(plant, o);
            }
            let line = to_json_line(&codec, cfg, &p);
            if !files.contains_key(&p.topic) {
                files.insert(
                    p.topic.clone(),
                    BufWriter::new(File::create(out.join(format!("{}.jsonl", p.topic)))?),
                );
            }
            if let Some(f) = files.get_mut(&p.topic) {
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    };
    for record in records {
        summary.inputs += 1;
        let r = inputs::to_out_record(&codec, &cfg.topics, &record)?;
        let value = r.value.as_deref().unwrap_or_default();
        // The profiler first: the assignments it emits reach the planner's segment table
        // before the planner's watermark moves on with the same record.
        segmentation.push(&r.topic, r.key.as_deref(), value);
        let segmented = segmentation.drain();
        feed_assignments(&mut engine, &cfg.topics.segment_assignments, &segmented);
        write(segmented, &mut summary)?;
        engine.push(&r.topic, r.key.as_deref(), value);
        write(engine.drain(), &mut summary)?;
        if summary.inputs % 5_000 == 0 {
            summary.planner = counters.snapshot();
            progress(&summary);
        }
    }
    segmentation.finish();
    let segmented = segmentation.drain();
    feed_assignments(&mut engine, &cfg.topics.segment_assignments, &segmented);
    write(segmented, &mut summary)?;
    engine.finish();
    write(engine.drain(), &mut summary)?;
    for f in files.values_mut() {
        f.flush()?;
    }
    summary.planner = counters.snapshot();
    progress(&summary);
    Ok(summary)
}
