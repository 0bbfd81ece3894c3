//! One-shot timing of the segment model on 1,000,000 synthetic profiles; criterion's repeated
//! measurements would take too long at this size.
//!
//! It isolates, each timed on its own:
//! 1. the feature transform (fit the scaler, transform every profile);
//! 2. KMeans at a fixed k with `runs` restarts on the whole scaled matrix, the way the fit
//!    runs it ([`fitstream_segmenter::kmeans`]: greedy k-means++ seeding, linfa iterations),
//!    then with linfa's own k-means++ seeding for reference; with the inertia (sum of squared
//!    distances to the nearest centroid, as scikit-learn's `inertia_`);
//! 3. the full automatic fit ([`fitstream_segmenter::fit`], k in 3..=8 by silhouette) on a
//!    reservoir sample of the default size.
//!
//! `--dump PATH` writes the scaled matrix as a NumPy `.npy` file (little-endian f64, C order)
//! for `benches/compare_sklearn.py`, which runs scikit-learn's KMeans on the same matrix with
//! the same k, runs and initialisation.
//!
//! Run (release, one job):
//! `cargo bench -j 1 -p fitstream-segmenter --bench fit_million -- --dump /tmp/fitstream_scaled.npy`
//!
//! Options: `--n N` (default 1000000), `--k K` (6), `--runs R` (3), `--seed S` (42),
//! `--spread X` (2.0: how much the synthetic personas overlap), `--tol T` (1e-2, see below),
//! `--max-iter M` (300), `--skip-auto`.
//!
//! Tolerance: linfa stops when the Frobenius norm of the centroid shift is below `tol`;
//! scikit-learn stops when the squared norm is below `tol × mean feature variance` (variance
//! 1 after scaling). linfa `1e-2` therefore corresponds to scikit-learn's default `1e-4`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use fitstream_contracts::EventTime;
use fitstream_segmenter::synthetic::population;
use fitstream_segmenter::{
    FEATURE_COUNT, FitConfig, ReservoirSample, SampleRow, Scaler, Seeding, fit, kmeans,
};
use ndarray::Array2;

struct Args {
    n: usize,
    k: usize,
    runs: usize,
    seed: u64,
    spread: f64,
    tol: f64,
    max_iter: u64,
    dump: Option<String>,
    skip_auto: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        n: 1_000_000,
        k: 6,
        runs: 3,
        seed: 42,
        spread: 2.0,
        tol: 1e-2,
        max_iter: 300,
        dump: None,
        skip_auto: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => a.n = value()?.parse().map_err(|e| format!("--n: {e}"))?,
            "--k" => a.k = value()?.parse().map_err(|e| format!("--k: {e}"))?,
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--spread" => a.spread = value()?.parse().map_err(|e| format!("--spread: {e}"))?,
            "--tol" => a.tol = value()?.parse().map_err(|e| format!("--tol: {e}"))?,
            "--max-iter" => {
                a.max_iter = value()?.parse().map_err(|e| format!("--max-iter: {e}"))?
            }
            "--dump" => a.dump = Some(value()?),
            "--skip-auto" => a.skip_auto = true,
            // `cargo bench` passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Writes a C-order f64 matrix as NumPy `.npy` (format 1.0).
fn write_npy(path: &str, m: &Array2<f64>) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    let (rows, cols) = m.dim();
    let mut header =
        format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    let len = u16::try_from(header.len()).map_err(std::io::Error::other)?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in m.iter() {
        w.write_all(&v.to_le_bytes())?;
    }
    w.flush()
}

