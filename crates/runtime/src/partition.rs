//! Kafka's default partitioner for keyed records: `murmur2(key) & 0x7fffffff % partitions`,
//! as the Java client computes it. fitstream always chooses the partition itself, so the
//! embedded driver and every Kafka client put a key on the same partition.

/// The seed of Kafka's murmur2.
const KAFKA_SEED: u32 = 0x9747_b28c;

/// The partition of `key` among `partitions` (which must be positive).
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key, KAFKA_SEED) & 0x7fff_ffff;
    (hash % partitions.max(1) as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_java_client() {
        // org.apache.kafka.common.utils.Utils.murmur2 test vectors (signed ints in Java).
        assert_eq!(murmur2::murmur2(b"21", KAFKA_SEED) as i32, -973_932_308);
        assert_eq!(murmur2::murmur2(b"foobar", KAFKA_SEED) as i32, -790_332_482);
        assert_eq!(
            murmur2::murmur2(b"a-little-bit-long-string", KAFKA_SEED) as i32,
            -985_981_536
        );
        assert_eq!(
            murmur2::murmur2(b"a-little-bit-longer-string", KAFKA_SEED) as i32,
            -1_486_304_829
        );
        assert_eq!(
            murmur2::murmur2(
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                KAFKA_SEED
            ) as i32,
            -58_897_971
        );
        for p in 1..8 {
            assert!((0..p).contains(&partition_for(b"customer-42", p)));
        }
    }
}
