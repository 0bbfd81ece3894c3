//! Labels that marketing understands, derived from a segment's centroid by fixed rules.
//!
//! Inputs per segment: the centroid in scaled space, where each value is a z-score relative to
//! the fitted sample (after `log1p` on the heavy-tailed features), and the same centroid in
//! original units ([`Scaler::inverse_transform`]). The first rule that holds gives the label:
//!
//! | # | label | rule |
//! | - | ----- | ---- |
//! | 1 | `at risk` | z(recency_days) ≥ 0.75 and orders ≥ 1: bought before, long ago |
//! | 2 | `loyal high spenders` | z(frequency) ≥ 0.5 and z(monetary) ≥ 0.5 |
//! | 3 | `cart abandoners` | z(cart_abandonment_rate) ≥ 0.5 and z(carts) ≥ 0: they cart, then leave |
//! | 4 | `window shoppers` | z(product_views) ≥ 0.5 and (orders < 1 or z(conversion_rate) ≤ -0.5) |
//! | 5 | `new customers` | z(sessions) ≤ -0.5 and z(recency_days) ≤ 0: little history, recent |
//! | 6 | `bargain hunters` | orders ≥ 1 and average order value ≤ half the buyers' median |
//! | 7 | `regulars` | otherwise |
//!
//! "orders" and "average order value" are the centroid's values in original units. The
//! buyers' median is the median average order value of the sample's customers with at least
//! one order ([`LabelContext`]): a z-score would not do for order value, because customers
//! who never ordered have an order value of 0 and drag the population mean down. "At risk"
//! comes first because a lapsed good customer is worth a win-back campaign whatever else they
//! did; "new customers" come before "bargain hunters" because a first small order says little
//! about bargain hunting.
//!
//! Labels are unique within a model: segments are labelled in id order, and a label already
//! taken gets a suffix: `window shoppers 2`, `window shoppers 3`, ... Labels are derived anew at
//! every fit, so a segment whose centroid drifts across a threshold changes its label but keeps
//! its id.

use fitstream_contracts::ProfileFeatures;

use crate::transform::{FeatureVector, Scaler};

/// z-score at or above which a feature counts as high.
const HIGH: f64 = 0.5;
/// z-score at or below which a feature counts as low.
const LOW: f64 = -0.5;
/// Recency must be this many standard deviations above the mean for "at risk".
const LAPSED: f64 = 0.75;

/// Index of a feature in [`ProfileFeatures::NAMES`] order.
mod ix {
    pub const RECENCY: usize = 0;
    pub const FREQUENCY: usize = 1;
    pub const MONETARY: usize = 2;
    pub const SESSIONS: usize = 4;
    pub const VIEWS: usize = 5;
    pub const CARTS: usize = 6;
    pub const ABANDONMENT: usize = 7;
    pub const CONVERSION: usize = 8;
}

/// What the label rules compare a segment with, besides the z-scores.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LabelContext {
    /// Median average order value of the customers with at least one order (0 when none).
    pub buyer_median_aov: f64,
}

impl LabelContext {
    /// Computes the context from the sample's features (original units).
    pub fn from_sample<'a, I>(rows: I) -> LabelContext
    where
        I: IntoIterator<Item = &'a ProfileFeatures>,
    {
        let mut aov: Vec<f64> = rows
            .into_iter()
            .filter(|f| f.frequency >= 1.0 && f.avg_order_value.is_finite())
            .map(|f| f.avg_order_value)
            .collect();
        aov.sort_by(f64::total_cmp);
        let buyer_median_aov = match aov.len() {
            0 => 0.0,
            n if n % 2 == 1 => aov[n / 2],
            n => 0.5 * (aov[n / 2 - 1] + aov[n / 2]),
        };
        LabelContext { buyer_median_aov }
    }
}

/// The base label (before making it unique) of a centroid, by the rules in the module doc.
pub fn base_label(
    z: &FeatureVector,
    original: &ProfileFeatures,
    context: &LabelContext,
) -> &'static str {
    let has_orders = original.frequency >= 1.0;
    if z[ix::RECENCY] >= LAPSED && has_orders {
        "at risk"
    } else if z[ix::FREQUENCY] >= HIGH && z[ix::MONETARY] >= HIGH {
        "loyal high spenders"
    } else if z[ix::ABANDONMENT] >= HIGH && z[ix::CARTS] >= 0.0 {
        "cart abandoners"
    } else if z[ix::VIEWS] >= HIGH && (!has_orders || z[ix::CONVERSION] <= LOW) {
        "window shoppers"
    } else if z[ix::SESSIONS] <= LOW && z[ix::RECENCY] <= 0.0 {
        "new customers"
    } else if has_orders && original.avg_order_value <= 0.5 * context.buyer_median_aov {
        "bargain hunters"
    } else {
        "regulars"
    }
}

