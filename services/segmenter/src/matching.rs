//! Stable segment ids: matching a new model's centroids to the previous model's.
//!
//! Marketing keys audiences and reports by segment id, so a refit must not shuffle ids. The
//! rule:
//!
//! 1. The previous centroids are mapped into the new model's scaled space
//!    ([`Scaler::rescale_from`](crate::Scaler::rescale_from)), so both sets are compared in one
//!    space.
//! 2. A minimum-cost assignment (Hungarian algorithm, `pathfinding::kuhn_munkres_min`) pairs
//!    new and old centroids. The cost of a pair is `min(d, limit)`, and a padding row or column
//!    (a centroid left unmatched) costs `limit`, so the assignment maximises `Σ (limit - d)`
//!    over accepted pairs: as many close matches as possible, the closest first. Costs are
//!    scaled to integers (`round(cost / limit * 10^6)`) because the solver needs an ordered
//!    integer type.
//! 3. A pair is accepted only when its distance is strictly below `limit`. A new centroid
//!    without an accepted pair gets a fresh id; an old id without one is retired.
//!
//! Fresh ids come from the model's `next_segment_id`, which only grows: a retired id is never
//! given again, even to a segment that comes back where it used to be.

use ndarray::ArrayView2;
use pathfinding::kuhn_munkres::kuhn_munkres_min;
use pathfinding::matrix::Matrix;

const COST_SCALE: f64 = 1_000_000.0;

/// For each new centroid (row of `new`), the index of the old centroid (row of `old`) it
/// continues, or `None`. Pairs at distance `>= limit` are never matched; each old centroid is
/// matched at most once. Both matrices must have the same number of columns (otherwise
/// nothing matches).
pub fn match_centroids(
    new: ArrayView2<f64>,
    old: ArrayView2<f64>,
    limit: f64,
) -> Vec<Option<usize>> {
    let (kn, ko) = (new.nrows(), old.nrows());
    let mut result = vec![None; kn];
    if kn == 0 || ko == 0 || new.ncols() != old.ncols() || limit.is_nan() || limit <= 0.0 {
        return result;
    }
    let dist = |i: usize, j: usize| -> f64 {
        let d2: f64 = new
            .row(i)
            .iter()
            .zip(old.row(j).iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let d = d2.sqrt();
        if d.is_finite() { d } else { f64::INFINITY }
    };
    let size = kn.max(ko);
    let costs = Matrix::from_fn(size, size, |(i, j)| {
        let capped = if i < kn && j < ko {
            dist(i, j).min(limit)
        } else {
            limit
        };
        (capped / limit * COST_SCALE).round() as i64
    });
    let (_, columns) = kuhn_munkres_min(&costs);
    for (i, &j) in columns.iter().enumerate().take(kn) {
        if j < ko && dist(i, j) < limit {
            result[i] = Some(j);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn barely_moved_centroids_keep_their_partner() {
        let old = array![[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]];
        // Same centroids, other order, slightly moved.
        let new = array![[0.1, 5.0], [0.05, -0.1], [5.1, 0.1]];
        assert_eq!(
            match_centroids(new.view(), old.view(), 1.0),
            vec![Some(2), Some(0), Some(1)]
        );
    }

    #[test]
    fn a_centroid_beyond_the_limit_stays_unmatched() {
        let old = array![[0.0, 0.0], [5.0, 0.0]];
        let new = array![[0.2, 0.0], [5.0, 3.0]];
        assert_eq!(
            match_centroids(new.view(), old.view(), 1.0),
            vec![Some(0), None]
        );
    }

    #[test]
    fn more_or_fewer_centroids() {
        let old = array![[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]];
        let new = array![[5.0, 0.1]];
        assert_eq!(match_centroids(new.view(), old.view(), 1.0), vec![Some(1)]);
        let new = array![[5.0, 0.1], [9.0, 9.0], [0.0, 0.1], [0.1, 5.0]];
        assert_eq!(
            match_centroids(new.view(), old.view(), 1.0),
            vec![Some(1), None, Some(0), Some(2)]
        );
    }

    #[test]
    fn the_closest_pair_wins_a_contested_centroid() {
        let old = array![[0.0, 0.0]];
        let new = array![[0.5, 0.0], [0.1, 0.0]];
        assert_eq!(
            match_centroids(new.view(), old.view(), 1.0),
            vec![None, Some(0)]
        );
    }

    #[test]
    fn degenerate_inputs_match_nothing() {
        let old = array![[0.0, 0.0]];
        let new = array![[0.0, 0.0]];
        assert_eq!(match_centroids(new.view(), old.view(), 0.0), vec![None]);
        assert_eq!(
            match_centroids(new.view(), old.view(), f64::NAN),
            vec![None]
        );
        let empty = ndarray::Array2::<f64>::zeros((0, 2));
        assert_eq!(match_centroids(new.view(), empty.view(), 1.0), vec![None]);
        let nan = array![[f64::NAN, 0.0]];
        assert_eq!(match_centroids(new.view(), nan.view(), 1.0), vec![None]);
    }
}
