//! KMeans runs: linfa's KMeans seeded as configured, the best run by inertia, and the inertia
//! itself (computed here from the centroids; see the module doc of [`super`]).

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng as _;

use super::{FitConfig, Seeding};
use crate::error::FitError;
use crate::seeding::greedy_kmeans_plus_plus;
use crate::transform::{FEATURE_COUNT, FeatureVector};

/// A KMeans result at a fixed k.
#[derive(Clone, Debug, PartialEq)]
pub struct Clustering {
    /// Centroids, k × features.
    pub centroids: Array2<f64>,
    /// Sum of squared distances of the rows to their nearest centroid.
    pub inertia: f64,
}

/// KMeans at a fixed `k` on the rows of `x`, exactly as [`fit`](super::fit()) runs it for one
/// candidate: `cfg.n_runs` runs seeded by `cfg.seeding` from `seed`, iterated by linfa (at most
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
pub(super) fn run_kmeans(
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

/// The points as a matrix, one row each.
pub(super) fn to_matrix(points: &[FeatureVector]) -> Array2<f64> {
    let mut m = Array2::zeros((points.len(), FEATURE_COUNT));
    for (mut row, p) in m.rows_mut().into_iter().zip(points) {
        row.iter_mut().zip(p).for_each(|(dst, v)| *dst = *v);
    }
    m
}
