//! Labels and descriptions that marketing understands, derived from what sets a segment apart
//! from all customers.
//!
//! # Evidence
//! A segment's evidence is its centroid in scaled space, where each value is a z-score against
//! the fitted sample (all customers, after `log1p` on the heavy-tailed features), and the same
//! centroid in original units ([`Scaler::inverse_transform`], the "typical member"). One
//! exception: the average order value only means something for customers who ordered, so its
//! z-score is taken against the buyers of the sample ([`LabelContext`]); customers who never
//! ordered have an order value of 0 and would drag the population's mean down.
//!
//! A segment *buys* when its typical member has at least one order, and *carts* when it has at
//! least one add-to-cart. Features that say nothing about a segment are left out of its
//! evidence: order value, spend and conversion of a segment that does not buy (they are 0
//! because it does not buy), the abandonment rate of a segment that does not cart.
//!
//! # The catalogue and the matching
//! Each [`CATALOGUE`] label has a gate (what must hold for it to be true at all, e.g. "at risk"
//! needs a segment that buys and whose recency is at least 0.75 standard deviations above the
//! mean) and signed weights on features. Its fit to a segment is the weighted mean of the
//! signed z-scores (each clamped to ±3), when the gate holds and the fit is at least
//! [`MIN_FIT`]. Labels are then given by a one-to-one matching of segments to catalogue labels
//! that maximises the total fit (Hungarian algorithm, `pathfinding::kuhn_munkres`): two
//! segments that both look like window shoppers do not both get the label, the better fit does,
//! and the other one is named by what sets it apart.
//!
//! # Descriptive labels
//! A segment without a catalogue label gets a descriptive one from its two most distinctive
//! features (largest |z| in its evidence): the adjective of the first and the noun of the
//! second, e.g. "frequent small baskets" (many orders, small order value). When that label is
//! taken, the next pair in order of distinctiveness. Never a number suffix.
//!
//! # Stability
//! Labels are derived anew at every fit, but a segment that keeps its id (see
//! [`crate::matching`]) keeps its label unless its character changed: a catalogue label the id
//! had before gets [`STICKY`] added to its fit, and a descriptive label it had before is kept
//! while it is still made of two of the segment's three most distinctive features.
//!
//! # Description
//! One sentence per segment: the label's meaning (the catalogue's blurb, or the descriptive
//! label itself) and the typical member's three most distinctive values, each said against the
//! average customer.

use fitstream_contracts::ProfileFeatures;
use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use crate::transform::{FEATURE_COUNT, FeatureVector, Scaler};

/// The least fit for a catalogue label to be given (weighted mean z-score).
pub const MIN_FIT: f64 = 0.25;
/// Added to the fit of the catalogue label a segment id already had.
pub const STICKY: f64 = 0.25;
/// z-scores are clamped to this magnitude in a fit, so one extreme feature cannot carry it.
const CLAMP: f64 = 3.0;

/// Index of a feature in [`ProfileFeatures::NAMES`] order.
mod ix {
    pub const RECENCY: usize = 0;
    pub const FREQUENCY: usize = 1;
    pub const MONETARY: usize = 2;
    pub const AOV: usize = 3;
    pub const SESSIONS: usize = 4;
    pub const VIEWS: usize = 5;
    pub const CARTS: usize = 6;
    pub const ABANDONMENT: usize = 7;
    pub const CONVERSION: usize = 8;
    pub const AFFINITY: usize = 9;
}

/// What the labels compare a segment with, besides the z-scores: the buyers' order values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LabelContext {
    /// Median average order value of the customers with at least one order (0 when none).
    pub buyer_median_aov: f64,
    /// Mean of `log1p(average order value)` over the customers with at least one order.
    pub buyer_log_aov_mean: f64,
    /// Its population standard deviation (1 when fewer than two buyers or constant).
    pub buyer_log_aov_sd: f64,
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
            .map(|f| f.avg_order_value.max(0.0))
            .collect();
        aov.sort_by(f64::total_cmp);
        let buyer_median_aov = match aov.len() {
            0 => 0.0,
            n if n % 2 == 1 => aov[n / 2],
            n => 0.5 * (aov[n / 2 - 1] + aov[n / 2]),
        };
        let n = aov.len().max(1) as f64;
        let mean = aov.iter().map(|v| v.ln_1p()).sum::<f64>() / n;
        let var = aov.iter().map(|v| (v.ln_1p() - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        LabelContext {
            buyer_median_aov,
            buyer_log_aov_mean: mean,
            buyer_log_aov_sd: if sd.is_finite() && sd > 1e-12 {
                sd
            } else {
                1.0
            },
        }
    }
}

