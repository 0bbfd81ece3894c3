//! Memory per customer of the profiler's state, on realistic populations.
//!
//! The customers' states are measured by [`ProfileStore::heap_bytes`] (what the store asks of
//! the allocator: hash table, keys, states) and [`ProfileStore::allocator_bytes`] (the same
//! with a glibc-like allocator's chunk sizes). The workspace forbids `unsafe`, so no counting
//! global allocator: the estimate follows std's `HashMap` layout (a unit test of the store
//! checks its bucket arithmetic against a real map).
//!
//! Deduplication memory is reported beside it: it grows with the events of the last 24 h of
//! event time, not with the customers.

use std::collections::HashMap;

use fitstream_contracts::{ClickEvent, ClickEventType, EventTime, samples};
use fitstream_profiler::store::ProfileStore;
use fitstream_runtime::partition::partition_for;
use fitstream_runtime::state::{DedupStore, checkpoint_store};
use fitstream_simulator::{InputRecord, SimConfig, Simulator};

const BUDGET: usize = 256;

struct Measured {
    customers: usize,
    requested: f64,
    allocator: f64,
    dedup_ids: usize,
    dedup_bytes: usize,
}

/// Feeds `sim` to `partitions` stores (partitioned like the topics), deduplicating as the
/// task does, with each partition's watermark at its latest event time.
fn measure(records: &[InputRecord], partitions: i32) -> Measured {
    let mut stores: Vec<ProfileStore> = (0..partitions).map(|_| ProfileStore::new()).collect();
    let mut dedups: Vec<DedupStore> = (0..partitions)
        .map(|_| DedupStore::new(24 * 3_600_000))
        .collect();
    let mut watermarks = vec![EventTime::MIN; partitions as usize];
    for (n, record) in records.iter().enumerate() {
        let (customer, id, t) = match record {
            InputRecord::Click(c) => (&c.customer_id, format!("e:{}", c.event_id), c.event_time),
            InputRecord::Purchase(p) => (&p.customer_id, format!("o:{}", p.order_id), p.event_time),
            InputRecord::Raw { .. } => continue,
        };
        let p = partition_for(customer.as_bytes(), partitions) as usize;
        if !dedups[p].first_time(&id, t) {
            continue;
        }
        match record {
            InputRecord::Click(c) => stores[p].click(c),
            InputRecord::Purchase(o) => stores[p].purchase(o),
            InputRecord::Raw { .. } => {}
        }
        if t > watermarks[p] {
            watermarks[p] = t;
            dedups[p].expire(t);
        }
        // What checkpoints and emissions clear.
        if n % 1_000 == 0 {
            for (s, d) in stores.iter_mut().zip(&mut dedups) {
                s.take_changed();
                s.take_pending();
                checkpoint_store("dedup", d).expect("checkpoints");
            }
        }
    }
    for (s, d) in stores.iter_mut().zip(&mut dedups) {
        s.take_changed();
        s.take_pending();
        checkpoint_store("dedup", d).expect("checkpoints");
    }
    let customers: usize = stores.iter().map(ProfileStore::len).sum();
    let requested: usize = stores.iter().map(ProfileStore::heap_bytes).sum();
    let allocator: usize = stores.iter().map(ProfileStore::allocator_bytes).sum();
    Measured {
        customers,
        requested: requested as f64 / customers as f64,
        allocator: allocator as f64 / customers as f64,
        dedup_ids: dedups.iter().map(DedupStore::len).sum(),
        dedup_bytes: dedups.iter().map(DedupStore::heap_bytes).sum(),
    }
}

/// Many customers with a few events each (the simulator's set-up cost grows with customers):
/// views in a category, a cart, in one or two sessions.
fn crowd(customers: usize, events: usize) -> Vec<InputRecord> {
    const CATEGORIES: [&str; 7] = [
        "skincare",
        "makeup",
        "haircare",
        "fragrance",
        "nails",
        "bodycare",
        "tools",
    ];
    let start = SimConfig::default().start.0;
    let mut out = Vec::with_capacity(customers * events);
    for e in 0..events {
        for c in 0..customers {
            let n = e * customers + c;
            out.push(InputRecord::Click(ClickEvent {
                event_id: format!("ev-{n}"),
                customer_id: format!("cust-{c:06}"),
                session_id: format!("se-{c}-{}", e / 2),
                event_type: if e % 3 == 2 {
                    ClickEventType::AddToCart
                } else {
                    ClickEventType::ProductView
                },
                product_id: Some(format!("prod-{:05}", n % 997)),
                category: Some(CATEGORIES[(c + e / 3) % CATEGORIES.len()].to_owned()),
                region: "eu-west".into(),
                event_time: EventTime(start + n as i64 * 100),
                // No SKU, options, price or query; channel "web".
                ..samples::bare_click()
            }));
        }
    }
    out
}

#[test]
fn customer_state_takes_well_under_256_bytes_per_customer() {
    let populations: Vec<(&str, Vec<InputRecord>)> = vec![
        (
            "default shop, 3 days",
            Simulator::new(SimConfig::default())
                .expect("valid")
                .collect(),
        ),
        ("100,000 customers, 4 events each", crowd(100_000, 4)),
    ];
    let mut table: HashMap<(usize, i32), (f64, f64)> = HashMap::new();
    for (i, (name, records)) in populations.into_iter().enumerate() {
        for partitions in [1, 6] {
            let m = measure(&records, partitions);
            eprintln!(
                "{name}, {partitions} partition(s): {} customers, {:.0} bytes/customer requested, {:.0} with allocator chunks; dedup: {} ids, {:.0} bytes/id, {:.0} bytes/customer",
                m.customers,
                m.requested,
                m.allocator,
                m.dedup_ids,
                m.dedup_bytes as f64 / m.dedup_ids.max(1) as f64,
                m.dedup_bytes as f64 / m.customers as f64,
            );
            assert!(
                m.requested < BUDGET as f64,
                "{name}: {:.0} bytes",
                m.requested
            );
            assert!(
                m.allocator < BUDGET as f64,
                "{name}: {:.0} bytes",
                m.allocator
            );
            table.insert((i, partitions), (m.requested, m.allocator));
        }
    }
    assert_eq!(table.len(), 4);
}
