//! Fitting a segment model: transform, KMeans over a range of k, warm start, stable ids,
//! labels and segment profiles.
//!
//! [`fit`] is pure: same sample, same previous model, same configuration -> same model, bit for
//! bit (every random choice is seeded from [`FitConfig::seed`]; linfa's parallel loops do not
//! change results). It reads no clock: the caller measures the fit duration.
//!
//! # Steps
//! 1. Refuse an empty sample ([`FitError::EmptySample`]) or one with fewer profiles than
//!    `k_min` ([`FitError::SampleTooSmall`]): the segmenter keeps its current model (or has
//!    none yet) and tries again at the next refit. We chose an error over a single-segment
//!    model: one segment called "everybody" would be published to marketing as if it meant
//!    something, and its id would then be carried into real models.
//! 2. Fit the [`Scaler`] on the sample (a new one per model version) and transform.
//! 3. For each k in `k_min..=min(k_max, n)`: linfa KMeans ([`kmeans`]), the best of `n_runs`
//!    runs by inertia, each seeded by greedy k-means++ ([`crate::seeding`]; linfa's plain
//!    k-means++ is selectable with [`FitConfig::seeding`]), at most `max_iterations`
//!    iterations, `tolerance` on the shift of the centroids (Frobenius norm, scaled units). A
//!    seed per k, derived from `seed`. The candidate is scored with the [`QualityMetric`]:
//!    silhouette on a fixed sub-sample of at most `quality_sample_size` profiles (the same
//!    sub-sample for every k), or Davies-Bouldin on the whole sample. A candidate with an
//!    empty segment or an undefined score is skipped. The best score wins; on a tie, the
//!    smaller k.
//! 4. Warm start. When a previous model exists, is compatible (same features, usable scaler,
//!    distinct ids) and its k lies in the range, KMeans also runs once from the previous
//!    centroids (mapped into the new scaled space). **Rule: the warm candidate is kept when
//!    its score is at most `warm_start_tolerance` (in the metric's own units) worse than the
//!    best cold candidate's.** Segments that stay put are worth more to marketing than a
//!    slightly better score at another k: audiences keep their meaning and their size.
//! 5. Stable ids ([`crate::matching`]): new centroids are matched to the previous ones by the
//!    Hungarian algorithm, accepting pairs closer than `match_distance_limit` (scaled units of
//!    the new model). Unmatched centroids get fresh ids from `next_segment_id`, which only
//!    grows; previous ids without a match are retired and never come back. The first model's
//!    ids are 1..=k.
//! 6. Labels ([`crate::labels`]) and one [`SegmentProfile`] per segment: its size in the sample,
//!    the centroid in original units (the inverse transform of the centroid: for log1p
//!    features a geometric-mean-like "typical member", not the arithmetic mean), the most
//!    frequent top categories of its members, the model's quality score; plus a
//!    `retired: true` profile (size 0, last known centroid) for every retired id.
//!
//! # linfa 0.8 details that matter here
//! - Its centroid update treats the old centroid as one more member ("m_k-means"), so a
//!   converged centroid differs from the members' mean by O(1/size); negligible at sample
//!   sizes, and the inertia equals scikit-learn's on the benchmark.
//! - `KMeans::cluster_count()` counts the memberships of the *last* run, not of the best one,
//!   and `inertia()` is a per-sample mean taken before the last centroid update. So this module
//!   assigns members and computes inertia itself from the returned centroids.
//! - `KMeansInit::Precomputed` asserts (panics on) the shape of the centroids; [`kmeans`]
//!   only passes matrices of k rows, with k at most the number of rows of the sample.
//!
//! An incompatible previous model (other features, a broken scaler, duplicate ids) still
//! counts for the version and for `next_segment_id`; its segments are all retired and no warm
//! start is tried.

use std::collections::HashMap;

use fitstream_contracts::{EventTime, ModelSegment, ProfileFeatures, SegmentModel, SegmentProfile};
use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng as _;
use serde::{Deserialize, Serialize};