/// What a segment's label is derived from.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// z-scores against all customers (order value: against the buyers).
    pub z: FeatureVector,
    /// The typical member, in original units.
    pub original: ProfileFeatures,
    /// The typical member has at least one order.
    pub buys: bool,
    /// The typical member has at least one add-to-cart.
    pub carts: bool,
}

impl Evidence {
    /// The evidence of a centroid in scaled space.
    pub fn new(centroid: &FeatureVector, scaler: &Scaler, context: &LabelContext) -> Evidence {
        let original = scaler.inverse_transform(centroid);
        let mut z = *centroid;
        let buys = original.frequency >= 1.0;
        z[ix::AOV] = if buys {
            (original.avg_order_value.max(0.0).ln_1p() - context.buyer_log_aov_mean)
                / context.buyer_log_aov_sd
        } else {
            0.0
        };
        for v in &mut z {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        Evidence {
            z,
            carts: original.carts >= 1.0,
            original,
            buys,
        }
    }

    /// Whether a feature says something about this segment (see the module doc).
    pub fn meaningful(&self, feature: usize) -> bool {
        match feature {
            ix::AOV | ix::MONETARY | ix::CONVERSION => self.buys,
            ix::ABANDONMENT => self.carts,
            _ => feature < FEATURE_COUNT,
        }
    }

    /// The meaningful features, most distinctive (largest |z|) first; ties by feature order.
    pub fn distinctive(&self) -> Vec<usize> {
        let mut f: Vec<usize> = (0..FEATURE_COUNT).filter(|&f| self.meaningful(f)).collect();
        f.sort_by(|&a, &b| self.z[b].abs().total_cmp(&self.z[a].abs()).then(a.cmp(&b)));
        f
    }
}

/// One label of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct CatalogueLabel {
    /// The label.
    pub label: &'static str,
    /// What it means, the start of the description.
    pub blurb: &'static str,
    /// Signed weights on features (index in [`ProfileFeatures::NAMES`] order).
    pub weights: &'static [(usize, f64)],
    /// What must hold for the label to be true of a segment.
    pub gate: fn(&Evidence) -> bool,
}

impl CatalogueLabel {
    /// The fit of this label to a segment: the weighted mean signed z-score, `None` when the
    /// gate does not hold or the fit is below [`MIN_FIT`].
    pub fn fit(&self, e: &Evidence) -> Option<f64> {
        if !(self.gate)(e) {
            return None;
        }
        let total: f64 = self.weights.iter().map(|(_, w)| w.abs()).sum();
        let sum: f64 = self
            .weights
            .iter()
            .map(|&(f, w)| w * e.z[f].clamp(-CLAMP, CLAMP))
            .sum();
        let fit = sum / total;
        (fit >= MIN_FIT).then_some(fit)
    }
}

