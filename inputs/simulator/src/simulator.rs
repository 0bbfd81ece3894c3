//! The seedable behaviour simulator: customers of latent [`Persona`]s visit a cosmetics shop
//! and produce click events and purchases, then knobs disorder, delay, duplicate and break
//! some of them.
//!
//! How a run unfolds:
//! - `customers` customers are split over the personas by `personas` weights (exact quotas,
//!   shuffled). Each gets a favourite category, a region, a price sensitivity and an activity
//!   level of its own.
//! - Each customer's sessions start as a Poisson process over the event-time span
//!   `[start, start + seconds)`, modulated by the persona's time-of-day rhythm (UTC), its
//!   arrival (new customers) and its lapse (at-risk customers). All visit rates are scaled by
//!   one factor so that the run yields about `rate * seconds` events: `rate` is events per
//!   second of event time for the whole shop, shared by all customers (the calibration is
//!   approximate: within a few percent). The default, 3 days at 1 event/s for 2,000
//!   customers, yields about 257,000 records (254,000 events, 1% duplicates, 0.1% malformed),
//!   ~130 events per customer: enough for KMeans on the profile features to recover the
//!   personas (adjusted Rand index about 0.9; with 200,000 events it drops to about 0.82, as
//!   customers with few sessions blur).
//! - A session that starts near the end of the span may run a few minutes past it.
//! - A session is a landing page view, then page views, searches and product views in random
//!   order; product views may add SKUs to the cart (one `ADD_TO_CART` per unit), carted units
//!   may be removed, a non-empty cart may reach `CHECKOUT_START` and then a `PurchaseEvent`
//!   whose lines are the cart's contents at catalogue prices. Events are seconds apart.
//! - Records leave in event-time order, then the knobs apply: every record is emitted after
//!   a random out-of-order delay (up to `out_of_order_max_ms`), a `late_fraction` of them after
//!   `late_delay_ms` to twice that, a `duplicate_fraction` of them twice (identical content, the
//!   copy a little later), and a `malformed_fraction` of them is replaced by raw bytes with one
//!   of `defects`. The behaviour does not depend on the knobs: each uses its own random stream.
//!
//! Ids: customers are `cust-00001`..; events, sessions and orders are counters tagged with
//! the seed (`ev-2a-17`), so they are unique within a run and differ between seeds. A run is
//! a pure function of its configuration: the same seed gives the same records.
//!
//! Files: `simulator/config.rs` ([`SimConfig`] and its checks), `simulator/session.rs` (a
//! customer, run-unique ids, the records of one visit), `simulator/calibration.rs` (the
//! personas' rhythm over the span and the scaling of visit rates to `rate`).

mod calibration;
mod config;
mod session;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use fitstream_contracts::Codec;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use self::calibration::{DAY_MS, events_per_session, hour_of, rhythm_integral};
pub use self::config::{ConfigError, DelayDistribution, SimConfig};
pub use self::session::CURRENCY;
use self::session::{Customer, Ids, REGIONS, session, weighted};
use crate::catalogue::Catalogue;
use crate::persona::Persona;
use crate::record::InputRecord;

/// A record with the time that orders it.
#[derive(Debug)]
struct Timed {
    at: i64,
    seq: u64,
    record: InputRecord,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Synthetic input records: an iterator of about `rate * seconds` [`InputRecord`]s, roughly
/// in event-time order, deterministic for a seed (see the module doc).
pub struct Simulator {
    cfg: SimConfig,
    catalogue: Catalogue,
    codec: Codec,
    customers: Vec<Customer>,
    begin: i64,
    end: i64,
    behaviour: ChaCha8Rng,
    knobs: ChaCha8Rng,
    ids: Ids,
    /// Next session start of each customer that will visit again.
    visits: BinaryHeap<Reverse<(i64, usize)>>,
    /// Records of sessions under way, by event time.
    generated: BinaryHeap<Reverse<Timed>>,
    /// Records with their emission time (event time plus delays), by emission time.
    outbox: BinaryHeap<Reverse<Timed>>,
    seq: u64,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Prepares a run: the catalogue, the customers and their first visits.
    pub fn new(cfg: SimConfig) -> Result<Simulator, ConfigError> {
        cfg.validate()?;
        let catalogue = Catalogue::generate(&cfg.catalogue, cfg.seed);
        let begin = cfg.start.millis();
        let span_ms = cfg.seconds as f64 * 1000.0;
        let end = begin + span_ms as i64;
        let stream = |n: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(n);
            rng
        };
        let mut behaviour = stream(1);