use crate::assign::nearest;
use crate::error::FitError;
use crate::labels::{LabelContext, label_segments};
use crate::matching::match_centroids;
use crate::quality::{QualityMetric, SilhouetteSample, davies_bouldin};
use crate::seeding::greedy_kmeans_plus_plus;
use crate::transform::{FEATURE_COUNT, FeatureVector, Scaler};

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
    /// Not used by [`fit`] itself. Default 100,000.
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

/// A usable clustering of the sample.
struct Candidate {
    centroids: Vec<FeatureVector>,
    labels: Vec<usize>,
    quality: f64,
    warm: bool,
}

/// The previous model, when this build can compare with it.
struct Previous<'a> {
    model: &'a SegmentModel,
    scaler: Scaler,
    centroids: Vec<FeatureVector>,
}

impl<'a> Previous<'a> {
    fn read(model: &'a SegmentModel) -> Option<Previous<'a>> {
        let scaler = Scaler::from_model(model).ok()?;
        let mut centroids = Vec::with_capacity(model.segments.len());
        let mut ids = Vec::with_capacity(model.segments.len());
        for s in &model.segments {
            let c = FeatureVector::try_from(s.centroid.as_slice()).ok()?;
            if !c.iter().all(|v| v.is_finite()) || ids.contains(&s.segment_id) {
                return None;
            }
            ids.push(s.segment_id);
            centroids.push(c);
        }
        Some(Previous {
            model,
            scaler,
            centroids,
        })
    }
}

/// Fits a new model version on `sample`; see the module doc for every step and rule.
///
/// `previous` is the model in use (for the version, warm start and stable ids); `cutoff` is the
/// event time the sample reflects, stored as the model's `cutoff_event_time`.
pub fn fit(
    sample: &[SampleRow],
    previous: Option<&SegmentModel>,
    cutoff: EventTime,
    cfg: &FitConfig,
) -> Result<FitOutcome, FitError> {
    cfg.validate()?;
    let n = sample.len();
    if n == 0 {
        return Err(FitError::EmptySample);
    }
    if n < cfg.k_min {
        return Err(FitError::SampleTooSmall {
            size: n,
            k_min: cfg.k_min,
        });
    }
    let version = match previous {
        Some(p) => p
            .version
            .max(0)
            .checked_add(1)
            .ok_or(FitError::IdsExhausted)?,
        None => 1,
    };

    let scaler = Scaler::fit(sample.iter().map(|r| &r.1));
    let points: Vec<FeatureVector> = sample.iter().map(|r| scaler.transform(&r.1)).collect();
    let matrix = to_matrix(&points);
    let prev = previous.and_then(Previous::read);
    let k_hi = cfg.k_max.min(n);

    // The silhouette sub-sample, the same for every candidate.
    let quality_rows: Vec<usize> = if n <= cfg.quality_sample_size {
        (0..n).collect()
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5111_0E77_E5A3_11E5);
        let mut rows = rand::seq::index::sample(&mut rng, n, cfg.quality_sample_size).into_vec();
        rows.sort_unstable();
        rows
    };
    let silhouette = match cfg.quality_metric {
        QualityMetric::Silhouette => Some(SilhouetteSample::new(
            matrix.select(Axis(0), &quality_rows).view(),
        )),
        QualityMetric::DaviesBouldin => None,
    };
    let scorer = Scorer {
        points: &points,
        matrix: matrix.view(),
        quality_rows: &quality_rows,
        silhouette,
        metric: cfg.quality_metric,
    };

    let mut candidates = Vec::new();
    let mut best: Option<Candidate> = None;
    let mut last_problem = String::from("no candidate");
    for k in cfg.k_min..=k_hi {
        let seed = cfg.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let clustering = kmeans(matrix.view(), k, seed, cfg)?;
        let (scored, score) = scorer.score(clustering.centroids, false);
        candidates.push(score);
        match scored {
            Ok(c) => {
                if best
                    .as_ref()
                    .is_none_or(|b| cfg.quality_metric.better(c.quality, b.quality))
                {
                    best = Some(c);
                }
            }
            Err(problem) => last_problem = problem,
        }
    }

