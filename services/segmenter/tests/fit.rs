//! Whole fits on synthetic personas: recovery of known blobs, stable ids across refits,
//! retirement, labels, determinism and the small-sample rules.

use std::collections::{BTreeSet, HashMap};

use fitstream_contracts::{EventTime, ProfileFeatures, SegmentModel};
use fitstream_segmenter::synthetic::{Persona, SyntheticCustomer, population, population_of};
use fitstream_segmenter::{
    FitConfig, FitError, FitErrorClass, FitOutcome, QualityMetric, SampleRow, SegmentAssigner,
    adjusted_rand_index, assign, fit,
};

const CUTOFF: EventTime = EventTime(1_700_000_000_000);

fn rows(customers: &[SyntheticCustomer]) -> Vec<SampleRow> {
    customers
        .iter()
        .map(|c| {
            (
                c.customer_id.clone(),
                c.features.clone(),
                c.top_categories.clone(),
            )
        })
        .collect()
}

fn as_usize(ids: &[i32]) -> Vec<usize> {
    ids.iter()
        .map(|&i| usize::try_from(i).expect("ids are positive"))
        .collect()
}

fn fit_ok(sample: &[SampleRow], previous: Option<&SegmentModel>, cfg: &FitConfig) -> FitOutcome {
    match fit(sample, previous, CUTOFF, cfg) {
        Ok(o) => o,
        Err(e) => panic!("fit failed: {e}"),
    }
}

/// The segment id holding most customers of each persona.
fn id_of_persona(customers: &[SyntheticCustomer], segments: &[i32]) -> HashMap<usize, i32> {
    let mut counts: HashMap<(usize, i32), usize> = HashMap::new();
    for (c, &s) in customers.iter().zip(segments) {
        *counts.entry((c.persona, s)).or_default() += 1;
    }
    let mut best: HashMap<usize, (i32, usize)> = HashMap::new();
    for ((p, s), n) in counts {
        let e = best.entry(p).or_insert((s, 0));
        if n > e.1 || (n == e.1 && s < e.0) {
            *e = (s, n);
        }
    }
    best.into_iter().map(|(p, (s, _))| (p, s)).collect()
}