/// The marketing labels, with their gates and weights.
pub const CATALOGUE: [CatalogueLabel; 9] = [
    CatalogueLabel {
        label: "loyal high spenders",
        blurb: "Repeat buyers who spend the most",
        weights: &[
            (ix::FREQUENCY, 1.0),
            (ix::MONETARY, 1.0),
            (ix::AOV, 0.5),
            (ix::SESSIONS, 0.5),
        ],
        gate: |e| {
            e.buys
                && e.original.frequency >= 2.0
                && e.z[ix::FREQUENCY] >= 0.5
                && e.z[ix::MONETARY] >= 0.5
        },
    },
    CatalogueLabel {
        label: "impulse buyers",
        blurb: "Buy after few product views, mostly in one category, and rarely leave a cart",
        weights: &[
            (ix::CONVERSION, 1.0),
            (ix::VIEWS, -1.0),
            (ix::ABANDONMENT, -0.5),
            (ix::AFFINITY, 0.5),
        ],
        gate: |e| e.buys && e.z[ix::CONVERSION] >= 0.5 && e.z[ix::VIEWS] <= 0.0,
    },
    CatalogueLabel {
        label: "window shoppers",
        blurb: "Browse many products and rarely or never buy",
        weights: &[(ix::VIEWS, 1.0), (ix::SESSIONS, 0.5), (ix::FREQUENCY, -0.5)],
        gate: |e| (!e.buys || e.z[ix::CONVERSION] <= -0.5) && e.z[ix::VIEWS] >= 0.25,
    },
    CatalogueLabel {
        label: "cart abandoners",
        blurb: "Fill carts and leave without buying what they carted",
        weights: &[(ix::ABANDONMENT, 1.0), (ix::CARTS, 1.0)],
        gate: |e| e.carts && e.z[ix::ABANDONMENT] >= 0.5 && e.z[ix::CARTS] >= 0.0,
    },
    CatalogueLabel {
        label: "at risk",
        blurb: "Bought before but not for a long time",
        weights: &[(ix::RECENCY, 1.0), (ix::FREQUENCY, 0.5)],
        gate: |e| e.buys && e.z[ix::RECENCY] >= 0.75,
    },
    CatalogueLabel {
        label: "new customers",
        blurb: "Arrived recently: few sessions and a first order",
        weights: &[
            (ix::SESSIONS, -1.0),
            (ix::RECENCY, -0.5),
            (ix::CONVERSION, 0.5),
        ],
        gate: |e| e.buys && e.z[ix::SESSIONS] <= -0.5 && e.z[ix::RECENCY] <= 0.0,
    },
    CatalogueLabel {
        label: "bargain hunters",
        blurb: "Buy cheap: small orders after browsing many products across categories",
        weights: &[(ix::AOV, -1.0), (ix::VIEWS, 0.5), (ix::AFFINITY, -0.5)],
        gate: |e| e.buys && e.z[ix::AOV] <= -0.5,
    },
    CatalogueLabel {
        label: "one-time buyers",
        blurb: "Bought once, more than most customers ever do",
        weights: &[(ix::FREQUENCY, 1.0), (ix::CONVERSION, 0.5)],
        gate: |e| e.buys && e.original.frequency < 1.5 && e.z[ix::FREQUENCY] >= 0.5,
    },
    CatalogueLabel {
        label: "casual browsers",
        blurb: "Drop by briefly, look at a few products and leave without a cart",
        weights: &[(ix::SESSIONS, -1.0), (ix::VIEWS, -1.0), (ix::CARTS, -0.5)],
        gate: |e| !e.buys && e.z[ix::SESSIONS] <= 0.0 && e.z[ix::VIEWS] <= 0.0,
    },
];

/// Adjective and noun of a feature's high and low side: `(high adj, high noun, low adj, low
/// noun)`, for a segment that buys or not.
fn words(
    feature: usize,
    buys: bool,
    orders: f64,
) -> (&'static str, &'static str, &'static str, &'static str) {
    match feature {
        ix::RECENCY if buys => ("lapsed", "lapsed buyers", "recent", "recent buyers"),
        ix::RECENCY => (
            "long-browsing",
            "long-time browsers",
            "short-visit",
            "one-visit browsers",
        ),
        ix::FREQUENCY if buys && orders < 2.0 => {
            ("buying", "buyers", "rarely buying", "rare buyers")
        }
        ix::FREQUENCY if buys => ("frequent", "repeat buyers", "rarely buying", "rare buyers"),
        ix::FREQUENCY => ("non-buying", "non-buyers", "non-buying", "non-buyers"),
        ix::MONETARY => (
            "high-spending",
            "big spenders",
            "low-spending",
            "low spenders",
        ),
        ix::AOV => ("big-basket", "big baskets", "small-basket", "small baskets"),
        ix::SESSIONS => (
            "frequently visiting",
            "frequent visitors",
            "rarely visiting",
            "rare visitors",
        ),
        ix::VIEWS => (
            "heavy-browsing",
            "heavy browsers",
            "light-browsing",
            "light browsers",
        ),
        ix::CARTS => ("cart-filling", "cart fillers", "cartless", "non-carters"),
        ix::ABANDONMENT => (
            "cart-abandoning",
            "cart leavers",
            "checkout-completing",
            "checkout completers",
        ),
        ix::CONVERSION => (
            "high-converting",
            "converters",
            "low-converting",
            "hesitant buyers",
        ),
        _ => (
            "single-category",
            "category loyalists",
            "multi-category",
            "category hoppers",
        ),
    }
}

/// Pairs of features that say the same thing and make no descriptive label together.
fn redundant(a: usize, b: usize) -> bool {
    let pair = (a.min(b), a.max(b));
    matches!(
        pair,
        (ix::FREQUENCY, ix::CONVERSION) | (ix::CARTS, ix::ABANDONMENT)
    )
}

