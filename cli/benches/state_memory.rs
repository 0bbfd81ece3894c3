//! Bytes of state, counted by a counting allocator (issue 16, part 2): every allocation of
//! this process goes through `stats_alloc`, and each figure is the bytes still allocated
//! after a phase minus before it (the inputs are made and dropped one at a time, so they do
//! not count).
//!
//! - Profiler: `FITSTREAM_BENCH_CUSTOMERS` customers (default 1,000,000) with four clicks
//!   each (three product views and an add-to-cart, in one or two sessions, one of seven
//!   categories) into the profiler's store, and their event ids into the deduplication store
//!   (24 h of event time: every id of the run is remembered). Printed: bytes per customer of
//!   the profiles, bytes per remembered id, and both together at four events a day.
//!   Then the lookup API's view of the same customers (`--api`): bytes per customer.
//! - Planner: open carts (add-to-carts of distinct customers on 1,000 SKUs, none bought,
//!   no window closed) and open build-window cells (one-line purchases of distinct SKUs in
//!   one window, none closed): bytes per open cart and per open window cell, each with the
//!   deduplication and join state it brings.
//!
//! `cargo bench -p fitstream --bench state_memory`; not part of CI.

use std::alloc::System;

use fitstream_contracts::codec::Validated as _;
use fitstream_contracts::records::{ClickEventType, PurchaseEvent, PurchaseLine};
use fitstream_contracts::{EventTime, samples};
use fitstream_planner::PlannerConfig;
use fitstream_planner::planner::Planner;
use fitstream_planner::routing::Routing;
use fitstream_profiler::lookup::Known;
use fitstream_profiler::store::ProfileStore;
use fitstream_runtime::state::{DedupStore, checkpoint_store};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed since the region began (`stats_alloc` counts a
/// reallocation's growth in `bytes_allocated` and its shrinking in `bytes_deallocated`
/// already; `bytes_reallocated` repeats them).
fn live(region: &Region<'_, System>) -> f64 {
    let c = region.change();
    c.bytes_allocated as f64 - c.bytes_deallocated as f64
}

mod common;
use common::{START, click};

fn profiler(customers: usize) {
    let mut store = ProfileStore::new();
    let mut dedup = DedupStore::new(24 * 3_600_000);
    let region = Region::new(GLOBAL);
    let mut ids = 0usize;
    for e in 0..4 {
        for c in 0..customers {
            let event = click(c, e, customers);
            if dedup.first_time(&format!("e:{}", event.event_id), event.event_time) {
                ids += 1;
            }
            store.click(&event);
            if (e * customers + c).is_multiple_of(10_000) {
                // What checkpoints clear.
                store.take_changed();
                store.take_pending();
                checkpoint_store("dedup", &mut dedup).expect("checkpoints");
            }
        }
    }
    store.take_changed();
    store.take_pending();
    checkpoint_store("dedup", &mut dedup).expect("checkpoints");
    let both = live(&region);

    let dedup_alone = {
        let before = live(&region);
        drop(dedup);
        before - live(&region)
    };
    let profiles = both - dedup_alone;
    assert_eq!(store.len(), customers);
    // The lookup API's view of the same customers (what `run profiler --api` adds).
    let view = {
        let lookup = fitstream_profiler::lookup::Lookup::new(1);
        let before = live(&region);
        for chunk in store.ids().chunks(10_000) {
            let known = chunk
                .iter()
                .filter_map(|id| {
                    let state = store.get(id)?;
                    Some((id.clone(), Known::of(0, state, store.interner())))
                })
                .collect();
            lookup.publish(0, known, None, 0, Vec::new());
        }
        let bytes = live(&region) - before;
        assert_eq!(lookup.len(), customers);
        bytes
    };
    println!(
        "lookup API view: {:.0} bytes/customer beside the profiles",
        view / customers as f64
    );
    println!(
        "profiler: {customers} customers, {:.0} bytes/customer of profiles (the store's own estimate: {:.0}); \
         dedup {ids} ids, {:.0} bytes/id; together at 4 events/customer/day: {:.0} bytes/customer",
        profiles / customers as f64,
        store.heap_bytes() as f64 / customers as f64,
        dedup_alone / ids as f64,
        (profiles + dedup_alone) / customers as f64,
    );
}

fn planner(n: usize) {
    let config = PlannerConfig::default();
    let mut out = Vec::new();

    let mut carts = Planner::new(config.clone(), Routing::bundled());
    let region = Region::new(GLOBAL);
    for c in 0..n {
        let mut e = click(c, 3, n);
        e.event_type = ClickEventType::AddToCart;
        e.sku = Some(format!("sku-{:04}", c % 1_000));
        e.product_id = e.sku.clone();
        e.event_time = EventTime(START + (c as i64 * 60_000) / n as i64);
        e.check(&Default::default()).expect("a valid cart");
        carts.click(e, &mut out).expect("a cart");
        out.clear();
    }
    let per_cart = live(&region) / n as f64;

    let mut windows = Planner::new(config, Routing::bundled());
    let region = Region::new(GLOBAL);
    for s in 0..n {
        let order = PurchaseEvent {
            order_id: format!("o-{s}"),
            customer_id: format!("buyer-{s:07}"),
            event_time: EventTime(START + (s as i64 * 60_000) / n as i64),
            lines: vec![PurchaseLine {
                product_id: format!("sku-{s:07}"),
                sku: format!("sku-{s:07}"),
                options: Default::default(),
                category: Some("skincare".into()),
                quantity: 1,
                unit_price: rust_decimal::Decimal::new(1_000, 2),
            }],
            ..samples::purchase()
        };
        windows.purchase(order, &mut out).expect("a purchase");
        out.clear();
    }
    let per_cell = live(&region) / n as f64;
    assert_eq!(windows.stats().build_orders, 0, "no window closed");
    println!(
        "planner: {n} open carts, {per_cart:.0} bytes/open cart; {n} open window cells, {per_cell:.0} bytes/open window cell"
    );
}

fn main() {
    let customers: usize = std::env::var("FITSTREAM_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    profiler(customers);
    planner(customers / 10);
}
