//! Errors of the segment model library, classified so that the runtime knows what to do.
//!
//! - [`ModelError`] (from `fitstream-model`, re-exported here): a
//!   [`SegmentModel`](fitstream_contracts::SegmentModel) read from a topic does not fit this
//!   code (bad data: skip it and keep the model in use).
//! - [`FitError`]: a fit could not produce a model. [`FitError::class`] says whether to wait for
//!   more data ([`FitErrorClass::NeedsMoreData`]), fix the configuration
//!   ([`FitErrorClass::Config`]) or look at the data ([`FitErrorClass::BadData`]).

use thiserror::Error;

pub use fitstream_model::error::ModelError;

/// What the caller should do about a [`FitError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitErrorClass {
    /// Not enough (distinct) profiles yet: keep the current model, try again at the next
    /// scheduled refit.
    NeedsMoreData,
    /// The configuration is invalid: fatal at start-up.
    Config,
    /// The numbers went wrong (a linfa failure, exhausted ids): log, alert, keep the current
    /// model.
    BadData,
}

/// Why a fit produced no model.
#[derive(Debug, Error)]
pub enum FitError {
    /// The configuration is invalid.
    #[error("invalid fit configuration: {0}")]
    Config(String),
    /// The sample is empty.
    #[error("cannot fit a segment model on an empty sample")]
    EmptySample,
    /// Fewer profiles than the smallest number of segments.
    #[error("sample of {size} profiles is smaller than k_min = {k_min}")]
    SampleTooSmall {
        /// Profiles in the sample.
        size: usize,
        /// The configured smallest number of segments.
        k_min: usize,
    },
    /// No k in the range gave a usable clustering (every candidate had an empty segment or an
    /// undefined quality score, e.g. when almost all profiles are identical).
    #[error("no usable clustering for k in {k_min}..={k_max}: {reason}")]
    NoUsableClustering {
        /// Smallest k tried.
        k_min: usize,
        /// Largest k tried.
        k_max: usize,
        /// What went wrong for the last candidate.
        reason: String,
    },
    /// linfa's KMeans failed.
    #[error("KMeans with k = {k} failed: {source}")]
    KMeans {
        /// Number of clusters.
        k: usize,
        /// linfa's error.
        #[source]
        source: linfa_clustering::KMeansError,
    },
    /// Segment ids or model versions would overflow `i32`/`i64`.
    #[error("segment ids or model versions are exhausted")]
    IdsExhausted,
}

impl FitError {
    /// What the caller should do about it.
    pub fn class(&self) -> FitErrorClass {
        match self {
            FitError::Config(_) => FitErrorClass::Config,
            FitError::EmptySample | FitError::SampleTooSmall { .. } => FitErrorClass::NeedsMoreData,
            FitError::NoUsableClustering { .. } => FitErrorClass::NeedsMoreData,
            FitError::KMeans { .. } | FitError::IdsExhausted => FitErrorClass::BadData,
        }
    }
}
