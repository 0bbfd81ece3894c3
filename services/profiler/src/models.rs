//! The segment models a task knows, versioned by cutoff: the table side of the as-of join.
//!
//! Models come from the segment-models topic (a global table: every task reads it whole and a
//! new task first receives every record seen so far). A model is valid from its
//! `cutoff_event_time` on; [`ModelTable::as_of`] answers "the latest version with cutoff <= t"
//! (semantics.md, "Stream-table join (as-of)"). The newest [`ModelTable::capacity`] versions
//! are kept; older ones are forgotten (a record so late that it needs one is assigned with
//! the oldest kept).

use std::collections::BTreeMap;
use std::sync::Arc;

use fitstream_contracts::{EventTime, ProfileFeatures, SegmentModel};
use fitstream_model::{ModelError, SegmentAssigner};

/// A usable model version.
#[derive(Debug)]
pub struct KnownModel {
    /// Version.
    pub version: i64,
    /// Valid from.
    pub cutoff: EventTime,
    /// Nearest-centroid assignment.
    pub assigner: SegmentAssigner,
}

/// Where a model arriving on the topic went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelArrival {
    /// The newest version known.
    Newest,
    /// Kept, but a newer version is known.
    Older,
    /// This version was known already.
    Known,
}

/// An assignment under one model version.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    /// Segment.
    pub segment_id: i32,
    /// Its label.
    pub label: String,
    /// Distance to the centroid (scaled space).
    pub distance: f64,
    /// Model version.
    pub version: i64,
}

/// Model versions by (cutoff, version).
#[derive(Debug)]
pub struct ModelTable {
    versions: BTreeMap<(EventTime, i64), Arc<KnownModel>>,
    capacity: usize,
}

impl ModelTable {
    /// A table keeping at most `capacity` versions (at least 1).
    pub fn new(capacity: usize) -> ModelTable {
        ModelTable {
            versions: BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Versions kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a model version.
    pub fn insert(&mut self, model: &SegmentModel) -> Result<ModelArrival, ModelError> {
        if self.versions.values().any(|m| m.version == model.version) {
            return Ok(ModelArrival::Known);
        }
        let assigner = SegmentAssigner::new(model)?;
        let newest = self.newest().is_none_or(|n| model.version > n.version);
        self.versions.insert(
            (model.cutoff_event_time, model.version),
            Arc::new(KnownModel {
                version: model.version,
                cutoff: model.cutoff_event_time,
                assigner,
            }),
        );
        while self.versions.len() > self.capacity {
            self.versions.pop_first();
        }
        Ok(if newest {
            ModelArrival::Newest
        } else {
            ModelArrival::Older
        })
    }

    /// The newest version (highest version number).
    pub fn newest(&self) -> Option<&Arc<KnownModel>> {
        self.versions.values().max_by_key(|m| m.version)
    }

    /// The lowest version above `version` (the next one to take effect).
    pub fn next_after(&self, version: i64) -> Option<&Arc<KnownModel>> {
        self.versions
            .values()
            .filter(|m| m.version > version)
            .min_by_key(|m| m.version)
    }

    /// The latest cutoff known: every version with an earlier cutoff was published before
    /// it (one partition, in order), so the table is complete up to it.
    pub fn latest_cutoff(&self) -> Option<EventTime> {
        self.versions.keys().next_back().map(|(t, _)| *t)
    }

    /// The version with this number.
    pub fn version(&self, version: i64) -> Option<&Arc<KnownModel>> {
        self.versions.values().find(|m| m.version == version)
    }

    /// The latest version valid at `t` (cutoff <= t); the oldest kept when `t` precedes them
    /// all and `fallback_to_oldest` is set.
    pub fn as_of(&self, t: EventTime, fallback_to_oldest: bool) -> Option<&Arc<KnownModel>> {
        self.versions
            .range(..=(t, i64::MAX))
            .next_back()
            .map(|(_, m)| m)
            .or_else(|| {
                fallback_to_oldest
                    .then(|| self.versions.values().next())
                    .flatten()
            })
    }

    /// Versions kept.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether no model is known.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

impl KnownModel {
    /// The segment of a profile under this model.
    pub fn place(&self, features: &ProfileFeatures) -> Placed {
        let a = self.assigner.assign(features);
        Placed {
            segment_id: a.segment_id,
            label: a.label.to_owned(),
            distance: a.distance,
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::samples;

    use super::*;

    fn model(version: i64, cutoff: i64) -> SegmentModel {
        SegmentModel {
            version,
            cutoff_event_time: EventTime(cutoff),
            ..samples::model()
        }
    }

    #[test]
    fn as_of_picks_the_latest_version_valid_at_t() {
        let mut t = ModelTable::new(8);
        assert_eq!(t.insert(&model(1, 100)), Ok(ModelArrival::Newest));
        assert_eq!(t.insert(&model(2, 200)), Ok(ModelArrival::Newest));
        assert_eq!(t.insert(&model(2, 200)), Ok(ModelArrival::Known));
        assert_eq!(t.as_of(EventTime(99), false).map(|m| m.version), None);
        assert_eq!(t.as_of(EventTime(99), true).map(|m| m.version), Some(1));
        assert_eq!(t.as_of(EventTime(100), false).map(|m| m.version), Some(1));
        assert_eq!(t.as_of(EventTime(199), false).map(|m| m.version), Some(1));
        assert_eq!(t.as_of(EventTime(200), false).map(|m| m.version), Some(2));
        assert_eq!(t.as_of(EventTime::MAX, false).map(|m| m.version), Some(2));
    }

    #[test]
    fn only_the_newest_versions_are_kept() {
        let mut t = ModelTable::new(2);
        for v in 1..=3 {
            assert_eq!(t.insert(&model(v, v * 100)), Ok(ModelArrival::Newest));
        }
        assert_eq!(t.len(), 2);
        assert!(t.version(1).is_none());
        assert_eq!(t.insert(&model(0, 50)), Ok(ModelArrival::Older));
        assert_eq!(t.newest().map(|m| m.version), Some(3));
    }

    #[test]
    fn a_broken_model_is_refused() {
        let mut broken = model(1, 0);
        broken.segments.clear();
        assert!(ModelTable::new(2).insert(&broken).is_err());
    }
}
