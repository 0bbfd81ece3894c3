//! Scoring candidate clusterings against the sample: members, inertia, empty segments and the
//! quality score.

use ndarray::{Array2, ArrayView2};

use super::CandidateScore;
use crate::assign::nearest;
use crate::quality::{QualityMetric, davies_bouldin, silhouette_scores};
use crate::transform::{FEATURE_COUNT, FeatureVector};

/// A usable clustering of the sample.
pub(super) struct Candidate {
    pub(super) centroids: Vec<FeatureVector>,
    pub(super) labels: Vec<usize>,
    pub(super) quality: f64,
    pub(super) warm: bool,
}

/// A scored candidate, or why it cannot be used, with its line in the model's candidates.
pub(super) type Scored = (Result<Candidate, String>, CandidateScore);

/// Scores candidates against the sample.
pub(super) struct Scorer<'a> {
    pub(super) points: &'a [FeatureVector],
    pub(super) matrix: ArrayView2<'a, f64>,
    pub(super) quality_rows: &'a [usize],
    /// The silhouette's sub-sample (the rows `quality_rows` of `matrix`), when that is the
    /// metric.
    pub(super) silhouette: Option<Array2<f64>>,
    pub(super) metric: QualityMetric,
}

/// A candidate's members, before its quality score.
struct Members {
    centroids: Array2<f64>,
    cents: Vec<FeatureVector>,
    labels: Vec<usize>,
    score: CandidateScore,
    empty: Option<usize>,
}

impl Scorer<'_> {
    /// Scores the candidates (centroids, warm start or not), in their order. The silhouettes
    /// of all of them come from one sweep over the sub-sample's pairs
    /// ([`silhouette_scores`]), each bit for bit the score it would have alone.
    pub(super) fn score_all(&self, runs: Vec<(Array2<f64>, bool)>) -> Vec<Scored> {
        let members: Vec<Members> = runs
            .into_iter()
            .map(|(centroids, warm)| self.members(centroids, warm))
            .collect();
        let qualities: Vec<Option<f64>> = match (&self.silhouette, self.metric) {
            (Some(sub), QualityMetric::Silhouette) => {
                let sub_labels: Vec<Vec<usize>> = members
                    .iter()
                    .filter(|m| m.empty.is_none())
                    .map(|m| self.quality_rows.iter().map(|&i| m.labels[i]).collect())
                    .collect();
                let views: Vec<&[usize]> = sub_labels.iter().map(Vec::as_slice).collect();
                let mut scores = silhouette_scores(sub.view(), &views).into_iter();
                members
                    .iter()
                    .map(|m| match m.empty {
                        None => scores.next().flatten(),
                        Some(_) => None,
                    })
                    .collect()
            }
            _ => members
                .iter()
                .map(|m| match m.empty {
                    None => davies_bouldin(self.matrix, &m.labels, m.centroids.view()),
                    Some(_) => None,
                })
                .collect(),
        };
        members
            .into_iter()
            .zip(qualities)
            .map(|(m, quality)| m.judged(quality))
            .collect()
    }

    fn members(&self, centroids: Array2<f64>, warm: bool) -> Members {
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
        Members {
            centroids,
            cents,
            labels,
            score: CandidateScore {
                k,
                warm_start: warm,
                quality: None,
                inertia,
            },
            empty: sizes.iter().position(|&s| s == 0),
        }
    }
}

impl Members {
    fn judged(self, quality: Option<f64>) -> Scored {
        let Members {
            cents,
            labels,
            mut score,
            empty,
            ..
        } = self;
        let k = score.k;
        if let Some(empty) = empty {
            return (
                Err(format!("k = {k}: segment {empty} has no member")),
                score,
            );
        }
        match quality.filter(|q| q.is_finite()) {
            Some(q) => {
                score.quality = Some(q);
                let warm = score.warm_start;
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