#[test]
fn recovers_well_separated_personas() {
    let customers = population(3_000, 1, 1.0);
    let out = fit_ok(&rows(&customers), None, &FitConfig::default());
    let truth: Vec<usize> = customers.iter().map(|c| c.persona).collect();
    let ari = adjusted_rand_index(&truth, &as_usize(&out.sample_segments));
    println!(
        "k = {}, silhouette = {:.3}, ARI = {ari:.4}",
        out.k, out.quality
    );
    for p in &out.profiles {
        println!(
            "  {:>2} {:<22} size {:>4} recency {:>6.1} orders {:>5.1} spend {:>7.1} aov {:>6.1} \
             sessions {:>5.1} abandon {:.2} conv {:.2} {:?}",
            p.segment_id,
            p.label,
            p.size,
            p.recency_days,
            p.orders,
            p.spend,
            p.avg_order_value,
            p.sessions,
            p.cart_abandonment_rate,
            p.conversion_rate,
            p.top_categories
        );
    }
    assert_eq!(out.k, 6);
    assert!(ari >= 0.95, "ARI {ari}");
    assert_eq!(out.model.version, 1);
    assert_eq!(
        out.model
            .segments
            .iter()
            .map(|s| s.segment_id)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(out.model.next_segment_id, 7);
    assert_eq!(out.model.sample_size, 3_000);
    assert_eq!(out.model.quality_metric, "silhouette");
    assert_eq!(out.model.cutoff_event_time, CUTOFF);
    assert!(!out.warm_started);
    assert_eq!(out.profiles.iter().map(|p| p.size).sum::<i64>(), 3_000);
    assert!(
        out.profiles
            .iter()
            .all(|p| !p.retired && p.top_categories.len() == 3)
    );
    // Every label unique.
    let labels: BTreeSet<&str> = out
        .model
        .segments
        .iter()
        .map(|s| s.label.as_str())
        .collect();
    assert_eq!(labels.len(), out.k);
    // The personas get the labels their names promise.
    let by_persona = id_of_persona(&customers, &out.sample_segments);
    let label_of = |p: Persona| {
        let idx = Persona::ALL
            .iter()
            .position(|x| *x == p)
            .unwrap_or(usize::MAX);
        let id = by_persona.get(&idx).copied().unwrap_or(-1);
        out.model
            .segments
            .iter()
            .find(|s| s.segment_id == id)
            .map(|s| s.label.clone())
            .unwrap_or_default()
    };
    assert_eq!(label_of(Persona::LoyalHighSpender), "loyal high spenders");
    assert_eq!(label_of(Persona::AtRisk), "at risk");
    assert_eq!(label_of(Persona::WindowShopper), "window shoppers");
    assert_eq!(label_of(Persona::CartAbandoner), "cart abandoners");
    assert_eq!(label_of(Persona::BargainHunter), "bargain hunters");
    assert_eq!(label_of(Persona::NewCustomer), "new customers");
}

#[test]
fn assignment_agrees_with_the_fit() {
    let customers = population(1_200, 2, 1.0);
    let sample = rows(&customers);
    let out = fit_ok(&sample, None, &FitConfig::default());
    let assigner = SegmentAssigner::new(&out.model).expect("fitted model is valid");
    for (row, &id) in sample.iter().zip(&out.sample_segments) {
        let a = assigner.assign(&row.1);
        assert_eq!(a.segment_id, id);
        assert_eq!(assign(&out.model, &row.1), Ok(a));
        assert!(a.distance.is_finite() && a.distance >= 0.0);
    }
}

#[test]
fn davies_bouldin_also_finds_the_personas() {
    let customers = population(3_000, 3, 1.0);
    let cfg = FitConfig {
        quality_metric: QualityMetric::DaviesBouldin,
        ..FitConfig::default()
    };
    let out = fit_ok(&rows(&customers), None, &cfg);
    let truth: Vec<usize> = customers.iter().map(|c| c.persona).collect();
    let ari = adjusted_rand_index(&truth, &as_usize(&out.sample_segments));
    println!(
        "k = {}, Davies-Bouldin = {:.3}, ARI = {ari:.4}",
        out.k, out.quality
    );
    assert_eq!(out.k, 6);
    assert!(ari >= 0.95, "ARI {ari}");
    assert_eq!(out.model.quality_metric, "davies_bouldin");
}

#[test]
fn warm_refit_on_unchanged_data_keeps_customers_in_their_segment() {
    // Overlapping personas, so that the choice of centroids is not trivial.
    let customers = population(3_000, 4, 2.5);
    let sample = rows(&customers);
    let cfg = FitConfig::default();
    let v1 = fit_ok(&sample, None, &cfg);
    let v2 = fit_ok(&sample, Some(&v1.model), &cfg);
    let same = v1
        .sample_segments
        .iter()
        .zip(&v2.sample_segments)
        .filter(|(a, b)| a == b)
        .count();
    let share = same as f64 / sample.len() as f64;
    println!(
        "k {} -> {}, warm start kept: {}, same segment: {:.2}%",
        v1.k,
        v2.k,
        v2.warm_started,
        share * 100.0
    );
    assert!(share >= 0.98, "only {share} kept their segment");
    if v1.k == v2.k {
        assert_eq!(labels_by_id(&v1.model), labels_by_id(&v2.model));
    }
    assert_eq!(v2.model.version, 2);
    assert!(v2.model.next_segment_id >= v1.model.next_segment_id);
    assert!(v2.candidates.iter().any(|c| c.warm_start));
}

#[test]
fn refit_on_a_fresh_sample_keeps_ids() {
    let cfg = FitConfig::default();
    let a = population(3_000, 5, 1.0);
    let b = population(3_000, 6, 1.0);
    let v1 = fit_ok(&rows(&a), None, &cfg);
    let v2 = fit_ok(&rows(&b), Some(&v1.model), &cfg);
    assert_eq!(
        id_of_persona(&a, &v1.sample_segments),
        id_of_persona(&b, &v2.sample_segments)
    );
    assert!(v2.retired_segment_ids.is_empty());
    assert_eq!(v2.model.next_segment_id, v1.model.next_segment_id);
    assert_eq!(v2.profiles.len(), 6);
    // Same segments, same character: same labels.
    assert_eq!(labels_by_id(&v1.model), labels_by_id(&v2.model));
}

fn labels_by_id(model: &SegmentModel) -> Vec<(i32, String)> {
    model
        .segments
        .iter()
        .map(|s| (s.segment_id, s.label.clone()))
        .collect()
}

/// Moves the at-risk customers: recent again (recency / 15) and buying more often.
fn revive(customers: &mut [SyntheticCustomer]) {
    let at_risk = Persona::ALL
        .iter()
        .position(|p| *p == Persona::AtRisk)
        .unwrap_or(usize::MAX);
    for c in customers.iter_mut().filter(|c| c.persona == at_risk) {
        c.features.recency_days /= 15.0;
        c.features.conversion_rate = (c.features.conversion_rate + 0.3).min(1.0);
    }
}

#[test]
fn a_segment_that_moves_too_far_gets_a_new_id_and_retired_ids_never_return() {
    let cfg = FitConfig::default();
    let at_risk = Persona::ALL
        .iter()
        .position(|p| *p == Persona::AtRisk)
        .unwrap_or(usize::MAX);
    let base = population(3_000, 7, 1.0);
    let v1 = fit_ok(&rows(&base), None, &cfg);
    let ids1 = id_of_persona(&base, &v1.sample_segments);

    let mut moved = population(3_000, 8, 1.0);
    revive(&mut moved);
    let v2 = fit_ok(&rows(&moved), Some(&v1.model), &cfg);
    let ids2 = id_of_persona(&moved, &v2.sample_segments);
    println!(
        "v1 {ids1:?}\nv2 {ids2:?} retired {:?}",
        v2.retired_segment_ids
    );
    assert_eq!(v2.k, 6);
    for p in 0..6 {
        if p == at_risk {
            assert_eq!(
                ids2[&p], v1.model.next_segment_id,
                "moved segment gets the next fresh id"
            );
        } else {
            assert_eq!(ids2[&p], ids1[&p], "persona {p} keeps its id");
        }
    }
    assert_eq!(v2.retired_segment_ids, vec![ids1[&at_risk]]);
    let retired: Vec<_> = v2.profiles.iter().filter(|p| p.retired).collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].segment_id, ids1[&at_risk]);
    assert_eq!(retired[0].size, 0);
    assert_eq!(retired[0].label, "at risk");
    assert!(
        retired[0].recency_days > 100.0,
        "retired profile keeps its last centroid"
    );
    assert_eq!(v2.model.next_segment_id, v1.model.next_segment_id + 1);

    // The at-risk customers come back: their old id stays retired.
    let v3 = fit_ok(&rows(&population(3_000, 9, 1.0)), Some(&v2.model), &cfg);
    let back = population(3_000, 9, 1.0);
    let ids3 = id_of_persona(&back, &v3.sample_segments);
    assert_eq!(ids3[&at_risk], v2.model.next_segment_id);
    assert_ne!(ids3[&at_risk], ids1[&at_risk]);
    assert_eq!(v3.retired_segment_ids, vec![ids2[&at_risk]]);
    let all: BTreeSet<i32> = v3.model.segments.iter().map(|s| s.segment_id).collect();
    assert!(!all.contains(&ids1[&at_risk]) && !all.contains(&ids2[&at_risk]));
    assert_eq!(v3.model.version, 3);
}

