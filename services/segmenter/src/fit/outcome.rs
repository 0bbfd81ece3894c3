//! Building the outcome of a fit from the chosen candidate: stable ids (matched to the previous
//! model, fresh ones from `next_segment_id`, retired ones), labels, the model and one segment
//! profile per segment.

use std::collections::HashMap;

use fitstream_contracts::{EventTime, ModelSegment, ProfileFeatures, SegmentModel, SegmentProfile};

use super::runs::to_matrix;
use super::score::Candidate;
use super::{CandidateScore, FitConfig, FitOutcome, Previous, SampleRow};
use crate::error::FitError;
use crate::labels::{LabelContext, label_segments};
use crate::matching::match_centroids;
use crate::transform::{FeatureVector, Scaler};

#[allow(clippy::too_many_arguments)]
pub(super) fn build_outcome(
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
    // The label each id had in the previous model, for stable labels.
    let previous_labels: Vec<Option<&str>> = sorted_ids
        .iter()
        .map(|id| {
            prev.and_then(|p| p.model.segments.iter().find(|s| s.segment_id == *id))
                .map(|s| s.label.as_str())
        })
        .collect();
    let labels = label_segments(
        &centroids,
        &previous_labels,
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
            &labels[pos].label,
            Some(labels[pos].description.clone()),
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
            label: labels[pos].label.clone(),
            centroid: centroids[pos].to_vec(),
            description: Some(labels[pos].description.clone()),
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
            s.description.clone(),
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
    description: Option<String>,
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
        description,
    }
}
