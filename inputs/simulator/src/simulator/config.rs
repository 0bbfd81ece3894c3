//! What to simulate: [`SimConfig`], its defaults, how its start time is read and written,
//! and its checks.

use std::collections::BTreeMap;

use fitstream_contracts::EventTime;
use fitstream_contracts::validate::MAX_SKU_LEN;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalogue::{Catalogue, CatalogueConfig};
use crate::defects::Defect;
use crate::persona::Persona;

/// How out-of-order delays are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelayDistribution {
    /// Uniform between 0 and the maximum.
    Uniform,
    /// Exponential with a mean of a quarter of the maximum, capped at the maximum: most
    /// records nearly in order, a few far behind.
    Exponential,
}

/// What to simulate. Every field has a default; a configuration file names only what it
/// changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of every random choice: the same seed gives the same records.
    pub seed: u64,
    /// Events per second of event time, for the whole shop (not per customer). The run yields
    /// about `rate * seconds` well-formed records before duplicates.
    pub rate: f64,
    /// Length of the simulated span of event time, in seconds.
    pub seconds: u64,
    /// Event time of the start of the span: RFC 3339 text or milliseconds since the epoch.
    #[serde(serialize_with = "time_text", deserialize_with = "time_text_or_millis")]
    pub start: EventTime,
    /// Number of customers.
    pub customers: usize,
    /// Relative weight of each persona by name (see [`Persona::ALL`]); a persona not listed
    /// gets no customers.
    pub personas: BTreeMap<String, f64>,
    /// Largest out-of-order delay: a record is emitted up to this much later than its event
    /// time order says. 0 keeps event-time order.
    pub out_of_order_max_ms: u64,
    /// How out-of-order delays are distributed below the maximum.
    pub out_of_order: DelayDistribution,
    /// Fraction of records emitted late, `late_delay_ms` to twice that after their time.
    pub late_fraction: f64,
    /// Delay of late records (the least; the most is twice it).
    pub late_delay_ms: u64,
    /// Fraction of records emitted twice with identical content.
    pub duplicate_fraction: f64,
    /// Fraction of records replaced by raw bytes with one of `defects`.
    pub malformed_fraction: f64,
    /// Defects drawn for malformed records. The default leaves out `Oversized`, whose values
    /// of 900,000 bytes each would make a simulated stream heavy; add it when wanted.
    pub defects: Vec<Defect>,
    /// The product catalogue.
    pub catalogue: CatalogueConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            rate: 1.0,
            seconds: 3 * 86_400,
            start: EventTime(1_767_571_200_000), // 2026-01-05T00:00:00Z, a Monday
            customers: 2_000,
            personas: Persona::ALL
                .iter()
                .map(|p| (p.name.to_owned(), 1.0))
                .collect(),
            out_of_order_max_ms: 2_000,
            out_of_order: DelayDistribution::Exponential,
            late_fraction: 0.001,
            late_delay_ms: 3_600_000,
            duplicate_fraction: 0.01,
            malformed_fraction: 0.001,
            defects: Defect::ALL
                .into_iter()
                .filter(|d| *d != Defect::Oversized)
                .collect(),
            catalogue: CatalogueConfig::default(),
        }
    }
}

fn time_text<S: Serializer>(t: &EventTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_string())
}

fn time_text_or_millis<'de, D: Deserializer<'de>>(d: D) -> Result<EventTime, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Time {
        Millis(i64),
        Text(String),
    }
    match Time::deserialize(d)? {
        Time::Millis(ms) => Ok(EventTime(ms)),
        Time::Text(text) => EventTime::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time"))),
    }
}

/// A configuration that cannot be simulated.
#[derive(Debug, thiserror::Error)]
#[error("simulator config `{field}`: {message}")]
pub struct ConfigError {
    /// The field concerned.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl SimConfig {
    /// Checks the configuration; [`Simulator::new`](super::Simulator::new) does it too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, message: String| Err(ConfigError { field, message });
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return fail("rate", format!("{} is not a positive number", self.rate));
        }
        if self.seconds == 0 {
            return fail("seconds", "must be positive".into());
        }
        if self.customers == 0 {
            return fail("customers", "must be positive".into());
        }
        let end = self.start.plus(
            self.seconds
                .saturating_mul(1000)
                .try_into()
                .unwrap_or(i64::MAX),
        );
        if self.start < EventTime::MIN_VALID || end >= fitstream_contracts::validate::MAX_VALID_TIME
        {
            return fail(
                "start",
                format!("the span {}..{end} leaves 2000..2100", self.start),
            );
        }
        for (name, w) in &self.personas {
            if Persona::by_name(name).is_none() {
                let known: Vec<_> = Persona::ALL.iter().map(|p| p.name).collect();
                return fail(
                    "personas",
                    format!("unknown persona `{name}` (known: {})", known.join(", ")),
                );
            }
            if !(w.is_finite() && *w >= 0.0) {
                return fail(
                    "personas",
                    format!("weight {w} of `{name}` is not a non-negative number"),
                );
            }
        }
        if self.personas.values().sum::<f64>() <= 0.0 {
            return fail("personas", "no persona has a positive weight".into());
        }
        for (field, f) in [
            ("late_fraction", self.late_fraction),
            ("duplicate_fraction", self.duplicate_fraction),
            ("malformed_fraction", self.malformed_fraction),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return fail(field, format!("{f} is not in [0, 1]"));
            }
        }
        if self.malformed_fraction > 0.0 && self.defects.is_empty() {
            return fail(
                "defects",
                "malformed records need at least one defect".into(),
            );
        }
        let catalogue = Catalogue::generate(&self.catalogue, self.seed);
        if let Some(p) = catalogue
            .products()
            .iter()
            .find(|p| p.longest_sku() > MAX_SKU_LEN)
        {
            return fail(
                "catalogue",
                format!(
                    "SKUs of {} exceed {MAX_SKU_LEN} bytes: shorten option values",
                    p.id
                ),
            );
        }
        Ok(())
    }
}