        // Exact quotas per persona (largest remainder), shuffled over the customer ids.
        let weights: Vec<f64> = Persona::ALL
            .iter()
            .map(|p| cfg.personas.get(p.name).copied().unwrap_or(0.0))
            .collect();
        let total: f64 = weights.iter().sum();
        let exact: Vec<f64> = weights
            .iter()
            .map(|w| w / total * cfg.customers as f64)
            .collect();
        let mut quotas: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
        let mut by_remainder: Vec<usize> = (0..quotas.len()).collect();
        by_remainder.sort_by(|a, b| {
            (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor()))
        });
        for i in by_remainder
            .into_iter()
            .cycle()
            .take(cfg.customers - quotas.iter().sum::<usize>())
        {
            quotas[i] += 1;
        }
        let mut personas: Vec<&'static Persona> = quotas
            .iter()
            .enumerate()
            .flat_map(|(i, q)| std::iter::repeat_n(&Persona::ALL[i], *q))
            .collect();
        personas.shuffle(&mut behaviour);

        let mut customers: Vec<Customer> = personas
            .into_iter()
            .enumerate()
            .map(|(i, persona)| {
                let activity: f64 =
                    (0.15 * behaviour.sample::<f64, _>(StandardNormal) - 0.011).exp();
                Customer {
                    id: format!("cust-{:05}", i + 1),
                    persona,
                    region: REGIONS[behaviour.random_range(0..REGIONS.len())],
                    favourite: weighted(&mut behaviour, &persona.category_weights),
                    price_shift: 0.05 * behaviour.sample::<f64, _>(StandardNormal),
                    visits_per_ms: persona.sessions_per_day * activity / DAY_MS,
                    mean_rhythm: persona.mean_rhythm(),
                }
            })
            .collect();

        // Scale every visit rate so that the expected number of events is rate * seconds.
        let mut calibration = stream(3);
        let expected: f64 = customers
            .iter()
            .map(|c| {
                let p = c.persona;
                let (buying, lapsed) = events_per_session(&catalogue, &mut calibration, p);
                let lapse = p.buys_until.clamp(p.arrives_at, 1.0);
                let sessions = |from: f64, to: f64| {
                    c.visits_per_ms * rhythm_integral(p, begin, span_ms, from, to)
                };
                sessions(p.arrives_at, lapse) * buying
                    + p.lapsed_visits * sessions(lapse, 1.0) * lapsed
            })
            .sum();
        let scale = cfg.rate * cfg.seconds as f64 / expected.max(f64::MIN_POSITIVE);
        for c in &mut customers {
            c.visits_per_ms *= scale;
        }

