//! Seeded synthetic customers drawn from known personas, for tests and benchmarks.
//!
//! Each [`Persona`] is a typical customer in original units. A customer of a persona is drawn
//! around it: counts and amounts are log-normal around the persona's value (`log1p(x)` plus
//! normal noise of standard deviation `0.15 × spread`), rates are normal (standard deviation
//! `0.04 × spread`) clamped to [0, 1]. With `spread = 1` the personas are well separated blobs
//! in the model's scaled space; larger spreads make them overlap.
//!
//! The simulator service has the realistic event-level generator; this one works directly at
//! the level of profile features, which is what the segment model sees.

use fitstream_contracts::ProfileFeatures;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::transform::{FEATURE_COUNT, FeatureVector, LOG1P_FEATURES};

/// A kind of customer, with its typical feature values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Persona {
    /// Frequent, big baskets, recent.
    LoyalHighSpender,
    /// Frequent, small baskets.
    BargainHunter,
    /// Many product views, no orders.
    WindowShopper,
    /// Many carts, rarely buys.
    CartAbandoner,
    /// Bought several times, long ago.
    AtRisk,
    /// A couple of sessions, one small order, very recent.
    NewCustomer,
}

impl Persona {
    /// All personas, in a fixed order (the blob id of a persona is its index here).
    pub const ALL: [Persona; 6] = [
        Persona::LoyalHighSpender,
        Persona::BargainHunter,
        Persona::WindowShopper,
        Persona::CartAbandoner,
        Persona::AtRisk,
        Persona::NewCustomer,
    ];

    /// Typical features, in [`ProfileFeatures::NAMES`] order: recency days, orders, spend,
    /// average order value, sessions, product views, carts, cart abandonment, conversion,
    /// category affinity.
    pub fn typical(self) -> FeatureVector {
        match self {
            Persona::LoyalHighSpender => {
                [4.0, 14.0, 2800.0, 200.0, 60.0, 300.0, 30.0, 0.2, 0.23, 0.4]
            }
            Persona::BargainHunter => [8.0, 9.0, 270.0, 30.0, 40.0, 160.0, 20.0, 0.3, 0.22, 0.5],
            Persona::WindowShopper => [20.0, 0.0, 0.0, 0.0, 25.0, 420.0, 1.0, 0.5, 0.0, 0.3],
            Persona::CartAbandoner => [25.0, 1.0, 150.0, 150.0, 15.0, 80.0, 25.0, 0.95, 0.07, 0.6],
            Persona::AtRisk => [210.0, 4.0, 600.0, 150.0, 12.0, 50.0, 6.0, 0.3, 0.33, 0.5],
            Persona::NewCustomer => [1.0, 1.0, 60.0, 60.0, 2.0, 8.0, 1.0, 0.1, 0.5, 0.9],
        }
    }

    /// Categories this persona's customers buy and browse, most typical first.
    pub fn categories(self) -> [&'static str; 3] {
        match self {
            Persona::LoyalHighSpender => ["bikes.road", "components.wheels", "apparel.jerseys"],
            Persona::BargainHunter => ["accessories.bottles", "apparel.socks", "components.tubes"],
            Persona::WindowShopper => ["bikes.gravel", "bikes.road", "bikes.electric"],
            Persona::CartAbandoner => ["bikes.electric", "accessories.locks", "components.lights"],
            Persona::AtRisk => ["bikes.mountain", "components.suspension", "apparel.gloves"],
            Persona::NewCustomer => [
                "accessories.helmets",
                "accessories.lights",
                "apparel.jerseys",
            ],
        }
    }

    /// A customer of this persona.
    pub fn draw(self, rng: &mut impl Rng, spread: f64) -> ProfileFeatures {
        let typical = self.typical();
        let mut x = [0.0; FEATURE_COUNT];
        for (f, name) in ProfileFeatures::NAMES.iter().enumerate() {
            x[f] = if LOG1P_FEATURES.contains(name) {
                let log = typical[f].ln_1p() + 0.15 * spread * standard_normal(rng);
                log.exp_m1().max(0.0)
            } else {
                (typical[f] + 0.04 * spread * standard_normal(rng)).clamp(0.0, 1.0)
            };
        }
        ProfileFeatures::from_slice(&x)
    }
}

/// One synthetic customer.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticCustomer {
    /// Customer id, `c<number>`.
    pub customer_id: String,
    /// Features.
    pub features: ProfileFeatures,
    /// Top categories.
    pub top_categories: Vec<String>,
    /// Index of the persona in [`Persona::ALL`] (the true blob id).
    pub persona: usize,
}

/// `n` customers, personas in turn (customer `i` has persona `i % 6`), reproducible by `seed`.
pub fn population(n: usize, seed: u64, spread: f64) -> Vec<SyntheticCustomer> {
    population_of(&Persona::ALL, n, seed, spread)
}

/// `n` customers of the given personas in turn, reproducible by `seed`. `persona` in the result
/// is the index in [`Persona::ALL`].
pub fn population_of(
    personas: &[Persona],
    n: usize,
    seed: u64,
    spread: f64,
) -> Vec<SyntheticCustomer> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if personas.is_empty() {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let persona = personas[i % personas.len()];
            let mut cats = persona.categories().map(str::to_owned).to_vec();
            // Most customers have the persona's main category first; some swap the first two.
            if rng.random_bool(0.3) {
                cats.swap(0, 1);
            }
            SyntheticCustomer {
                customer_id: format!("c{i}"),
                features: persona.draw(&mut rng, spread),
                top_categories: cats,
                persona: Persona::ALL.iter().position(|p| *p == persona).unwrap_or(0),
            }
        })
        .collect()
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
