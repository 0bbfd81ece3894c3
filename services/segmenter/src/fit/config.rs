//! What a fit is asked and what it answers: the configuration ([`FitConfig`], [`Seeding`]),
//! the sample rows, and the outcome ([`FitOutcome`], with a [`CandidateScore`] per candidate).

use fitstream_contracts::{ProfileFeatures, SegmentModel, SegmentProfile};
use serde::{Deserialize, Serialize};

use crate::error::FitError;
use crate::quality::QualityMetric;

/// One profile of the sample: customer id, features, top categories (most frequent first).
pub type SampleRow = (String, ProfileFeatures, Vec<String>);

/// How models are fitted. Every field has a default; unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
    /// Smallest number of segments tried (at least 2). Default 3.
    pub k_min: usize,
    /// Largest number of segments tried. Default 8.
    pub k_max: usize,
    /// KMeans runs per k; the run with the lowest inertia is kept. Default 3.
    pub n_runs: usize,
    /// How each run is seeded. Default greedy k-means++.
    pub seeding: Seeding,
    /// Most KMeans iterations per run. Default 300.
    pub max_iterations: u64,
    /// A run stops when its centroids move less than this (Frobenius norm of the shift, scaled
    /// units). Default 1e-4.
    pub tolerance: f64,
    /// Seed of every random choice of the fit. Default 42.
    pub seed: u64,
    /// The score that chooses k. Default silhouette.
    pub quality_metric: QualityMetric,
    /// Profiles in the silhouette sub-sample (silhouette costs O(m²)). Default 2,000.
    pub quality_sample_size: usize,
    /// How much worse (metric units) the warm-started candidate may score than the best cold
    /// one and still be kept. Default 0.02.
    pub warm_start_tolerance: f64,
    /// Largest centroid distance (scaled units) at which a new segment keeps an old id.
    /// Default 1.0, one standard deviation.
    pub match_distance_limit: f64,
    /// Categories listed per segment profile. Default 3.
    pub top_categories: usize,
    /// Customers the segmenter keeps in its [`ReservoirSample`](crate::ReservoirSample).
    /// Not used by [`fit`](super::fit()) itself. Default 100,000.
    pub sample_capacity: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            k_min: 3,
            k_max: 8,
            n_runs: 3,
            seeding: Seeding::GreedyKMeansPlusPlus,
            max_iterations: 300,
            tolerance: 1e-4,
            seed: 42,
            quality_metric: QualityMetric::Silhouette,
            quality_sample_size: 2_000,
            warm_start_tolerance: 0.02,
            match_distance_limit: 1.0,
            top_categories: 3,
            sample_capacity: 100_000,
        }
    }
}

impl FitConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), FitError> {
        let fail = |m: &str| Err(FitError::Config(m.to_owned()));
        if self.k_min < 2 {
            return fail("k_min must be at least 2");
        }
        if self.k_max < self.k_min {
            return fail("k_max must be at least k_min");
        }
        if self.n_runs == 0 {
            return fail("n_runs must be at least 1");
        }
        if self.max_iterations == 0 {
            return fail("max_iterations must be at least 1");
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return fail("tolerance must be a positive number");
        }
        if self.quality_sample_size < 2 {
            return fail("quality_sample_size must be at least 2");
        }
        if !(self.warm_start_tolerance.is_finite() && self.warm_start_tolerance >= 0.0) {
            return fail("warm_start_tolerance must be a number >= 0");
        }
        if !(self.match_distance_limit.is_finite() && self.match_distance_limit > 0.0) {
            return fail("match_distance_limit must be a positive number");
        }
        Ok(())
    }
}

/// How one candidate scored.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateScore {
    /// Number of segments.
    pub k: usize,
    /// Started from the previous model's centroids.
    pub warm_start: bool,
    /// Quality score; `None` when the candidate was unusable (an empty segment, an undefined
    /// score).
    pub quality: Option<f64>,
    /// Sum of squared distances of the sample to the nearest centroid (scaled space).
    pub inertia: f64,
}

/// A fitted model and what goes with it.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOutcome {
    /// The model, segments ordered by id.
    pub model: SegmentModel,
    /// One profile per segment (ordered by id), then one `retired` profile per retired id.
    pub profiles: Vec<SegmentProfile>,
    /// Number of segments.
    pub k: usize,
    /// The model's quality score (also in the model).
    pub quality: f64,
    /// Whether the warm-started candidate was kept.
    pub warm_started: bool,
    /// Every candidate tried, cold ones by k, then the warm one.
    pub candidates: Vec<CandidateScore>,
    /// Segment id of each sample row, in sample order.
    pub sample_segments: Vec<i32>,
    /// Ids of the previous model that are gone.
    pub retired_segment_ids: Vec<i32>,
}

/// How the KMeans runs of a fit are seeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seeding {
    /// Greedy k-means++ ([`crate::seeding`]), as scikit-learn; each of the `n_runs` runs is
    /// seeded anew and iterated by linfa.
    #[default]
    GreedyKMeansPlusPlus,
    /// linfa's own k-means++ (`KMeansInit::KMeansPlusPlus`) with linfa's `n_runs`.
    KMeansPlusPlus,
}
