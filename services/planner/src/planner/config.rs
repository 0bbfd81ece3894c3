//! The planner's settings.

use fitstream_runtime::dedup::Deduplicator;
use fitstream_runtime::window::WindowSpec;
use serde::{Deserialize, Serialize};

/// Planner settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerConfig {
    /// How long after an add-to-cart a purchase converts it, ms (default 30 min).
    pub cart_window_ms: i64,
    /// Grace of the cart join, ms (default 5 min).
    pub cart_grace_ms: i64,
    /// Build-order windows (default tumbling 15 min).
    pub build_window: WindowSpec,
    /// Grace of build windows, ms (default 5 min).
    pub build_grace_ms: i64,
    /// Beta prior of conversion rates: pseudo-conversions.
    pub prior_alpha: f64,
    /// Beta prior of conversion rates: pseudo-abandonments.
    pub prior_beta: f64,
    /// Priority of Released requests before the quantity bonus.
    pub released_priority: i32,
    /// Priority of Forecast requests before the quantity bonus.
    pub forecast_priority: i32,
    /// Memory of event ids and order ids for deduplication, ms of event time.
    pub dedup_retention_ms: i64,
    /// How long (event time) a cart or purchase waits for the segment-assignment table to
    /// reach its time before it joins with what is there, ms (default 1 min). At most the
    /// build-window grace, so that a waiting purchase is never late for its window.
    pub segment_grace_ms: i64,
    /// How long a customer's older segment versions are kept, ms (default 24 h).
    pub segment_retention_ms: i64,
    /// Routing file; the bundled `deploy/plants.toml` when absent.
    pub routing: Option<std::path::PathBuf>,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            cart_window_ms: 30 * 60_000,
            cart_grace_ms: 5 * 60_000,
            build_window: WindowSpec::Tumbling {
                size_ms: 15 * 60_000,
            },
            build_grace_ms: 5 * 60_000,
            prior_alpha: 1.0,
            prior_beta: 3.0,
            released_priority: 600,
            forecast_priority: 200,
            dedup_retention_ms: Deduplicator::DEFAULT_RETENTION_MS,
            segment_grace_ms: 60_000,
            segment_retention_ms: 24 * 3_600_000,
            routing: None,
        }
    }
}

impl PlannerConfig {
    /// Settings that cannot work together.
    pub fn check(&self) -> Result<(), String> {
        if self.segment_grace_ms < 0 || self.segment_grace_ms > self.build_grace_ms {
            return Err(format!(
                "planner.segment_grace_ms ({}) must be between 0 and planner.build_grace_ms ({}): \
                 a purchase waiting for its segment longer than its window's grace would be late",
                self.segment_grace_ms, self.build_grace_ms
            ));
        }
        if self.segment_grace_ms > self.cart_window_ms + self.cart_grace_ms {
            return Err(format!(
                "planner.segment_grace_ms ({}) must be at most the cart window plus its grace",
                self.segment_grace_ms
            ));
        }
        Ok(())
    }
}
