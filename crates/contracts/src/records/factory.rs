//! Factory requests: ISA-95 build orders (`factory.<plant>.build-orders.v1`) and their parts.

use apache_avro::types::Value;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Contract;
use crate::avro::{Fields, RecordError, decimal_field, nullable, record, string, time};
use crate::schemas::SchemaKind;
use crate::time::EventTime;

/// B2MML RequestState.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RequestState {
    /// Expected demand (open or abandoned carts times conversion rate).
    Forecast,
    /// Firm demand (purchase lines).
    Released,
    /// Withdrawn.
    Cancelled,
}

impl RequestState {
    const SYMBOLS: [&'static str; 3] = ["Forecast", "Released", "Cancelled"];

    /// The Avro symbol.
    pub fn symbol(self) -> &'static str {
        Self::SYMBOLS[self as usize]
    }
}

/// A ProductionParameter: one chosen option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductionParameter {
    /// Option name.
    pub id: String,
    /// Option value.
    pub value: String,
}

/// Where a request is built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Plant.
    pub site: String,
    /// Area.
    pub area: String,
    /// Line.
    pub line: String,
}

/// Quantity contributed by one buyer segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentShare {
    /// Segment; None = unassigned.
    pub segment_id: Option<i32>,
    /// Label.
    pub segment_label: String,
    /// Quantity.
    pub quantity: Decimal,
}

/// An ISA-95 ProductionRequest (`factory.<plant>.build-orders.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildOrder {
    /// Deterministic id.
    pub request_id: String,
    /// Forecast or Released.
    pub request_state: RequestState,
    /// Product to build.
    pub product_production_rule_id: String,
    /// SKU.
    pub material_definition_id: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit of measure.
    pub unit_of_measure: String,
    /// Chosen options, sorted by id.
    pub parameters: Vec<ProductionParameter>,
    /// Where.
    pub location: Location,
    /// Earliest start.
    pub earliest_start: EventTime,
    /// Latest end.
    pub latest_end: EventTime,
    /// Priority, higher = more urgent.
    pub priority: i32,
    /// Orders or carts behind the quantity.
    pub order_count: i32,
    /// Quantity by segment.
    pub segment_mix: Vec<SegmentShare>,
    /// Window start.
    pub window_start: EventTime,
    /// Window end (exclusive).
    pub window_end: EventTime,
    /// Segment model version.
    pub model_version: Option<i64>,
}

impl Contract for BuildOrder {
    const KIND: SchemaKind = SchemaKind::BuildOrder;

    fn to_avro(&self) -> Result<Value, RecordError> {
        let mix = self
            .segment_mix
            .iter()
            .map(|s| {
                Ok(record(vec![
                    ("segment_id", nullable(s.segment_id.map(Value::Int))),
                    ("segment_label", string(&s.segment_label)),
                    (
                        "quantity",
                        decimal_field("SegmentShare", "quantity", s.quantity, 3)?,
                    ),
                ]))
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let params = self
            .parameters
            .iter()
            .map(|p| record(vec![("id", string(&p.id)), ("value", string(&p.value))]))
            .collect();
        Ok(record(vec![
            ("request_id", string(&self.request_id)),
            (
                "request_state",
                Value::Enum(
                    self.request_state as u32,
                    self.request_state.symbol().to_owned(),
                ),
            ),
            (
                "product_production_rule_id",
                string(&self.product_production_rule_id),
            ),
            (
                "material_definition_id",
                string(&self.material_definition_id),
            ),
            (
                "quantity",
                decimal_field("BuildOrder", "quantity", self.quantity, 3)?,
            ),
            ("unit_of_measure", string(&self.unit_of_measure)),
            ("parameters", Value::Array(params)),
            (
                "location",
                record(vec![
                    ("site", string(&self.location.site)),
                    ("area", string(&self.location.area)),
                    ("line", string(&self.location.line)),
                ]),
            ),
            ("earliest_start", time(self.earliest_start)),
            ("latest_end", time(self.latest_end)),
            ("priority", Value::Int(self.priority)),
            ("order_count", Value::Int(self.order_count)),
            ("segment_mix", Value::Array(mix)),
            ("window_start", time(self.window_start)),
            ("window_end", time(self.window_end)),
            (
                "model_version",
                nullable(self.model_version.map(Value::Long)),
            ),
        ]))
    }

    fn from_avro(value: Value) -> Result<Self, RecordError> {
        let mut f = Fields::new("BuildOrder", value)?;
        let request_id = f.string("request_id")?;
        let state = f.symbol("request_state")?;
        let request_state = RequestState::SYMBOLS
            .iter()
            .position(|s| *s == state)
            .map(|i| {
                [
                    RequestState::Forecast,
                    RequestState::Released,
                    RequestState::Cancelled,
                ][i]
            })
            .ok_or_else(|| RecordError::WrongType {
                record: "BuildOrder",
                field: "request_state".into(),
                expected: "RequestState symbol",
                found: state.clone(),
            })?;
        let product_production_rule_id = f.string("product_production_rule_id")?;
        let material_definition_id = f.string("material_definition_id")?;
        let quantity = f.decimal("quantity", 3)?;
        let unit_of_measure = f.string("unit_of_measure")?;
        let parameters = f
            .array("parameters")?
            .into_iter()
            .map(|v| {
                let mut p = Fields::new("ProductionParameter", v)?;
                Ok(ProductionParameter {
                    id: p.string("id")?,
                    value: p.string("value")?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let mut loc = f.record("location", "Location")?;
        let location = Location {
            site: loc.string("site")?,
            area: loc.string("area")?,
            line: loc.string("line")?,
        };
        let earliest_start = f.time("earliest_start")?;
        let latest_end = f.time("latest_end")?;
        let priority = f.int("priority")?;
        let order_count = f.int("order_count")?;
        let segment_mix = f
            .array("segment_mix")?
            .into_iter()
            .map(|v| {
                let mut s = Fields::new("SegmentShare", v)?;
                Ok(SegmentShare {
                    segment_id: s.opt_int("segment_id")?,
                    segment_label: s.string("segment_label")?,
                    quantity: s.decimal("quantity", 3)?,
                })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(BuildOrder {
            request_id,
            request_state,
            product_production_rule_id,
            material_definition_id,
            quantity,
            unit_of_measure,
            parameters,
            location,
            earliest_start,
            latest_end,
            priority,
            order_count,
            segment_mix,
            window_start: f.time("window_start")?,
            window_end: f.time("window_end")?,
            model_version: f.opt_long("model_version")?,
        })
    }
}
