//! The planner's counters for reconciliation.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// Counters for reconciliation (shared by every task of one planner).
#[derive(Debug, Default)]
pub struct PlannerCounters {
    /// Carts that met a purchase.
    pub conversions: AtomicU64,
    /// Carts closed without one.
    pub abandonments: AtomicU64,
    /// Duplicates dropped.
    pub duplicates: AtomicU64,
    /// Late records.
    pub late: AtomicU64,
    /// Lines routed to the default plant.
    pub unrouted: AtomicU64,
    /// Released units emitted in build orders.
    pub released_units: AtomicI64,
    /// Build orders emitted.
    pub build_orders: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlannerStats {
    /// Carts that met a purchase.
    pub conversions: u64,
    /// Carts closed without one.
    pub abandonments: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late records.
    pub late: u64,
    /// Lines routed to the default plant.
    pub unrouted: u64,
    /// Released units emitted in build orders.
    pub released_units: i64,
    /// Build orders emitted.
    pub build_orders: u64,
}

impl PlannerCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> PlannerStats {
        PlannerStats {
            conversions: self.conversions.load(Ordering::Relaxed),
            abandonments: self.abandonments.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            unrouted: self.unrouted.load(Ordering::Relaxed),
            released_units: self.released_units.load(Ordering::Relaxed),
            build_orders: self.build_orders.load(Ordering::Relaxed),
        }
    }
}
