//! `replay` of a small Taobao UserBehavior file made here: sorted by user as the real one is
//! (so not by time), plain and gzip-compressed, through the external sort with a memory bound
//! far smaller than the file. Released units equal the buys, every cart is converted or
//! abandoned, nothing is late, and both files give the same outputs.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use fitstream::commands::{self, InputFormat, InputOptions, InputOrder};
use fitstream::config::FitstreamConfig;

/// 2017-11-25 00:00:00 UTC, the first of the data set's nine days.
const START: i64 = 1_511_568_000;

/// What the file holds.
struct Made {
    csv: String,
    /// Distinct buy rows (one unit each).
    buys: usize,
    /// Distinct cart rows.
    carts: usize,
}

/// Rows user by user, each user's in time order, users spread over nine days: the file is
/// sorted by user and not by time. A seeded LCG picks items and times.
fn make() -> Made {
    let mut seed: u64 = 17;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut csv = String::new();
    let (mut buys, mut carts) = (HashSet::new(), HashSet::new());
    for user in 1..=150_u64 {
        let mut t = START + next(8 * 86_400) as i64;
        for _ in 0..(4 + next(6)) {
            let item = 1_000 + next(40);
            let category = 2_520_000 + item % 7;
            let mut row = |behaviour: &str, t: i64| {
                csv.push_str(&format!("{user},{item},{category},{behaviour},{t}\n"));
                format!("{user},{item},{behaviour},{t}")
            };
            row("pv", t);
            t += 5 + next(120) as i64;
            match next(4) {
                0 => {
                    row("fav", t);
                }
                1 => {
                    carts.insert(row("cart", t));
                }
                _ => {
                    carts.insert(row("cart", t));
                    t += 30 + next(600) as i64;
                    buys.insert(row("buy", t));
                }
            }
            t += 60 + next(3_600) as i64;
        }
    }
    // A time outside the data set's days (a real oddity): a view the pipeline dead-letters
    // (before 2000), and a row that cannot be read at all (a dead letter, reason parse).
    csv.push_str("151,1001,2520001,pv,86400\n");
    csv.push_str("151,1001,2520001,pv,not-a-time\n");
    Made {
        csv,
        buys: buys.len(),
        carts: carts.len(),
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fitstream-taobao-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn outputs(out: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(out)
        .expect("outputs")
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into();
            (name, std::fs::read_to_string(&path).expect("read"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_unsorted_taobao_file_replays_in_event_time_order_plain_and_gzipped() {
    let made = make();
    let work = dir("in");
    let plain = work.join("UserBehavior.csv");
    std::fs::write(&plain, &made.csv).expect("write");
    let gz = work.join("UserBehavior.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::default(),
    );
    enc.write_all(made.csv.as_bytes()).expect("gzip");
    enc.finish().expect("gzip");
    assert_eq!(InputFormat::guess(&plain), InputFormat::Taobao);
    assert_eq!(InputFormat::guess(&gz), InputFormat::Taobao);

    let cfg = FitstreamConfig::default();
    // A bound far below the file's size: many sorted runs on disk, merged.
    let options = InputOptions {
        order: None,
        sort_memory_bytes: 8 << 10,
    };
    let opened = commands::Inputs::open(&plain, InputFormat::Taobao, &options).expect("sort");
    let stats = opened.sort_stats().expect("sorted");
    assert!(stats.runs > 3 && !stats.was_in_order, "{stats:?}");
    assert_eq!(stats.errors, 1, "the unreadable row is counted");

    let out = dir("plain");
    let s = commands::replay_with(&cfg, &plain, InputFormat::Taobao, &options, &out)
        .expect("replays and reconciles");
    assert!(
        made.buys > 30 && made.carts > made.buys,
        "{} {}",
        made.buys,
        made.carts
    );
    assert_eq!(s.planner.released_units, made.buys as i64, "a unit per buy");
    assert_eq!(s.planner.late, 0, "in event-time order nothing is late");
    assert_eq!(
        s.planner.conversions + s.planner.abandonments,
        made.carts as u64,
        "every cart is converted or abandoned"
    );
    assert_eq!(
        s.dead_letters,
        BTreeMap::from([("parse".to_owned(), 1), ("validation".to_owned(), 2)]),
        "the view of 1970 is dead-lettered by each service that reads it, the unreadable row once"
    );
    let dead = std::fs::read_to_string(out.join(format!("{}.jsonl", cfg.topics.dead_letter)))
        .expect("dead letters");
    let parse: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|l| l["headers"]["fitstream.error.reason"] == "parse")
        .collect();
    assert_eq!(parse.len(), 1);
    assert_eq!(
        parse[0]["value"]["value_hex"],
        hex::encode("151,1001,2520001,pv,not-a-time"),
        "the raw line"
    );
    assert_eq!(
        parse[0]["headers"]["fitstream.source.offset"],
        (made.csv.lines().count()).to_string(),
        "its line number"
    );
    assert!(s.accounted(), "{:?}", s.outcomes);
    assert!(!s.segments.is_empty(), "customers are segmented");

    let out_gz = dir("gz");
    let s_gz = commands::replay_with(&cfg, &gz, InputFormat::Taobao, &options, &out_gz)
        .expect("the gzip file replays");
    assert_eq!(s_gz.planner.released_units, s.planner.released_units);
    // The same outputs from gzip; the parse dead letter names its own file.
    let from_gz = outputs(&out_gz);
    let from_plain: Vec<(String, String)> = outputs(&out)
        .into_iter()
        .map(|(f, text)| (f, text.replace("UserBehavior.csv", "UserBehavior.csv.gz")))
        .collect();
    assert_eq!(from_gz, from_plain, "the same outputs from gzip");

    // In file order (sorted by user) the same file is mostly late: why the sort is the default.
    let file_order = InputOptions {
        order: Some(InputOrder::File),
        ..options
    };
    let late = commands::replay_with(&cfg, &plain, InputFormat::Taobao, &file_order, &dir("file"))
        .expect("late records are accounted for")
        .planner
        .late;
    assert!(late > 0, "file order has late records");
}

/// The sample in `tests/data` (the README's example): user-sorted, with wishlist clicks, a
/// time outside the data set's days and a row that does not parse; every row has an outcome.
#[test]
fn the_taobao_sample_replays_with_every_row_accounted_for() {
    let input = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/taobao-sample.csv"
    ));
    assert_eq!(InputFormat::guess(&input), InputFormat::Taobao);
    let rows = std::fs::read_to_string(&input)
        .expect("sample")
        .lines()
        .count() as u64;
    let wishlist = commands::read_inputs(&input, InputFormat::Taobao)
        .expect("read")
        .filter(|r| {
            matches!(r, fitstream_simulator::InputRecord::Click(c)
                if c.event_type == fitstream_contracts::ClickEventType::AddToWishlist)
        })
        .count();
    assert!(wishlist > 0, "fav rows are wishlist clicks");
    let out = dir("sample");
    let s = commands::replay(
        &FitstreamConfig::default(),
        &input,
        InputFormat::Taobao,
        &out,
    )
    .expect("replays and reconciles");
    assert!(s.accounted(), "{:?}", s.outcomes);
    assert_eq!(s.dead_letters.get("parse"), Some(&1));
    let read: u64 = s.outcomes["profiler"].values().map(|o| o.read).sum();
    assert_eq!(
        read + 1,
        rows,
        "every row but the unparsable one is a record"
    );
    assert!(
        s.planner.conversions >= 12,
        "each shopper's last cart converts"
    );
}