        let mut sim = Simulator {
            codec: Codec::pinned(),
            ids: Ids::new(cfg.seed),
            knobs: stream(2),
            catalogue,
            customers,
            begin,
            end,
            behaviour,
            visits: BinaryHeap::new(),
            generated: BinaryHeap::new(),
            outbox: BinaryHeap::new(),
            seq: 0,
            cfg,
        };
        for c in 0..sim.customers.len() {
            if let Some(t) = sim.next_visit(c, begin) {
                sim.visits.push(Reverse((t, c)));
            }
        }
        Ok(sim)
    }

    /// The configuration of this run.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The catalogue customers shop from.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Who is who: every customer id with the name of its persona, in customer-id order.
    /// Customers who never visit in the span are included.
    pub fn ground_truth(&self) -> Vec<(String, &'static str)> {
        self.customers
            .iter()
            .map(|c| (c.id.clone(), c.persona.name))
            .collect()
    }

    /// Writes the ground truth as CSV with the header `customer_id,persona`.
    pub fn write_truth<W: Write>(&self, mut writer: W) -> io::Result<()> {
        writeln!(writer, "customer_id,persona")?;
        for c in &self.customers {
            writeln!(writer, "{},{}", c.id, c.persona.name)?;
        }
        writer.flush()
    }

    /// The next session start of customer `c` after `after`, by thinning a Poisson process
    /// with the persona's rhythm, arrival and lapse; `None` past the end of the span.
    fn next_visit(&mut self, c: usize, after: i64) -> Option<i64> {
        let customer = &self.customers[c];
        let p = customer.persona;
        let span = (self.end - self.begin) as f64;
        let mean = customer.mean_rhythm;
        let peak = p.lapsed_visits.max(1.0);
        let max_rate = customer.visits_per_ms * peak / mean;
        if max_rate <= 0.0 || !max_rate.is_finite() {
            return None;
        }
        let mut t = (after as f64).max(self.begin as f64 + p.arrives_at * span);
        loop {
            let u: f64 = self.behaviour.random();
            t += -(1.0 - u).ln() / max_rate;
            if t >= self.end as f64 {
                return None;
            }
            let phase = (t - self.begin as f64) / span;
            let lapse = if phase >= p.buys_until {
                p.lapsed_visits
            } else {
                1.0
            };
            let accept = p.rhythm(hour_of(t as i64)) * lapse / peak;
            if self.behaviour.random::<f64>() < accept {
                return Some(t as i64);
            }
        }
    }

    /// Generates the session of the customer due next, and schedules their next visit.
    fn visit(&mut self, start: i64, c: usize) {
        let customer = &self.customers[c];
        let phase = (start - self.begin) as f64 / (self.end - self.begin) as f64;
        let buying = phase < customer.persona.buys_until;
        let (records, ended) = session(
            &self.catalogue,
            &mut self.behaviour,
            &mut self.ids,
            customer,
            start,
            buying,
        );
        for (at, record) in records {
            self.seq += 1;
            self.generated.push(Reverse(Timed {
                at,
                seq: self.seq,
                record,
            }));
        }
        if let Some(t) = self.next_visit(c, ended) {
            self.visits.push(Reverse((t, c)));
        }
    }

    /// Applies the knobs to a record leaving generation, and queues it for emission.
    fn release(&mut self, timed: Timed) {
        let Timed { at, mut record, .. } = timed;
        let (malformed, late_fraction, late_delay, duplicate_fraction) = (
            self.cfg.malformed_fraction,
            self.cfg.late_fraction,
            self.cfg.late_delay_ms as i64,
            self.cfg.duplicate_fraction,
        );
        if malformed > 0.0 && self.knobs.random_bool(malformed) {
            let defect = self.cfg.defects[self.knobs.random_range(0..self.cfg.defects.len())];
            // Encoding a simulated record cannot fail; if it ever did, the record stays good.
            if let Ok(raw) = defect.corrupt(&record, &self.codec) {
                record = raw;
            }
        }
        let late = late_fraction > 0.0 && self.knobs.random_bool(late_fraction);
        let delay = if late {
            late_delay + self.knobs.random_range(0..=late_delay)
        } else {
            self.disorder()
        };
        let duplicate = duplicate_fraction > 0.0 && self.knobs.random_bool(duplicate_fraction);
        let again = if duplicate {
            Some(self.disorder())
        } else {
            None
        };
        let key = at.saturating_add(delay);
        if let Some(extra) = again {
            self.seq += 1;
            self.outbox.push(Reverse(Timed {
                at: key,
                seq: self.seq,
                record: record.clone(),
            }));
            self.seq += 1;
            self.outbox.push(Reverse(Timed {
                at: key.saturating_add(extra),
                seq: self.seq,
                record,
            }));
        } else {
            self.seq += 1;
            self.outbox.push(Reverse(Timed {
                at: key,
                seq: self.seq,
                record,
            }));
        }
    }

    /// An out-of-order delay.
    fn disorder(&mut self) -> i64 {
        let max = self.cfg.out_of_order_max_ms as i64;
        if max == 0 {
            return 0;
        }
        match self.cfg.out_of_order {
            DelayDistribution::Uniform => self.knobs.random_range(0..=max),
            DelayDistribution::Exponential => {
                let u: f64 = self.knobs.random();
                ((-(1.0 - u).ln() * max as f64 / 4.0) as i64).min(max)
            }
        }
    }
}

