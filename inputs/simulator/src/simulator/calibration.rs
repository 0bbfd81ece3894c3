//! Visit rates: the personas' time-of-day rhythm over the span, and the mean events per
//! session, from which the simulator scales every customer's visits to the configured rate.

use rand_chacha::ChaCha8Rng;

use super::session::{Customer, Ids, REGIONS, session};
use crate::catalogue::Catalogue;
use crate::persona::Persona;

pub(super) const DAY_MS: f64 = 86_400_000.0;

/// Hour of day (UTC) of an instant, with fractions.
pub(super) fn hour_of(ms: i64) -> f64 {
    ms.rem_euclid(DAY_MS as i64) as f64 / 3_600_000.0
}

/// The integral, in milliseconds, of the persona's normalised rhythm over the fractions
/// `[from, to)` of the span: expected sessions per unit of `visits_per_ms`.
pub(super) fn rhythm_integral(p: &Persona, begin: i64, span_ms: f64, from: f64, to: f64) -> f64 {
    if to <= from {
        return 0.0;
    }
    let step = 300_000.0; // five minutes
    let (a, b) = (begin as f64 + from * span_ms, begin as f64 + to * span_ms);
    let steps = ((b - a) / step).ceil().max(1.0) as usize;
    let width = (b - a) / steps as f64;
    let mean = p.mean_rhythm();
    (0..steps)
        .map(|i| p.rhythm(hour_of((a + (i as f64 + 0.5) * width) as i64)) / mean * width)
        .sum()
}

/// Mean events of a persona's sessions while buying and after lapsing, estimated by
/// simulating sessions with their own random stream.
pub(super) fn events_per_session(
    catalogue: &Catalogue,
    rng: &mut ChaCha8Rng,
    p: &'static Persona,
) -> (f64, f64) {
    const SAMPLES: usize = 200;
    let customer = Customer {
        id: "calibration".into(),
        persona: p,
        region: REGIONS[0],
        favourite: 0,
        price_shift: 0.0,
        visits_per_ms: 0.0,
        mean_rhythm: p.mean_rhythm(),
    };
    let mut ids = Ids::new(0);
    let mut mean = |buying: bool| {
        let n: usize = (0..SAMPLES)
            .map(|_| {
                session(catalogue, rng, &mut ids, &customer, 0, buying)
                    .0
                    .len()
            })
            .sum();
        n as f64 / SAMPLES as f64
    };
    (mean(true), mean(false))
}
