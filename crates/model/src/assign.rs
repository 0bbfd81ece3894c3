//! Assignment between refits: the nearest centroid in scaled space.
//!
//! The profiler assigns every changed profile, so this is a hot path: no allocation per call.
//! [`SegmentAssigner`] validates a model once (when a new version arrives) and keeps its
//! centroids in a flat array; [`assign`] does the same checks on every call without
//! allocating, for callers that hold only the [`SegmentModel`].
//!
//! Distance is Euclidean in the model's scaled space (the value of
//! `SegmentAssignment.distance`). On a tie the segment listed first (lowest id, as the
//! segmenter's `fit()` orders them) wins.

use fitstream_contracts::{ProfileFeatures, SegmentModel};

use crate::error::ModelError;
use crate::transform::{FEATURE_COUNT, FeatureVector, Scaler};

/// The segment a profile belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Assignment<'m> {
    /// Stable segment id.
    pub segment_id: i32,
    /// Its label (borrowed from the model).
    pub label: &'m str,
    /// Euclidean distance to the centroid in scaled space.
    pub distance: f64,
}

/// A validated model, ready to assign profiles.
#[derive(Clone, Debug)]
pub struct SegmentAssigner {
    /// Model version.
    version: i64,
    /// The model's frozen transform.
    scaler: Scaler,
    /// Centroids in scaled space, in model order.
    centroids: Vec<FeatureVector>,
    /// Segment id of each centroid.
    ids: Vec<i32>,
    /// Label of each centroid.
    labels: Vec<String>,
}

impl SegmentAssigner {
    /// Validates `model` and prepares it for assignment.
    pub fn new(model: &SegmentModel) -> Result<SegmentAssigner, ModelError> {
        let scaler = Scaler::from_model(model)?;
        if model.segments.is_empty() {
            return Err(ModelError::NoSegments);
        }
        let mut centroids = Vec::with_capacity(model.segments.len());
        for s in &model.segments {
            centroids.push(checked_centroid(s.segment_id, &s.centroid)?);
        }
        Ok(SegmentAssigner {
            version: model.version,
            scaler,
            centroids,
            ids: model.segments.iter().map(|s| s.segment_id).collect(),
            labels: model.segments.iter().map(|s| s.label.clone()).collect(),
        })
    }

    /// The model version.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The model's transform.
    pub fn scaler(&self) -> &Scaler {
        &self.scaler
    }

    /// The nearest segment of a profile.
    pub fn assign(&self, features: &ProfileFeatures) -> Assignment<'_> {
        let z = self.scaler.transform(features);
        let (best, d2) = nearest(&z, self.centroids.iter());
        Assignment {
            segment_id: self.ids[best],
            label: &self.labels[best],
            distance: d2.sqrt(),
        }
    }
}

/// The nearest segment of a profile under `model`, validating the model on the way (without
/// allocating). Prefer [`SegmentAssigner`] when assigning many profiles with one model.
pub fn assign<'m>(
    model: &'m SegmentModel,
    features: &ProfileFeatures,
) -> Result<Assignment<'m>, ModelError> {
    let scaler = Scaler::from_model(model)?;
    let z = scaler.transform(features);
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in model.segments.iter().enumerate() {
        let c = checked_centroid(s.segment_id, &s.centroid)?;
        let d2 = squared_distance(&z, &c);
        if best.is_none_or(|(_, b)| d2 < b) {
            best = Some((i, d2));
        }
    }
    let (i, d2) = best.ok_or(ModelError::NoSegments)?;
    let s = &model.segments[i];
    Ok(Assignment {
        segment_id: s.segment_id,
        label: &s.label,
        distance: d2.sqrt(),
    })
}

fn checked_centroid(segment_id: i32, centroid: &[f64]) -> Result<FeatureVector, ModelError> {
    match <FeatureVector>::try_from(centroid) {
        Ok(c) if c.iter().all(|v| v.is_finite()) => Ok(c),
        _ => Err(ModelError::Centroid {
            segment_id,
            len: centroid.len(),
        }),
    }
}

/// Squared Euclidean distance.
pub(crate) fn squared_distance(a: &FeatureVector, b: &FeatureVector) -> f64 {
    let mut s = 0.0;
    for f in 0..FEATURE_COUNT {
        let d = a[f] - b[f];
        s += d * d;
    }
    s
}

/// Index of the nearest centroid and the squared distance to it (first wins ties).
/// With no centroid: `(0, inf)`.
pub fn nearest<'a>(
    z: &FeatureVector,
    centroids: impl Iterator<Item = &'a FeatureVector>,
) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centroids.enumerate() {
        let d2 = squared_distance(z, c);
        if d2 < best.1 {
            best = (i, d2);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use fitstream_contracts::{ModelSegment, samples};

    fn model() -> SegmentModel {
        let scaler = Scaler::identity();
        let centroid = |x: f64| {
            let mut c = vec![0.0; 10];
            c[0] = x;
            c
        };
        SegmentModel {
            version: 3,
            log1p_features: scaler.log1p_feature_names(),
            means: scaler.means().to_vec(),
            scales: scaler.scales().to_vec(),
            segments: vec![
                ModelSegment {
                    segment_id: 4,
                    label: "a".into(),
                    centroid: centroid(0.0),
                    description: None,
                },
                ModelSegment {
                    segment_id: 7,
                    label: "b".into(),
                    centroid: centroid(10.0),
                    description: None,
                },
            ],
            // Above its segment ids, as in a model the segmenter publishes.
            next_segment_id: 8,
            ..samples::model()
        }
    }

    #[test]
    fn nearest_centroid_with_distance() {
        let m = model();
        let f = ProfileFeatures {
            recency_days: 7.0,
            ..ProfileFeatures::default()
        };
        let a = assign(&m, &f).expect("valid model");
        assert_eq!(
            a,
            Assignment {
                segment_id: 7,
                label: "b",
                distance: 3.0
            }
        );
        let assigner = SegmentAssigner::new(&m).expect("valid model");
        assert_eq!(assigner.assign(&f), a);
        assert_eq!(assigner.version(), 3);
        // Tie: the first segment wins.
        let tie = ProfileFeatures {
            recency_days: 5.0,
            ..ProfileFeatures::default()
        };
        assert_eq!(assigner.assign(&tie).segment_id, 4);
    }

    #[test]
    fn broken_models_are_errors_not_panics() {
        let mut m = model();
        m.segments[1].centroid.pop();
        assert_eq!(
            assign(&m, &ProfileFeatures::default()),
            Err(ModelError::Centroid {
                segment_id: 7,
                len: 9
            })
        );
        assert!(SegmentAssigner::new(&m).is_err());
        let mut m = model();
        m.segments[0].centroid[2] = f64::NAN;
        assert!(SegmentAssigner::new(&m).is_err());
        let mut m = model();
        m.segments.clear();
        assert_eq!(
            assign(&m, &ProfileFeatures::default()),
            Err(ModelError::NoSegments)
        );
        assert_eq!(SegmentAssigner::new(&m).err(), Some(ModelError::NoSegments));
    }
}
