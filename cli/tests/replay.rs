//! `replay` of the REES46 excerpt through the embedded pipeline: JSON-lines outputs, and
//! reconciliation of released units and cart outcomes with the input.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use fitstream::commands::{self, InputFormat};
use fitstream::config::FitstreamConfig;
use fitstream_simulator::InputRecord;
use serde_json::Value;

fn rees46() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/rees46/cosmetics-2019-10.csv"
    ))
}

fn lines(path: PathBuf) -> Vec<Value> {
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect()
}

#[test]
fn rees46_replay_reconciles() {
    let cfg = FitstreamConfig::default();
    let out = std::env::temp_dir().join(format!("fitstream-replay-{}", std::process::id()));
    let summary = commands::replay(&cfg, &rees46(), InputFormat::Rees46, &out).expect("replay");

    // Ground truth straight from the file: distinct cart events and purchased units.
    let mut carts = HashSet::new();
    let mut units = 0i64;
    let mut orders = HashSet::new();
    for r in commands::read_inputs(&rees46(), InputFormat::Rees46).expect("read") {
        match r {
            InputRecord::Click(c)
                if c.event_type == fitstream_contracts::ClickEventType::AddToCart =>
            {
                carts.insert(c.event_id);
            }
            InputRecord::Purchase(p) if orders.insert(p.order_id.clone()) => {
                units += p.lines.iter().map(|l| i64::from(l.quantity)).sum::<i64>();
            }
            _ => {}
        }
    }
    let dead = lines(out.join("iob.dead-letter.v1.jsonl"));
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for d in &dead {
        *by_reason
            .entry(
                d["headers"]["fitstream.error.reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
            .or_default() += 1;
        assert!(d["headers"]["fitstream.source.offset"].as_str().is_some());
    }
    println!(
        "summary: {}",
        serde_json::to_string(&summary).unwrap_or_default()
    );
    println!(
        "dead letters by reason: {by_reason:?}; distinct carts {}, units {units}",
        carts.len()
    );

    // Released quantities over every build order equal the distinct purchased units (none of
    // the excerpt's purchases is late or invalid: that is asserted too).
    let mut released = 0i64;
    let mut ids = HashSet::new();
    for plant in ["berlin", "lyon", "porto"] {
        for o in lines(out.join(format!("factory.{plant}.build-orders.v1.jsonl"))) {
            assert_eq!(o["topic"], format!("factory.{plant}.build-orders.v1"));
            let v = &o["value"];
            assert_eq!(o["key"], v["material_definition_id"]);
            assert!(
                ids.insert(v["request_id"].as_str().expect("id").to_owned()),
                "request ids are unique"
            );
            if v["request_state"] == "Released" {
                let q: f64 = v["quantity"]
                    .as_str()
                    .expect("decimal as string")
                    .parse()
                    .expect("number");
                released += q as i64;
            }
        }
    }
    assert_eq!(
        by_reason.get("late"),
        None,
        "the excerpt is sorted: nothing is late"
    );
    assert_eq!(released, units);
    assert_eq!(summary.planner.released_units, units);
    // Each distinct cart yields exactly one conversion or one abandonment.
    assert_eq!(
        summary.planner.conversions + summary.planner.abandonments,
        carts.len() as u64
    );
    let abandoned = lines(out.join("marketing.cart-abandonment.v1.jsonl"));
    assert_eq!(abandoned.len() as u64, summary.planner.abandonments);
    // The excerpt's duplicate cart rows (6,565 rows, 6,482 distinct) are dropped as duplicates.
    assert_eq!(carts.len(), 6_482);
    assert!(summary.planner.duplicates >= 6_565 - 6_482);
    std::fs::remove_dir_all(&out).ok();
}

/// Simulated traffic (late records, duplicates and malformed records included) written as
/// JSON lines and replayed: the reconciliation `replay` prints holds (it fails otherwise),
/// and the late records it accounts for are really there.
#[test]
fn simulated_traffic_replay_reconciles() {
    let cfg = FitstreamConfig::default();
    let dir = std::env::temp_dir().join(format!("fitstream-sim-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("sim.jsonl");
    let sim = fitstream_simulator::SimConfig {
        seconds: 12 * 3_600,
        ..fitstream_simulator::SimConfig::default()
    };
    let records: Vec<InputRecord> = fitstream_simulator::Simulator::new(sim)
        .expect("simulator")
        .collect();
    let file = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
    fitstream_simulator::write_jsonl(records.iter().cloned(), file).expect("write");

    let out = dir.join("out");
    let summary = commands::replay(&cfg, &input, InputFormat::Jsonl, &out).expect("reconciles");
    let mut truth = fitstream::reconcile::InputTruth::default();
    for r in &records {
        truth.observe(r);
    }
    let r = fitstream::reconcile::reconcile(&cfg, &truth, &summary, &out).expect("reconcile");
    println!("{r}");
    assert!(r.holds());
    assert!(
        r.dead_units.get("late").is_some_and(|n| *n > 0)
            && r.dead_carts.get("late").is_some_and(|n| *n > 0),
        "{r:?}"
    );
    assert!(summary.planner.duplicates > 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// A small history of REES46's multi-category shop (the layout of its monthly files, with
/// `category_code`s), made by hand (`tests/data/README.md`): per category, a shopper carts and
/// buys a product; one more shopper in a category no rule names.
fn multi_category_history() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/multi-category.csv"
    ))
}

#[test]
fn a_multi_category_history_is_routed_by_category_path() {
    let dir = std::env::temp_dir().join(format!("fitstream-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let input = multi_category_history();
    let cfg = FitstreamConfig::default();
    let out = dir.join("out");
    let summary = commands::replay(&cfg, &input, InputFormat::Rees46, &out).expect("replay");

    // Released units per plant's topic, from the build orders written.
    let mut released: BTreeMap<String, f64> = BTreeMap::new();
    for plant in ["berlin", "lyon", "porto"] {
        let topic = format!("factory.{plant}.build-orders.v1");
        for order in lines(out.join(format!("{topic}.jsonl"))) {
            if order["value"]["request_state"] == "Released" {
                let quantity = order["value"]["quantity"].as_str().unwrap_or_default();
                *released.entry(plant.to_owned()).or_default() +=
                    quantity.parse::<f64>().expect("a decimal quantity");
            }
        }
    }
    println!(
        "released units per plant: {released:?}; planner: {:?}",
        summary.planner
    );
    assert_eq!(
        released,
        BTreeMap::from([
            ("berlin".to_owned(), 1.0),
            ("lyon".to_owned(), 2.0),
            ("porto".to_owned(), 1.0)
        ]),
        "electronics.* to lyon, computers.* to porto, the kettle to the default plant"
    );
    assert_eq!(
        summary.planner.unrouted, 2,
        "the kettle's cart and its order line are unrouted"
    );
}

#[test]
fn rows_dead_lettered_for_their_content_are_accounted_for_and_the_replay_succeeds() {
    let dir = std::env::temp_dir().join(format!("fitstream-bad-rows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let input = dir.join("bad-rows.csv");
    std::fs::write(
        &input,
        ",event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n\
         0,2019-10-01 00:00:00 UTC,cart,1,10,,acme,2.50,100,s-1\n\
         1,2019-10-01 00:05:00 UTC,purchase,1,10,,acme,2.50,100,s-1\n\
         2,2019-10-01 00:06:00 UTC,cart,2,10,,acme,-3.00,101,s-2\n\
         3,2019-10-01 00:07:00 UTC,cart,3,10,,acme,4.00,,s-3\n\
         4,2019-10-01 00:08:00 UTC,purchase,4,10,,acme,-1.00,102,s-4\n\
         5,2019-10-01 00:09:00 UTC,cart,5,10,,acme,4.00,103,\n",
    )
    .expect("written");
    let cfg = FitstreamConfig::default();
    let out = dir.join("out");
    let summary = commands::replay(&cfg, &input, InputFormat::Rees46, &out)
        .expect("every row is accounted for");
    let mut truth = fitstream::reconcile::InputTruth::default();
    for r in commands::read_inputs(&input, InputFormat::Rees46).expect("read") {
        truth.observe(&r);
    }
    let r = fitstream::reconcile::reconcile(&cfg, &truth, &summary, &out).expect("reconcile");
    println!("{r}");
    assert!(r.holds(), "{r:?}");
    assert_eq!(
        (r.carts, r.converted, r.abandoned),
        (4, 1, 1),
        "the session-less cart is abandoned like any other"
    );
    assert_eq!(
        r.dead_carts.get("validation"),
        Some(&2),
        "the negative price and the cart without a customer"
    );
    assert_eq!(
        r.dead_units.get("validation"),
        Some(&1),
        "the negative price"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Rows that are not records (issue 13, part 4): each is a dead letter with reason `parse`
/// and its raw line, a stray quote costs its own row and no other, an over-long row is read
/// past, and the replay succeeds with every row accounted for.
#[test]
fn every_row_that_is_not_a_record_is_a_parse_dead_letter_and_costs_only_itself() {
    let dir = std::env::temp_dir().join(format!("fitstream-parse-rows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let input = dir.join("parse-rows.csv");
    let good = |i: u32| format!("{i},2019-10-01 00:{i:02}:00 UTC,view,{i},10,,acme,2.50,100,s-1\n");
    let bad: Vec<Vec<u8>> = vec![
        b"90,2019-10-01 00:10:00 UTC,view,1".to_vec(),
        b"91,2019-10-01 00:10:00 UTC,view,1,10,,acme,NaN,100,s-1".to_vec(),
        b"92,yesterday,view,1,10,,acme,2.50,100,s-1".to_vec(),
        b"93,2019-10-01 00:10:00 UTC,wishlist,1,10,,acme,2.50,100,s-1".to_vec(),
        b"94,2019-10-01 00:10:00 UTC,view,1,10,,acme,12345678901234567890123456789,100,s-1"
            .to_vec(),
        b"95,2019-10-01 00:10:00 UTC,view,1,10,,\"acme,2.50,100,s-1".to_vec(),
        b"96,2019-10-01 00:10:00 UTC,view,1,10,,\xff\xfe,2.50,100,s-1".to_vec(),
        format!(
            "97,2019-10-01 00:10:00 UTC,view,1,10,,{},2.50,100,s-1",
            "b".repeat(100_000)
        )
        .into_bytes(),
    ];
    let mut file = b",event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n".to_vec();
    for i in 0..10 {
        file.extend_from_slice(good(i).as_bytes());
    }
    for b in &bad {
        file.extend_from_slice(b);
        file.push(b'\n');
    }
    // The rows after the stray quote and the huge row are read as rows.
    for i in 11..21 {
        file.extend_from_slice(good(i).as_bytes());
    }
    std::fs::write(&input, &file).expect("written");
    let cfg = FitstreamConfig::default();
    let out = dir.join("out");
    let summary = commands::replay(&cfg, &input, InputFormat::Rees46, &out)
        .expect("every row is accounted for");
    assert_eq!(summary.dead_letters.get("parse"), Some(&(bad.len() as u64)));
    assert!(summary.accounted(), "{:?}", summary.outcomes);
    for service in ["profiler", "planner"] {
        assert_eq!(
            summary.outcomes[service]["iob.clickstream.v1"].read, 20,
            "{service} reads every good row, those after the stray quote included"
        );
    }
    let parse: Vec<Value> = lines(out.join("iob.dead-letter.v1.jsonl"))
        .into_iter()
        .filter(|d| d["headers"]["fitstream.error.reason"] == "parse")
        .collect();
    assert_eq!(parse.len(), bad.len());
    for (d, (i, raw)) in parse.iter().zip(bad.iter().enumerate()) {
        let line = 12 + i;
        assert_eq!(d["headers"]["fitstream.source.offset"], line.to_string());
        assert_eq!(d["headers"]["fitstream.service"], "replay");
        assert_eq!(
            d["headers"]["fitstream.source.topic"],
            format!("file:{}", input.display())
        );
        assert_eq!(d["value"]["value_hex"], hex::encode(raw), "line {line}");
    }
    // The 100 kB row is over the line bound: not held, but its raw line is kept up to the
    // dead letter's bound.
    assert!(
        parse[7]["headers"]["fitstream.error.message"]
            .as_str()
            .is_some_and(|m| m.contains("longer than a line may be")),
        "{}",
        parse[7]["headers"]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_record_dated_2099_among_2019_is_refused_as_future_and_makes_nothing_late() {
    let dir = std::env::temp_dir().join(format!("fitstream-future-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let input = dir.join("future.csv");
    std::fs::write(
        &input,
        ",event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n\
         0,2019-10-01 00:00:00 UTC,cart,1,10,,acme,2.50,100,s-1\n\
         1,2099-10-01 00:01:00 UTC,cart,9,10,,acme,2.50,109,s-9\n\
         2,2019-10-01 00:05:00 UTC,purchase,1,10,,acme,2.50,100,s-1\n\
         3,2019-10-01 00:06:00 UTC,cart,2,10,,acme,3.00,101,s-2\n",
    )
    .expect("written");
    let cfg = FitstreamConfig::default();
    let out = dir.join("out");
    let summary = commands::replay(&cfg, &input, InputFormat::Rees46, &out).expect("replay");
    let dead = lines(out.join("iob.dead-letter.v1.jsonl"));
    let reasons: HashSet<(String, String)> = dead
        .iter()
        .map(|d| {
            let h = &d["headers"];
            (
                h["fitstream.error.reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                h["fitstream.service"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        HashSet::from([
            ("future".to_owned(), "profiler".to_owned()),
            ("future".to_owned(), "planner".to_owned())
        ]),
        "only the 2099 cart is dead-lettered, by both services"
    );
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (
            summary.planner.conversions,
            summary.planner.abandonments,
            summary.planner.late
        ),
        (1, 1, 0),
        "the 2019 carts convert and are abandoned as if the 2099 one never came"
    );
    std::fs::remove_dir_all(&dir).ok();
}
