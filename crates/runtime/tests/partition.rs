//! Key to partition, pinned: the partitions Kafka's own Java client chooses for these keys.
//! The embedded driver and the Kafka writer both place records with
//! [`partition_for`](fitstream_runtime::partition::partition_for); if it drifted from Kafka's
//! partitioner, records written by other producers (collectors partition by customer id) would
//! meet fitstream's state on the wrong partition.
//!
//! The literals come from Kafka 4.4.0's client, not from this crate:
//! `org.apache.kafka.clients.producer.internals.BuiltInPartitioner.partitionForKey(key, n)`
//! (`toPositive(Utils.murmur2(key)) % n`), run in jshell with `kafka-clients-4.4.0.jar` (the
//! jars `deploy/kafka.sh` installs) on the UTF-8 bytes of each key.

use fitstream_runtime::partition::partition_for;

/// Key, then its partition among 1, 3, 6, 12 and 100 partitions.
const JAVA_CLIENT: &[(&str, [i32; 5])] = &[
    // Tails of 0, 1, 2 and 3 bytes after the 4-byte blocks.
    ("", [0, 0, 3, 9, 81]),
    ("a", [0, 1, 4, 4, 24]),
    ("ab", [0, 2, 2, 2, 34]),
    ("abc", [0, 0, 3, 3, 7]),
    ("abcd", [0, 2, 2, 8, 0]),
    // The keys of Kafka's UtilsTest murmur2 vectors.
    ("21", [0, 0, 0, 0, 40]),
    ("foobar", [0, 0, 0, 6, 66]),
    ("a-little-bit-long-string", [0, 2, 2, 8, 12]),
    ("a-little-bit-longer-string", [0, 2, 5, 11, 19]),
    (
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
        [0, 2, 5, 5, 77],
    ),
    // Customer ids as the simulator and the samples write them.
    ("cust-00001", [0, 0, 0, 0, 32]),
    ("cust-00002", [0, 2, 5, 5, 1]),
    ("cust-04711", [0, 0, 0, 6, 18]),
    ("c-1", [0, 2, 5, 11, 59]),
    ("customer-42", [0, 0, 3, 9, 53]),
    // Non-ASCII keys hash their UTF-8 bytes.
    ("kunde-üß", [0, 0, 0, 0, 36]),
    ("顧客-7", [0, 1, 1, 7, 91]),
    // SKU keys and the segmenter's sample key.
    ("p-40", [0, 0, 3, 3, 79]),
    ("p-1/rose/50ml", [0, 2, 2, 2, 46]),
    ("berlin\0p-40/rose", [0, 0, 3, 9, 25]),
    ("segmenter-sample", [0, 2, 5, 5, 77]),
];

#[test]
fn keys_go_to_the_partitions_kafkas_java_client_chooses() {
    let mut wrong = Vec::new();
    for (key, want) in JAVA_CLIENT {
        let got = [1, 3, 6, 12, 100].map(|n| partition_for(key.as_bytes(), n));
        if got != *want {
            wrong.push(format!("{key:?}: got {got:?}, Kafka {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
