//! The personas are recoverable: profile features computed the way the profiler defines them
//! (`fitstream_contracts::ProfileFeatures`), log1p on the heavy-tailed ones, standard scaling,
//! then linfa's KMeans with one cluster per persona, agree with the ground truth.

use std::collections::{BTreeMap, HashMap, HashSet};

use fitstream_contracts::{ClickEventType, ProfileFeatures};
use fitstream_simulator::{InputRecord, SimConfig, Simulator};
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rust_decimal::prelude::ToPrimitive;

#[derive(Default)]
struct Profile {
    first: i64,
    last: i64,
    last_purchase: Option<i64>,
    orders: f64,
    spend: f64,
    units_bought: f64,
    sessions: HashSet<String>,
    product_views: f64,
    carts: f64,
    categories: HashMap<String, f64>,
}

impl Profile {
    fn see(&mut self, t: i64) {
        if self.first == 0 || t < self.first {
            self.first = t;
        }
        self.last = self.last.max(t);
    }

    fn features(&self) -> ProfileFeatures {
        let sessions = self.sessions.len() as f64;
        let in_top = self.categories.values().copied().fold(0.0, f64::max);
        let categorised: f64 = self.categories.values().sum();
        ProfileFeatures {
            recency_days: (self.last - self.last_purchase.unwrap_or(self.first)) as f64
                / 86_400_000.0,
            frequency: self.orders,
            monetary: self.spend,
            avg_order_value: if self.orders > 0.0 {
                self.spend / self.orders
            } else {
                0.0
            },
            sessions,
            product_views: self.product_views,
            carts: self.carts,
            cart_abandonment_rate: if self.carts > 0.0 {
                (1.0 - self.units_bought / self.carts).clamp(0.0, 1.0)
            } else {
                0.0
            },
            conversion_rate: if sessions > 0.0 {
                (self.orders / sessions).min(1.0)
            } else {
                0.0
            },
            category_affinity: if categorised > 0.0 {
                in_top / categorised
            } else {
                0.0
            },
        }
    }
}

/// Profiles of every customer with at least one event, deduplicated by event and order id.
fn profiles(records: impl Iterator<Item = InputRecord>) -> BTreeMap<String, Profile> {
    let mut seen = HashSet::new();
    let mut profiles: BTreeMap<String, Profile> = BTreeMap::new();
    for record in records {
        match record {
            InputRecord::Click(c) => {
                if !seen.insert(c.event_id.clone()) {
                    continue;
                }
                let p = profiles.entry(c.customer_id.clone()).or_default();
                p.see(c.event_time.millis());
                p.sessions.insert(c.session_id.clone());
                match c.event_type {
                    ClickEventType::ProductView => p.product_views += 1.0,
                    ClickEventType::AddToCart => p.carts += 1.0,
                    _ => {}
                }
                if let Some(cat) = c.category {
                    *p.categories.entry(cat).or_default() += 1.0;
                }
            }
            InputRecord::Purchase(o) => {
                if !seen.insert(o.order_id.clone()) {
                    continue;
                }
                let p = profiles.entry(o.customer_id.clone()).or_default();
                let t = o.event_time.millis();
                p.see(t);
                p.sessions.insert(o.session_id.clone());
                p.last_purchase = Some(p.last_purchase.map_or(t, |l| l.max(t)));
                p.orders += 1.0;
                for line in &o.lines {
                    p.units_bought += f64::from(line.quantity);
                    p.spend += (line.unit_price * rust_decimal::Decimal::from(line.quantity))
                        .to_f64()
                        .unwrap_or(0.0);
                }
            }
            InputRecord::Raw { .. } => {}
        }
    }
    profiles
}

