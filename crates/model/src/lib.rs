//! fitstream's segment model contract: how a published
//! [`SegmentModel`](fitstream_contracts::SegmentModel) places a customer profile.
//!
//! The segmenter fits models and the profiler assigns profiles with them between refits; both
//! use this crate, so that a model is read and applied the same way on both sides. It is
//! pure and small: no Kafka, no clock, no clustering library.
//!
//! Layout:
//! - [`transform`]: `log1p` on heavy-tailed features, then standard scaling frozen per model
//!   version ([`Scaler`], [`FeatureVector`], [`FEATURE_COUNT`], [`LOG1P_FEATURES`]).
//! - [`assign`](mod@assign): nearest-centroid assignment without allocation
//!   ([`SegmentAssigner`], [`assign()`], [`Assignment`]).
//! - [`error`]: [`ModelError`], a model that this code cannot use.

pub mod assign;
pub mod error;
pub mod transform;

pub use assign::{Assignment, SegmentAssigner, assign};
pub use error::ModelError;
pub use transform::{FEATURE_COUNT, FeatureVector, LOG1P_FEATURES, Scaler};
