//! fitstream's segment model: from customer profiles to segments marketing can use.
//!
//! This crate is the model library of the segmenter service, plus the service's topology
//! ([`app`]). The library is pure: no Kafka, no clock, no global state. The runtime feeds it
//! profiles and asks it for a model; the profiler assigns profiles between refits with
//! [`SegmentAssigner`], from the model contract crate `fitstream-model` that both use. `app`
//! runs on the runtime's drivers and reads no clock either (a stopwatch passed in measures
//! fits).
//!
//! Layout:
//! - [`transform`]: `log1p` on heavy-tailed features, then standard scaling frozen per model
//!   version ([`Scaler`]); from the `fitstream-model` crate, re-exported.
//! - [`reservoir`]: the bounded, seeded, per-customer sample the model is fitted on
//!   ([`ReservoirSample`], bottom-k by a seeded hash of the customer id).
//! - [`fit`](mod@fit): KMeans over a range of k chosen by a quality score, warm start from the
//!   previous model, stable ids, labels, segment profiles ([`fit()`], [`FitConfig`],
//!   [`FitOutcome`]); its files: configuration and outcome types, candidate scoring, KMeans
//!   runs and inertia, building the outcome.
//! - [`quality`]: silhouette, Davies-Bouldin and the adjusted Rand index.
//! - [`seeding`]: greedy k-means++ initial centres for every KMeans run.
//! - [`matching`]: Hungarian matching of new centroids to old ones with a distance limit.
//! - [`labels`]: what names and describes a segment: a catalogue of marketing labels ("loyal
//!   high spenders", "at risk", ...) matched one-to-one by z-scores, or a descriptive label.
//! - [`assign`](mod@assign): nearest-centroid assignment without allocation; from the
//!   `fitstream-model` crate, re-exported.
//! - [`synthetic`]: seeded synthetic customers from known personas, for tests and benchmarks.
//! - [`error`]: [`FitError`] (classified by [`FitErrorClass`]) and [`ModelError`] (from
//!   `fitstream-model`, re-exported).
//! - [`app`]: the service's topology for the drivers ([`app::SegmenterApp`]): profiles in,
//!   refits at event-time boundaries, models and segment profiles out.

pub mod app;
pub mod error;
pub mod fit;
pub mod labels;
pub mod matching;
pub mod quality;
pub mod reservoir;
pub mod seeding;
pub mod synthetic;

// The model contract's modules; `assign` names both the module and the function.
pub use fitstream_model::{assign, transform};

pub use assign::{Assignment, SegmentAssigner};
pub use error::{FitError, FitErrorClass, ModelError};
pub use fit::{CandidateScore, Clustering, FitConfig, FitOutcome, SampleRow, Seeding, fit, kmeans};
pub use quality::{
    QualityMetric, adjusted_rand_index, davies_bouldin, silhouette_score, silhouette_scores,
};
pub use reservoir::{ReservoirOffer, ReservoirSample};
pub use transform::{FEATURE_COUNT, FeatureVector, LOG1P_FEATURES, Scaler};