#[test]
fn fewer_personas_retire_ids_and_more_get_fresh_ones() {
    let cfg = FitConfig::default();
    let v1 = fit_ok(&rows(&population(3_000, 10, 1.0)), None, &cfg);
    let fewer = population_of(&Persona::ALL[2..], 2_000, 11, 1.0);
    let v2 = fit_ok(&rows(&fewer), Some(&v1.model), &cfg);
    let ids2: Vec<i32> = v2.model.segments.iter().map(|s| s.segment_id).collect();
    println!(
        "v2: k = {}, ids {ids2:?}, retired {:?}",
        v2.k, v2.retired_segment_ids
    );
    // Every v1 id is either kept or retired, never both; fresh ids start at v1's next id.
    for id in 1..=6 {
        assert!(
            ids2.contains(&id) != v2.retired_segment_ids.contains(&id),
            "id {id}"
        );
    }
    assert!(v2.retired_segment_ids.len() >= 2, "two personas are gone");
    let fresh2 = ids2.iter().filter(|&&i| i >= 7).count();
    assert_eq!(v2.model.next_segment_id, 7 + fresh2 as i32);

    let v3 = fit_ok(&rows(&population(3_000, 12, 1.0)), Some(&v2.model), &cfg);
    let ids3: Vec<i32> = v3.model.segments.iter().map(|s| s.segment_id).collect();
    println!(
        "v3: k = {}, ids {ids3:?}, retired {:?}",
        v3.k, v3.retired_segment_ids
    );
    assert_eq!(v3.k, 6);
    for id in &ids3 {
        assert!(
            ids2.contains(id) || *id >= v2.model.next_segment_id,
            "id {id} was retired in v2 or is new"
        );
        assert!(!v2.retired_segment_ids.contains(id));
    }
    assert!(
        v3.model.next_segment_id > v2.model.next_segment_id,
        "the returning personas got fresh ids"
    );

    // The warm start at v2's k = 4 scores far worse than k = 6 on six personas: not kept...
    assert!(!v3.warm_started);
    let warm = v3
        .candidates
        .iter()
        .find(|c| c.warm_start)
        .expect("a warm candidate was tried");
    assert_eq!(warm.k, v2.k);
    // ...unless the tolerance says stability matters more than that difference.
    let lenient = FitConfig {
        warm_start_tolerance: 1.0,
        ..FitConfig::default()
    };
    let v3b = fit_ok(
        &rows(&population(3_000, 12, 1.0)),
        Some(&v2.model),
        &lenient,
    );
    assert!(v3b.warm_started);
    assert_eq!(v3b.k, v2.k);
}

