//! The event-time sort at scale: a seeded generator writes a UserBehavior-format file (sorted
//! by user, so times shuffled across the file, a few outside the nine days), which is read,
//! sorted within a fixed memory bound (sorted runs in temporary files) and merged back in
//! event-time order. Prints rows, seconds per phase and the process's peak resident memory
//! (`VmHWM` of /proc/self/status) against the bound. Not run by CI:
//!
//! `cargo bench -j 2 -p fitstream-simulator --bench sort_10m`
//!
//! Environment: `FITSTREAM_BENCH_ROWS` (default 10000000), `FITSTREAM_BENCH_SORT_MB` (the
//! sort's memory bound, default 64), `FITSTREAM_BENCH_DIR` (where the file and the runs go;
//! default the system's temporary directory), `FITSTREAM_BENCH_WRITE` (a path: only write the
//! file there and stop; `bench/replay-10m.sh` replays it whole with `fitstream replay`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use fitstream_simulator::{SortConfig, read_taobao, sort_by_event_time};

/// 2017-11-25 00:00:00 UTC, the first of UserBehavior's nine days.
const START: i64 = 1_511_568_000;
const NINE_DAYS: u64 = 9 * 86_400;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// xorshift64*: seeded, fast, good enough to shuffle times.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % n
    }
}

/// Writes `rows` rows, user by user (about 100 a user), each user's in time order.
fn generate(path: &PathBuf, rows: u64) -> std::io::Result<()> {
    let mut rng = Rng(0x5eed_f175_7ea3);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let (mut written, mut user) = (0, 0_u64);
    while written < rows {
        user += 1;
        let n = (1 + rng.below(200)).min(rows - written);
        let mut t = START + rng.below(NINE_DAYS) as i64;
        for _ in 0..n {
            let item = 1 + rng.below(5_000_000);
            let category = 1 + item % 9_439;
            let behaviour = match rng.below(1_000) {
                0..=894 => "pv",
                895..=949 => "cart",
                950..=978 => "fav",
                _ => "buy",
            };
            // A few times outside the data set's days, as in the real file.
            let time = if rng.below(100_000) == 0 {
                t - 30 * 86_400
            } else {
                t
            };
            writeln!(w, "{user},{item},{category},{behaviour},{time}")?;
            t += rng.below(1_800) as i64;
        }
        written += n;
    }
    w.flush()
}

fn main() -> std::io::Result<()> {
    let rows = env("FITSTREAM_BENCH_ROWS", 10_000_000);
    if let Some(path) = std::env::var_os("FITSTREAM_BENCH_WRITE") {
        let path = PathBuf::from(path);
        let started = Instant::now();
        generate(&path, rows)?;
        println!(
            "generated {rows} rows into {} in {:.1} s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let bound_mb = env("FITSTREAM_BENCH_SORT_MB", 64);
    let dir = std::env::var_os("FITSTREAM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(&dir)?;
    let path = work.path().join("UserBehavior.csv");

    let started = Instant::now();
    generate(&path, rows)?;
    let size_mb = std::fs::metadata(&path)?.len() as f64 / f64::from(1 << 20);
    println!(
        "generated {rows} rows ({size_mb:.0} MiB) in {:.1} s; peak RSS {:.0} MiB",
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    let cfg = SortConfig {
        memory_bytes: usize::try_from(bound_mb << 20).unwrap_or(usize::MAX),
        dir: Some(work.path().to_owned()),
    };
    let started = Instant::now();
    let sorted = sort_by_event_time(read_taobao(BufReader::new(File::open(&path)?)), &cfg)?;
    let stats = sorted.stats();
    let sort_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (mut n, mut last, mut out_of_order) = (0_u64, i64::MIN, 0_u64);
    for item in sorted.iter() {
        let record = item.map_err(std::io::Error::other)?;
        let t = record.event_time().map_or(last, |t| t.0);
        out_of_order += u64::from(t < last);
        last = t;
        n += 1;
    }
    let merge_secs = started.elapsed().as_secs_f64();
    println!(
        "sorted {} records ({} unreadable rows) with a {bound_mb} MiB bound: {} runs, {} MiB spilled; read+sort {sort_secs:.1} s, merge {merge_secs:.1} s, {:.0} rows/s overall",
        stats.records,
        stats.errors,
        stats.runs,
        stats.spilled_bytes >> 20,
        rows as f64 / (sort_secs + merge_secs),
    );
    println!(
        "rows {n}, seconds {:.1}, peak RSS {:.0} MiB (VmHWM), records out of time order after the sort: {out_of_order}",
        sort_secs + merge_secs,
        peak_rss_mib()
    );
    assert_eq!(n, rows, "every row came out");
    assert_eq!(out_of_order, 0, "in event-time order");
    Ok(())
}
