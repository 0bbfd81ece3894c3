//! Stage `windows` (partitioned by plant and SKU): released and forecast demand in build
//! windows, conversion rates, and the build orders emitted when a window closes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fitstream_contracts::EventTime;
use fitstream_contracts::records::*;
use fitstream_runtime::state::{Keyed, Store, Value};
use fitstream_runtime::window::{Window, WindowedAggregate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{BuildKey, DemandEvent, Output, PlannerConfig, PlannerCounters, Segment, request_id};
use crate::routing::Routing;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Demand {
    units: i64,
    orders: BTreeSet<String>,
    mix: BTreeMap<Segment, i64>,
    /// Carts not converted (yet): cart id -> (segment, category).
    open_carts: BTreeMap<String, (Segment, Option<String>)>,
    /// The newest segment-model version behind the segments of this demand.
    model_version: Option<i64>,
}

/// The clock of a `windows` stage: the watermark it has seen, and the arrival numbering of
/// its pending outcomes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Clock {
    seq: u64,
    watermark: EventTime,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            seq: 0,
            watermark: EventTime::MIN,
        }
    }
}

/// Conversions and abandonments counted per (segment label, category).
type Rates = BTreeMap<(String, String), (u64, u64)>;

/// The `windows` stage of one (plant, SKU) partition. Its state is in four stores, each
/// written per entry that changed: the open windows' demand per (window, key), the outcomes
/// not yet counted, the conversion rates, and the clock.
pub struct WindowStage {
    config: PlannerConfig,
    routing: Arc<Routing>,
    counters: Arc<PlannerCounters>,
    demand: WindowedAggregate<BuildKey, Demand>,
    pending_outcomes: Keyed<(EventTime, u64), (String, String, bool)>,
    rates: Value<Rates>,
    clock: Value<Clock>,
}

impl WindowStage {
    /// Empty state.
    pub fn new(
        config: PlannerConfig,
        routing: Arc<Routing>,
        counters: Arc<PlannerCounters>,
    ) -> WindowStage {
        WindowStage {
            demand: WindowedAggregate::new(config.build_window.clone(), config.build_grace_ms),
            pending_outcomes: Keyed::default(),
            rates: Value::default(),
            clock: Value::default(),
            config,
            routing,
            counters,
        }
    }

    /// Its stores.
    pub fn stores(&mut self) -> Vec<(&'static str, &mut dyn Store)> {
        vec![
            ("demand", &mut self.demand),
            ("outcomes", &mut self.pending_outcomes),
            ("rates", &mut self.rates),
            ("clock", &mut self.clock),
        ]
    }

