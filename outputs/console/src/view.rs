//! What the console shows, folded from fitstream's output records.
//!
//! The input is the JSON-lines form that `replay`, `demo` and `tail` write, one object per
//! record (`{"topic", "partition", "key", "timestamp", "value"}`; dead letters carry
//! `headers`). The Kafka source turns consumed records into the same lines, so one fold
//! serves a directory and a live cluster. Everything kept is bounded: per model version,
//! per plant window and a fixed number of recent records, never per record read.

use std::collections::{BTreeMap, HashMap, VecDeque};

use fitstream_contracts::topics::TopicsConfig;
use fitstream_contracts::{
    BuildOrder, CartAbandonment, RequestState, SegmentModel, SegmentProfile,
};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Model versions whose segment sizes are kept for the chart.
pub const MODEL_HISTORY: usize = 500;
/// Cart abandonments kept for the audience list and its CSV.
pub const AUDIENCE_LIMIT: usize = 20_000;
/// Windows per plant kept for the chart.
pub const WINDOW_HISTORY: usize = 2_000;
/// Latest build orders kept per plant.
pub const LATEST_ORDERS: usize = 25;

/// A segment of a model: what the segmenter says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentRow {
    /// The profile (size, features in original units, label, description).
    pub profile: SegmentProfile,
}

/// Customers who moved between the last two models: `(from, to) -> customers`, `from` `None`
/// for customers first placed by the latest model.
#[derive(Clone, Debug, Default)]
pub struct Moves {
    /// The model version the moves lead to.
    pub version: i64,
    /// Each mover's segment before the version (their first assignment's previous segment)
    /// and after it (their last assignment in the version).
    customers: HashMap<String, (Option<i32>, i32)>,
}

impl Moves {
    fn assign(&mut self, version: i64, customer: &str, previous: Option<i32>, segment: i32) {
        if version < self.version {
            // A late assignment of an older model: the moves shown are the latest model's.
            return;
        }
        if version > self.version {
            self.version = version;
            self.customers.clear();
        }
        self.customers
            .entry(customer.to_owned())
            .and_modify(|(_, to)| *to = segment)
            .or_insert((previous, segment));
    }

    /// Net moves: customers who ended where they started are not counted.
    pub fn matrix(&self) -> BTreeMap<(Option<i32>, i32), u64> {
        let mut m = BTreeMap::new();
        for &(from, to) in self.customers.values() {
            if from != Some(to) {
                *m.entry((from, to)).or_default() += 1;
            }
        }
        m
    }
}

/// The build orders of one plant.
#[derive(Clone, Debug, Default)]
pub struct PlantOrders {
    /// Released and Forecast quantity per window start (event time, ms).
    pub windows: BTreeMap<i64, (Decimal, Decimal)>,
    /// Released quantity over every order read.
    pub released: Decimal,
    /// Forecast quantity over every order read.
    pub forecast: Decimal,
    /// Released orders read.
    pub released_orders: u64,
    /// Forecast orders read.
    pub forecast_orders: u64,
    /// Cancelled orders read (their quantity counts in neither sum).
    pub cancelled_orders: u64,
    /// The latest orders, newest last.
    pub latest: VecDeque<BuildOrder>,
}

/// Dead letters by the service that wrote them and the reason.
pub type DeadLetters = BTreeMap<(String, String), u64>;

/// The console's state.
#[derive(Debug)]
pub struct View {
    topics: TopicsConfig,
    /// The latest record timestamp read: the event time the data is as of.
    pub as_of: Option<i64>,
    /// Records folded in.
    pub records: u64,
    /// Lines that are not records of a known topic, or whose value does not decode.
    pub skipped: u64,
    /// The latest segment model.
    pub model: Option<SegmentModel>,
    /// Segment profiles by model version and segment id (the last [`MODEL_HISTORY`] versions).
    pub profiles: BTreeMap<i64, BTreeMap<i32, SegmentProfile>>,
    /// The event time of each version's profiles.
    pub version_times: BTreeMap<i64, i64>,
    /// Moves into the latest model.
    pub moves: Moves,
    /// The latest cart abandonments, newest last.
    pub abandonments: VecDeque<CartAbandonment>,
    /// Cart abandonments read in all.
    pub abandonments_total: u64,
    /// Build orders by plant.
    pub plants: BTreeMap<String, PlantOrders>,
    /// Dead letters by service and reason.
    pub dead_letters: DeadLetters,
    /// Why the source stopped, if it did.
    pub problem: Option<String>,
}

/// The topics the console shows besides the plants' build orders.
fn shown(t: &TopicsConfig) -> [&String; 5] {
    [
        &t.segment_models,
        &t.segment_profiles,
        &t.segment_assignments,
        &t.cart_abandonment,
        &t.dead_letter,
    ]
}

fn decode<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