    if let Some(p) = &prev {
        let kp = p.centroids.len();
        if (cfg.k_min..=k_hi).contains(&kp) {
            let mut init = Array2::zeros((kp, FEATURE_COUNT));
            for (mut row, c) in init.rows_mut().into_iter().zip(&p.centroids) {
                let mapped = scaler.rescale_from(&p.scaler, c);
                row.iter_mut().zip(mapped).for_each(|(dst, v)| *dst = v);
            }
            let centroids = run_kmeans(
                matrix.view(),
                kp,
                KMeansInit::Precomputed(init),
                1,
                cfg.seed,
                cfg,
            )?;
            let (scored, score) = scorer.score(centroids, true);
            candidates.push(score);
            match scored {
                Ok(warm) => {
                    let keep = best.as_ref().is_none_or(|b| {
                        cfg.quality_metric
                            .within(warm.quality, b.quality, cfg.warm_start_tolerance)
                    });
                    if keep {
                        best = Some(warm);
                    }
                }
                Err(problem) => last_problem = problem,
            }
        }
    }

    let Some(chosen) = best else {
        return Err(FitError::NoUsableClustering {
            k_min: cfg.k_min,
            k_max: k_hi,
            reason: last_problem,
        });
    };
    build_outcome(
        sample,
        previous,
        prev.as_ref(),
        &scaler,
        chosen,
        candidates,
        version,
        cutoff,
        cfg,
    )
}

/// Scores candidates against the sample.
struct Scorer<'a> {
    points: &'a [FeatureVector],
    matrix: ArrayView2<'a, f64>,
    quality_rows: &'a [usize],
    silhouette: Option<SilhouetteSample>,
    metric: QualityMetric,
}

impl Scorer<'_> {
    fn score(
        &self,
        centroids: Array2<f64>,
        warm: bool,
    ) -> (Result<Candidate, String>, CandidateScore) {
        let k = centroids.nrows();
        let mut cents: Vec<FeatureVector> = Vec::with_capacity(k);
        for row in centroids.rows() {
            let mut c = [0.0; FEATURE_COUNT];
            c.iter_mut().zip(row).for_each(|(dst, v)| *dst = *v);
            cents.push(c);
        }
        let mut labels = Vec::with_capacity(self.points.len());
        let mut sizes = vec![0usize; k];
        let mut inertia = 0.0;
        for z in self.points {
            let (c, d2) = nearest(z, cents.iter());
            labels.push(c);
            sizes[c] += 1;
            inertia += d2;
        }
        let mut score = CandidateScore {
            k,
            warm_start: warm,
            quality: None,
            inertia,
        };
        if let Some(empty) = sizes.iter().position(|&s| s == 0) {
            return (
                Err(format!("k = {k}: segment {empty} has no member")),
                score,
            );
        }
        let quality = match (&self.silhouette, self.metric) {
            (Some(s), QualityMetric::Silhouette) => {
                let sub: Vec<usize> = self.quality_rows.iter().map(|&i| labels[i]).collect();
                s.score(&sub)
            }
            _ => davies_bouldin(self.matrix, &labels, centroids.view()),
        };
        match quality.filter(|q| q.is_finite()) {
            Some(q) => {
                score.quality = Some(q);
                (
                    Ok(Candidate {
                        centroids: cents,
                        labels,
                        quality: q,
                        warm,
                    }),
                    score,
                )
            }
            None => (Err(format!("k = {k}: quality score undefined")), score),
        }
    }
}

