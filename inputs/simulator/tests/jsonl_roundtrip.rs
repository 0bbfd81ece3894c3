//! Property: simulated records, with every knob turned, survive `write_jsonl` then
//! `read_jsonl` unchanged.

use fitstream_simulator::{
    Defect, DelayDistribution, InputRecord, SimConfig, Simulator, read_jsonl, write_jsonl,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn simulated_records_round_trip_through_json_lines(
        seed in any::<u64>(),
        customers in 1_usize..60,
        seconds in 600_u64..40_000,
        rate in 0.01_f64..0.3,
        duplicate_fraction in 0.0_f64..0.3,
        malformed_fraction in 0.0_f64..0.2,
        late_fraction in 0.0_f64..0.1,
        out_of_order_max_ms in 0_u64..60_000,
        uniform in any::<bool>(),
    ) {
        let cfg = SimConfig {
            seed,
            customers,
            seconds,
            rate,
            duplicate_fraction,
            malformed_fraction,
            late_fraction,
            out_of_order_max_ms,
            out_of_order: if uniform { DelayDistribution::Uniform } else { DelayDistribution::Exponential },
            // Oversized (1 MiB each) is left to the unit tests, to keep this test quick.
            defects: Defect::ALL.into_iter().filter(|d| *d != Defect::Oversized).collect(),
            ..SimConfig::default()
        };
        let records: Vec<InputRecord> = Simulator::new(cfg).expect("valid config").collect();
        let mut buf = Vec::new();
        let written = write_jsonl(&records, &mut buf).expect("writes");
        prop_assert_eq!(written as usize, records.len());
        let back: Vec<InputRecord> = read_jsonl(buf.as_slice()).collect::<Result<_, _>>().expect("reads");
        prop_assert_eq!(back, records);
    }
}
