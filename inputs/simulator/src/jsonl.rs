//! fitstream's own JSON-lines format, the same object shape the pipeline writes for outputs.
//!
//! One object per line:
//!
//! ```text
//! {"topic":"iob.clickstream.v1","partition":null,"key":"c-1","timestamp":1767571200000,"value":{...}}
//! {"topic":"iob.clickstream.v1","partition":null,"key":"c-1","timestamp":null,"raw_hex":"0100...","defect":"Truncated"}
//! ```
//!
//! `value` is the serde JSON of a `ClickEvent` or `PurchaseEvent` (decimals are strings) and
//! `timestamp` its event time in milliseconds. Raw records carry their bytes in hex and their
//! [`Defect`]; a key that is not UTF-8 is written as `key_hex` instead of `key`.
//!
//! Reading decides the kind by the topic name (the default names, or any name containing
//! `clickstream` or `purchase`), and otherwise by the value's shape (an `order_id` makes a
//! purchase, an `event_type` a click). The key of an event is always its customer id: a
//! `key` field that says otherwise is ignored. Written lines carry the default topic names.

use std::borrow::Borrow;
use std::io::{self, BufRead, Write};

use fitstream_contracts::{ClickEvent, PurchaseEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::defects::Defect;
use crate::error::ReplayError;
use crate::lines::{self, Lines, MAX_JSON_LINE_BYTES};
use crate::record::{InputRecord, InputTopic};

/// One line, as written and read.
#[derive(Serialize, Deserialize)]
struct Line {
    topic: String,
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    defect: Option<Defect>,
}

/// One line as read: the value is kept as its text and read straight into the record its
/// topic names (no `Value` tree in between, the replay's path).
#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    // Read (a line with a partition or a timestamp of the wrong type is not a record), not
    // used: the key places a record, its value's event time dates it.
    #[serde(default, rename = "partition")]
    _partition: Option<i32>,
    #[serde(default, rename = "timestamp")]
    _timestamp: Option<i64>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_hex: Option<String>,
    #[serde(default, borrow)]
    value: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    raw_hex: Option<String>,
    #[serde(default)]
    defect: Option<Defect>,
}

/// The JSON object of one record.
pub fn to_json(record: &InputRecord) -> Result<Value, serde_json::Error> {
    let line = match record {
        InputRecord::Click(c) => Line {
            topic: InputTopic::Clickstream.default_name().to_owned(),
            partition: None,
            key: Some(c.customer_id.clone()),
            key_hex: None,
            timestamp: Some(c.event_time.millis()),
            value: Some(serde_json::to_value(c)?),
            raw_hex: None,
            defect: None,
        },
        InputRecord::Purchase(p) => Line {
            topic: InputTopic::Purchases.default_name().to_owned(),
            partition: None,
            key: Some(p.customer_id.clone()),
            key_hex: None,
            timestamp: Some(p.event_time.millis()),
            value: Some(serde_json::to_value(p)?),
            raw_hex: None,
            defect: None,
        },
        InputRecord::Raw {
            topic,
            key,
            value,
            defect,
        } => {
            let text_key = key.as_ref().and_then(|k| std::str::from_utf8(k).ok());
            Line {
                topic: topic.default_name().to_owned(),
                partition: None,
                key: text_key.map(str::to_owned),
                key_hex: if text_key.is_none() {
                    key.as_ref().map(hex::encode)
                } else {
                    None
                },
                timestamp: None,
                value: None,
                raw_hex: Some(hex::encode(value)),
                defect: Some(*defect),
            }
        }
    };
    serde_json::to_value(line)
}

/// Reads one record from its JSON object; the error says why it is not an input record.
pub fn from_json(json: Value) -> Result<InputRecord, String> {
    from_text(&json.to_string()).map_err(|e| e.message)
}

/// Why a line is not a record: not JSON at all (`syntax`), or JSON that is not an input
/// record.
struct NotRead {
    syntax: bool,
    message: String,
}

impl NotRead {
    fn record(message: impl Into<String>) -> NotRead {
        NotRead {
            syntax: false,
            message: message.into(),
        }
    }
}