fn to_matrix(points: &[FeatureVector]) -> Array2<f64> {
    let mut m = Array2::zeros((points.len(), FEATURE_COUNT));
    for (mut row, p) in m.rows_mut().into_iter().zip(points) {
        row.iter_mut().zip(p).for_each(|(dst, v)| *dst = *v);
    }
    m
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

/// A KMeans result at a fixed k.
#[derive(Clone, Debug, PartialEq)]
pub struct Clustering {
    /// Centroids, k × features.
    pub centroids: Array2<f64>,
    /// Sum of squared distances of the rows to their nearest centroid.
    pub inertia: f64,
}

/// KMeans at a fixed `k` on the rows of `x`, exactly as [`fit`] runs it for one candidate:
/// `cfg.n_runs` runs seeded by `cfg.seeding` from `seed`, iterated by linfa (at most
/// `cfg.max_iterations`, `cfg.tolerance`), the run with the lowest inertia kept.
pub fn kmeans(
    x: ArrayView2<f64>,
    k: usize,
    seed: u64,
    cfg: &FitConfig,
) -> Result<Clustering, FitError> {
    let n = x.nrows();
    if k == 0 || k > n {
        return Err(FitError::SampleTooSmall {
            size: n,
            k_min: k.max(1),
        });
    }
    match cfg.seeding {
        Seeding::KMeansPlusPlus => {
            let centroids = run_kmeans(x, k, KMeansInit::KMeansPlusPlus, cfg.n_runs, seed, cfg)?;
            let inertia = inertia(x, centroids.view());
            Ok(Clustering { centroids, inertia })
        }
        Seeding::GreedyKMeansPlusPlus => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut best: Option<Clustering> = None;
            for _ in 0..cfg.n_runs.max(1) {
                let init = greedy_kmeans_plus_plus(x, k, &mut rng);
                let centroids = run_kmeans(x, k, KMeansInit::Precomputed(init), 1, seed, cfg)?;
                let inertia = inertia(x, centroids.view());
                if best.as_ref().is_none_or(|b| inertia < b.inertia) {
                    best = Some(Clustering { centroids, inertia });
                }
            }
            best.ok_or(FitError::SampleTooSmall { size: n, k_min: k })
        }
    }
}