/// Unique labels for centroids (scaled space), in the given order (segment id order).
pub fn label_segments(
    centroids: &[FeatureVector],
    scaler: &Scaler,
    context: &LabelContext,
) -> Vec<String> {
    let mut labels: Vec<String> = Vec::with_capacity(centroids.len());
    for z in centroids {
        let base = base_label(z, &scaler.inverse_transform(z), context);
        let mut label = base.to_owned();
        let mut n = 2;
        while labels.contains(&label) {
            label = format!("{base} {n}");
            n += 1;
        }
        labels.push(label);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(pairs: &[(usize, f64)]) -> FeatureVector {
        let mut v = [0.0; 10];
        for &(i, x) in pairs {
            v[i] = x;
        }
        v
    }

    fn orders(n: f64) -> ProfileFeatures {
        ProfileFeatures {
            frequency: n,
            avg_order_value: 100.0,
            ..ProfileFeatures::default()
        }
    }

    fn label(z: &FeatureVector, original: &ProfileFeatures) -> &'static str {
        base_label(
            z,
            original,
            &LabelContext {
                buyer_median_aov: 100.0,
            },
        )
    }

    #[test]
    fn each_rule_at_its_boundary() {
        assert_eq!(label(&z(&[(ix::RECENCY, 0.75)]), &orders(1.0)), "at risk");
        assert_eq!(label(&z(&[(ix::RECENCY, 0.74)]), &orders(1.0)), "regulars");
        assert_eq!(label(&z(&[(ix::RECENCY, 2.0)]), &orders(0.9)), "regulars");
        assert_eq!(
            label(
                &z(&[(ix::FREQUENCY, 0.5), (ix::MONETARY, 0.5)]),
                &orders(5.0)
            ),
            "loyal high spenders"
        );
        assert_eq!(
            label(
                &z(&[(ix::FREQUENCY, 0.5), (ix::MONETARY, 0.49)]),
                &orders(5.0)
            ),
            "regulars"
        );
        assert_eq!(
            label(
                &z(&[(ix::ABANDONMENT, 0.5), (ix::CARTS, 0.0)]),
                &orders(0.0)
            ),
            "cart abandoners"
        );
        assert_eq!(
            label(
                &z(&[(ix::ABANDONMENT, 0.5), (ix::CARTS, -0.1)]),
                &orders(0.0)
            ),
            "regulars"
        );
        assert_eq!(
            label(&z(&[(ix::VIEWS, 0.5)]), &orders(0.0)),
            "window shoppers"
        );
        assert_eq!(label(&z(&[(ix::VIEWS, 0.5)]), &orders(2.0)), "regulars");
        assert_eq!(
            label(
                &z(&[(ix::VIEWS, 0.5), (ix::CONVERSION, -0.5)]),
                &orders(2.0)
            ),
            "window shoppers"
        );
        assert_eq!(
            label(&z(&[(ix::SESSIONS, -0.5)]), &orders(0.0)),
            "new customers"
        );
        assert_eq!(
            label(
                &z(&[(ix::SESSIONS, -0.5), (ix::RECENCY, 0.1)]),
                &orders(0.0)
            ),
            "regulars"
        );
        let cheap = |n: f64, aov: f64| ProfileFeatures {
            avg_order_value: aov,
            ..orders(n)
        };
        assert_eq!(label(&z(&[]), &cheap(1.0, 50.0)), "bargain hunters");
        assert_eq!(label(&z(&[]), &cheap(1.0, 50.1)), "regulars");
        assert_eq!(label(&z(&[]), &cheap(0.0, 10.0)), "regulars");
        // New customers before bargain hunters.
        assert_eq!(
            label(&z(&[(ix::SESSIONS, -1.0)]), &cheap(1.0, 20.0)),
            "new customers"
        );
        // At risk wins over loyal high spenders.
        assert_eq!(
            label(
                &z(&[
                    (ix::RECENCY, 1.0),
                    (ix::FREQUENCY, 2.0),
                    (ix::MONETARY, 2.0)
                ]),
                &orders(9.0)
            ),
            "at risk"
        );
    }

    #[test]
    fn buyer_median_ignores_customers_without_orders() {
        let f = |n: f64, aov: f64| ProfileFeatures {
            frequency: n,
            avg_order_value: aov,
            ..ProfileFeatures::default()
        };
        let rows = [
            f(0.0, 0.0),
            f(0.0, 0.0),
            f(1.0, 10.0),
            f(3.0, 30.0),
            f(2.0, 100.0),
            f(1.0, 40.0),
        ];
        assert_eq!(LabelContext::from_sample(&rows).buyer_median_aov, 35.0);
        assert_eq!(LabelContext::from_sample(&rows[..2]).buyer_median_aov, 0.0);
    }

    #[test]
    fn labels_are_unique_within_a_model() {
        let scaler = Scaler::identity();
        let shopper = z(&[(ix::VIEWS, 2.0), (ix::FREQUENCY, 0.0)]);
        let labels = label_segments(
            &[shopper, z(&[]), shopper, shopper],
            &scaler,
            &LabelContext::default(),
        );
        assert_eq!(
            labels,
            vec![
                "window shoppers",
                "regulars",
                "window shoppers 2",
                "window shoppers 3"
            ]
        );
    }
}