/// Reads one record from the text of its JSON object.
fn from_text(text: &str) -> Result<InputRecord, NotRead> {
    let line: LineIn = serde_json::from_str(text).map_err(|e| NotRead {
        syntax: !e.is_data(),
        message: e.to_string(),
    })?;
    let topic = InputTopic::from_name(&line.topic);
    if let Some(raw) = line.raw_hex {
        let topic = topic.ok_or_else(|| {
            NotRead::record(format!("raw bytes for unknown topic `{}`", line.topic))
        })?;
        let value = hex::decode(raw).map_err(|e| NotRead::record(format!("raw_hex: {e}")))?;
        let key = match (line.key, line.key_hex) {
            (Some(k), _) => Some(k.into_bytes()),
            (None, Some(h)) => {
                Some(hex::decode(h).map_err(|e| NotRead::record(format!("key_hex: {e}")))?)
            }
            (None, None) => None,
        };
        let defect = line
            .defect
            .ok_or_else(|| NotRead::record("raw bytes without a `defect`"))?;
        return Ok(InputRecord::Raw {
            topic,
            key,
            value,
            defect,
        });
    }
    let value = line
        .value
        .ok_or_else(|| NotRead::record("neither `value` nor `raw_hex`"))?
        .get();
    let topic = match topic {
        Some(t) => t,
        // No input topic: the value's shape says (a rare path, through a `Value`).
        None => {
            let shape: Value = serde_json::from_str(value).unwrap_or_default();
            if shape.get("order_id").is_some() {
                InputTopic::Purchases
            } else if shape.get("event_type").is_some() {
                InputTopic::Clickstream
            } else {
                return Err(NotRead::record(format!(
                    "topic `{}` is not an input topic and the value is neither a click nor a purchase",
                    line.topic
                )));
            }
        }
    };
    let record = match topic {
        InputTopic::Clickstream => serde_json::from_str::<ClickEvent>(value)
            .map(InputRecord::Click)
            .map_err(|e| NotRead::record(format!("not a ClickEvent: {e}"))),
        InputTopic::Purchases => serde_json::from_str::<PurchaseEvent>(value)
            .map(InputRecord::Purchase)
            .map_err(|e| NotRead::record(format!("not a PurchaseEvent: {e}"))),
    }?;
    match record.unencodable() {
        Some(why) => Err(NotRead::record(why)),
        None => Ok(record),
    }
}

/// Writes records, one JSON object per line. Returns the number of lines written.
pub fn write_jsonl<I, W>(records: I, mut writer: W) -> io::Result<u64>
where
    I: IntoIterator,
    I::Item: Borrow<InputRecord>,
    W: Write,
{
    let mut lines = 0;
    for record in records {
        let json = to_json(record.borrow()).map_err(io::Error::other)?;
        serde_json::to_writer(&mut writer, &json)?;
        writer.write_all(b"\n")?;
        lines += 1;
    }
    writer.flush()?;
    Ok(lines)
}

/// Reads records from JSON lines, streaming. Blank lines are skipped; a line that is not an
/// input record is an error item with its line number and reading goes on; an I/O error is
/// the last item.
pub fn read_jsonl<R: BufRead>(reader: R) -> impl Iterator<Item = Result<InputRecord, ReplayError>> {
    JsonLines {
        lines: Lines::new(reader, MAX_JSON_LINE_BYTES),
        done: false,
    }
}

