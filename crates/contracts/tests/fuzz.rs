//! Fuzzing the wire format (issue 13, part 8): whatever bytes arrive on a topic, the codec
//! gives a record or a typed error with a dead-letter reason, and never panics.
//!
//! For every schema, three kinds of input go through the Confluent framing and the Avro
//! decoder (with schema resolution when the frame names another schema's id):
//! - arbitrary bytes;
//! - a valid frame header (magic byte and any pinned id) before arbitrary bytes;
//! - a valid record of the schema, structurally mutated: bytes flipped, cut, inserted or
//!   repeated, a length or count prefix replaced by a huge one, the schema id swapped.
//!
//! A record that decodes passes the content rules (`decode` checks them) and encodes again.
//! Memory stays bounded because the codec refuses values over its limit before decoding and
//! the Avro allocation limit refuses any length or count that asks for more than
//! [`codec::AVRO_MAX_ALLOCATION_BYTES`] (pinned by the crafted cases at the end).
//!
//! Cases per property: `PROPTEST_CASES` (default 10,000 here); the test prints how many
//! inputs it decoded and how each ended.

use std::collections::BTreeMap;
use std::sync::Mutex;

use apache_avro::Schema;
use fitstream_contracts::codec::{self, DecodeError};
use fitstream_contracts::records::*;
use fitstream_contracts::registry::default_pinned_id;
use fitstream_contracts::{Codec, SchemaKind, samples};
use proptest::prelude::*;

const KINDS: [SchemaKind; 8] = SchemaKind::ALL;

/// Outcomes seen, by schema and outcome (`ok` or the dead-letter reason).
static OUTCOMES: Mutex<BTreeMap<(String, &'static str), u64>> = Mutex::new(BTreeMap::new());

fn topic(kind: SchemaKind) -> &'static str {
    match kind {
        SchemaKind::ClickEvent => "iob.clickstream.v1",
        SchemaKind::PurchaseEvent => "iob.purchases.v1",
        SchemaKind::CustomerProfile => "iob.customer-profiles.v1",
        SchemaKind::SegmentModel => "iob.segment-models.v1",
        SchemaKind::SegmentAssignment => "marketing.segment-assignments.v1",
        SchemaKind::SegmentProfile => "marketing.segment-profiles.v1",
        SchemaKind::CartAbandonment => "marketing.cart-abandonment.v1",
        SchemaKind::BuildOrder => "factory.berlin.build-orders.v1",
    }
}

/// A valid encoded record of `kind`.
fn valid(kind: SchemaKind) -> Vec<u8> {
    let c = Codec::pinned();
    let t = topic(kind);
    match kind {
        SchemaKind::ClickEvent => c.encode(t, &samples::click()),
        SchemaKind::PurchaseEvent => c.encode(t, &samples::purchase()),
        SchemaKind::CustomerProfile => c.encode(t, &samples::profile()),
        SchemaKind::SegmentModel => c.encode(t, &samples::model()),
        SchemaKind::SegmentAssignment => c.encode(t, &samples::assignment()),
        SchemaKind::SegmentProfile => c.encode(t, &samples::segment_profile()),
        SchemaKind::CartAbandonment => c.encode(t, &samples::abandonment()),
        SchemaKind::BuildOrder => c.encode(t, &samples::build_order()),
    }
    .expect("a sample encodes")
}

/// Decodes `bytes` as `T`: a typed outcome, and a decoded record encodes again.
fn decode_as<T: Contract + codec::Validated>(kind: SchemaKind, bytes: &[u8]) -> &'static str {
    let c = Codec::pinned();
    match c.decode::<T>(topic(kind), bytes) {
        Ok(record) => {
            c.encode(topic(kind), &record)
                .expect("a record that decoded and passed the rules encodes");
            "ok"
        }
        Err(e) => {
            assert!(!e.is_retryable(), "a pinned codec never asks a server: {e}");
            assert!(
                matches!(
                    e,
                    DecodeError::Framing(_)
                        | DecodeError::TooLarge { .. }
                        | DecodeError::UnknownSchemaId(_)
                        | DecodeError::IncompatibleSchema { .. }
                        | DecodeError::Avro(_)
                        | DecodeError::Record(_)
                        | DecodeError::Validation(_)
                ),
                "{e}"
            );
            e.reason()
        }
    }
}

fn decode(kind: SchemaKind, bytes: &[u8]) {
    let outcome = match kind {
        SchemaKind::ClickEvent => decode_as::<ClickEvent>(kind, bytes),
        SchemaKind::PurchaseEvent => decode_as::<PurchaseEvent>(kind, bytes),
        SchemaKind::CustomerProfile => decode_as::<CustomerProfile>(kind, bytes),
        SchemaKind::SegmentModel => decode_as::<SegmentModel>(kind, bytes),
        SchemaKind::SegmentAssignment => decode_as::<SegmentAssignment>(kind, bytes),
        SchemaKind::SegmentProfile => decode_as::<SegmentProfile>(kind, bytes),
        SchemaKind::CartAbandonment => decode_as::<CartAbandonment>(kind, bytes),
        SchemaKind::BuildOrder => decode_as::<BuildOrder>(kind, bytes),
    };
    *OUTCOMES
        .lock()
        .expect("outcomes")
        .entry((format!("{kind:?}"), outcome))
        .or_default() += 1;
}