    /// Open aggregates, pending outcomes and rates.
    pub fn len(&self) -> usize {
        self.demand.len() + self.pending_outcomes.len() + self.rates.len()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes of state: the open windows' demand as last written to the
    /// changelog, and the pending outcomes and rates by their layout with about 48 bytes of
    /// strings each.
    pub fn state_bytes(&self) -> usize {
        self.demand.written_bytes()
            + (self.pending_outcomes.len() + self.rates.len())
                * (size_of::<((EventTime, u64), (String, String, bool))>() + 48)
    }

    fn window_of(&self, t: EventTime) -> Option<Window> {
        self.config.build_window.windows(t).first().copied()
    }

    /// The watermark this stage has seen.
    pub fn watermark(&self) -> EventTime {
        self.clock.watermark
    }

    /// One demand event. Returns false when it arrived after its window closed.
    pub fn demand(&mut self, event: DemandEvent) -> bool {
        let wm = self.clock.watermark;
        match event {
            DemandEvent::Cart {
                cart_id,
                t,
                key,
                segment,
                model_version,
                category,
            } => self
                .demand
                .add(&key, t, wm, Demand::default, |d| {
                    d.open_carts
                        .insert(cart_id.clone(), (segment.clone(), category.clone()));
                    d.model_version = d.model_version.max(model_version);
                })
                .is_ok(),
            DemandEvent::Converted {
                cart_id,
                t,
                key,
                purchase_t,
            } => {
                // Event-time rule: only a purchase before the window's close threshold takes
                // the cart out of its forecast. (Such a purchase always arrives before the
                // close; a later one may or may not, depending on how upstream tasks' markers
                // interleave, so it must not count.)
                let grace = self.config.build_grace_ms;
                if let Some(w) = self.window_of(t)
                    && purchase_t < w.end.plus(grace)
                    && let Some(d) = self.demand.get_mut(w, &key)
                {
                    d.open_carts.remove(&cart_id);
                }
                true
            }
            DemandEvent::Released {
                order_id,
                t,
                key,
                units,
                segment,
                model_version,
            } => self
                .demand
                .add(&key, t, wm, Demand::default, |d| {
                    d.units += units;
                    d.orders.insert(order_id.clone());
                    *d.mix.entry(segment.clone()).or_default() += units;
                    d.model_version = d.model_version.max(model_version);
                })
                .is_ok(),
            DemandEvent::Outcome {
                closed_at,
                segment,
                category,
                converted,
            } => {
                self.clock.seq += 1;
                self.pending_outcomes
                    .insert((closed_at, self.clock.seq), (segment, category, converted));
                true
            }
        }
    }

    /// The conversion rate of a (segment, category), smoothed by the prior.
    pub fn conversion_rate(&self, segment_label: &str, category: Option<&str>) -> f64 {
        let (c, a) = self
            .rates
            .get(&(segment_label.to_owned(), category.unwrap_or("").to_owned()))
            .copied()
            .unwrap_or((0, 0));
        (c as f64 + self.config.prior_alpha)
            / ((c + a) as f64 + self.config.prior_alpha + self.config.prior_beta)
    }

    /// The watermark moved: emits every closed window.
    pub fn advance(&mut self, watermark: EventTime, out: &mut Vec<Output>) {
        if watermark <= self.clock.watermark {
            return;
        }
        self.clock.watermark = watermark;
        let closed = self.demand.close(watermark);
        for (window, key, demand) in closed {
            // Learn from outcomes known for certain at this window's close.
            let threshold = window.end.plus(self.config.build_grace_ms);
            self.fold_outcomes(threshold);
            if let Some(order) = self.build_order(window, &key, &demand) {
                if key.state == RequestState::Released {
                    self.counters
                        .released_units
                        .fetch_add(demand.units, Ordering::Relaxed);
                }
                self.counters.build_orders.fetch_add(1, Ordering::Relaxed);
                out.push(Output::BuildOrder {
                    plant: key.plant.clone(),
                    order,
                });
            }
        }
    }

    /// Counts pending outcomes that closed before `threshold` into the rates.
    fn fold_outcomes(&mut self, threshold: EventTime) {
        while let Some((&(t, _), _)) = self.pending_outcomes.first_key_value() {
            if t >= threshold {
                break;
            }
            let Some((_, (segment, category, converted))) = self.pending_outcomes.pop_first()
            else {
                break;
            };
            let r = self.rates.entry((segment, category)).or_default();
            if converted {
                r.0 += 1;
            } else {
                r.1 += 1;
            }
        }
    }

    fn build_order(&self, window: Window, key: &BuildKey, d: &Demand) -> Option<BuildOrder> {
        let (quantity, count, mix) = match key.state {
            RequestState::Released if d.units > 0 => (
                Decimal::from(d.units),
                d.orders.len(),
                d.mix
                    .iter()
                    .map(|(s, u)| (s.clone(), Decimal::from(*u)))
                    .collect::<BTreeMap<_, _>>(),
            ),
            RequestState::Forecast if !d.open_carts.is_empty() => {
                let mut mix: BTreeMap<Segment, Decimal> = BTreeMap::new();
                for (seg, category) in d.open_carts.values() {
                    let rate =
                        Decimal::from_f64_retain(self.conversion_rate(&seg.1, category.as_deref()))
                            .unwrap_or_default()
                            .round_dp(3);
                    *mix.entry(seg.clone()).or_default() += rate;
                }
                (mix.values().copied().sum(), d.open_carts.len(), mix)
            }
            _ => return None,
        };
        let plant = self.routing.plants.get(&key.plant);
        let lead_ms = plant.map(|p| p.lead_time_hours).unwrap_or(24) * 3_600_000;
        let base = match key.state {
            RequestState::Released => self.config.released_priority,
            _ => self.config.forecast_priority,
        };
        let bonus = quantity
            .ceil()
            .to_string()
            .parse::<i32>()
            .unwrap_or(0)
            .clamp(0, 100);
        Some(BuildOrder {
            request_id: request_id(key, window),
            request_state: key.state,
            product_production_rule_id: key.product_id.clone(),
            material_definition_id: key.sku.clone(),
            quantity: quantity.round_dp(3),
            unit_of_measure: "EA".into(),
            parameters: key
                .options
                .iter()
                .map(|(id, value)| ProductionParameter {
                    id: id.clone(),
                    value: value.clone(),
                })
                .collect(),
            location: Location {
                site: key.plant.clone(),
                area: plant.map(|p| p.area.clone()).unwrap_or_default(),
                line: plant.map(|p| p.line.clone()).unwrap_or_default(),
            },
            earliest_start: window.end,
            latest_end: window.end.plus(lead_ms),
            priority: base + bonus,
            order_count: count as i32,
            segment_mix: mix
                .into_iter()
                .map(|((segment_id, segment_label), quantity)| SegmentShare {
                    segment_id,
                    segment_label,
                    quantity: quantity.round_dp(3),
                })
                .collect(),
            window_start: window.start,
            window_end: window.end,
            model_version: d.model_version,
        })
    }
}