#[test]
fn deterministic_for_a_seed() {
    let sample = rows(&population(1_500, 13, 2.0));
    let cfg = FitConfig::default();
    let a = fit_ok(&sample, None, &cfg);
    let b = fit_ok(&sample, None, &cfg);
    assert_eq!(a, b);
    let a2 = fit_ok(&sample, Some(&a.model), &cfg);
    let b2 = fit_ok(&sample, Some(&b.model), &cfg);
    assert_eq!(a2, b2);
}

#[test]
fn silhouette_sub_sample_is_bounded() {
    // More profiles than the sub-sample: still a sensible model.
    let customers = population(4_000, 14, 1.0);
    let cfg = FitConfig {
        quality_sample_size: 500,
        ..FitConfig::default()
    };
    let out = fit_ok(&rows(&customers), None, &cfg);
    assert_eq!(out.k, 6);
    assert_eq!(out.candidates.len(), 6);
}

#[test]
fn empty_and_tiny_samples_are_errors() {
    let cfg = FitConfig::default();
    match fit(&[], None, CUTOFF, &cfg) {
        Err(e @ FitError::EmptySample) => assert_eq!(e.class(), FitErrorClass::NeedsMoreData),
        other => panic!("expected EmptySample, got {other:?}"),
    }
    let two = rows(&population(2, 15, 1.0));
    match fit(&two, None, CUTOFF, &cfg) {
        Err(e @ FitError::SampleTooSmall { size: 2, k_min: 3 }) => {
            assert_eq!(e.class(), FitErrorClass::NeedsMoreData);
            assert_eq!(
                e.to_string(),
                "sample of 2 profiles is smaller than k_min = 3"
            );
        }
        other => panic!("expected SampleTooSmall, got {other:?}"),
    }
    // Exactly k_min distinct profiles: a model with k_min singleton segments.
    let three = rows(&population(3, 15, 1.0));
    let out = fit_ok(&three, None, &cfg);
    assert_eq!(out.k, 3);
    // Identical profiles: no usable clustering.
    let same: Vec<SampleRow> = (0..50)
        .map(|i| (format!("c{i}"), ProfileFeatures::default(), Vec::new()))
        .collect();
    match fit(&same, None, CUTOFF, &cfg) {
        Err(e @ FitError::NoUsableClustering { .. }) => {
            assert_eq!(e.class(), FitErrorClass::NeedsMoreData)
        }
        other => panic!("expected NoUsableClustering, got {other:?}"),
    }
}

#[test]
fn invalid_configuration_is_refused() {
    let sample = rows(&population(100, 16, 1.0));
    for cfg in [
        FitConfig {
            k_min: 1,
            ..FitConfig::default()
        },
        FitConfig {
            k_min: 5,
            k_max: 4,
            ..FitConfig::default()
        },
        FitConfig {
            n_runs: 0,
            ..FitConfig::default()
        },
        FitConfig {
            tolerance: 0.0,
            ..FitConfig::default()
        },
        FitConfig {
            match_distance_limit: f64::NAN,
            ..FitConfig::default()
        },
    ] {
        match fit(&sample, None, CUTOFF, &cfg) {
            Err(e @ FitError::Config(_)) => assert_eq!(e.class(), FitErrorClass::Config),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
    let parsed: Result<FitConfig, _> =
        serde_json::from_str(r#"{"k_max": 10, "quality_metric": "davies_bouldin"}"#);
    let parsed = parsed.expect("valid configuration");
    assert_eq!(parsed.k_max, 10);
    assert_eq!(parsed.k_min, 3);
    assert_eq!(parsed.quality_metric, QualityMetric::DaviesBouldin);
    assert!(serde_json::from_str::<FitConfig>(r#"{"k_maximum": 10}"#).is_err());
}

#[test]
fn an_incompatible_previous_model_retires_everything_but_keeps_counting() {
    let cfg = FitConfig::default();
    let sample = rows(&population(1_200, 17, 1.0));
    let v1 = fit_ok(&sample, None, &cfg);
    let mut broken = v1.model.clone();
    broken.feature_names.reverse();
    let v2 = fit_ok(&sample, Some(&broken), &cfg);
    assert_eq!(v2.model.version, 2);
    assert_eq!(v2.retired_segment_ids, vec![1, 2, 3, 4, 5, 6]);
    assert!(v2.model.segments.iter().all(|s| s.segment_id >= 7));
    assert!(!v2.warm_started);
}