impl View {
    /// An empty view of the outputs named by `topics`.
    pub fn new(topics: TopicsConfig) -> View {
        View {
            topics,
            as_of: None,
            records: 0,
            skipped: 0,
            model: None,
            profiles: BTreeMap::new(),
            version_times: BTreeMap::new(),
            moves: Moves::default(),
            abandonments: VecDeque::new(),
            abandonments_total: 0,
            plants: BTreeMap::new(),
            dead_letters: BTreeMap::new(),
            problem: None,
        }
    }

    /// The topics the console reads (the given plants' build orders among them).
    pub fn topics(&self, plants: &[String]) -> Vec<String> {
        let mut names: Vec<String> = shown(&self.topics).into_iter().cloned().collect();
        names.extend(plants.iter().map(|p| self.topics.build_orders_topic(p)));
        names
    }

    /// Whether the console shows `topic` (a plant's build orders, or one of [`shown`]).
    pub fn wants(topics: &TopicsConfig, topic: &str) -> bool {
        shown(topics).iter().any(|t| *t == topic) || topics.plant_of(topic).is_some()
    }

    /// Folds one JSON line in. Lines of other topics (profiles, inputs) are skipped.
    pub fn ingest(&mut self, line: &Value) {
        if !self.fold(line) {
            self.skipped += 1;
            return;
        }
        self.records += 1;
        if let Some(ts) = line.get("timestamp").and_then(Value::as_i64) {
            self.as_of = Some(self.as_of.map_or(ts, |t| t.max(ts)));
        }
    }

