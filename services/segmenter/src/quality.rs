//! Clustering quality (silhouette, Davies-Bouldin) and agreement (adjusted Rand index).
//!
//! - Silhouette (Rousseeuw 1987): for a point `i` in cluster `A`, `a(i)` is its mean distance
//!   to the other members of `A`, `b(i)` the smallest mean distance to the members of another
//!   cluster, `s(i) = (b - a) / max(a, b)`, and 0 for a point alone in its cluster (as
//!   scikit-learn). The score is the mean of `s(i)`, in [-1, 1], higher is better. It costs
//!   O(m² d), so it is computed on a bounded sub-sample of `m` points (default 2,000); the
//!   pairwise distances of that sub-sample are computed once ([`SilhouetteSample`]) and
//!   reused for every candidate k, which a fit scores side by side ([`silhouette_scores`]).
//!   Every point's sum of distances to a cluster adds them in the same order (the other points
//!   by increasing index), on any number of cores.
//! - Davies-Bouldin (1979): with `S_i` the mean distance of cluster `i`'s members to its
//!   centroid and `M_ij` the distance between centroids, `DB = mean_i max_{j≠i} (S_i + S_j) /
//!   M_ij`, in [0, ∞), lower is better. O(n k d), computed on the whole sample.
//! - Adjusted Rand index (Hubert and Arabie 1985), from the contingency table `n_ij`:
//!   `ARI = (Σ C(n_ij,2) - E) / (½ (Σ C(a_i,2) + Σ C(b_j,2)) - E)` with
//!   `E = Σ C(a_i,2) Σ C(b_j,2) / C(n,2)`. 1 for identical partitions (labels may be
//!   permuted), about 0 for independent ones.
//!
//! Distances are Euclidean, in scaled feature space.

use std::collections::HashMap;

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which score chooses k.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityMetric {
    /// Mean silhouette on a sub-sample; higher is better.
    #[default]
    Silhouette,
    /// Davies-Bouldin index on the whole sample; lower is better.
    DaviesBouldin,
}

impl QualityMetric {
    /// The name stored in [`SegmentModel::quality_metric`](fitstream_contracts::SegmentModel).
    pub fn name(self) -> &'static str {
        match self {
            QualityMetric::Silhouette => "silhouette",
            QualityMetric::DaviesBouldin => "davies_bouldin",
        }
    }

    /// Whether score `a` is strictly better than score `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            QualityMetric::Silhouette => a > b,
            QualityMetric::DaviesBouldin => a < b,
        }
    }

    /// Whether score `a` is at most `tolerance` (in the metric's own units) worse than `b`.
    pub fn within(self, a: f64, b: f64, tolerance: f64) -> bool {
        match self {
            QualityMetric::Silhouette => a >= b - tolerance,
            QualityMetric::DaviesBouldin => a <= b + tolerance,
        }
    }
}

