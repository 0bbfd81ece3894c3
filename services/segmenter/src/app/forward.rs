//! The `forward` stage: each profile checked and forwarded, under one key, to the fitting task.

use fitstream_contracts::{CustomerProfile, EventTime, ProfileFeatures};
use fitstream_runtime::deadletter::Reason;
use fitstream_runtime::state::codec;
use fitstream_runtime::task::{Ctx, Gate, Record, Rejection, Task};
use serde::{Deserialize, Serialize};

use super::{SAMPLE_KEY, SegmenterApp};

/// A profile as the fitting task needs it (the runtime's [`codec`] on the repartition topic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampledProfile {
    /// Customer.
    pub customer_id: String,
    /// Features.
    pub features: ProfileFeatures,
    /// Top categories.
    pub top_categories: Vec<String>,
    /// The profile's last event time.
    pub event_time: EventTime,
}

impl SampledProfile {
    /// The sample row of a profile; an error when a feature is not a finite number >= 0.
    pub fn of(p: CustomerProfile) -> Result<SampledProfile, String> {
        let values = p.features.to_vec();
        if let Some((name, v)) = ProfileFeatures::NAMES
            .iter()
            .zip(values)
            .find(|(_, v)| !(v.is_finite() && *v >= 0.0))
        {
            return Err(format!("feature {name} is {v}"));
        }
        Ok(SampledProfile {
            customer_id: p.customer_id,
            features: p.features,
            top_categories: p.top_categories,
            event_time: p.last_event_time,
        })
    }
}

/// The `forward` stage of one profiles partition: check, then forward under [`SAMPLE_KEY`].
pub struct ForwardTask {
    app: SegmenterApp,
}

impl ForwardTask {
    pub(super) fn new(app: SegmenterApp) -> ForwardTask {
        ForwardTask { app }
    }
}

impl Task for ForwardTask {
    fn process(
        &mut self,
        record: &Record<'_>,
        gate: &mut Gate<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), Rejection> {
        // A tombstone (a customer deleted from the table) is not forwarded: the customer
        // leaves the sample when evicted. Nothing upstream writes tombstones yet.
        let Some(bytes) = record.value else {
            return Ok(());
        };
        let profile: CustomerProfile = self.app.codec.decode(record.topic, bytes)?;
        let mut row =
            SampledProfile::of(profile).map_err(|m| Rejection::new(Reason::Validation, m))?;
        // A profile behind this partition's watermark (a late event updated it) goes on at
        // the watermark: the markers this task sends promise the fitting task nothing
        // earlier, so what a refit sees never depends on how the partitions interleave on
        // the repartition topic, and the customer's newest profile stays the newest there.
        let watermark = gate.at(row.event_time)?;
        row.event_time = row.event_time.max(watermark);
        let bytes =
            codec::encode(&row).map_err(|e| Rejection::new(Reason::Validation, e.to_string()))?;
        ctx.emit(
            &self.app.repartition_topic(),
            Some(SAMPLE_KEY.to_vec()),
            bytes,
            row.event_time,
        );
        Ok(())
    }

    fn advance(&mut self, _watermark: EventTime, _ctx: &mut Ctx) {}
}