struct JsonLines<R> {
    lines: Lines<R>,
    done: bool,
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = Result<InputRecord, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let (line, text) = match self.lines.next_line() {
                None => {
                    self.done = true;
                    continue;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok((line, lines::Line::TooLong(bytes)))) => {
                    return Some(Err(ReplayError::TooLong { line, bytes }));
                }
                Some(Ok((line, lines::Line::Text(text)))) => (line, text),
            };
            let Ok(text) = std::str::from_utf8(text) else {
                return Some(Err(ReplayError::Json {
                    line,
                    message: "not UTF-8".into(),
                }));
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(from_text(text).map_err(|e| match e.syntax {
                true => ReplayError::Json {
                    line,
                    message: e.message,
                },
                false => ReplayError::NotARecord {
                    line,
                    message: e.message,
                },
            }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use fitstream_contracts::{ClickEventType, Codec, EventTime, PurchaseLine, samples};
    use rust_decimal::Decimal;

    use super::*;

    /// A product view at 2026-01-05T00:00:00Z, at 24.90.
    fn click() -> ClickEvent {
        ClickEvent {
            customer_id: "c-1".into(),
            event_type: ClickEventType::ProductView,
            price: Some(Decimal::new(2490, 2)),
            event_time: EventTime(1_767_571_200_000),
            ..samples::click()
        }
    }

    /// A one-line order at 24.90.
    fn purchase() -> PurchaseEvent {
        PurchaseEvent {
            lines: vec![PurchaseLine {
                unit_price: Decimal::new(2490, 2),
                ..samples::purchase_line()
            }],
            ..samples::purchase()
        }
    }

    #[test]
    fn lines_have_the_pipeline_shape() {
        let mut out = Vec::new();
        let raw = Defect::Truncated
            .corrupt(&InputRecord::Click(click()), &Codec::pinned())
            .expect("encodes");
        let records = [
            InputRecord::Click(click()),
            InputRecord::Purchase(purchase()),
            raw.clone(),
        ];
        assert_eq!(write_jsonl(&records, &mut out).expect("writes"), 3);
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines[0]["topic"], "iob.clickstream.v1");
        assert_eq!(lines[0]["partition"], Value::Null);
        assert_eq!(lines[0]["key"], "c-1");
        assert_eq!(lines[0]["timestamp"], 1_767_571_200_000_i64);
        assert_eq!(lines[0]["value"]["price"], "24.90");
        assert_eq!(lines[0]["value"]["event_type"], "PRODUCT_VIEW");
        assert_eq!(lines[1]["topic"], "iob.purchases.v1");
        assert_eq!(lines[1]["value"]["lines"][0]["unit_price"], "24.90");
        assert_eq!(lines[2]["timestamp"], Value::Null);
        assert_eq!(lines[2]["defect"], "Truncated");
        assert!(
            lines[2]["raw_hex"]
                .as_str()
                .is_some_and(|h| h.starts_with("00"))
        );

        let back: Vec<InputRecord> = read_jsonl(Cursor::new(text))
            .map(|r| r.expect("reads"))
            .collect();
        assert_eq!(back, records);
    }

    #[test]
    fn the_kind_comes_from_the_topic_then_the_shape() {
        let value = serde_json::to_string(&purchase()).expect("json");
        let text = format!(
            "{{\"topic\":\"shop-purchases\",\"key\":\"c-1\",\"timestamp\":1,\"value\":{value}}}\n\
             {{\"topic\":\"somewhere\",\"key\":\"c-1\",\"timestamp\":1,\"value\":{value}}}\n\
             {{\"topic\":\"somewhere\",\"key\":\"c-1\",\"timestamp\":1,\"value\":{}}}\n",
            serde_json::to_string(&click()).expect("json"),
        );
        let got: Vec<_> = read_jsonl(Cursor::new(text)).collect();
        assert!(matches!(&got[0], Ok(InputRecord::Purchase(p)) if *p == purchase()));
        assert!(matches!(&got[1], Ok(InputRecord::Purchase(p)) if *p == purchase()));
        assert!(matches!(&got[2], Ok(InputRecord::Click(c)) if *c == click()));
    }

    #[test]
    fn bad_lines_are_numbered_errors_and_reading_goes_on() {
        let good = serde_json::to_string(&to_json(&InputRecord::Click(click())).expect("json"))
            .expect("json");
        let mut text = format!(
            "{good}\nnot json\n\n{{\"topic\":\"iob.customer-profiles.v1\",\"value\":{{\"x\":1}}}}\n\
             {{\"topic\":\"iob.clickstream.v1\",\"value\":{{\"event_id\":\"e\"}}}}\n"
        )
        .into_bytes();
        text.extend_from_slice(b"\xff\xfe\n");
        text.extend_from_slice(format!("{good}\n").as_bytes());
        let got: Vec<_> = read_jsonl(Cursor::new(text)).collect();
        assert_eq!(got.len(), 6);
        assert!(got[0].is_ok());
        assert!(
            matches!(&got[1], Err(ReplayError::Json { line: 2, .. })),
            "{:?}",
            got[1]
        );
        assert!(
            matches!(&got[2], Err(ReplayError::NotARecord { line: 4, .. })),
            "{:?}",
            got[2]
        );
        assert!(
            matches!(&got[3], Err(ReplayError::NotARecord { line: 5, .. })),
            "{:?}",
            got[3]
        );
        assert!(
            matches!(&got[4], Err(ReplayError::Json { line: 6, .. })),
            "{:?}",
            got[4]
        );
        assert!(got[5].is_ok());
    }

    /// The line is read straight into its record: not JSON (cut short, trailing text) is a
    /// `Json` error, JSON of the wrong shape (an array, a field of the wrong type, even one
    /// the reader does not use) is `NotARecord`, and an escaped topic name still names it.
    #[test]
    fn json_or_not_and_record_or_not() {
        let good = serde_json::to_string(&to_json(&InputRecord::Click(click())).expect("json"))
            .expect("json");
        let value = serde_json::to_string(&click()).expect("json");
        let lines = [
            format!("{{\"topic\":\"iob.click\\u0073tream.v1\",\"value\":{value}}}"),
            format!("{{\"topic\":\"iob.clickstream.v1\",\"partition\":\"x\",\"value\":{value}}}"),
            format!("{{\"topic\":\"iob.clickstream.v1\",\"timestamp\":[],\"value\":{value}}}"),
            "[1,2]".to_owned(),
            "{\"topic\":\"iob.clickstream.v1\"".to_owned(),
            format!("{good} trailing"),
            format!("{{\"topic\":\"elsewhere\",\"value\":{value}}}"),
        ];
        let got: Vec<_> = read_jsonl(Cursor::new(lines.join("\n"))).collect();
        assert_eq!(got.len(), 7);
        assert_eq!(got[0].as_ref().ok(), Some(&InputRecord::Click(click())));
        for (i, g) in got.iter().enumerate().skip(1).take(2) {
            assert!(
                matches!(g, Err(ReplayError::NotARecord { .. })),
                "{i}: {g:?}"
            );
        }
        assert!(
            matches!(&got[3], Err(ReplayError::NotARecord { .. })),
            "{:?}",
            got[3]
        );
        assert!(
            matches!(&got[4], Err(ReplayError::Json { .. })),
            "{:?}",
            got[4]
        );
        assert!(
            matches!(&got[5], Err(ReplayError::Json { .. })),
            "{:?}",
            got[5]
        );
        // No input topic: the value's shape says it is a click.
        assert_eq!(got[6].as_ref().ok(), Some(&InputRecord::Click(click())));
    }

    #[test]
    fn oversized_raw_bytes_round_trip() {
        let raw = Defect::Oversized
            .corrupt(&InputRecord::Click(click()), &Codec::pinned())
            .expect("encodes");
        let mut out = Vec::new();
        write_jsonl([&raw], &mut out).expect("writes");
        let back: Vec<_> = read_jsonl(Cursor::new(out)).collect();
        assert!(matches!(back.as_slice(), [Ok(r)] if *r == raw));
    }

    #[test]
    fn a_binary_key_survives_as_hex() {
        let raw = InputRecord::Raw {
            topic: InputTopic::Purchases,
            key: Some(vec![0xff, 0x00]),
            value: vec![1, 2, 3],
            defect: Defect::NotAvro,
        };
        let json = to_json(&raw).expect("json");
        assert_eq!(json["key"], Value::Null);
        assert_eq!(json["key_hex"], "ff00");
        assert_eq!(from_json(json), Ok(raw));
    }
}