fn kind() -> impl Strategy<Value = SchemaKind> {
    proptest::sample::select(KINDS.to_vec())
}

/// One structural change to a valid record's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte (after the header or anywhere).
    Flip(usize, u8),
    /// Cut at a position.
    Truncate(usize),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Repeat a range at its end.
    Repeat(usize, usize),
    /// Replace the byte at a position with a varint claiming a huge length or count.
    HugeLength(usize, i64),
    /// Frame the datum with another schema's id (or any id).
    SchemaId(u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Repeat(i, n)),
        2 => (any::<usize>(), prop_oneof![
                Just(i64::MAX), Just(i64::MIN), Just(-1i64), 1i64..1 << 40
            ]).prop_map(|(i, n)| Mutation::HugeLength(i, n)),
        2 => prop_oneof![
                proptest::sample::select(KINDS.to_vec()).prop_map(default_pinned_id),
                any::<u32>(),
            ].prop_map(Mutation::SchemaId),
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
        Mutation::Truncate(i) => bytes.truncate(at(*i, bytes.len())),
        Mutation::Insert(i, b) => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Repeat(i, n) => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            let copy = bytes[i..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Mutation::HugeLength(i, n) => {
            // Within the datum: a length or count prefix is somewhere after the header.
            if bytes.len() > codec::HEADER_LEN {
                let i = codec::HEADER_LEN + at(*i, bytes.len() - codec::HEADER_LEN);
                bytes.splice(i..=i, avro_long(*n));
            }
        }
        Mutation::SchemaId(id) => {
            if bytes.len() >= codec::HEADER_LEN {
                bytes[1..codec::HEADER_LEN].copy_from_slice(&id.to_be_bytes());
            }
        }
    }
}

fn cases() -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases: n,
        // A failure prints its minimal input; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn arbitrary_bytes_decode_to_a_typed_outcome(
        kind in kind(),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        decode(kind, &bytes);
    }

    #[test]
    fn arbitrary_datums_in_a_valid_frame_decode_to_a_typed_outcome(
        kind in kind(),
        writer in kind(),
        datum in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        decode(kind, &codec::frame(default_pinned_id(writer), &datum));
    }

    #[test]
    fn mutated_valid_records_decode_to_a_typed_outcome(
        kind in kind(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = valid(kind);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode(kind, &bytes);
    }
}

/// Runs after the properties when the tests run on one thread; with several, prints what
/// was counted so far. Either way it checks that each property's inputs reached the decoder
/// and that the mutations produced both records and dead letters.
#[test]
fn zz_outcomes_of_the_fuzzed_inputs() {
    // Enough inputs of its own so that it does not depend on the other tests' order.
    let mut runner = proptest::test_runner::TestRunner::new(cases());
    runner
        .run(
            &(kind(), proptest::collection::vec(mutation(), 1..3)),
            |(kind, mutations)| {
                let mut bytes = valid(kind);
                for m in &mutations {
                    apply(&mut bytes, m);
                }
                decode(kind, &bytes);
                Ok(())
            },
        )
        .expect("typed outcomes");
    let outcomes = OUTCOMES.lock().expect("outcomes").clone();
    let total: u64 = outcomes.values().sum();
    let mut by_outcome: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, o), n) in &outcomes {
        *by_outcome.entry(o).or_default() += n;
    }
    println!("fuzz: {total} inputs decoded to a typed outcome: {by_outcome:?}");
    assert!(
        by_outcome.get("ok").copied().unwrap_or(0) > 0,
        "{by_outcome:?}"
    );
    for reason in ["decode", "schema"] {
        assert!(
            by_outcome.get(reason).copied().unwrap_or(0) > 0,
            "{by_outcome:?}"
        );
    }
}

/// A zig-zag varint, as Avro writes lengths and counts.
fn avro_long(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A few bytes whose length prefix asks for hundreds of megabytes are refused by the Avro
/// allocation limit before anything is allocated: the decoder names the allocation, where
/// with apache_avro's default limit (512 MiB) it would allocate the buffer and then fail to
/// fill it.
#[test]
fn a_crafted_length_or_count_is_refused_before_it_is_allocated() {
    let codec = Codec::pinned();
    let id = default_pinned_id(SchemaKind::ClickEvent);
    // event_id: a string of 300 MB, in a 10-byte record.
    let datum = avro_long(300_000_000);
    let err = codec
        .decode::<ClickEvent>(topic(SchemaKind::ClickEvent), &codec::frame(id, &datum))
        .expect_err("refused");
    assert_eq!(err.reason(), "decode", "{err}");
    assert!(err.to_string().contains("llocat"), "{err}");
    // A map (as `options`) whose count claims a million entries, in a 3-byte datum:
    // the limit the codec set holds for every Avro read of the process.
    let map = Schema::parse_str(r#"{"type": "map", "values": "string"}"#).expect("schema");
    #[allow(deprecated)]
    let err = apache_avro::from_avro_datum(&map, &mut &avro_long(1_000_000)[..], None)
        .expect_err("refused");
    assert!(err.to_string().contains("llocat"), "{err}");
    assert_eq!(
        codec::AVRO_MAX_ALLOCATION_BYTES,
        apache_avro::util::max_allocation_bytes(0),
        "the limit is the codec's"
    );
}
