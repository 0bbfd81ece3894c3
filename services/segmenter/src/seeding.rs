//! Greedy k-means++ seeding (Arthur and Vassilvitskii 2007, as scikit-learn implements it).
//!
//! Plain k-means++ (linfa's `KMeansInit::KMeansPlusPlus`) draws each next centre with
//! probability proportional to the squared distance to the nearest centre chosen so far. The
//! greedy variant draws `2 + ⌊ln k⌋` candidates at each step and keeps the one that lowers the
//! potential (the sum of squared distances to the nearest centre) the most. On customer data
//! whose segments differ in size and spread, plain k-means++ regularly puts two centres in one
//! segment and none in another, and a few restarts do not always repair it; the greedy variant
//! rarely does. The fit therefore seeds each KMeans run with these centres
//! (`KMeansInit::Precomputed`) and lets linfa iterate.

use ndarray::{Array2, ArrayView2};
use rand::Rng;

/// `k` initial centres chosen among the rows of `x` by greedy k-means++.
///
/// Returns fewer than `k` rows only when `x` has fewer rows than `k`; an empty `x` gives an
/// empty matrix.
pub fn greedy_kmeans_plus_plus(x: ArrayView2<f64>, k: usize, rng: &mut impl Rng) -> Array2<f64> {
    let (n, d) = x.dim();
    let k = k.min(n);
    let mut centres = Array2::zeros((k, d));
    if k == 0 {
        return centres;
    }
    let trials = 2 + (k as f64).ln().floor() as usize;
    let sq = |i: usize, c: usize| -> f64 {
        x.row(i)
            .iter()
            .zip(x.row(c).iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    };

    let first = rng.random_range(0..n);
    centres.row_mut(0).assign(&x.row(first));
    let mut closest: Vec<f64> = (0..n).map(|i| sq(i, first)).collect();
    let mut candidate_dist = vec![0.0; n];
    let mut best_dist = vec![0.0; n];

    for c in 1..k {
        // Cumulative distances for sampling proportional to the squared distance.
        let mut cumulative = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &v in &closest {
            acc += v;
            cumulative.push(acc);
        }
        let mut best: Option<(usize, f64)> = None;
        for _ in 0..trials {
            let candidate = if acc > 0.0 {
                let target = rng.random::<f64>() * acc;
                cumulative.partition_point(|&v| v <= target).min(n - 1)
            } else {
                rng.random_range(0..n)
            };
            let mut pot = 0.0;
            for (i, slot) in candidate_dist.iter_mut().enumerate() {
                *slot = closest[i].min(sq(i, candidate));
                pot += *slot;
            }
            if best.is_none_or(|(_, p)| pot < p) {
                best = Some((candidate, pot));
                std::mem::swap(&mut best_dist, &mut candidate_dist);
            }
        }
        if let Some((chosen, _)) = best {
            centres.row_mut(c).assign(&x.row(chosen));
            std::mem::swap(&mut closest, &mut best_dist);
        }
    }
    centres
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn picks_one_centre_per_obvious_group() {
        let x = array![
            [0.0, 0.0],
            [0.1, 0.0],
            [0.0, 0.1],
            [10.0, 10.0],
            [10.1, 10.0],
            [-10.0, 10.0],
            [-10.0, 10.1]
        ];
        for seed in 0..20 {
            let c = greedy_kmeans_plus_plus(x.view(), 3, &mut ChaCha8Rng::seed_from_u64(seed));
            let mut groups: Vec<i32> = c
                .rows()
                .into_iter()
                .map(|r| (r[0] / 5.0).round() as i32)
                .collect();
            groups.sort_unstable();
            assert_eq!(groups, vec![-2, 0, 2], "seed {seed}: {c}");
        }
    }

    #[test]
    fn degenerate_inputs() {
        let x = array![[1.0], [1.0]];
        let c = greedy_kmeans_plus_plus(x.view(), 5, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(c.nrows(), 2);
        let empty = Array2::<f64>::zeros((0, 3));
        assert_eq!(
            greedy_kmeans_plus_plus(empty.view(), 2, &mut ChaCha8Rng::seed_from_u64(0)).nrows(),
            0
        );
    }
}
