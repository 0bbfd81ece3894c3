//! The embedded mode: the pipeline in one process over in-memory records, no broker. Input
//! records go through the same codec as on Kafka (encode, then decode and validate), so bad
//! input is dead-lettered for the same reasons; event time, watermarks and windows follow the
//! same rules, with the end of the input closing every window.
//!
//! Today the embedded pipeline runs the planner (build orders, cart abandonment); the
//! profiler and segmenter join it as they land.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use fitstream_contracts::Codec;
use fitstream_contracts::records::{ClickEvent, PurchaseEvent};
use fitstream_planner::planner::{Output, Rejected};
use fitstream_planner::routing::Routing;
use fitstream_planner::{Planner, PlannerConfig};
use fitstream_runtime::deadletter::{DeadLetter, Reason, Source};
use fitstream_runtime::watermark::{Admission, WatermarkConfig, Watermarks};
use fitstream_simulator::InputRecord;
use serde_json::json;

use crate::config::FitstreamConfig;
use crate::{inputs, jsonl};

/// What a run produced.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Input records read.
    pub inputs: u64,
    /// Records written per output topic.
    pub outputs: BTreeMap<String, u64>,
    /// Dead letters per reason.
    pub dead_letters: BTreeMap<String, u64>,
    /// Planner counters.
    pub planner: fitstream_planner::planner::PlannerStats,
}

struct Sinks {
    dir: PathBuf,
    files: BTreeMap<String, BufWriter<File>>,
}

impl Sinks {
    fn write(&mut self, topic: &str, line: serde_json::Value) -> std::io::Result<()> {
        if !self.files.contains_key(topic) {
            let f = BufWriter::new(File::create(self.dir.join(format!("{topic}.jsonl")))?);
            self.files.insert(topic.to_owned(), f);
        }
        match self.files.get_mut(topic) {
            Some(f) => writeln!(f, "{line}"),
            None => Ok(()),
        }
    }
}

