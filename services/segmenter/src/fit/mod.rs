//! Fitting a segment model: transform, KMeans over a range of k, warm start, stable ids,
//! labels and segment profiles.
//!
//! [`fit`] is pure: same sample, same previous model, same configuration -> same model, bit for
//! bit (every random choice is seeded from [`FitConfig::seed`]; linfa's parallel loops do not
//! change results). The candidates' KMeans runs and their silhouettes run on every core at
//! once (rayon); each run has its own seed and each sum its own order, so the outcome does not
//! depend on the cores either. It reads no clock: the caller measures the fit duration.
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
//! 6. Labels and descriptions ([`crate::labels`]: a one-to-one matching of segments to a
//!    catalogue of marketing labels by the centroids' z-scores, a descriptive label from the
//!    two most distinctive features where none fits; a kept id keeps its label unless its
//!    character changed) and one
//!    [`SegmentProfile`](fitstream_contracts::SegmentProfile) per segment: its size in the
//!    sample, the centroid in original units (the inverse transform of the centroid: for log1p
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
//!
//! # Layout
//! - this file: [`fit`] itself (steps 1-4: checks, scaling, the candidates, the warm start)
//!   and the previous model as the fit reads it.
//! - `config`: what a fit is asked and answers: [`FitConfig`], [`Seeding`], [`SampleRow`],
//!   [`FitOutcome`], [`CandidateScore`].
//! - `score`: scoring the candidate clusterings (members, inertia, the quality scores, the
//!   silhouettes side by side).
//! - `runs`: KMeans runs ([`kmeans`], [`Clustering`]) and [`inertia`].
//! - `outcome`: steps 5 and 6: stable ids, labels, the model and the segment profiles.

mod config;
mod outcome;
mod runs;
mod score;

use fitstream_contracts::{EventTime, SegmentModel};
use linfa_clustering::KMeansInit;
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

pub use self::config::{CandidateScore, FitConfig, FitOutcome, SampleRow, Seeding};
use self::outcome::build_outcome;
pub use self::runs::{Clustering, inertia, kmeans};
use self::runs::{run_kmeans, to_matrix};
use self::score::{Candidate, Scorer};
use crate::error::FitError;
use crate::quality::QualityMetric;
use crate::transform::{FEATURE_COUNT, FeatureVector, Scaler};

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
        QualityMetric::Silhouette => Some(matrix.select(Axis(0), &quality_rows)),
        QualityMetric::DaviesBouldin => None,
    };
    let scorer = Scorer {
        points: &points,
        matrix: matrix.view(),
        quality_rows: &quality_rows,
        silhouette,
        metric: cfg.quality_metric,
    };

    // Every candidate first (each k cold, then the warm start), on every core, then all
    // scored side by side. Each run is seeded on its own, so the results are those of runs
    // one after the other, and so is the first error in that order.
    let mut jobs: Vec<(usize, Option<Array2<f64>>)> =
        (cfg.k_min..=k_hi).map(|k| (k, None)).collect();
    if let Some(p) = &prev {
        let kp = p.centroids.len();
        if (cfg.k_min..=k_hi).contains(&kp) {
            let mut init = Array2::zeros((kp, FEATURE_COUNT));
            for (mut row, c) in init.rows_mut().into_iter().zip(&p.centroids) {
                let mapped = scaler.rescale_from(&p.scaler, c);
                row.iter_mut().zip(mapped).for_each(|(dst, v)| *dst = v);
            }
            jobs.push((kp, Some(init)));
        }
    }
    let view = matrix.view();
    let runs: Vec<Result<(Array2<f64>, bool), FitError>> = jobs
        .into_par_iter()
        .map(|(k, init)| match init {
            None => {
                let seed = cfg.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                kmeans(view, k, seed, cfg).map(|c| (c.centroids, false))
            }
            Some(init) => run_kmeans(view, k, KMeansInit::Precomputed(init), 1, cfg.seed, cfg)
                .map(|c| (c, true)),
        })
        .collect();
    let runs = runs.into_iter().collect::<Result<Vec<_>, _>>()?;

    let mut candidates = Vec::new();
    let mut best: Option<Candidate> = None;
    let mut last_problem = String::from("no candidate");
    for (scored, score) in scorer.score_all(runs) {
        let warm = score.warm_start;
        candidates.push(score);
        match scored {
            // The best cold score wins; the warm start (the last) is kept when it is within
            // the tolerance of the best cold one.
            Ok(c) if !warm => {
                if best
                    .as_ref()
                    .is_none_or(|b| cfg.quality_metric.better(c.quality, b.quality))
                {
                    best = Some(c);
                }
            }
            Ok(c) => {
                let keep = best.as_ref().is_none_or(|b| {
                    cfg.quality_metric
                        .within(c.quality, b.quality, cfg.warm_start_tolerance)
                });
                if keep {
                    best = Some(c);
                }
            }
            Err(problem) => last_problem = problem,
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
