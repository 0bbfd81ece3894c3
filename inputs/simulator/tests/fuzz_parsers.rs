//! Fuzzing the history parsers (issue 13, part 8): the REES46 and UserBehavior CSV readers
//! and the JSON-lines reader, fed arbitrary bytes and mutated valid files, never panic,
//! always end, and give each row a typed outcome (a record, or an error naming its line).
//! Lines are read through the bounded line reader, so no input makes them hold more than a
//! line's limit.
//!
//! Cases per property: `PROPTEST_CASES` (default 2,000 here); one test prints the counts.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

use fitstream_simulator::{
    InputRecord, ReplayError, SimConfig, Simulator, read_jsonl, read_rees46, read_taobao,
    write_jsonl,
};
use proptest::prelude::*;

const REES46: &str = include_str!("../../../tests/data/multi-category.csv");
const TAOBAO: &str = include_str!("../../../tests/data/taobao-sample.csv");

static RECORDS: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);

fn jsonl_sample() -> Vec<u8> {
    let cfg = SimConfig {
        customers: 5,
        seconds: 3_600,
        ..SimConfig::default()
    };
    let records: Vec<InputRecord> = Simulator::new(cfg).expect("config").take(60).collect();
    let mut out = Vec::new();
    write_jsonl(&records, &mut out).expect("writes");
    out
}

#[derive(Clone, Copy, Debug)]
enum Format {
    Rees46,
    Taobao,
    Jsonl,
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::Rees46),
        Just(Format::Taobao),
        Just(Format::Jsonl)
    ]
}

fn sample(f: Format) -> Vec<u8> {
    match f {
        Format::Rees46 => REES46.as_bytes().to_vec(),
        Format::Taobao => TAOBAO.as_bytes().to_vec(),
        Format::Jsonl => jsonl_sample(),
    }
}

/// Reads `bytes` in format `f` to the end: every item is a record or a typed error whose line
/// is within the input, and there are no more items than lines (a REES46 checkout of
/// several rows is one purchase). Returns the errors (the totals are counted too).
fn read_all(f: Format, bytes: &[u8]) -> u64 {
    let lines = bytes.split(|b| *b == b'\n').count() as u64;
    let items: Box<dyn Iterator<Item = Result<InputRecord, ReplayError>>> = match f {
        Format::Rees46 => Box::new(read_rees46(Cursor::new(bytes.to_vec()))),
        Format::Taobao => Box::new(read_taobao(Cursor::new(bytes.to_vec()))),
        Format::Jsonl => Box::new(read_jsonl(Cursor::new(bytes.to_vec()))),
    };
    let mut n = 0u64;
    let mut errors = 0u64;
    for item in items {
        n += 1;
        assert!(n <= lines + 1, "{n} items from {lines} lines");
        match item {
            Ok(_) => RECORDS.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                let line = e.line();
                assert!(line >= 1 && line <= lines, "line {line} of {lines}: {e}");
                errors += 1;
                ERRORS.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
    errors
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    /// A byte CSV and JSON care about: quote, comma, newline, brace, backslash, NUL.
    Special(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..24))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        4 => (any::<usize>(), proptest::sample::select(b"\",\n\r{}[]:\\\0-9e".to_vec()))
            .prop_map(|(i, b)| Mutation::Special(i, b)),
        2 => (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Flip(i, x) => {
            let i = at(*i, bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b ^= x;
            }
        }
        Mutation::Insert(i, b) => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Special(i, b) => {
            let i = at(*i, bytes.len() + 1);
            bytes.insert(i, *b);
        }
        Mutation::Delete(i, n) => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Truncate(i) => bytes.truncate(at(*i, bytes.len() + 1)),
    }
}

fn cases() -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn arbitrary_bytes_read_to_typed_outcomes(
        f in format(),
        bytes in proptest::collection::vec(any::<u8>(), 0..2_048),
    ) {
        read_all(f, &bytes);
    }

    #[test]
    fn mutated_histories_read_to_typed_outcomes(
        f in format(),
        mutations in proptest::collection::vec(mutation(), 1..12),
    ) {
        let mut bytes = sample(f);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        read_all(f, &bytes);
    }
}

/// A line far over the limit, with no newline, costs one error and is not held.
#[test]
fn zz_an_endless_line_is_one_error_in_every_format() {
    for f in [Format::Rees46, Format::Taobao, Format::Jsonl] {
        let mut bytes = sample(f);
        let cut = bytes.iter().position(|b| *b == b'\n').expect("a line") + 1;
        bytes.truncate(cut);
        bytes.extend(std::iter::repeat_n(b'x', 8 * 1024 * 1024));
        // Counted here, not from the totals, which the properties move at the same time.
        assert_eq!(read_all(f, &bytes), 1, "{f:?}");
    }
    println!(
        "fuzz parsers: {} records and {} typed errors so far (all of them when run last, on one thread)",
        RECORDS.load(Ordering::Relaxed),
        ERRORS.load(Ordering::Relaxed)
    );
}