    fn fold(&mut self, line: &Value) -> bool {
        let Some(topic) = line.get("topic").and_then(Value::as_str) else {
            return false;
        };
        let value = line.get("value").unwrap_or(&Value::Null);
        let t = &self.topics;
        if topic == t.dead_letter {
            let header = |name: &str| {
                line.get("headers")
                    .and_then(|h| h.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned()
            };
            let key = (
                header("fitstream.service"),
                header("fitstream.error.reason"),
            );
            *self.dead_letters.entry(key).or_default() += 1;
            return true;
        }
        if topic == t.segment_models {
            return match decode::<SegmentModel>(value) {
                Some(m) => {
                    if self
                        .model
                        .as_ref()
                        .is_none_or(|old| m.version >= old.version)
                    {
                        self.model = Some(m);
                    }
                    true
                }
                None => false,
            };
        }
        if topic == t.segment_profiles {
            let Some(p) = decode::<SegmentProfile>(value) else {
                return false;
            };
            if let Some(ts) = line.get("timestamp").and_then(Value::as_i64) {
                self.version_times.entry(p.model_version).or_insert(ts);
            }
            self.profiles
                .entry(p.model_version)
                .or_default()
                .insert(p.segment_id, p);
            while self.profiles.len() > MODEL_HISTORY {
                if let Some((v, _)) = self.profiles.pop_first() {
                    self.version_times.remove(&v);
                }
            }
            return true;
        }
        if topic == t.segment_assignments {
            let Some(a) = decode::<fitstream_contracts::SegmentAssignment>(value) else {
                return false;
            };
            self.moves.assign(
                a.model_version,
                &a.customer_id,
                a.previous_segment_id,
                a.segment_id,
            );
            return true;
        }
        if topic == t.cart_abandonment {
            let Some(a) = decode::<CartAbandonment>(value) else {
                return false;
            };
            self.abandonments_total += 1;
            self.abandonments.push_back(a);
            if self.abandonments.len() > AUDIENCE_LIMIT {
                self.abandonments.pop_front();
            }
            return true;
        }
        if let Some(plant) = t.plant_of(topic) {
            let Some(o) = decode::<BuildOrder>(value) else {
                return false;
            };
            let p = self.plants.entry(plant).or_default();
            let cell = p.windows.entry(o.window_start.millis()).or_default();
            match o.request_state {
                RequestState::Released => {
                    cell.0 += o.quantity;
                    p.released += o.quantity;
                    p.released_orders += 1;
                }
                RequestState::Forecast => {
                    cell.1 += o.quantity;
                    p.forecast += o.quantity;
                    p.forecast_orders += 1;
                }
                RequestState::Cancelled => p.cancelled_orders += 1,
            }
            while p.windows.len() > WINDOW_HISTORY {
                p.windows.pop_first();
            }
            p.latest.push_back(o);
            if p.latest.len() > LATEST_ORDERS {
                p.latest.pop_front();
            }
            return true;
        }
        false
    }

    /// The latest model's segments (their profiles of that version, retired ones left out),
    /// largest first.
    pub fn segments(&self) -> Vec<&SegmentProfile> {
        let Some((_, latest)) = self.profiles.last_key_value() else {
            return Vec::new();
        };
        let mut rows: Vec<_> = latest.values().filter(|p| !p.retired).collect();
        rows.sort_by(|a, b| b.size.cmp(&a.size).then(a.segment_id.cmp(&b.segment_id)));
        rows
    }

    /// A segment's label: from the latest model that has it, else its id.
    pub fn label(&self, segment: i32) -> String {
        if let Some(s) = self
            .model
            .as_ref()
            .and_then(|m| m.segments.iter().find(|s| s.segment_id == segment))
        {
            return s.label.clone();
        }
        self.profiles
            .values()
            .rev()
            .find_map(|v| v.get(&segment).map(|p| p.label.clone()))
            .unwrap_or_else(|| format!("segment {segment}"))
    }

    /// Segment sizes per model version over event time: `segment id -> [(time, size)]`.
    pub fn size_series(&self) -> BTreeMap<i32, Vec<(i64, f64)>> {
        let mut series: BTreeMap<i32, Vec<(i64, f64)>> = BTreeMap::new();
        for (version, segments) in &self.profiles {
            let Some(&t) = self.version_times.get(version) else {
                continue;
            };
            for p in segments.values().filter(|p| !p.retired) {
                series
                    .entry(p.segment_id)
                    .or_default()
                    .push((t, p.size as f64));
            }
        }
        series
    }

    /// The latest abandonments of one segment (`None`: all; `Some(None)`: unassigned
    /// customers), newest first.
    pub fn audience(&self, segment: Option<Option<i32>>) -> impl Iterator<Item = &CartAbandonment> {
        self.abandonments
            .iter()
            .rev()
            .filter(move |a| segment.is_none_or(|s| a.segment_id == s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view() -> View {
        View::new(TopicsConfig::default())
    }

    fn assignment(customer: &str, version: i64, previous: Option<i32>, segment: i32) -> Value {
        json!({"topic": "marketing.segment-assignments.v1", "timestamp": 1, "value": {
            "customer_id": customer, "segment_id": segment, "segment_label": "x",
            "model_version": version, "distance": 0.5, "previous_segment_id": previous,
            "event_time": 1}})
    }

    #[test]
    fn moves_are_net_and_of_the_latest_model_only() {
        let mut v = view();
        v.ingest(&assignment("a", 1, None, 1));
        v.ingest(&assignment("b", 1, None, 2));
        // Model 2: a moves 1 -> 2 -> 3 (net 1 -> 3), b moves 2 -> 1 -> 2 (net none), c is new.
        for line in [
            assignment("a", 2, Some(1), 2),
            assignment("b", 2, Some(2), 1),
            assignment("a", 2, Some(2), 3),
            assignment("b", 2, Some(1), 2),
            assignment("c", 2, None, 1),
            // a straggler of model 1 changes nothing
            assignment("d", 1, Some(1), 2),
        ] {
            v.ingest(&line);
        }
        let m = v.moves.matrix();
        assert_eq!(v.moves.version, 2);
        assert_eq!(m, BTreeMap::from([((Some(1), 3), 1), ((None, 1), 1)]));
        assert_eq!((v.records, v.skipped), (8, 0));
    }

    #[test]
    fn build_orders_sum_per_plant_and_window_and_unknown_lines_are_counted() {
        let mut v = view();
        let order = |state: &str, qty: &str, window: i64| {
            json!({"topic": "factory.berlin.build-orders.v1", "timestamp": window, "value": {
                "request_id": format!("pr-{window}-{state}"), "request_state": state,
                "product_production_rule_id": "p", "material_definition_id": "m",
                "quantity": qty, "unit_of_measure": "EA", "parameters": [],
                "location": {"site": "berlin", "area": "a", "line": "l"},
                "earliest_start": window, "latest_end": window, "priority": 1,
                "order_count": 1, "segment_mix": [], "window_start": window,
                "window_end": window + 900_000, "model_version": null}})
        };
        v.ingest(&order("Released", "2", 0));
        v.ingest(&order("Forecast", "0.250", 0));
        v.ingest(&order("Released", "1", 900_000));
        v.ingest(&json!({"topic": "iob.customer-profiles.v1", "value": {}}));
        v.ingest(&json!({"topic": "factory.berlin.build-orders.v1", "value": {"bad": 1}}));
        let p = &v.plants["berlin"];
        assert_eq!(
            (p.released, p.forecast),
            (Decimal::from(3), "0.250".parse().expect("dec"))
        );
        assert_eq!((p.released_orders, p.forecast_orders), (2, 1));
        assert_eq!(
            p.windows[&0],
            (Decimal::from(2), "0.250".parse().expect("dec"))
        );
        assert_eq!((v.records, v.skipped, v.as_of), (3, 2, Some(900_000)));
    }

    #[test]
    fn dead_letters_count_by_service_and_reason() {
        let mut v = view();
        let dl = |service: &str, reason: &str| {
            json!({"topic": "iob.dead-letter.v1", "timestamp": null, "headers": {
                "fitstream.service": service, "fitstream.error.reason": reason},
                "value": {"value_hex": "00"}})
        };
        v.ingest(&dl("planner", "late"));
        v.ingest(&dl("planner", "late"));
        v.ingest(&dl("profiler", "decode"));
        assert_eq!(v.dead_letters[&("planner".into(), "late".into())], 2);
        assert_eq!(v.dead_letters[&("profiler".into(), "decode".into())], 1);
        assert_eq!(v.as_of, None);
    }
}
