//! Reconciliation of a replay's outputs with its input (issue "build-to-order planner"):
//!
//! - units: the distinct purchases of the input (by order id, well-formed records only)
//!   carry as many units as the Released build orders, plus those of purchases the planner
//!   sent to the dead-letter topic as `late` (distinct order ids, decoded from the dead
//!   letters' original bytes);
//! - carts: every distinct add-to-cart of the input is exactly one conversion or one
//!   abandonment, or was dead-lettered as late.
//!
//! The input side is counted from the records themselves, not from the planner's counters;
//! the output side from the JSON-lines files the replay wrote.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use fitstream_contracts::Codec;
use fitstream_contracts::records::{ClickEvent, ClickEventType, PurchaseEvent};
use fitstream_simulator::InputRecord;
use serde_json::Value;

use crate::config::FitstreamConfig;
use crate::embedded::Summary;

/// What the input holds, counted record by record.
#[derive(Clone, Debug, Default)]
pub struct InputTruth {
    /// Units per distinct order id.
    orders: HashMap<String, i64>,
    /// Distinct add-to-cart event ids.
    carts: HashSet<String>,
}

impl InputTruth {
    /// Counts one input record (deliberately malformed ones are not input truth).
    pub fn observe(&mut self, record: &InputRecord) {
        match record {
            InputRecord::Purchase(p) => {
                let units = p.lines.iter().map(|l| i64::from(l.quantity)).sum();
                self.orders.entry(p.order_id.clone()).or_insert(units);
            }
            InputRecord::Click(c) if c.event_type == ClickEventType::AddToCart => {
                self.carts.insert(c.event_id.clone());
            }
            _ => {}
        }
    }
}

/// Both sides of both identities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// Units over the distinct purchases of the input.
    pub purchased_units: i64,
    /// Units in Released build orders.
    pub released_units: i64,
    /// Units of distinct purchases dead-lettered as late.
    pub late_units: i64,
    /// Distinct add-to-carts of the input.
    pub carts: u64,
    /// Conversions.
    pub converted: u64,
    /// Abandonments (records on the abandonment topic).
    pub abandoned: u64,
    /// Distinct add-to-carts dead-lettered as late.
    pub late_carts: u64,
}

impl Reconciliation {
    /// Whether both identities hold.
    pub fn holds(&self) -> bool {
        self.purchased_units == self.released_units + self.late_units
            && self.carts == self.converted + self.abandoned + self.late_carts
    }
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = |ok: bool| if ok { "ok" } else { "MISMATCH" };
        writeln!(
            f,
            "  reconciliation: purchased units {} = released {} + late {}: {}",
            self.purchased_units,
            self.released_units,
            self.late_units,
            mark(self.purchased_units == self.released_units + self.late_units)
        )?;
        writeln!(
            f,
            "  reconciliation: carts {} = converted {} + abandoned {} + late {}: {}",
            self.carts,
            self.converted,
            self.abandoned,
            self.late_carts,
            mark(self.carts == self.converted + self.abandoned + self.late_carts)
        )
    }
}

fn lines(dir: &Path, topic: &str) -> anyhow::Result<Vec<Value>> {
    let path = dir.join(format!("{topic}.jsonl"));
    if !path.exists() {
        return Ok(Vec::new());
    }
    std::fs::read_to_string(&path)?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// Reconciles the outputs a replay wrote to `out` with the input it read.
pub fn reconcile(
    cfg: &FitstreamConfig,
    truth: &InputTruth,
    summary: &Summary,
    out: &Path,
) -> anyhow::Result<Reconciliation> {
    let codec = Codec::pinned();
    let topics = &cfg.topics;
    let mut released_units = 0i64;
    for topic in summary
        .outputs
        .keys()
        .filter(|t| topics.plant_of(t).is_some())
    {
        for line in lines(out, topic)? {
            let v = &line["value"];
            if v["request_state"] == "Released" {
                let q: f64 = v["quantity"].as_str().unwrap_or("0").parse()?;
                released_units += q.round() as i64;
            }
        }
    }
    let planner = cfg.application("planner");
    let mut late_orders: BTreeMap<String, i64> = BTreeMap::new();
    let mut late_carts: HashSet<String> = HashSet::new();
    for line in lines(out, &topics.dead_letter)? {
        let h = &line["headers"];
        if h["fitstream.service"] != planner.as_str() || h["fitstream.error.reason"] != "late" {
            continue;
        }
        let source = h["fitstream.source.topic"].as_str().unwrap_or_default();
        let bytes = hex::decode(line["value"]["value_hex"].as_str().unwrap_or_default())?;
        if source == topics.purchases {
            let p: PurchaseEvent = codec.decode(source, &bytes)?;
            let units = p.lines.iter().map(|l| i64::from(l.quantity)).sum();
            late_orders.insert(p.order_id, units);
        } else if source == topics.clickstream {
            let c: ClickEvent = codec.decode(source, &bytes)?;
            late_carts.insert(c.event_id);
        }
    }
    let abandoned = lines(out, &topics.cart_abandonment)?.len() as u64;
    Ok(Reconciliation {
        purchased_units: truth.orders.values().sum(),
        released_units,
        late_units: late_orders.values().sum(),
        carts: truth.carts.len() as u64,
        converted: summary.planner.conversions,
        abandoned,
        late_carts: late_carts.len() as u64,
    })
}
