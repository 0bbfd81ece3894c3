//! The encoding of state values (changelog records) and of the records stages exchange on
//! repartition topics: a two-byte header, then MessagePack.
//!
//! - Header: [`MAGIC`], then the format version ([`VERSION`]). A value without the magic byte
//!   was written before the header existed (bincode 1.3, "version 0"); a value of another
//!   version was written by another build. Both fail to decode with a [`StateError`] that
//!   names the version found and the version this build reads, never with garbage.
//! - Body: MessagePack (`rmp-serde`, maintained) with field names. Chosen over bincode 1.3
//!   (unmaintained, RUSTSEC-2025-0141) and postcard because it is self-describing: the event
//!   types keep optional and untagged fields, which non-self-describing formats cannot read
//!   back, floats round-trip bit for bit, and a field added with `#[serde(default)]` still
//!   reads values written before it (a compatible change needs no new version).
//! - A change that old values cannot be read as (a renamed field, a new variant meaning)
//!   bumps [`VERSION`] and either keeps a reader for the older version here or lets restores
//!   of it fail with the version named; the changelog is then rebuilt from the inputs.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StateError;

/// First byte of every encoded value.
pub const MAGIC: u8 = 0xF5;
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;

/// Encodes a value with the header.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StateError> {
    let mut out = vec![MAGIC, VERSION];
    rmp_serde::encode::write_named(&mut out, value)
        .map_err(|e| StateError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a value written by [`encode`], checking the header.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    match bytes {
        [MAGIC, VERSION, body @ ..] => {
            rmp_serde::from_slice(body).map_err(|e| StateError::Decode(e.to_string()))
        }
        [MAGIC, found, ..] => Err(StateError::Version {
            found: *found,
            supported: VERSION,
        }),
        _ => Err(StateError::Version {
            found: 0,
            supported: VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V1 {
        a: i64,
        f: f64,
        s: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V1WithMore {
        a: i64,
        f: f64,
        s: Option<String>,
        #[serde(default)]
        added: Vec<u32>,
    }

    #[test]
    fn values_round_trip_exactly() {
        let v = V1 {
            a: i64::MIN,
            f: 0.1 + 0.2,
            s: None,
        };
        let bytes = encode(&v).expect("encodes");
        assert_eq!(&bytes[..2], &[MAGIC, VERSION]);
        let back: V1 = decode(&bytes).expect("decodes");
        assert_eq!(back, v);
        assert_eq!(back.f.to_bits(), v.f.to_bits());
    }

    #[test]
    fn a_field_added_with_a_default_reads_older_values() {
        let bytes = encode(&V1 {
            a: 7,
            f: 1.5,
            s: Some("x".into()),
        })
        .expect("encodes");
        let read: V1WithMore = decode(&bytes).expect("decodes");
        assert_eq!(read.a, 7);
        assert!(read.added.is_empty());
    }

    #[test]
    fn another_version_fails_naming_it() {
        let mut bytes = encode(&5u32).expect("encodes");
        bytes[1] = 9;
        let e = decode::<u32>(&bytes).expect_err("version 9 is unknown");
        assert_eq!(
            e.to_string(),
            "state format version 9 cannot be read by this build (it reads version 1); \
             rebuild the state from the inputs (reset the changelog topics) or run the build \
             that wrote it"
        );
    }

    #[test]
    fn a_value_without_header_is_version_0() {
        // What bincode 1.3 wrote for a u64 7: eight little-endian bytes.
        let e = decode::<u64>(&7u64.to_le_bytes()).expect_err("unversioned");
        assert!(
            matches!(
                e,
                StateError::Version {
                    found: 0,
                    supported: 1
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn garbage_after_a_valid_header_is_a_decode_error() {
        let e = decode::<V1>(&[MAGIC, VERSION, 0xC1]).expect_err("0xC1 is never used");
        assert!(matches!(e, StateError::Decode(_)), "{e}");
    }
}