/// Adjusted Rand index of two labelings.
fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    let mut table: HashMap<(usize, usize), f64> = HashMap::new();
    let mut rows: HashMap<usize, f64> = HashMap::new();
    let mut cols: HashMap<usize, f64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *table.entry((*x, *y)).or_default() += 1.0;
        *rows.entry(*x).or_default() += 1.0;
        *cols.entry(*y).or_default() += 1.0;
    }
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let index: f64 = table.values().map(|n| pairs(*n)).sum();
    let sum_rows: f64 = rows.values().map(|n| pairs(*n)).sum();
    let sum_cols: f64 = cols.values().map(|n| pairs(*n)).sum();
    let expected = sum_rows * sum_cols / pairs(a.len() as f64);
    let max = (sum_rows + sum_cols) / 2.0;
    (index - expected) / (max - expected)
}

/// Which features are heavy-tailed (log1p before scaling).
const LOG1P: [bool; 10] = [
    true, true, true, true, true, true, true, false, false, false,
];

#[test]
fn kmeans_recovers_the_personas_at_default_settings() {
    let sim = Simulator::new(SimConfig::default()).expect("valid config");
    let truth: HashMap<String, &str> = sim.ground_truth().into_iter().collect();
    let mut counts = [0_usize; 3];
    let profiles = profiles(sim.inspect(|r| {
        counts[match r {
            InputRecord::Click(_) => 0,
            InputRecord::Purchase(_) => 1,
            InputRecord::Raw { .. } => 2,
        }] += 1
    }));
    eprintln!(
        "records: {} clicks, {} purchases, {} raw",
        counts[0], counts[1], counts[2]
    );

    let names: Vec<&str> = fitstream_simulator::Persona::ALL
        .iter()
        .map(|p| p.name)
        .collect();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut by_persona: BTreeMap<&str, (f64, [f64; 10])> = BTreeMap::new();
    for (id, profile) in &profiles {
        let persona = truth[id.as_str()];
        let f = profile.features().to_vec();
        let entry = by_persona.entry(persona).or_insert((0.0, [0.0; 10]));
        entry.0 += 1.0;
        for (sum, x) in entry.1.iter_mut().zip(f) {
            *sum += x;
        }
        rows.extend(
            f.iter()
                .zip(LOG1P)
                .map(|(x, log)| if log { x.ln_1p() } else { *x }),
        );
        labels.push(
            names
                .iter()
                .position(|n| *n == persona)
                .expect("known persona"),
        );
    }
    eprintln!(
        "{} customers with events; mean features per persona:",
        profiles.len()
    );
    eprintln!(
        "{:>20} {:>5} {}",
        "persona",
        "n",
        ProfileFeatures::NAMES
            .map(|n| format!("{n:>8.8}"))
            .join(" ")
    );
    for (persona, (n, sums)) in &by_persona {
        eprintln!(
            "{persona:>20} {n:>5} {}",
            sums.map(|s| format!("{:>8.2}", s / n)).join(" ")
        );
    }

    let mut x = Array2::from_shape_vec((labels.len(), 10), rows).expect("shape");
    for mut column in x.columns_mut() {
        let mean = column.mean().unwrap_or(0.0);
        let std = column.std(0.0);
        column.mapv_inplace(|v| if std > 0.0 { (v - mean) / std } else { 0.0 });
    }
    let data = DatasetBase::from(x.clone());
    let model = KMeans::params(names.len())
        .n_runs(10)
        .fit(&data)
        .expect("fits");
    let clusters = model.predict(&x);
    let ari = adjusted_rand_index(&labels, clusters.as_slice().expect("contiguous"));
    eprintln!("adjusted Rand index {ari:.3}; customers per (persona, cluster):");
    for (i, name) in names.iter().enumerate() {
        let mut counts = vec![0; names.len()];
        for (l, c) in labels.iter().zip(clusters.iter()) {
            if *l == i {
                counts[*c] += 1;
            }
        }
        eprintln!("{name:>20} {counts:?}");
    }
    assert_eq!(
        by_persona.len(),
        names.len(),
        "every persona has customers with events"
    );
    assert!(ari >= 0.8, "adjusted Rand index {ari:.3} < 0.8");
}