/// Sum of squared distances of the rows of `x` to their nearest centroid.
pub fn inertia(x: ArrayView2<f64>, centroids: ArrayView2<f64>) -> f64 {
    let mut total = 0.0;
    for row in x.rows() {
        let mut best = f64::INFINITY;
        for c in centroids.rows() {
            let d2: f64 = row
                .iter()
                .zip(c.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            best = best.min(d2);
        }
        total += best;
    }
    total
}

/// linfa KMeans; returns the centroids (k × features). `init` must have k rows.
fn run_kmeans(
    x: ArrayView2<f64>,
    k: usize,
    init: KMeansInit<f64>,
    n_runs: usize,
    seed: u64,
    cfg: &FitConfig,
) -> Result<Array2<f64>, FitError> {
    let dataset = DatasetBase::from(x);
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(n_runs)
        .max_n_iterations(cfg.max_iterations)
        .tolerance(cfg.tolerance)
        .init_method(init)
        .fit(&dataset)
        .map_err(|source| FitError::KMeans { k, source })?;
    Ok(model.centroids().clone())
}

#[allow(clippy::too_many_arguments)]
fn build_outcome(
    sample: &[SampleRow],
    previous: Option<&SegmentModel>,
    prev: Option<&Previous<'_>>,
    scaler: &Scaler,
    chosen: Candidate,
    candidates: Vec<CandidateScore>,
    version: i64,
    cutoff: EventTime,
    cfg: &FitConfig,
) -> Result<FitOutcome, FitError> {
    let k = chosen.centroids.len();

    // Stable ids.
    let matches = match prev {
        Some(p) => {
            let old: Vec<FeatureVector> = p
                .centroids
                .iter()
                .map(|c| scaler.rescale_from(&p.scaler, c))
                .collect();
            match_centroids(
                to_matrix(&chosen.centroids).view(),
                to_matrix(&old).view(),
                cfg.match_distance_limit,
            )
        }
        None => vec![None; k],
    };
    let mut next_id = match previous {
        Some(p) => {
            let above_all = p
                .segments
                .iter()
                .map(|s| s.segment_id)
                .max()
                .map_or(Some(1), |m| m.checked_add(1));
            above_all
                .ok_or(FitError::IdsExhausted)?
                .max(p.next_segment_id)
                .max(1)
        }
        None => 1,
    };
    let mut ids = Vec::with_capacity(k);
    for m in &matches {
        match (m, prev) {
            (Some(j), Some(p)) => ids.push(p.model.segments[*j].segment_id),
            _ => {
                ids.push(next_id);
                next_id = next_id.checked_add(1).ok_or(FitError::IdsExhausted)?;
            }
        }
    }
    let kept: Vec<i32> = ids.clone();
    let retired: Vec<&fitstream_contracts::ModelSegment> = match previous {
        Some(p) => {
            let mut r: Vec<_> = p
                .segments
                .iter()
                .filter(|s| prev.is_none() || !kept.contains(&s.segment_id))
                .collect();
            r.sort_by_key(|s| s.segment_id);
            r
        }
        None => Vec::new(),
    };

    // Order segments by id.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by_key(|&i| ids[i]);
    let centroids: Vec<FeatureVector> = order.iter().map(|&i| chosen.centroids[i]).collect();
    let sorted_ids: Vec<i32> = order.iter().map(|&i| ids[i]).collect();
    let labels = label_segments(
        &centroids,
        scaler,
        &LabelContext::from_sample(sample.iter().map(|r| &r.1)),
    );

    // Members per segment (position in id order).
    let mut position = vec![0usize; k];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut sizes = vec![0i64; k];
    let mut categories: Vec<HashMap<&str, u64>> = vec![HashMap::new(); k];
    let mut sample_segments = Vec::with_capacity(sample.len());
    for (row, &c) in sample.iter().zip(&chosen.labels) {
        let pos = position[c];
        sizes[pos] += 1;
        sample_segments.push(sorted_ids[pos]);
        for cat in &row.2 {
            *categories[pos].entry(cat.as_str()).or_default() += 1;
        }
    }

    let mut profiles = Vec::with_capacity(k + retired.len());
    let mut segments = Vec::with_capacity(k);
    for pos in 0..k {
        let original = scaler.inverse_transform(&centroids[pos]);
        let mut cats: Vec<(&str, u64)> = categories[pos].iter().map(|(c, n)| (*c, *n)).collect();
        cats.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        profiles.push(profile(
            sorted_ids[pos],
            &labels[pos],
            sizes[pos],
            version,
            chosen.quality,
            &original,
            cats.iter()
                .take(cfg.top_categories)
                .map(|(c, _)| (*c).to_owned())
                .collect(),
            false,
        ));
        segments.push(ModelSegment {
            segment_id: sorted_ids[pos],
            label: labels[pos].clone(),
            centroid: centroids[pos].to_vec(),
        });
    }
    for s in &retired {
        let original = match (prev, FeatureVector::try_from(s.centroid.as_slice())) {
            (Some(p), Ok(c)) => p.scaler.inverse_transform(&c),
            _ => ProfileFeatures::default(),
        };
        profiles.push(profile(
            s.segment_id,
            &s.label,
            0,
            version,
            chosen.quality,
            &original,
            Vec::new(),
            true,
        ));
    }

    let model = SegmentModel {
        version,
        cutoff_event_time: cutoff,
        feature_names: ProfileFeatures::NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        log1p_features: scaler.log1p_feature_names(),
        means: scaler.means().to_vec(),
        scales: scaler.scales().to_vec(),
        segments,
        quality_metric: cfg.quality_metric.name().to_owned(),
        quality_score: chosen.quality,
        next_segment_id: next_id,
        sample_size: i64::try_from(sample.len()).unwrap_or(i64::MAX),
    };
    Ok(FitOutcome {
        model,
        profiles,
        k,
        quality: chosen.quality,
        warm_started: chosen.warm,
        candidates,
        sample_segments,
        retired_segment_ids: retired.iter().map(|s| s.segment_id).collect(),
    })
}

#[allow(clippy::too_many_arguments)]
fn profile(
    segment_id: i32,
    label: &str,
    size: i64,
    model_version: i64,
    quality_score: f64,
    centroid: &ProfileFeatures,
    top_categories: Vec<String>,
    retired: bool,
) -> SegmentProfile {
    SegmentProfile {
        segment_id,
        label: label.to_owned(),
        size,
        model_version,
        quality_score,
        recency_days: centroid.recency_days,
        orders: centroid.frequency,
        spend: centroid.monetary,
        avg_order_value: centroid.avg_order_value,
        sessions: centroid.sessions,
        cart_abandonment_rate: centroid.cart_abandonment_rate,
        conversion_rate: centroid.conversion_rate,
        top_categories,
        retired,
    }
}
