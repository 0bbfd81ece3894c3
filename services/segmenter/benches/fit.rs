//! Criterion benchmarks of the segment model's hot paths, on inputs small enough to repeat:
//!
//! - `assign`: one profile to its nearest segment with a prepared [`SegmentAssigner`] (the
//!   profiler does this for every changed profile);
//! - `transform`: log1p and scaling of one profile;
//! - `reservoir_offer`: one profile update into a full reservoir;
//! - `silhouette_2000`: the pairwise distances and the score of a 2,000-point sub-sample;
//! - `fit_10000`: a whole automatic fit (k in 3..=8 by silhouette) on 10,000 profiles.
//!
//! The 1,000,000-profile timing is `benches/fit_million.rs`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fitstream_contracts::EventTime;
use fitstream_segmenter::quality::{SilhouetteSample, silhouette_scores};
use fitstream_segmenter::synthetic::population;
use fitstream_segmenter::{
    FEATURE_COUNT, FitConfig, ReservoirSample, SampleRow, Scaler, SegmentAssigner, fit,
};
use ndarray::Array2;

fn rows(n: usize, seed: u64) -> Vec<SampleRow> {
    population(n, seed, 2.0)
        .into_iter()
        .map(|c| (c.customer_id, c.features, c.top_categories))
        .collect()
}

fn per_profile(c: &mut Criterion) {
    let sample = rows(10_000, 1);
    let cfg = FitConfig::default();
    let model = match fit(&sample, None, EventTime(0), &cfg) {
        Ok(out) => out.model,
        Err(e) => panic!("fit failed: {e}"),
    };
    let assigner = match SegmentAssigner::new(&model) {
        Ok(a) => a,
        Err(e) => panic!("invalid model: {e}"),
    };
    let mut i = 0;
    c.bench_function("assign", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            black_box(assigner.assign(black_box(&sample[i].1)).segment_id)
        })
    });
    let scaler = assigner.scaler().clone();
    c.bench_function("transform", |b| {
        b.iter(|| black_box(scaler.transform(black_box(&sample[7].1))))
    });

    let mut reservoir: ReservoirSample<usize> = ReservoirSample::new(1_000, 1);
    let ids: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let mut j = 0;
    c.bench_function("reservoir_offer", |b| {
        b.iter(|| {
            j = (j + 1) % ids.len();
            black_box(reservoir.offer(&ids[j], j))
        })
    });
}

fn per_fit(c: &mut Criterion) {
    let sample = rows(10_000, 2);
    let scaler = Scaler::fit(sample.iter().map(|r| &r.1));
    let mut x = Array2::zeros((2_000, FEATURE_COUNT));
    for (mut row, r) in x.rows_mut().into_iter().zip(&sample) {
        row.iter_mut()
            .zip(scaler.transform(&r.1))
            .for_each(|(dst, v)| *dst = v);
    }
    let labels: Vec<usize> = (0..2_000).map(|i| i % 6).collect();
    let mut group = c.benchmark_group("fit");
    group.sample_size(10);
    group.bench_function("silhouette_2000", |b| {
        b.iter(|| black_box(SilhouetteSample::new(x.view()).score(&labels)))
    });
    // A fit's candidates (k = 3..=8 and the warm start): one at a time over kept distances,
    // and side by side on every core (what `fit` does).
    let labelings: Vec<Vec<usize>> = (3..=9)
        .map(|k| (0..2_000).map(|i| i % k).collect())
        .collect();
    let views: Vec<&[usize]> = labelings.iter().map(Vec::as_slice).collect();
    group.bench_function("silhouette_2000_x7_one_at_a_time", |b| {
        b.iter(|| {
            let sample = SilhouetteSample::new(x.view());
            black_box(views.iter().map(|l| sample.score(l)).collect::<Vec<_>>())
        })
    });
    group.bench_function("silhouette_2000_x7_side_by_side", |b| {
        b.iter(|| black_box(silhouette_scores(x.view(), &views)))
    });
    let cfg = FitConfig::default();
    group.bench_function("fit_10000", |b| {
        b.iter(|| black_box(fit(&sample, None, EventTime(0), &cfg).map(|o| o.k)))
    });
    group.finish();
}

criterion_group!(benches, per_profile, per_fit);
criterion_main!(benches);