/// Runs `records` through the embedded pipeline, writing `out/<topic>.jsonl`.
#[allow(clippy::result_large_err)] // a DeadLetter carries the record bytes by design
pub fn run(
    cfg: &FitstreamConfig,
    planner_cfg: PlannerConfig,
    routing: Routing,
    records: impl IntoIterator<Item = InputRecord>,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(out)?;
    // Outputs of an earlier run into the same directory would read as this run's.
    let mut known: Vec<String> = vec![
        cfg.topics.dead_letter.clone(),
        cfg.topics.cart_abandonment.clone(),
    ];
    known.extend(
        routing
            .plant_ids()
            .iter()
            .map(|p| cfg.topics.build_orders_topic(p)),
    );
    for topic in known {
        let _ = std::fs::remove_file(out.join(format!("{topic}.jsonl")));
    }
    let codec = Codec::pinned();
    let topics = &cfg.topics;
    let mut sinks = Sinks {
        dir: out.to_path_buf(),
        files: BTreeMap::new(),
    };
    let mut summary = Summary::default();
    let mut planner = Planner::new(planner_cfg, routing);
    // A history file may be silent for days and resume (the REES46 excerpt jumps 24 days):
    // without a wall clock to compare with, the future-skew rule would reject the whole
    // resumption, so replays check only the absolute bounds of validation (2000..2100).
    let mut wm: Watermarks<String> = Watermarks::new(WatermarkConfig {
        advance_when_idle: false,
        max_future_skew_ms: i64::MAX / 4,
        ..WatermarkConfig::default()
    });
    wm.assign(topics.clickstream.clone(), 0);
    wm.assign(topics.purchases.clone(), 0);
    let mut offsets: BTreeMap<String, i64> = BTreeMap::new();
    let mut outputs = Vec::new();

    for record in records {
        summary.inputs += 1;
        progress(summary.inputs);
        let out_record = inputs::to_out_record(&codec, topics, &record)?;
        let topic = out_record.topic.clone();
        let offset = offsets.entry(topic.clone()).or_default();
        let source = Source {
            topic: topic.clone(),
            partition: 0,
            offset: *offset,
        };
        *offset += 1;
        let bytes = out_record.value.clone().unwrap_or_default();
        let dead = |reason: Reason, message: String| DeadLetter {
            key: out_record.key.clone(),
            value: out_record.value.clone(),
            reason,
            message,
            source: source.clone(),
            service: "planner".into(),
            failed_at_ms: 0,
        };
        let decoded: Result<(InputRecord, fitstream_contracts::EventTime), DeadLetter> =
            if topic == topics.clickstream {
                codec.decode::<ClickEvent>(&topic, &bytes).map(|c| {
                    let t = c.event_time;
                    (InputRecord::Click(c), t)
                })
            } else {
                codec.decode::<PurchaseEvent>(&topic, &bytes).map(|p| {
                    let t = p.event_time;
                    (InputRecord::Purchase(p), t)
                })
            }
            .map_err(|e| {
                dead(
                    Reason::parse(e.reason()).unwrap_or(Reason::Decode),
                    e.to_string(),
                )
            });
        let result = decoded.and_then(|(record, t)| {
            if let Admission::TooFarAhead { partition_watermark } = wm.admit(&topic, t) {
                return Err(dead(Reason::Validation, format!("event time {t} is more than the allowed skew ahead of the partition watermark {partition_watermark}")));
            }
            wm.observe(topic.clone(), t, 0);
            let r = match record {
                InputRecord::Click(c) => planner.click(c, &mut outputs),
                InputRecord::Purchase(p) => planner.purchase(p, &mut outputs),
                InputRecord::Raw { .. } => Ok(()),
            };
            match r {
                Err(Rejected::Late(message)) => Err(dead(Reason::Late, message)),
                _ => Ok(()),
            }
        });
        if let Err(d) = result {
            *summary
                .dead_letters
                .entry(d.reason.as_str().to_owned())
                .or_default() += 1;
            let headers: BTreeMap<&str, String> = d.headers().into_iter().collect();
            let line = json!({
                "topic": topics.dead_letter, "partition": 0,
                "key": d.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "timestamp": null, "headers": headers,
                "value": { "value_hex": d.value.as_deref().map(hex::encode) },
            });
            sinks.write(&topics.dead_letter, line)?;
        }
        let now = wm.current(0);
        planner.advance(now, &mut outputs);
        emit(&mut sinks, &mut summary, cfg, &mut outputs)?;
    }
    wm.finish();
    planner.advance(wm.current(0), &mut outputs);
    emit(&mut sinks, &mut summary, cfg, &mut outputs)?;
    for f in sinks.files.values_mut() {
        f.flush()?;
    }
    summary.planner = planner.stats().clone();
    Ok(summary)
}

fn emit(
    sinks: &mut Sinks,
    summary: &mut Summary,
    cfg: &FitstreamConfig,
    outputs: &mut Vec<Output>,
) -> anyhow::Result<()> {
    for o in outputs.drain(..) {
        let (topic, key, ts, value) = match o {
            Output::BuildOrder { plant, order } => (
                cfg.topics.build_orders_topic(&plant),
                order.material_definition_id.clone(),
                order.window_end,
                serde_json::to_value(&order)?,
            ),
            Output::Abandonment(a) => (
                cfg.topics.cart_abandonment.clone(),
                a.customer_id.clone(),
                a.window_closed_at,
                serde_json::to_value(&a)?,
            ),
        };
        let partitions = cfg.topics.partitions;
        let partition = fitstream_runtime::partition::partition_for(key.as_bytes(), partitions);
        sinks.write(
            &topic,
            jsonl::line(
                &topic,
                Some(partition),
                Some(key.as_bytes()),
                Some(ts.millis()),
                value,
            ),
        )?;
        *summary.outputs.entry(topic).or_default() += 1;
    }
    Ok(())
}
