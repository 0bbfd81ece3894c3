//! The feature transform: `log1p` on heavy-tailed features, then standard scaling.
//!
//! Counts and amounts of customers follow heavy-tailed distributions (a few customers order a
//! hundred times); on raw values KMeans would spend its clusters on the tail. So the
//! transform is, per feature `f` in [`ProfileFeatures::NAMES`] order:
//!
//! 1. `x' = log1p(max(x, 0))` for the features in [`LOG1P_FEATURES`] (recency days, orders,
//!    spend, average order value, sessions, product views, carts); the rates (cart
//!    abandonment, conversion, category affinity) stay as they are.
//! 2. `z = (x' - mean_f) / scale_f`, with the mean and the population standard deviation
//!    (`ddof = 0`, as scikit-learn's `StandardScaler`) of `x'` over the fitted sample. A
//!    feature that is constant in the sample gets scale 1.
//!
//! Means and scales are fitted once per model version and frozen in the
//! [`SegmentModel`] (`means`, `scales`, `log1p_features`, `feature_names`): between refits,
//! every assignment uses exactly the transform the centroids were fitted in.
//!
//! Values that are not finite (NaN, infinity) are imputed with the mean, i.e. scaled to 0,
//! and are left out when fitting the scaler: one broken profile must not move a model.

use fitstream_contracts::{ProfileFeatures, SegmentModel};

use crate::error::ModelError;

/// Number of profile features.
pub const FEATURE_COUNT: usize = ProfileFeatures::NAMES.len();

/// One point in feature space (original, log1p or scaled units, depending on context).
pub type FeatureVector = [f64; FEATURE_COUNT];

/// The heavy-tailed features that get `log1p` before scaling.
pub const LOG1P_FEATURES: [&str; 7] = [
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "sessions",
    "product_views",
    "carts",
];

/// A fitted, frozen feature transform (log1p, then standard scaling).
#[derive(Clone, Debug, PartialEq)]
pub struct Scaler {
    /// Which features get `log1p`, in [`ProfileFeatures::NAMES`] order.
    log1p: [bool; FEATURE_COUNT],
    /// Mean of each feature after `log1p`.
    means: FeatureVector,
    /// Population standard deviation of each feature after `log1p` (1 when constant).
    scales: FeatureVector,
}

fn default_log1p_mask() -> [bool; FEATURE_COUNT] {
    let mut mask = [false; FEATURE_COUNT];
    for (slot, name) in mask.iter_mut().zip(ProfileFeatures::NAMES) {
        *slot = LOG1P_FEATURES.contains(&name);
    }
    mask
}

impl Scaler {
    /// The identity transform (no log1p, mean 0, scale 1); useful in tests.
    pub fn identity() -> Scaler {
        Scaler {
            log1p: [false; FEATURE_COUNT],
            means: [0.0; FEATURE_COUNT],
            scales: [1.0; FEATURE_COUNT],
        }
    }

    /// Fits means and scales on `rows`, with `log1p` on [`LOG1P_FEATURES`].
    ///
    /// Non-finite values are skipped per feature. With no finite value a feature gets mean 0
    /// and scale 1.
    pub fn fit<'a, I>(rows: I) -> Scaler
    where
        I: IntoIterator<Item = &'a ProfileFeatures>,
    {
        let log1p = default_log1p_mask();
        // Welford's online mean and variance, per feature.
        let mut count = [0u64; FEATURE_COUNT];
        let mut mean = [0.0; FEATURE_COUNT];
        let mut m2 = [0.0; FEATURE_COUNT];
        for row in rows {
            let pre = pre_transform(&log1p, &row.to_vec());
            for f in 0..FEATURE_COUNT {
                let x = pre[f];
                if !x.is_finite() {
                    continue;
                }
                count[f] += 1;
                let delta = x - mean[f];
                mean[f] += delta / count[f] as f64;
                m2[f] += delta * (x - mean[f]);
            }
        }
        let mut scales = [1.0; FEATURE_COUNT];
        for f in 0..FEATURE_COUNT {
            if count[f] > 0 {
                let sd = (m2[f] / count[f] as f64).sqrt();
                // A (nearly) constant feature carries no information; scale 1 keeps it at 0.
                if sd.is_finite() && sd > 1e-12 {
                    scales[f] = sd;
                }
            }
        }
        Scaler {
            log1p,
            means: mean,
            scales,
        }
    }

