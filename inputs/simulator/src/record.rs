//! What every input source yields: [`InputRecord`]s in the order they would be sent.
//!
//! Click events go to the clickstream topic and purchases to the purchases topic, both keyed
//! by customer id (producers of input topics partition by customer id). A
//! [`InputRecord::Raw`] carries bytes that are bad on purpose, for dead-letter testing.

use std::fmt;

use fitstream_contracts::{ClickEvent, Codec, EncodeError, EventTime, PurchaseEvent};

use crate::defects::Defect;

/// Default name of the clickstream topic (`TopicsConfig::default().clickstream`).
pub const CLICKSTREAM_TOPIC: &str = "iob.clickstream.v1";
/// Default name of the purchases topic (`TopicsConfig::default().purchases`).
pub const PURCHASES_TOPIC: &str = "iob.purchases.v1";

/// One of the two input topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputTopic {
    /// Click events (`iob.clickstream.v1` by default).
    Clickstream,
    /// Purchases (`iob.purchases.v1` by default).
    Purchases,
}

impl InputTopic {
    /// The default topic name.
    pub fn default_name(self) -> &'static str {
        match self {
            InputTopic::Clickstream => CLICKSTREAM_TOPIC,
            InputTopic::Purchases => PURCHASES_TOPIC,
        }
    }

    /// Recognises a topic name: the default names, or any name containing `clickstream` or
    /// `purchase`.
    pub fn from_name(name: &str) -> Option<InputTopic> {
        if name == CLICKSTREAM_TOPIC || name.contains("clickstream") {
            Some(InputTopic::Clickstream)
        } else if name == PURCHASES_TOPIC || name.contains("purchase") {
            Some(InputTopic::Purchases)
        } else {
            None
        }
    }
}

impl fmt::Display for InputTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_name())
    }
}

/// A record for one of the input topics, in the order it would be sent.
#[derive(Clone, Debug, PartialEq)]
pub enum InputRecord {
    /// A behavioural event, for the clickstream topic.
    Click(ClickEvent),
    /// A completed checkout, for the purchases topic.
    Purchase(PurchaseEvent),
    /// Bytes that are deliberately bad (for dead-letter testing), with the topic they go to.
    Raw {
        /// Where the bytes go.
        topic: InputTopic,
        /// Record key (the customer id of the record they replace, when there is one).
        key: Option<Vec<u8>>,
        /// The value bytes, which the decoder rejects.
        value: Vec<u8>,
        /// What is wrong with them, and so the dead-letter reason to expect.
        defect: Defect,
    },
}

impl InputRecord {
    /// Why the record cannot be written in its topic's schema at all (a price with more
    /// digits than a decimal of scale 2 can hold): a history row that says so is not a
    /// record. Content rules (an absurd but encodable price) are validation's, downstream.
    pub fn unencodable(&self) -> Option<String> {
        let fits = |d: &rust_decimal::Decimal| fitstream_contracts::avro::decimal(*d, 2).is_ok();
        let bad = match self {
            InputRecord::Click(c) => c.price.iter().find(|p| !fits(p)),
            InputRecord::Purchase(p) => p.lines.iter().map(|l| &l.unit_price).find(|p| !fits(p)),
            InputRecord::Raw { .. } => None,
        };
        bad.map(|p| format!("price {p} has more digits than a decimal of scale 2 can hold"))
    }

    /// The record key: the customer id's bytes.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            InputRecord::Click(c) => Some(c.customer_id.as_bytes()),
            InputRecord::Purchase(p) => Some(p.customer_id.as_bytes()),
            InputRecord::Raw { key, .. } => key.as_deref(),
        }
    }

    /// The topic the record goes to.
    pub fn topic(&self) -> InputTopic {
        match self {
            InputRecord::Click(_) => InputTopic::Clickstream,
            InputRecord::Purchase(_) => InputTopic::Purchases,
            InputRecord::Raw { topic, .. } => *topic,
        }
    }

    /// The event time inside the record; `None` for raw bytes.
    pub fn event_time(&self) -> Option<EventTime> {
        match self {
            InputRecord::Click(c) => Some(c.event_time),
            InputRecord::Purchase(p) => Some(p.event_time),
            InputRecord::Raw { .. } => None,
        }
    }

    /// The value bytes for `topic_name`: the framed Avro encoding of an event, or the raw bytes
    /// as they are.
    pub fn encode_value(&self, codec: &Codec, topic_name: &str) -> Result<Vec<u8>, EncodeError> {
        match self {
            InputRecord::Click(c) => codec.encode(topic_name, c),
            InputRecord::Purchase(p) => codec.encode(topic_name, p),
            InputRecord::Raw { value, .. } => Ok(value.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::topics::TopicsConfig;

    use super::*;

    #[test]
    fn default_names_are_the_contracts_defaults() {
        let topics = TopicsConfig::default();
        assert_eq!(InputTopic::Clickstream.default_name(), topics.clickstream);
        assert_eq!(InputTopic::Purchases.default_name(), topics.purchases);
    }

    #[test]
    fn topic_names_are_recognised_by_their_words() {
        assert_eq!(
            InputTopic::from_name("iob.clickstream.v1"),
            Some(InputTopic::Clickstream)
        );
        assert_eq!(
            InputTopic::from_name("test-clickstream-7"),
            Some(InputTopic::Clickstream)
        );
        assert_eq!(
            InputTopic::from_name("iob.purchases.v1"),
            Some(InputTopic::Purchases)
        );
        assert_eq!(
            InputTopic::from_name("shop.purchase"),
            Some(InputTopic::Purchases)
        );
        assert_eq!(InputTopic::from_name("iob.customer-profiles.v1"), None);
    }
}