fn distance(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Pairwise distances of a sub-sample, computed once and scored for many labelings.
#[derive(Clone, Debug)]
pub struct SilhouetteSample {
    /// Points in the sub-sample.
    m: usize,
    /// Condensed upper triangle: distance of `(i, j)`, `i < j`, at `i * m - i * (i + 1) / 2 + j - i - 1`.
    distances: Vec<f64>,
}

impl SilhouetteSample {
    /// Computes the pairwise distances of `points` (one row per point).
    pub fn new(points: ArrayView2<f64>) -> SilhouetteSample {
        let (m, d) = points.dim();
        // Row-major copy: plain slices are much faster than row views in the O(m²) loop.
        let flat: Vec<f64> = points.iter().copied().collect();
        let mut distances = vec![0.0; m * m.saturating_sub(1) / 2];
        if d > 0 {
            // Row i of the triangle (its distances to the points after it) is computed on
            // whichever core takes it; each is the same arithmetic wherever it runs.
            let mut rows: Vec<(usize, &mut [f64])> = Vec::with_capacity(m);
            let mut rest = distances.as_mut_slice();
            for i in 0..m {
                let (row, tail) = rest.split_at_mut(m - i - 1);
                rows.push((i, row));
                rest = tail;
            }
            let point = |i: usize| &flat[i * d..(i + 1) * d];
            rows.into_par_iter().for_each(|(i, row)| {
                let a = point(i);
                for (j, out) in ((i + 1)..m).zip(row.iter_mut()) {
                    let d2: f64 = a.iter().zip(point(j)).map(|(x, y)| (x - y) * (x - y)).sum();
                    *out = d2.sqrt();
                }
            });
        }
        SilhouetteSample { m, distances }
    }

    /// Points in the sub-sample.
    pub fn len(&self) -> usize {
        self.m
    }

    /// Whether the sub-sample is empty.
    pub fn is_empty(&self) -> bool {
        self.m == 0
    }

    /// Mean silhouette of the labeling (`labels[i]` is the cluster of point `i`, any values).
    /// `None` when fewer than two clusters occur or `labels` has the wrong length.
    pub fn score(&self, labels: &[usize]) -> Option<f64> {
        if labels.len() != self.m {
            return None;
        }
        let (dense, k) = densify(labels);
        if k < 2 {
            return None;
        }
        // sums[i * k + c] = sum of distances from point i to the members of cluster c.
        let mut sums = vec![0.0; self.m * k];
        let mut idx = 0;
        for i in 0..self.m {
            for j in (i + 1)..self.m {
                let d = self.distances[idx];
                idx += 1;
                sums[i * k + dense[j]] += d;
                sums[j * k + dense[i]] += d;
            }
        }
        Some(mean_silhouette(&dense, k, &sums))
    }
}

/// Mean silhouette of `labels` over `points` (all pairs; keep `points` small).
/// `None` when fewer than two clusters occur or the lengths differ.
pub fn silhouette_score(points: ArrayView2<f64>, labels: &[usize]) -> Option<f64> {
    SilhouetteSample::new(points).score(labels)
}

/// Mean silhouettes of several labelings of the same points (`labelings[q][i]` is the cluster
/// of point `i` in labeling `q`, any values), in parallel: the pairwise distances computed
/// once, row by row on every core, then the labelings scored side by side. Each score is what
/// [`SilhouetteSample::score`] gives for that labeling alone, bit for bit. `None` for a
/// labeling with the wrong length or fewer than two clusters.
pub fn silhouette_scores(points: ArrayView2<f64>, labelings: &[&[usize]]) -> Vec<Option<f64>> {
    let sample = SilhouetteSample::new(points);
    labelings.par_iter().map(|l| sample.score(l)).collect()
}

/// The mean of `s(i)` from each point's sums of distances to each cluster
/// (`sums[i * k + c]`).
fn mean_silhouette(dense: &[usize], k: usize, sums: &[f64]) -> f64 {
    let m = dense.len();
    let mut sizes = vec![0usize; k];
    for &c in dense {
        sizes[c] += 1;
    }
    let mut total = 0.0;
    for i in 0..m {
        let own = dense[i];
        if sizes[own] < 2 {
            continue; // s(i) = 0
        }
        let a = sums[i * k + own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own)
            .map(|c| sums[i * k + c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let denom = a.max(b);
        if denom > 0.0 {
            total += (b - a) / denom;
        }
    }
    total / m as f64
}

/// Davies-Bouldin index of `labels` over `points` with the given `centroids` (row `c` is the
/// centroid of cluster `c`). Empty clusters are skipped; `None` when fewer than two clusters
/// have members or the shapes do not fit. Two coinciding centroids give infinity.
pub fn davies_bouldin(
    points: ArrayView2<f64>,
    labels: &[usize],
    centroids: ArrayView2<f64>,
) -> Option<f64> {
    let k = centroids.nrows();
    if labels.len() != points.nrows()
        || centroids.ncols() != points.ncols()
        || labels.iter().any(|&c| c >= k)
    {
        return None;
    }
    let mut spread = vec![0.0; k];
    let mut sizes = vec![0usize; k];
    for (row, &c) in points.rows().into_iter().zip(labels) {
        spread[c] += distance(row, centroids.row(c));
        sizes[c] += 1;
    }
    let present: Vec<usize> = (0..k).filter(|&c| sizes[c] > 0).collect();
    if present.len() < 2 {
        return None;
    }
    for &c in &present {
        spread[c] /= sizes[c] as f64;
    }
    let mut total = 0.0;
    for &i in &present {
        let worst = present
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| {
                let m = distance(centroids.row(i), centroids.row(j));
                if m > 0.0 {
                    (spread[i] + spread[j]) / m
                } else {
                    f64::INFINITY
                }
            })
            .fold(0.0, f64::max);
        total += worst;
    }
    Some(total / present.len() as f64)
}

/// Adjusted Rand index between two labelings of the same points (label values are arbitrary).
///
/// Returns 1.0 when both labelings are trivially identical (no pair to compare, or both put
/// every point together or every point apart), as scikit-learn does.
///
/// # Panics
/// When the labelings have different lengths: a programming error, never outside data.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len(), "labelings of different lengths");
    let n = a.len();
    let pairs = |x: u64| (x * x.saturating_sub(1) / 2) as f64;
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let mut rows: HashMap<usize, u64> = HashMap::new();
    let mut cols: HashMap<usize, u64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1;
        *rows.entry(x).or_default() += 1;
        *cols.entry(y).or_default() += 1;
    }
    let index: f64 = table.values().map(|&v| pairs(v)).sum();
    let sum_a: f64 = rows.values().map(|&v| pairs(v)).sum();
    let sum_b: f64 = cols.values().map(|&v| pairs(v)).sum();
    let total = pairs(n as u64);
    if total == 0.0 {
        return 1.0;
    }
    let expected = sum_a * sum_b / total;
    let max = 0.5 * (sum_a + sum_b);
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Maps arbitrary labels to 0..k in order of first appearance; returns them and k.
fn densify(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut map: HashMap<usize, usize> = HashMap::new();
    let dense = labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect();
    (dense, map.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn ari_of_identical_labelings_is_one() {
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1, 2], &[0, 0, 1, 1, 2]), 1.0);
        // Permuted label values are the same partition.
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 3, 3]), 1.0);
    }

    #[test]
    fn ari_matches_hand_computed_values() {
        // a = {0,1},{2,3}; b = {0,1},{2},{3}.
        // Σ C(n_ij,2) = 1; Σ C(a_i,2) = 2; Σ C(b_j,2) = 1; C(4,2) = 6;
        // E = 2 * 1 / 6 = 1/3; max = 3/2; ARI = (1 - 1/3) / (3/2 - 1/3) = 4/7.
        let ari = adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]);
        assert!((ari - 4.0 / 7.0).abs() < 1e-12, "{ari}");
        // a = {0,1},{2,3}; b = {0,2},{1,3}: no pair agrees.
        // Σ C(n_ij,2) = 0; E = 2 * 2 / 6 = 2/3; max = 2; ARI = -2/3 / (4/3) = -1/2.
        let ari = adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]);
        assert!((ari + 0.5).abs() < 1e-12, "{ari}");
        // All together vs all apart: E = 0, index = 0 -> 0.
        assert_eq!(adjusted_rand_index(&[0, 0, 0, 0], &[0, 1, 2, 3]), 0.0);
        // Trivial cases.
        assert_eq!(adjusted_rand_index(&[], &[]), 1.0);
        assert_eq!(adjusted_rand_index(&[1, 1, 1], &[2, 2, 2]), 1.0);
    }

    #[test]
    fn silhouette_matches_hand_computed_value() {
        // 1-d points 0, 1 | 10, 11.
        // s(0) = (10.5 - 1) / 10.5, s(1) = (9.5 - 1) / 9.5, symmetric for the other cluster.
        let points = array![[0.0], [1.0], [10.0], [11.0]];
        let s = silhouette_score(points.view(), &[0, 0, 1, 1]).unwrap_or(f64::NAN);
        let expected = (9.5 / 10.5 + 8.5 / 9.5) / 2.0;
        assert!((s - expected).abs() < 1e-12, "{s} vs {expected}");
        // A singleton counts as 0. Points 0, 1 | 10:
        // s(0): a = 1, b = 10 -> 0.9; s(1): a = 1, b = 9 -> 8/9; s(10) = 0.
        let points = array![[0.0], [1.0], [10.0]];
        let s = silhouette_score(points.view(), &[7, 7, 3]).unwrap_or(f64::NAN);
        assert!((s - (0.9 + 8.0 / 9.0) / 3.0).abs() < 1e-12, "{s}");
        assert_eq!(silhouette_score(points.view(), &[1, 1, 1]), None);
        assert_eq!(silhouette_score(points.view(), &[1, 1]), None);
    }

    /// The definition, point by point: the other points by increasing index.
    fn silhouette_by_definition(points: ArrayView2<f64>, labels: &[usize]) -> Option<f64> {
        let (dense, k) = densify(labels);
        if k < 2 || labels.len() != points.nrows() {
            return None;
        }
        let m = points.nrows();
        let mut sums = vec![0.0; m * k];
        for i in 0..m {
            for j in (0..m).filter(|&j| j != i) {
                sums[i * k + dense[j]] += distance(points.row(i), points.row(j));
            }
        }
        Some(mean_silhouette(&dense, k, &sums))
    }

    #[test]
    fn labelings_scored_side_by_side_match_the_definition_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (m, d) in [(0, 3), (1, 3), (2, 1), (3, 0), (57, 9), (400, 9)] {
            // Values on a coarse grid, so that some distances tie.
            let points = ndarray::Array2::from_shape_fn((m, d), |_| {
                f64::from(rng.random_range(-40..40)) / 7.0
            });
            let mut labelings: Vec<Vec<usize>> = (2..=8)
                .map(|k| (0..m).map(|_| rng.random_range(0..k) * 11 + 3).collect())
                .collect();
            labelings.push(vec![5; m]); // one cluster: no score
            labelings.push(vec![0; m.saturating_sub(1)]); // wrong length: no score
            let views: Vec<&[usize]> = labelings.iter().map(Vec::as_slice).collect();
            let bits = |s: Option<f64>| s.map(f64::to_bits);
            let together: Vec<Option<u64>> = silhouette_scores(points.view(), &views)
                .into_iter()
                .map(bits)
                .collect();
            let expected: Vec<Option<u64>> = views
                .iter()
                .map(|l| bits(silhouette_by_definition(points.view(), l)))
                .collect();
            assert_eq!(together, expected, "{m} points in {d} dimensions");
            if m >= 57 {
                assert!(together[..7].iter().all(Option::is_some), "{m} points");
            }
            assert_eq!(together[7..], [None, None]);
        }
    }

    #[test]
    fn davies_bouldin_matches_hand_computed_value() {
        // Clusters {0, 1} and {10, 11} with centroids 0.5 and 10.5: S = 0.5 each, M = 10.
        let points = array![[0.0], [1.0], [10.0], [11.0]];
        let centroids = array![[0.5], [10.5]];
        let db = davies_bouldin(points.view(), &[0, 0, 1, 1], centroids.view()).unwrap_or(f64::NAN);
        assert!((db - 0.1).abs() < 1e-12, "{db}");
        assert_eq!(
            davies_bouldin(points.view(), &[0, 0, 0, 0], centroids.view()),
            None
        );
        assert_eq!(
            davies_bouldin(points.view(), &[0, 0, 2, 2], centroids.view()),
            None
        );
    }

    #[test]
    fn metric_direction() {
        assert!(QualityMetric::Silhouette.better(0.6, 0.5));
        assert!(QualityMetric::DaviesBouldin.better(0.5, 0.6));
        assert!(QualityMetric::Silhouette.within(0.49, 0.5, 0.02));
        assert!(!QualityMetric::Silhouette.within(0.47, 0.5, 0.02));
        assert!(QualityMetric::DaviesBouldin.within(0.51, 0.5, 0.02));
        assert!(!QualityMetric::DaviesBouldin.within(0.53, 0.5, 0.02));
    }
}