/// Sum of squared distances to the nearest centroid, and the cluster sizes (largest first).
fn inertia_and_sizes(x: &Array2<f64>, centroids: &Array2<f64>) -> (f64, Vec<usize>) {
    let mut sizes = vec![0; centroids.nrows()];
    let mut total = 0.0;
    for row in x.rows() {
        let mut best = (0, f64::INFINITY);
        for (i, c) in centroids.rows().into_iter().enumerate() {
            let d2: f64 = row
                .iter()
                .zip(c.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            if d2 < best.1 {
                best = (i, d2);
            }
        }
        sizes[best.0] += 1;
        total += best.1;
    }
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    (total, sizes)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fit_million: {e}");
            std::process::exit(2);
        }
    };
    let threads =
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default (all cores)".into());
    println!(
        "threads: rayon {threads}, cores {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let t = Instant::now();
    let customers = population(args.n, args.seed, args.spread);
    println!(
        "generate {} profiles: {:.2} s",
        args.n,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let scaler = Scaler::fit(customers.iter().map(|c| &c.features));
    let mut x = Array2::zeros((args.n, FEATURE_COUNT));
    for (mut row, c) in x.rows_mut().into_iter().zip(&customers) {
        row.iter_mut()
            .zip(scaler.transform(&c.features))
            .for_each(|(dst, v)| *dst = v);
    }
    println!(
        "transform {} x {FEATURE_COUNT}: {:.2} s",
        args.n,
        t.elapsed().as_secs_f64()
    );

    if let Some(path) = &args.dump {
        let t = Instant::now();
        if let Err(e) = write_npy(path, &x) {
            eprintln!("fit_million: cannot write {path}: {e}");
            std::process::exit(1);
        }
        println!("dump {path}: {:.2} s", t.elapsed().as_secs_f64());
    }

    // The library's path (greedy k-means++ seeding, as scikit-learn), then linfa's own
    // k-means++ for reference.
    for (name, seeding) in [
        ("greedy k-means++", Seeding::GreedyKMeansPlusPlus),
        ("linfa k-means++", Seeding::KMeansPlusPlus),
    ] {
        let cfg = FitConfig {
            n_runs: args.runs,
            max_iterations: args.max_iter,
            tolerance: args.tol,
            seeding,
            ..FitConfig::default()
        };
        let t = Instant::now();
        let result = kmeans(x.view(), args.k, args.seed, &cfg);
        let secs = t.elapsed().as_secs_f64();
        match result {
            Ok(c) => {
                let (inertia, sizes) = inertia_and_sizes(&x, &c.centroids);
                println!(
                    "fit {} x {FEATURE_COUNT}, k={}, runs={}: {secs:.2} s, inertia {inertia:.1}  [{name}]",
                    args.n, args.k, args.runs
                );
                println!("  cluster sizes: {sizes:?}");
            }
            Err(e) => {
                eprintln!("fit_million: KMeans failed: {e}");
                std::process::exit(1);
            }
        }
    }

    if args.skip_auto {
        return;
    }
    let cfg = FitConfig::default();
    let mut sample: ReservoirSample<SampleRow> =
        ReservoirSample::new(cfg.sample_capacity, cfg.seed);
    for c in &customers {
        sample.offer(
            &c.customer_id,
            (
                c.customer_id.clone(),
                c.features.clone(),
                c.top_categories.clone(),
            ),
        );
    }
    let t = Instant::now();
    match fit(sample.items(), None, EventTime(0), &cfg) {
        Ok(out) => {
            println!(
                "auto fit {} x {FEATURE_COUNT}, k in {}..={} by {}, runs={}: {:.2} s, chose k={}, quality {:.4}",
                sample.len(),
                cfg.k_min,
                cfg.k_max,
                out.model.quality_metric,
                cfg.n_runs,
                t.elapsed().as_secs_f64(),
                out.k,
                out.quality
            );
            for c in &out.candidates {
                println!(
                    "  k={} quality {:?} inertia {:.1}",
                    c.k, c.quality, c.inertia
                );
            }
            for p in &out.profiles {
                println!("  segment {} {:<20} size {}", p.segment_id, p.label, p.size);
            }
        }
        Err(e) => {
            eprintln!("fit_million: auto fit failed: {e}");
            std::process::exit(1);
        }
    }
}
