//! Errors of reading a segment model.
//!
//! - [`ModelError`]: a [`SegmentModel`](fitstream_contracts::SegmentModel) read from a topic
//!   does not fit this code (bad data: skip it and keep the model in use).

use thiserror::Error;

/// A segment model that this library cannot use.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    /// The feature names differ from [`ProfileFeatures::NAMES`](fitstream_contracts::ProfileFeatures::NAMES).
    #[error("model features {found:?} differ from the profile features of this build")]
    FeatureNames {
        /// The names in the model.
        found: Vec<String>,
    },
    /// A per-feature vector has the wrong length.
    #[error("model field {field} has {len} values, expected {expected}")]
    Length {
        /// Field name.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The expected length.
        expected: usize,
    },
    /// A scaler value is not finite, or a scale is not positive.
    #[error("model scaler value for {feature} is unusable: {value}")]
    Scaler {
        /// Feature name.
        feature: &'static str,
        /// The value.
        value: f64,
    },
    /// `log1p_features` names a feature that does not exist.
    #[error("model applies log1p to unknown feature {0:?}")]
    UnknownLog1pFeature(String),
    /// The model has no segment.
    #[error("model has no segment")]
    NoSegments,
    /// A centroid has the wrong length or a value that is not finite.
    #[error(
        "centroid of segment {segment_id} is unusable (length {len}, expected 10, or not finite)"
    )]
    Centroid {
        /// Segment id.
        segment_id: i32,
        /// Its length.
        len: usize,
    },
}
