//! Replays the REES46 October 2019 excerpt shipped in `../shared/data/rees46/` and checks the
//! numbers its README states.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufReader;

use fitstream_contracts::validate;
use fitstream_contracts::{ClickEventType, Codec};
use fitstream_simulator::{InputRecord, read_rees46};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/rees46/cosmetics-2019-10.csv"
);

#[test]
fn october_excerpt_has_the_readme_numbers() {
    let Ok(file) = File::open(FILE) else {
        eprintln!(
            "SKIPPED: {FILE} is missing; the REES46 excerpt lives in ../shared next to the repository"
        );
        return;
    };
    let mut clicks_by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut click_ids = HashSet::new();
    let mut order_ids = HashSet::new();
    let mut customers = HashSet::new();
    let (mut clicks, mut orders, mut units, mut errors) = (0, 0, 0, Vec::new());
    let mut last_time = None;
    let codec = Codec::pinned();
    for item in read_rees46(BufReader::new(file)) {
        let record = match item {
            Ok(r) => r,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let t = record.event_time().expect("replayed records have a time");
        assert!(last_time.is_none_or(|l| l <= t), "out of order at {t}");
        last_time = Some(t);
        let topic = record.topic().default_name();
        let bytes = record.encode_value(&codec, topic).expect("encodes");
        match record {
            InputRecord::Click(c) => {
                validate::click(&c).expect("valid click");
                assert_eq!(
                    codec.decode(topic, &bytes).ok().as_ref(),
                    Some(&c),
                    "round trip"
                );
                let kind = match c.event_type {
                    ClickEventType::ProductView => "view",
                    ClickEventType::AddToCart => "cart",
                    ClickEventType::RemoveFromCart => "remove_from_cart",
                    other => panic!("unexpected {other:?}"),
                };
                *clicks_by_type.entry(kind).or_default() += 1;
                clicks += 1;
                click_ids.insert(c.event_id);
                customers.insert(c.customer_id);
            }
            InputRecord::Purchase(p) => {
                validate::purchase(&p).expect("valid purchase");
                assert_eq!(
                    codec.decode(topic, &bytes).ok().as_ref(),
                    Some(&p),
                    "round trip"
                );
                assert!(
                    order_ids.insert(p.order_id.clone()),
                    "order {} emitted twice",
                    p.order_id
                );
                assert!(p.lines.iter().all(|l| l.quantity == 1));
                orders += 1;
                units += p.lines.iter().map(|l| l.quantity as usize).sum::<usize>();
                customers.insert(p.customer_id);
            }
            InputRecord::Raw { .. } => panic!("a replay yields no raw bytes"),
        }
    }
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(clicks_by_type.get("view"), Some(&9_371));
    assert_eq!(clicks_by_type.get("cart"), Some(&6_565));
    assert_eq!(clicks_by_type.get("remove_from_cart"), Some(&4_625));
    assert_eq!(clicks, 20_561);
    assert_eq!(click_ids.len(), 19_321, "distinct click event ids");
    assert_eq!(clicks - click_ids.len(), 1_240, "duplicate click ids");
    assert_eq!(orders, 191);
    assert_eq!(units, 1_720, "order lines (units)");
    assert_eq!(customers.len(), 3_270);
    eprintln!(
        "clicks {clicks} ({clicks_by_type:?}), distinct ids {}, duplicates {}, orders {orders}, units {units}, customers {}",
        click_ids.len(),
        clicks - click_ids.len(),
        customers.len()
    );
}