    /// Reads the frozen transform of a model, checking that it matches this build's features.
    pub fn from_model(model: &SegmentModel) -> Result<Scaler, ModelError> {
        if model.feature_names.len() != FEATURE_COUNT
            || model
                .feature_names
                .iter()
                .zip(ProfileFeatures::NAMES)
                .any(|(a, b)| a != b)
        {
            return Err(ModelError::FeatureNames {
                found: model.feature_names.clone(),
            });
        }
        let means = checked_vector("means", &model.means)?;
        let scales = checked_vector("scales", &model.scales)?;
        for (f, &s) in scales.iter().enumerate() {
            if !(s.is_finite() && s > 0.0) {
                return Err(ModelError::Scaler {
                    feature: ProfileFeatures::NAMES[f],
                    value: s,
                });
            }
        }
        for (f, &m) in means.iter().enumerate() {
            if !m.is_finite() {
                return Err(ModelError::Scaler {
                    feature: ProfileFeatures::NAMES[f],
                    value: m,
                });
            }
        }
        let mut log1p = [false; FEATURE_COUNT];
        for name in &model.log1p_features {
            let f = ProfileFeatures::NAMES
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| ModelError::UnknownLog1pFeature(name.clone()))?;
            log1p[f] = true;
        }
        Ok(Scaler {
            log1p,
            means,
            scales,
        })
    }

    /// Names of the features that get `log1p`, for [`SegmentModel::log1p_features`].
    pub fn log1p_feature_names(&self) -> Vec<String> {
        ProfileFeatures::NAMES
            .iter()
            .zip(self.log1p)
            .filter(|(_, on)| *on)
            .map(|(n, _)| (*n).to_owned())
            .collect()
    }

    /// Means after `log1p`, for [`SegmentModel::means`].
    pub fn means(&self) -> &FeatureVector {
        &self.means
    }

    /// Scales after `log1p`, for [`SegmentModel::scales`].
    pub fn scales(&self) -> &FeatureVector {
        &self.scales
    }

    /// Transforms a profile's features into scaled space.
    pub fn transform(&self, features: &ProfileFeatures) -> FeatureVector {
        self.transform_vector(&features.to_vec())
    }

    /// Transforms a feature vector in original units into scaled space.
    pub fn transform_vector(&self, x: &FeatureVector) -> FeatureVector {
        let pre = pre_transform(&self.log1p, x);
        let mut z = [0.0; FEATURE_COUNT];
        for f in 0..FEATURE_COUNT {
            let v = (pre[f] - self.means[f]) / self.scales[f];
            z[f] = if v.is_finite() { v } else { 0.0 };
        }
        z
    }

    /// Maps a point in scaled space back to original units (`expm1` where `log1p` was
    /// applied, clamped at 0).
    ///
    /// For a centroid this gives the "typical member": for log1p features it is
    /// `expm1(mean(log1p(x)))`, close to a geometric mean, which outliers do not drag.
    pub fn inverse_transform(&self, z: &FeatureVector) -> ProfileFeatures {
        let mut x = [0.0; FEATURE_COUNT];
        for f in 0..FEATURE_COUNT {
            let pre = z[f] * self.scales[f] + self.means[f];
            x[f] = if self.log1p[f] {
                pre.exp_m1().max(0.0)
            } else {
                pre
            };
        }
        ProfileFeatures::from_slice(&x)
    }

    /// Maps a point scaled by `other` (an earlier model's transform) into this scaler's space,
    /// so that centroids of two model versions can be compared and warm starts begin where the
    /// previous model ended.
    pub fn rescale_from(&self, other: &Scaler, z_other: &FeatureVector) -> FeatureVector {
        if self.log1p == other.log1p {
            // Affine in log1p space: exact, no round trip through expm1.
            let mut z = [0.0; FEATURE_COUNT];
            for f in 0..FEATURE_COUNT {
                let pre = z_other[f] * other.scales[f] + other.means[f];
                z[f] = (pre - self.means[f]) / self.scales[f];
            }
            z
        } else {
            self.transform(&other.inverse_transform(z_other))
        }
    }
}

fn pre_transform(log1p: &[bool; FEATURE_COUNT], x: &FeatureVector) -> FeatureVector {
    let mut out = *x;
    for f in 0..FEATURE_COUNT {
        if log1p[f] {
            // Counts and amounts are never negative; a negative value is an upstream bug,
            // and log1p(-1) would be -inf.
            out[f] = out[f].max(0.0).ln_1p();
        }
    }
    out
}

