//! Segments: assignments (`marketing.segment-assignments.v1`), models
//! (`iob.segment-models.v1`) and segment profiles (`marketing.segment-profiles.v1`).

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};

use super::Contract;
use crate::avro::{self, Fields, RecordError, nullable, record, string, time};
use crate::schemas::SchemaKind;
use crate::time::EventTime;

/// A customer's segment, emitted when it changes (`marketing.segment-assignments.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentAssignment {
    /// Customer (the key).
    pub customer_id: String,
    /// Stable segment id.
    pub segment_id: i32,
    /// Segment label.
    pub segment_label: String,
    /// Model version.
    pub model_version: i64,
    /// Distance to the centroid (scaled space).
    pub distance: f64,
    /// Segment before this change.
    pub previous_segment_id: Option<i32>,
    /// Event time from which it holds.
    pub event_time: EventTime,
}

impl Contract for SegmentAssignment {
    const KIND: SchemaKind = SchemaKind::SegmentAssignment;

    fn to_avro(&self) -> Result<Value, RecordError> {
        Ok(record(vec![
            ("customer_id", string(&self.customer_id)),
            ("segment_id", Value::Int(self.segment_id)),
            ("segment_label", string(&self.segment_label)),
            ("model_version", Value::Long(self.model_version)),
            ("distance", Value::Double(self.distance)),
            (
                "previous_segment_id",
                nullable(self.previous_segment_id.map(Value::Int)),
            ),
            ("event_time", time(self.event_time)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("SegmentAssignment", value)?;
        Ok(SegmentAssignment {
            customer_id: f.string("customer_id")?,
            segment_id: f.int("segment_id")?,
            segment_label: f.string("segment_label")?,
            model_version: f.long("model_version")?,
            distance: f.double("distance")?,
            previous_segment_id: f.opt_int("previous_segment_id")?,
            event_time: f.time("event_time")?,
        })
    }
}

/// One segment of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSegment {
    /// Stable id.
    pub segment_id: i32,
    /// Label.
    pub label: String,
    /// Centroid in scaled space.
    pub centroid: Vec<f64>,
    /// One sentence for marketing: what sets the segment apart (None from older producers).
    #[serde(default)]
    pub description: Option<String>,
}

/// A fitted segment model (`iob.segment-models.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentModel {
    /// Version, from 1.
    pub version: i64,
    /// Valid from this event time on.
    pub cutoff_event_time: EventTime,
    /// Feature order.
    pub feature_names: Vec<String>,
    /// Features transformed with log1p.
    pub log1p_features: Vec<String>,
    /// Scaler means.
    pub means: Vec<f64>,
    /// Scaler standard deviations.
    pub scales: Vec<f64>,
    /// Segments.
    pub segments: Vec<ModelSegment>,
    /// Name of the quality score.
    pub quality_metric: String,
    /// Quality score.
    pub quality_score: f64,
    /// Next unused segment id.
    pub next_segment_id: i32,
    /// Profiles in the fitted sample.
    pub sample_size: i64,
}

impl Contract for SegmentModel {
    const KIND: SchemaKind = SchemaKind::SegmentModel;

    fn to_avro(&self) -> Result<Value, RecordError> {
        let segments = self
            .segments
            .iter()
            .map(|s| {
                record(vec![
                    ("segment_id", Value::Int(s.segment_id)),
                    ("label", string(&s.label)),
                    ("centroid", avro::doubles(&s.centroid)),
                    (
                        "description",
                        nullable(s.description.as_deref().map(string)),
                    ),
                ])
            })
            .collect();
        Ok(record(vec![
            ("version", Value::Long(self.version)),
            ("cutoff_event_time", time(self.cutoff_event_time)),
            ("feature_names", avro::strings(&self.feature_names)),
            ("log1p_features", avro::strings(&self.log1p_features)),
            ("means", avro::doubles(&self.means)),
            ("scales", avro::doubles(&self.scales)),
            ("segments", Value::Array(segments)),
            ("quality_metric", string(&self.quality_metric)),
            ("quality_score", Value::Double(self.quality_score)),
            ("next_segment_id", Value::Int(self.next_segment_id)),
            ("sample_size", Value::Long(self.sample_size)),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("SegmentModel", value)?;
        let version = f.long("version")?;
        let cutoff_event_time = f.time("cutoff_event_time")?;
        let feature_names = f.strings("feature_names")?;
        let log1p_features = f.strings("log1p_features")?;
        let means = f.doubles("means")?;
        let scales = f.doubles("scales")?;
        let segments = f
            .array("segments")?
            .into_iter()
            .map(|v| {
                let mut s = Fields::new("ModelSegment", v)?;
                Ok(ModelSegment {
                    segment_id: s.int("segment_id")?,
                    label: s.string("label")?,
                    centroid: s.doubles("centroid")?,
                    description: s.opt_string("description")?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(SegmentModel {
            version,
            cutoff_event_time,
            feature_names,
            log1p_features,
            means,
            scales,
            segments,
            quality_metric: f.string("quality_metric")?,
            quality_score: f.double("quality_score")?,
            next_segment_id: f.int("next_segment_id")?,
            sample_size: f.long("sample_size")?,
        })
    }
}

/// What a segment looks like (`marketing.segment-profiles.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentProfile {
    /// Stable id (the key).
    pub segment_id: i32,
    /// Label.
    pub label: String,
    /// Members at fit time.
    pub size: i64,
    /// Model version.
    pub model_version: i64,
    /// Quality score of the model.
    pub quality_score: f64,
    /// Centroid: days since last order.
    pub recency_days: f64,
    /// Centroid: orders.
    pub orders: f64,
    /// Centroid: spend.
    pub spend: f64,
    /// Centroid: average order value.
    pub avg_order_value: f64,
    /// Centroid: sessions.
    pub sessions: f64,
    /// Centroid: cart abandonment rate.
    pub cart_abandonment_rate: f64,
    /// Centroid: orders per session.
    pub conversion_rate: f64,
    /// Top categories of the members.
    pub top_categories: Vec<String>,
    /// The segment is gone in this model version.
    pub retired: bool,
    /// One sentence for marketing: what sets the segment apart (None from older producers).
    #[serde(default)]
    pub description: Option<String>,
}

impl Contract for SegmentProfile {
    const KIND: SchemaKind = SchemaKind::SegmentProfile;

    fn to_avro(&self) -> Result<Value, RecordError> {
        Ok(record(vec![
            ("segment_id", Value::Int(self.segment_id)),
            ("label", string(&self.label)),
            ("size", Value::Long(self.size)),
            ("model_version", Value::Long(self.model_version)),
            ("quality_score", Value::Double(self.quality_score)),
            ("recency_days", Value::Double(self.recency_days)),
            ("orders", Value::Double(self.orders)),
            ("spend", Value::Double(self.spend)),
            ("avg_order_value", Value::Double(self.avg_order_value)),
            ("sessions", Value::Double(self.sessions)),
            (
                "cart_abandonment_rate",
                Value::Double(self.cart_abandonment_rate),
            ),
            ("conversion_rate", Value::Double(self.conversion_rate)),
            ("top_categories", avro::strings(&self.top_categories)),
            ("retired", Value::Boolean(self.retired)),
            (
                "description",
                nullable(self.description.as_deref().map(string)),
            ),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("SegmentProfile", value)?;
        Ok(SegmentProfile {
            segment_id: f.int("segment_id")?,
            label: f.string("label")?,
            size: f.long("size")?,
            model_version: f.long("model_version")?,
            quality_score: f.double("quality_score")?,
            recency_days: f.double("recency_days")?,
            orders: f.double("orders")?,
            spend: f.double("spend")?,
            avg_order_value: f.double("avg_order_value")?,
            sessions: f.double("sessions")?,
            cart_abandonment_rate: f.double("cart_abandonment_rate")?,
            conversion_rate: f.double("conversion_rate")?,
            top_categories: f.strings("top_categories")?,
            retired: f.boolean("retired")?,
            description: f.opt_string("description")?,
        })
    }
}
