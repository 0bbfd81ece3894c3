//! Reconciliation of a replay's outputs with its input (issue "build-to-order planner"):
//!
//! - units: the distinct purchases of the input (by order id, well-formed records only)
//!   carry as many units as the Released build orders, plus those of purchases the planner
//!   sent to the dead-letter topic, by reason (`late`, `validation`, ...; distinct order ids,
//!   decoded from the dead letters' original bytes);
//! - carts: every distinct add-to-cart of the input is exactly one conversion or one
//!   abandonment, or was dead-lettered (by reason).
//!
//! A replay succeeds when every row is accounted for: a dead letter is an outcome, not a
//! failure.
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
///
/// Ids are remembered as 128-bit digests (16 bytes each instead of the string): this memory
/// grows with the distinct orders and carts of the whole input, the one part of a replay
/// that does, and two distinct ids of one input share a digest with a probability of about
/// n^2 / 2^129 (below 10^-26 for a billion ids).
#[derive(Clone, Debug, Default)]
pub struct InputTruth {
    /// Units per distinct order id.
    orders: HashMap<u128, i64>,
    /// Distinct add-to-cart event ids.
    carts: HashSet<u128>,
}

/// The digest an id is remembered by: the first 128 bits of its SHA-256.
fn digest(id: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_be_bytes(first)
}

impl InputTruth {
    /// Counts one input record (deliberately malformed ones are not input truth).
    pub fn observe(&mut self, record: &InputRecord) {
        match record {
            InputRecord::Purchase(p) => {
                let units = p.lines.iter().map(|l| i64::from(l.quantity)).sum();
                self.orders.entry(digest(&p.order_id)).or_insert(units);
            }
            InputRecord::Click(c) if c.event_type == ClickEventType::AddToCart => {
                self.carts.insert(digest(&c.event_id));
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
    /// Units of distinct purchases dead-lettered, by reason.
    pub dead_units: BTreeMap<String, i64>,
    /// Distinct add-to-carts of the input.
    pub carts: u64,
    /// Conversions.
    pub converted: u64,
    /// Abandonments (records on the abandonment topic).
    pub abandoned: u64,
    /// Distinct add-to-carts dead-lettered, by reason.
    pub dead_carts: BTreeMap<String, u64>,
}

impl Reconciliation {
    /// Whether both identities hold.
    pub fn holds(&self) -> bool {
        self.units_hold() && self.carts_hold()
    }

    fn units_hold(&self) -> bool {
        self.purchased_units == self.released_units + self.dead_units.values().sum::<i64>()
    }

    fn carts_hold(&self) -> bool {
        self.carts == self.converted + self.abandoned + self.dead_carts.values().sum::<u64>()
    }
}

/// ` + <reason> <n>` for each reason, or ` + late 0` when there is none.
fn by_reason<N: fmt::Display + Default>(m: &BTreeMap<String, N>) -> String {
    if m.is_empty() {
        return format!(" + late {}", N::default());
    }
    m.iter().map(|(r, n)| format!(" + {r} {n}")).collect()
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = |ok: bool| if ok { "ok" } else { "MISMATCH" };
        writeln!(
            f,
            "  reconciliation: purchased units {} = released {}{}: {}",
            self.purchased_units,
            self.released_units,
            by_reason(&self.dead_units),
            mark(self.units_hold())
        )?;
        writeln!(
            f,
            "  reconciliation: carts {} = converted {} + abandoned {}{}: {}",
            self.carts,
            self.converted,
            self.abandoned,
            by_reason(&self.dead_carts),
            mark(self.carts_hold())
        )
    }
}

/// Calls `each` with every line of `dir/<topic>.jsonl` (none when the file is missing), one
/// at a time: an output file can be larger than memory (a 10M-row replay writes gigabytes).
fn each_line(
    dir: &Path,
    topic: &str,
    mut each: impl FnMut(Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    let path = dir.join(format!("{topic}.jsonl"));
    if !path.exists() {
        return Ok(());
    }
    let file = std::io::BufReader::new(std::fs::File::open(&path)?);
    for line in file.lines() {
        each(serde_json::from_str(&line?)?)?;
    }
    Ok(())
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
        each_line(out, topic, |line| {
            let v = &line["value"];
            if v["request_state"] == "Released" {
                let q: f64 = v["quantity"].as_str().unwrap_or("0").parse()?;
                released_units += q.round() as i64;
            }
            Ok(())
        })?;
    }
    let planner = cfg.application("planner");
    // Per reason: distinct order ids with their units, distinct cart event ids. Only records
    // the input truth counted (well-formed: their bytes decode) can be matched.
    let mut dead_orders: BTreeMap<String, HashMap<u128, i64>> = BTreeMap::new();
    let mut dead_carts: BTreeMap<String, HashSet<u128>> = BTreeMap::new();
    each_line(out, &topics.dead_letter, |line| {
        let h = &line["headers"];
        if h["fitstream.service"] != planner.as_str() {
            return Ok(());
        }
        let reason = h["fitstream.error.reason"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let source = h["fitstream.source.topic"].as_str().unwrap_or_default();
        let bytes = hex::decode(line["value"]["value_hex"].as_str().unwrap_or_default())?;
        if source == topics.purchases {
            let Ok(p) = codec.decode_unchecked::<PurchaseEvent>(source, &bytes) else {
                return Ok(());
            };
            let id = digest(&p.order_id);
            if truth.orders.contains_key(&id) {
                let units = p.lines.iter().map(|l| i64::from(l.quantity)).sum();
                dead_orders.entry(reason).or_default().insert(id, units);
            }
        } else if source == topics.clickstream {
            let Ok(c) = codec.decode_unchecked::<ClickEvent>(source, &bytes) else {
                return Ok(());
            };
            let id = digest(&c.event_id);
            if truth.carts.contains(&id) {
                dead_carts.entry(reason).or_default().insert(id);
            }
        }
        Ok(())
    })?;
    let mut abandoned = 0u64;
    each_line(out, &topics.cart_abandonment, |_| {
        abandoned += 1;
        Ok(())
    })?;
    Ok(Reconciliation {
        purchased_units: truth.orders.values().sum(),
        released_units,
        dead_units: dead_orders
            .into_iter()
            .map(|(r, o)| (r, o.values().sum()))
            .collect(),
        carts: truth.carts.len() as u64,
        converted: summary.planner.conversions,
        abandoned,
        dead_carts: dead_carts
            .into_iter()
            .map(|(r, c)| (r, c.len() as u64))
            .collect(),
    })
}