fn descriptive(e: &Evidence, first: usize, second: usize) -> String {
    let (ha, _, la, _) = words(first, e.buys, e.original.frequency);
    let (_, hn, _, ln) = words(second, e.buys, e.original.frequency);
    let adj = if e.z[first] >= 0.0 { ha } else { la };
    let noun = if e.z[second] >= 0.0 { hn } else { ln };
    format!("{adj} {noun}")
}

/// Descriptive labels of a segment, best first: ordered pairs of its features by
/// distinctiveness ((1st, 2nd), (1st, 3rd), (2nd, 3rd), (1st, 4th), ...).
fn descriptive_candidates(e: &Evidence) -> Vec<String> {
    let ranked = e.distinctive();
    let mut out = Vec::new();
    for j in 1..ranked.len() {
        for i in 0..j {
            if !redundant(ranked[i], ranked[j]) {
                out.push(descriptive(e, ranked[i], ranked[j]));
            }
        }
    }
    // Then the other order of each pair.
    for j in 1..ranked.len() {
        for i in 0..j {
            if !redundant(ranked[i], ranked[j]) {
                out.push(descriptive(e, ranked[j], ranked[i]));
            }
        }
    }
    out
}

/// The typical member's value of a feature, said in words.
fn value_phrase(e: &Evidence, feature: usize) -> String {
    let o = &e.original;
    match feature {
        ix::RECENCY if e.buys => format!("{:.1} days since the last order", o.recency_days),
        ix::RECENCY => format!("{:.1} days between first and last visit", o.recency_days),
        ix::FREQUENCY => format!("{:.1} orders", o.frequency),
        ix::MONETARY => format!("{:.2} spent", o.monetary),
        ix::AOV => format!("{:.2} per order", o.avg_order_value),
        ix::SESSIONS => format!("{:.1} sessions", o.sessions),
        ix::VIEWS if o.product_views.round() == 1.0 => "1 product view".to_owned(),
        ix::VIEWS => format!("{:.0} product views", o.product_views),
        ix::CARTS => format!("{:.1} add-to-carts", o.carts),
        ix::ABANDONMENT => format!(
            "{:.0}% of carted units abandoned",
            100.0 * o.cart_abandonment_rate
        ),
        ix::CONVERSION => format!(
            "{:.0}% of sessions with an order",
            100.0 * o.conversion_rate
        ),
        _ => format!(
            "{:.0}% of events in the top category",
            100.0 * o.category_affinity
        ),
    }
}

fn level(z: f64, feature: usize) -> String {
    let side = if z >= 0.0 { "above" } else { "below" };
    let strength = match z.abs() {
        a if a >= 1.5 => "far ",
        a if a >= 0.75 => "well ",
        _ => "",
    };
    let whom = if feature == ix::AOV { "buyers'" } else { "" };
    if whom.is_empty() {
        format!("{strength}{side} average")
    } else {
        format!("{strength}{side} the {whom} average")
    }
}

/// The one-sentence description of a segment with this lead (blurb or label).
pub fn describe(e: &Evidence, lead: &str) -> String {
    let parts: Vec<String> = e
        .distinctive()
        .into_iter()
        .take(3)
        .map(|f| format!("{} ({})", value_phrase(e, f), level(e.z[f], f)))
        .collect();
    let mut lead = lead.to_owned();
    if let Some(first) = lead.get(0..1) {
        lead = format!("{}{}", first.to_uppercase(), &lead[1..]);
    }
    match parts.as_slice() {
        [] => format!("{lead}."),
        [a] => format!("{lead}: {a}."),
        [rest @ .., last] => format!("{lead}: {} and {last}.", rest.join(", ")),
    }
}

/// A segment's label and description.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentLabel {
    /// Label, unique within the model.
    pub label: String,
    /// One sentence for marketing.
    pub description: String,
}

