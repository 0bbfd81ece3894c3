//! Scoring a candidate clustering against the sample: members, inertia, empty segments and the
//! quality score.

use ndarray::{Array2, ArrayView2};

use super::CandidateScore;
use crate::assign::nearest;
use crate::quality::{QualityMetric, SilhouetteSample, davies_bouldin};
use crate::transform::{FEATURE_COUNT, FeatureVector};

/// A usable clustering of the sample.
pub(super) struct Candidate {
    pub(super) centroids: Vec<FeatureVector>,
    pub(super) labels: Vec<usize>,
    pub(super) quality: f64,
    pub(super) warm: bool,
}

/// Scores candidates against the sample.
pub(super) struct Scorer<'a> {
    pub(super) points: &'a [FeatureVector],
    pub(super) matrix: ArrayView2<'a, f64>,
    pub(super) quality_rows: &'a [usize],
    pub(super) silhouette: Option<SilhouetteSample>,
    pub(super) metric: QualityMetric,
}

impl Scorer<'_> {
    pub(super) fn score(
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