impl Iterator for Simulator {
    type Item = InputRecord;

    fn next(&mut self) -> Option<InputRecord> {
        loop {
            // Nothing generated from now on has an event time before the horizon, and a
            // record's emission time is never before its event time.
            let next_generated = self.generated.peek().map(|Reverse(t)| t.at);
            let next_visit = self.visits.peek().map(|Reverse((t, _))| *t);
            let horizon = match (next_generated, next_visit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(Reverse(top)) = self.outbox.peek()
                && horizon.is_none_or(|h| top.at <= h)
            {
                return self.outbox.pop().map(|Reverse(t)| t.record);
            }
            match (next_generated, next_visit) {
                (Some(g), v) if v.is_none_or(|v| g <= v) => {
                    if let Some(Reverse(timed)) = self.generated.pop() {
                        self.release(timed);
                    }
                }
                (_, Some(_)) => {
                    if let Some(Reverse((start, c))) = self.visits.pop() {
                        self.visit(start, c);
                    }
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use fitstream_contracts::{
        ClickEvent, ClickEventType, DecodeError, EventTime, PurchaseEvent, validate,
    };
    use rust_decimal::Decimal;

    use super::*;
    use crate::defects::Defect;
    use crate::record::InputTopic;

    /// A day of 300 customers at 0.2 events/s, with every knob off.
    fn quiet(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            rate: 0.2,
            seconds: 86_400,
            customers: 300,
            out_of_order_max_ms: 0,
            late_fraction: 0.0,
            duplicate_fraction: 0.0,
            malformed_fraction: 0.0,
            ..SimConfig::default()
        }
    }

    fn run(cfg: SimConfig) -> Vec<InputRecord> {
        Simulator::new(cfg).expect("valid config").collect()
    }

    fn id_of(r: &InputRecord) -> Option<&str> {
        match r {
            InputRecord::Click(c) => Some(&c.event_id),
            InputRecord::Purchase(p) => Some(&p.order_id),
            InputRecord::Raw { .. } => None,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_records_and_another_seed_others() {
        let a = run(SimConfig {
            duplicate_fraction: 0.05,
            malformed_fraction: 0.01,
            ..quiet(7)
        });
        let b = run(SimConfig {
            duplicate_fraction: 0.05,
            malformed_fraction: 0.01,
            ..quiet(7)
        });
        assert_eq!(a, b);
        let c = run(SimConfig {
            duplicate_fraction: 0.05,
            malformed_fraction: 0.01,
            ..quiet(8)
        });
        assert_ne!(a, c);
        let ids_a: HashSet<_> = a.iter().filter_map(id_of).collect();
        assert!(
            c.iter().filter_map(id_of).all(|id| !ids_a.contains(id)),
            "ids differ between seeds"
        );
    }

    #[test]
    fn the_knobs_do_not_change_the_behaviour() {
        let plain = run(quiet(3));
        let knobbed = run(SimConfig {
            out_of_order_max_ms: 30_000,
            duplicate_fraction: 0.2,
            late_fraction: 0.05,
            ..quiet(3)
        });
        let plain: BTreeSet<_> = plain.iter().filter_map(id_of).collect();
        let knobbed: BTreeSet<_> = knobbed.iter().filter_map(id_of).collect();
        assert_eq!(plain, knobbed);
    }

    #[test]
    fn counts_are_near_rate_times_seconds() {
        for (rate, seconds, customers) in [
            (0.2, 86_400, 300),
            (1.0, 21_600, 500),
            (0.05, 3 * 86_400, 50),
        ] {
            let cfg = SimConfig {
                rate,
                seconds,
                customers,
                ..quiet(11)
            };
            let expected = rate * seconds as f64;
            let n = run(cfg).len() as f64;
            assert!(
                (n / expected - 1.0).abs() < 0.1,
                "{n} records, expected about {expected}"
            );
        }
    }

    #[test]
    fn every_persona_has_customers_and_events() {
        let sim = Simulator::new(quiet(5)).expect("valid config");
        let truth: HashMap<String, &str> = sim.ground_truth().into_iter().collect();
        assert_eq!(truth.len(), 300);
        let mut active: HashMap<&str, usize> = HashMap::new();
        let mut customers = HashSet::new();
        for r in sim {
            let Some(key) = r.key() else { continue };
            let id = String::from_utf8(key.to_vec()).expect("utf-8");
            if customers.insert(id.clone()) {
                *active.entry(truth[&id]).or_default() += 1;
            }
        }
        for p in &Persona::ALL {
            assert!(
                active.get(p.name).copied().unwrap_or(0) >= 30,
                "{}: {active:?}",
                p.name
            );
        }
    }

    #[test]
    fn persona_weights_decide_the_mix() {
        let mut personas: BTreeMap<String, f64> = BTreeMap::new();
        personas.insert("window_shopper".into(), 3.0);
        personas.insert("impulse_buyer".into(), 1.0);
        let sim = Simulator::new(SimConfig {
            personas,
            customers: 100,
            ..quiet(1)
        })
        .expect("valid config");
        let truth = sim.ground_truth();
        assert_eq!(
            truth.iter().filter(|(_, p)| *p == "window_shopper").count(),
            75
        );
        assert_eq!(
            truth.iter().filter(|(_, p)| *p == "impulse_buyer").count(),
            25
        );
    }

    #[test]
    fn well_formed_records_are_valid_and_consistent() {
        let sim = Simulator::new(quiet(9)).expect("valid config");
        let catalogue = sim.catalogue().clone();
        let prices: HashMap<String, Decimal> = catalogue
            .products()
            .iter()
            .flat_map(|p| {
                let sizes: Vec<Vec<usize>> = match p.options.as_slice() {
                    [] => vec![vec![]],
                    [(_, a)] => (0..a.len()).map(|i| vec![i]).collect(),
                    [(_, a), (_, b)] => (0..a.len())
                        .flat_map(|i| (0..b.len()).map(move |j| vec![i, j]))
                        .collect(),
                    _ => panic!("more options than the default catalogue has"),
                };
                sizes
                    .into_iter()
                    .map(|c| p.sku(&c))
                    .map(|s| (s.id, s.unit_price))
            })
            .collect();
        // Net units carted per (session, SKU), to compare with what was bought.
        let mut carted: HashMap<(String, String), i32> = HashMap::new();
        let (mut clicks, mut orders) = (0, 0);
        let mut ids = HashSet::new();
        let mut last = EventTime::MIN;
        for r in sim {
            let t = r.event_time().expect("well-formed");
            assert!(t >= last, "in event-time order without disorder");
            last = t;
            match r {
                InputRecord::Click(c) => {
                    validate::click(&c).expect("valid click");
                    assert!(ids.insert(c.event_id.clone()), "unique event ids");
                    clicks += 1;
                    if let Some(sku) = &c.sku {
                        assert_eq!(
                            c.price,
                            prices.get(sku).copied(),
                            "catalogue price of {sku}"
                        );
                        let units = carted
                            .entry((c.session_id.clone(), sku.clone()))
                            .or_default();
                        match c.event_type {
                            ClickEventType::AddToCart => *units += 1,
                            ClickEventType::RemoveFromCart => *units -= 1,
                            other => panic!("{other:?} with a SKU"),
                        }
                    }
                }
                InputRecord::Purchase(p) => {
                    validate::purchase(&p).expect("valid purchase");
                    assert!(ids.insert(p.order_id.clone()), "unique order ids");
                    orders += 1;
                    for line in &p.lines {
                        assert!(line.quantity >= 1);
                        assert_eq!(Some(&line.unit_price), prices.get(&line.sku));
                        let net = carted.remove(&(p.session_id.clone(), line.sku.clone()));
                        assert_eq!(
                            net,
                            Some(line.quantity),
                            "the order holds the cart of its session"
                        );
                    }
                    let left: i32 = carted
                        .iter()
                        .filter(|((s, _), _)| *s == p.session_id)
                        .map(|(_, n)| *n)
                        .sum();
                    assert_eq!(left, 0, "nothing left in a bought cart");
                }
                InputRecord::Raw { .. } => panic!("no malformed records asked for"),
            }
        }
        assert!(
            clicks > 10_000 && orders > 200,
            "{clicks} clicks, {orders} orders"
        );
    }

    #[test]
    fn duplicates_repeat_about_their_fraction_of_ids() {
        let records = run(SimConfig {
            duplicate_fraction: 0.1,
            out_of_order_max_ms: 5_000,
            ..quiet(4)
        });
        let mut seen = HashMap::new();
        for r in &records {
            *seen.entry(id_of(r).expect("no raw")).or_insert(0) += 1;
        }
        let repeated = seen.values().filter(|n| **n > 1).count() as f64 / seen.len() as f64;
        assert!((repeated - 0.1).abs() < 0.01, "{repeated}");
        assert!(seen.values().all(|n| *n <= 2));
        // A copy is identical to its original.
        let mut first: HashMap<&str, &InputRecord> = HashMap::new();
        for r in &records {
            let id = id_of(r).expect("no raw");
            if let Some(original) = first.insert(id, r) {
                assert_eq!(original, r);
            }
        }
    }

    #[test]
    fn malformed_records_are_rejected_by_the_real_codec_with_their_reason() {
        let cfg = SimConfig {
            malformed_fraction: 0.01,
            defects: Defect::ALL.to_vec(),
            ..quiet(6)
        };
        let records = run(cfg);
        let codec = Codec::pinned();
        let mut defects = HashMap::new();
        let raw: Vec<_> = records
            .iter()
            .filter(|r| matches!(r, InputRecord::Raw { .. }))
            .collect();
        let share = raw.len() as f64 / records.len() as f64;
        assert!((share - 0.01).abs() < 0.003, "{share}");
        for r in raw {
            let InputRecord::Raw {
                topic,
                value,
                defect,
                key,
            } = r
            else {
                unreachable!()
            };
            assert!(key.is_some(), "keyed by customer");
            let name = topic.default_name();
            let error: Option<DecodeError> = match topic {
                InputTopic::Clickstream => codec.decode::<ClickEvent>(name, value).err(),
                InputTopic::Purchases => codec.decode::<PurchaseEvent>(name, value).err(),
            };
            let error = error.unwrap_or_else(|| panic!("{defect} decoded"));
            assert_eq!(error.reason(), defect.reason(), "{defect}: {error}");
            *defects.entry(*defect).or_insert(0) += 1;
        }
        assert!(defects.len() >= 7, "most defects drawn: {defects:?}");
    }

    #[test]
    fn out_of_order_and_late_records_stay_within_their_delays() {
        let cfg = SimConfig {
            out_of_order_max_ms: 10_000,
            out_of_order: DelayDistribution::Uniform,
            late_fraction: 0.01,
            late_delay_ms: 3_600_000,
            ..quiet(2)
        };
        let records = run(cfg);
        let mut max_seen = EventTime::MIN;
        let (mut disordered, mut late) = (0, 0);
        for r in &records {
            let t = r.event_time().expect("well-formed");
            let behind = max_seen.millis().saturating_sub(t.millis());
            if behind > 10_000 {
                late += 1;
            } else if behind > 0 {
                disordered += 1;
            }
            max_seen = max_seen.max(t);
        }
        let n = records.len() as f64;
        assert!(
            disordered as f64 / n > 0.05,
            "{disordered} of {n} out of order"
        );
        let late_share = late as f64 / n;
        assert!(
            late_share > 0.007 && late_share < 0.0135,
            "{late} of {n} late"
        );
    }

    #[test]
    fn the_config_has_defaults_and_reads_times() {
        let cfg: SimConfig = serde_json::from_str("{}").expect("defaults");
        assert_eq!(cfg, SimConfig::default());
        assert_eq!(
            cfg.start,
            EventTime::parse("2026-01-05T00:00:00Z").expect("time")
        );
        let cfg: SimConfig =
            serde_json::from_str(r#"{"start": "2026-02-01T00:00:00Z", "out_of_order": "uniform"}"#)
                .expect("config");
        assert_eq!(
            cfg.start,
            EventTime::parse("2026-02-01T00:00:00Z").expect("time")
        );
        assert_eq!(cfg.out_of_order, DelayDistribution::Uniform);
        let cfg: SimConfig = serde_json::from_str(r#"{"start": 1767571200000}"#).expect("millis");
        assert_eq!(cfg.start, SimConfig::default().start);
        let text = serde_json::to_string(&SimConfig::default()).expect("serialises");
        assert_eq!(
            serde_json::from_str::<SimConfig>(&text).expect("reads back"),
            SimConfig::default()
        );
        assert!(serde_json::from_str::<SimConfig>(r#"{"speed": 2}"#).is_err());
        assert!(serde_json::from_str::<SimConfig>(r#"{"start": "monday"}"#).is_err());
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = [
            SimConfig {
                rate: 0.0,
                ..SimConfig::default()
            },
            SimConfig {
                customers: 0,
                ..SimConfig::default()
            },
            SimConfig {
                duplicate_fraction: 1.5,
                ..SimConfig::default()
            },
            SimConfig {
                personas: [("vip".to_owned(), 1.0)].into(),
                ..SimConfig::default()
            },
            SimConfig {
                personas: [("at_risk".to_owned(), 0.0)].into(),
                ..SimConfig::default()
            },
            SimConfig {
                defects: vec![],
                ..SimConfig::default()
            },
            SimConfig {
                start: EventTime(0),
                ..SimConfig::default()
            },
        ];
        for cfg in bad {
            assert!(Simulator::new(cfg.clone()).is_err(), "{cfg:?}");
        }
        let mut long = SimConfig::default();
        long.catalogue.options.insert(
            "tools".into(),
            [("engraving".to_owned(), vec!["x".repeat(60)])].into(),
        );
        assert_eq!(
            Simulator::new(long).map(|_| ()).map_err(|e| e.field).err(),
            Some("catalogue")
        );
    }

    #[test]
    fn the_truth_is_written_as_csv() {
        let sim = Simulator::new(SimConfig {
            customers: 3,
            ..quiet(1)
        })
        .expect("valid config");
        let mut out = Vec::new();
        sim.write_truth(&mut out).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "customer_id,persona");
        assert_eq!(lines.len(), 4);
        for (line, (id, persona)) in lines[1..].iter().zip(sim.ground_truth()) {
            assert_eq!(*line, format!("{id},{persona}"));
        }
    }
}