/// Labels and descriptions for centroids (scaled space), in the given order (segment id
/// order); `previous[i]` is the label segment `i`'s id had in the previous model, if any.
pub fn label_segments(
    centroids: &[FeatureVector],
    previous: &[Option<&str>],
    scaler: &Scaler,
    context: &LabelContext,
) -> Vec<SegmentLabel> {
    let k = centroids.len();
    let evidence: Vec<Evidence> = centroids
        .iter()
        .map(|c| Evidence::new(c, scaler, context))
        .collect();
    let prev = |i: usize| previous.get(i).copied().flatten();

    // One-to-one matching with the catalogue; k extra columns mean "no catalogue label".
    let mut chosen: Vec<Option<usize>> = vec![None; k];
    if k > 0 {
        let fits: Vec<Vec<Option<f64>>> = evidence
            .iter()
            .enumerate()
            .map(|(i, e)| {
                CATALOGUE
                    .iter()
                    .map(|c| {
                        c.fit(e).map(|f| {
                            f + if prev(i) == Some(c.label) {
                                STICKY
                            } else {
                                0.0
                            }
                        })
                    })
                    .collect()
            })
            .collect();
        let weights = Matrix::from_fn(k, CATALOGUE.len() + k, |(i, j)| {
            match fits[i].get(j).copied().flatten() {
                Some(f) => (f * 1_000_000.0).round() as i64,
                None => 0,
            }
        });
        let (_, columns) = kuhn_munkres(&weights);
        for (i, &j) in columns.iter().enumerate() {
            if fits[i].get(j).copied().flatten().is_some() {
                chosen[i] = Some(j);
            }
        }
    }

    let mut taken: Vec<String> = chosen
        .iter()
        .flatten()
        .map(|&j| CATALOGUE[j].label.to_owned())
        .collect();
    let mut out = Vec::with_capacity(k);
    for (i, e) in evidence.iter().enumerate() {
        if let Some(j) = chosen[i] {
            let c = &CATALOGUE[j];
            out.push(SegmentLabel {
                label: c.label.to_owned(),
                description: describe(e, c.blurb),
            });
            continue;
        }
        let candidates = descriptive_candidates(e);
        let free =
            |l: &String| !taken.contains(l) && !CATALOGUE.iter().any(|c| c.label == l.as_str());
        // Keep the previous descriptive label while it is made of two of the three most
        // distinctive features (the first three candidates, both orders).
        let top3: Vec<String> = {
            let ranked = e.distinctive();
            let mut v = Vec::new();
            for a in ranked.iter().take(3) {
                for b in ranked.iter().take(3) {
                    if a != b && !redundant(*a, *b) {
                        v.push(descriptive(e, *a, *b));
                    }
                }
            }
            v
        };
        let label = prev(i)
            .map(str::to_owned)
            .filter(|p| top3.contains(p) && free(p))
            .or_else(|| candidates.iter().find(|l| free(l)).cloned())
            .unwrap_or_else(|| {
                // More segments than pairs of words: three features.
                let r = e.distinctive();
                let mut found = None;
                'outer: for a in &r {
                    for b in &r {
                        for c in &r {
                            if a == b || b == c || a == c {
                                continue;
                            }
                            let (ha, _, la, _) = words(*a, e.buys, e.original.frequency);
                            let adj = if e.z[*a] >= 0.0 { ha } else { la };
                            let l = format!("{adj} {}", descriptive(e, *b, *c));
                            if free(&l) {
                                found = Some(l);
                                break 'outer;
                            }
                        }
                    }
                }
                found.unwrap_or_default()
            });
        taken.push(label.clone());
        out.push(SegmentLabel {
            description: describe(e, &label),
            label,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(pairs: &[(usize, f64)]) -> FeatureVector {
        let mut v = [0.0; FEATURE_COUNT];
        for &(i, x) in pairs {
            v[i] = x;
        }
        v
    }

    /// Evidence with the identity scaler: the "original" values are the z-scores, so `buys`
    /// and `carts` follow frequency and carts given as z.
    fn labels(centroids: &[FeatureVector], previous: &[Option<&str>]) -> Vec<String> {
        let context = LabelContext {
            buyer_median_aov: 0.0,
            buyer_log_aov_mean: 0.0,
            buyer_log_aov_sd: 1.0,
        };
        label_segments(centroids, previous, &Scaler::identity(), &context)
            .into_iter()
            .map(|l| l.label)
            .collect()
    }

    fn ev(pairs: &[(usize, f64)], buys: bool, carts: bool) -> Evidence {
        Evidence {
            z: z(pairs),
            original: ProfileFeatures {
                frequency: if buys { 3.0 } else { 0.0 },
                carts: if carts { 2.0 } else { 0.0 },
                ..ProfileFeatures::default()
            },
            buys,
            carts,
        }
    }

    fn fits(e: &Evidence) -> Vec<&'static str> {
        CATALOGUE
            .iter()
            .filter(|c| c.fit(e).is_some())
            .map(|c| c.label)
            .collect()
    }

    #[test]
    fn gates_hold_labels_to_the_truth() {
        // Lapsed, but never bought: not at risk.
        assert!(!fits(&ev(&[(ix::RECENCY, 2.0)], false, false)).contains(&"at risk"));
        assert!(fits(&ev(&[(ix::RECENCY, 2.0)], true, false)).contains(&"at risk"));
        assert!(!fits(&ev(&[(ix::RECENCY, 0.7)], true, false)).contains(&"at risk"));
        // Many views and orders with a normal conversion: not window shoppers.
        assert!(!fits(&ev(&[(ix::VIEWS, 2.0)], true, true)).contains(&"window shoppers"));
        assert!(fits(&ev(&[(ix::VIEWS, 2.0)], false, true)).contains(&"window shoppers"));
        // A high abandonment rate without carts is not cart abandonment.
        assert!(
            !fits(&ev(
                &[(ix::ABANDONMENT, 2.0), (ix::CARTS, 1.0)],
                false,
                false
            ))
            .contains(&"cart abandoners")
        );
        assert!(
            fits(&ev(
                &[(ix::ABANDONMENT, 2.0), (ix::CARTS, 1.0)],
                false,
                true
            ))
            .contains(&"cart abandoners")
        );
        // Loyal needs repeat orders.
        let mut one_order = ev(&[(ix::FREQUENCY, 2.0), (ix::MONETARY, 2.0)], true, true);
        assert!(fits(&one_order).contains(&"loyal high spenders"));
        one_order.original.frequency = 1.0;
        assert!(!fits(&one_order).contains(&"loyal high spenders"));
        assert!(fits(&one_order).contains(&"one-time buyers"));
    }

    #[test]
    fn buyer_context_ignores_customers_without_orders() {
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
        let c = LabelContext::from_sample(&rows);
        assert_eq!(c.buyer_median_aov, 35.0);
        let logs = [10.0f64, 30.0, 100.0, 40.0].map(f64::ln_1p);
        assert!((c.buyer_log_aov_mean - logs.iter().sum::<f64>() / 4.0).abs() < 1e-12);
        let none = LabelContext::from_sample(&rows[..2]);
        assert_eq!((none.buyer_median_aov, none.buyer_log_aov_sd), (0.0, 1.0));
    }

    #[test]
    fn the_better_fit_wins_and_the_other_is_described_without_a_number() {
        // Two non-buying heavy browsers: the stronger one is the window shoppers.
        let mild = z(&[(ix::VIEWS, 1.0), (ix::SESSIONS, 0.6), (ix::CARTS, 0.8)]);
        let strong = z(&[(ix::VIEWS, 2.5), (ix::SESSIONS, 0.1)]);
        let l = labels(&[mild, strong], &[None, None]);
        assert_eq!(l[1], "window shoppers");
        assert_eq!(l[0], "heavy-browsing cart fillers");
        assert!(l.iter().all(|l| !l.chars().any(|c| c.is_ascii_digit())));
    }

    #[test]
    fn descriptive_labels_from_the_two_most_distinctive_features() {
        // Frequent buyers with small baskets, nothing else stands out enough for a catalogue
        // label (the identity scaler makes orders = z + 0 = 1.5: buys).
        let e = ev(
            &[(ix::FREQUENCY, 1.5), (ix::AOV, -1.2), (ix::AFFINITY, 0.3)],
            true,
            true,
        );
        assert_eq!(descriptive_candidates(&e)[0], "frequent small baskets");
        assert!(describe(&e, "frequent small baskets").starts_with("Frequent small baskets: "));
    }

    #[test]
    fn labels_are_unique_and_sticky() {
        let shopper = z(&[(ix::VIEWS, 2.0), (ix::SESSIONS, 1.0)]);
        let l = labels(&[shopper, shopper, shopper, z(&[])], &[None; 4]);
        let mut unique = l.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4, "{l:?}");
        assert_eq!(l.iter().filter(|l| *l == "window shoppers").count(), 1);
        // The same two segments in the other order: each keeps the label its id had.
        let a = z(&[(ix::VIEWS, 1.6), (ix::SESSIONS, 0.5)]);
        let b = z(&[(ix::VIEWS, 1.5), (ix::SESSIONS, 0.6), (ix::CARTS, 0.3)]);
        let first = labels(&[a, b], &[None, None]);
        let again = labels(&[a, b], &[Some(first[0].as_str()), Some(first[1].as_str())]);
        assert_eq!(first, again);
        let swapped = labels(&[a, b], &[Some(first[1].as_str()), Some(first[0].as_str())]);
        assert_eq!(swapped, vec![first[1].clone(), first[0].clone()]);
    }
}