fn checked_vector(field: &'static str, v: &[f64]) -> Result<FeatureVector, ModelError> {
    <FeatureVector>::try_from(v).map_err(|_| ModelError::Length {
        field,
        len: v.len(),
        expected: FEATURE_COUNT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(v: FeatureVector) -> ProfileFeatures {
        ProfileFeatures::from_slice(&v)
    }

    #[test]
    fn fitted_transform_has_zero_mean_and_unit_scale() {
        let rows = [
            features([1.0, 0.0, 0.0, 0.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.5]),
            features([10.0, 3.0, 300.0, 100.0, 9.0, 40.0, 5.0, 0.4, 0.3, 0.7]),
            features([100.0, 30.0, 9000.0, 300.0, 99.0, 400.0, 50.0, 0.9, 0.3, 0.9]),
        ];
        let scaler = Scaler::fit(&rows);
        let z: Vec<FeatureVector> = rows.iter().map(|r| scaler.transform(r)).collect();
        for f in 0..FEATURE_COUNT {
            let mean: f64 = z.iter().map(|v| v[f]).sum::<f64>() / 3.0;
            let var: f64 = z.iter().map(|v| (v[f] - mean).powi(2)).sum::<f64>() / 3.0;
            assert!(mean.abs() < 1e-12, "feature {f} mean {mean}");
            assert!((var - 1.0).abs() < 1e-9, "feature {f} var {var}");
        }
        // log1p on the counts: the scaled values of 1, 10, 100 days are evenly spaced.
        let gaps = (z[1][0] - z[0][0], z[2][0] - z[1][0]);
        assert!(
            (gaps.0 / gaps.1 - (11f64.ln() - 2f64.ln()) / (101f64.ln() - 11f64.ln())).abs() < 1e-9
        );
    }

    #[test]
    fn inverse_transform_round_trips_to_original_units() {
        let rows = [
            features([1.0, 1.0, 50.0, 50.0, 2.0, 10.0, 1.0, 0.0, 0.5, 1.0]),
            features([30.0, 4.0, 400.0, 100.0, 20.0, 80.0, 6.0, 0.5, 0.2, 0.4]),
        ];
        let scaler = Scaler::fit(&rows);
        for r in &rows {
            let back = scaler.inverse_transform(&scaler.transform(r)).to_vec();
            for (a, b) in back.iter().zip(r.to_vec()) {
                assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn constant_and_broken_values_do_not_break_the_scaler() {
        let rows = [
            features([5.0, 1.0, f64::NAN, 10.0, 2.0, 3.0, 1.0, 0.5, 0.5, 0.5]),
            features([5.0, 2.0, 20.0, 10.0, 3.0, 4.0, -7.0, 0.5, 0.5, 0.5]),
        ];
        let scaler = Scaler::fit(&rows);
        assert_eq!(scaler.scales()[0], 1.0, "constant feature gets scale 1");
        assert!(scaler.means().iter().all(|m| m.is_finite()));
        let z = scaler.transform(&features([f64::INFINITY; FEATURE_COUNT]));
        assert!(z.iter().all(|v| v.is_finite()));
        assert_eq!(z[9], 0.0, "infinite rate imputed with the mean");
    }

    #[test]
    fn model_round_trip_and_rescaling() {
        let rows = [
            features([1.0, 1.0, 50.0, 50.0, 2.0, 10.0, 1.0, 0.0, 0.5, 1.0]),
            features([30.0, 4.0, 400.0, 100.0, 20.0, 80.0, 6.0, 0.5, 0.2, 0.4]),
            features([3.0, 2.0, 90.0, 45.0, 5.0, 12.0, 2.0, 0.1, 0.4, 0.6]),
        ];
        let a = Scaler::fit(&rows[..2]);
        let b = Scaler::fit(&rows[1..]);
        let model = SegmentModel {
            version: 1,
            cutoff_event_time: fitstream_contracts::EventTime(0),
            feature_names: ProfileFeatures::NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            log1p_features: a.log1p_feature_names(),
            means: a.means().to_vec(),
            scales: a.scales().to_vec(),
            segments: vec![],
            quality_metric: "silhouette".into(),
            quality_score: 0.0,
            next_segment_id: 1,
            sample_size: 2,
        };
        assert_eq!(Scaler::from_model(&model), Ok(a.clone()));
        let za = a.transform(&rows[2]);
        let zb = b.rescale_from(&a, &za);
        let direct = b.transform(&rows[2]);
        for f in 0..FEATURE_COUNT {
            assert!((zb[f] - direct[f]).abs() < 1e-9);
        }

        let mut bad = model.clone();
        bad.scales[3] = 0.0;
        assert!(matches!(
            Scaler::from_model(&bad),
            Err(ModelError::Scaler {
                feature: "avg_order_value",
                ..
            })
        ));
        let mut bad = model.clone();
        bad.feature_names.swap(0, 1);
        assert!(matches!(
            Scaler::from_model(&bad),
            Err(ModelError::FeatureNames { .. })
        ));
        let mut bad = model;
        bad.means.pop();
        assert!(matches!(
            Scaler::from_model(&bad),
            Err(ModelError::Length { field: "means", .. })
        ));
    }
}
