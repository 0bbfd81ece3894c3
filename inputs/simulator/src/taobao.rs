//! Replay of the Alibaba/Taobao "UserBehavior" history (Tianchi data set 649): CSV rows
//! `user_id,item_id,category_id,behavior_type,timestamp`, no header, behaviours
//! `pv|cart|fav|buy`, Unix seconds, no prices.
//!
//! Mapping (one row is one record):
//! - `pv` → `PRODUCT_VIEW`; `cart` → `ADD_TO_CART`; `fav` (added to the favourites) →
//!   `ADD_TO_WISHLIST`, a wishlist click (the profiler counts its category, not a product
//!   view; readers of the clickstream that predate the symbol read the enum's default).
//! - `buy` → a `PurchaseEvent` of one line, one unit, with no price: currency
//!   [`fitstream_contracts::validate::NO_PRICES`] (ISO 4217 `XXX`, "no currency involved") and
//!   unit price 0, which validation accepts for that currency only.
//! - SKU and product id = `item_id`; category = `category_id`; customer = `user_id`; no
//!   session (empty), channel `web`, region empty; click price absent.
//! - Ids: event id (and a buy's order id) is hex of the first 16 bytes of SHA-256 over the five
//!   fields, so rows repeated in the source share an id, as REES46 rows do.
//!
//! The file is sorted by user, not by time: replay it through [`crate::sort`] to feed the
//! pipeline in event-time order. A row that cannot be used (wrong number of fields, a
//! timestamp that is not whole seconds, an unknown behaviour) is an error item with its line
//! number; the replay carries on. Values that parse but break content rules (an empty id, a
//! time before 2000 — the data set has a few outside its nine days) are passed on for the
//! pipeline to dead-letter.

use std::io::{BufReader, Read};

use fitstream_contracts::validate::NO_PRICES;
use fitstream_contracts::{
    ClickEvent, ClickEventType, EventTime, Options, PurchaseEvent, PurchaseLine,
};
use rust_decimal::Decimal;

use crate::error::ReplayError;
use crate::lines::{CsvLine, Lines, MAX_CSV_LINE_BYTES};
use crate::record::InputRecord;
use crate::rees46::{hash_id, next_row};

/// The columns, in file order.
pub const COLUMNS: [&str; 5] = [
    "user_id",
    "item_id",
    "category_id",
    "behavior_type",
    "timestamp",
];
const USER: usize = 0;
const ITEM: usize = 1;
const CATEGORY: usize = 2;
const BEHAVIOUR: usize = 3;
const TIME: usize = 4;

/// Replays a UserBehavior CSV file (no header), streaming, in file order.
pub fn read_taobao<R: Read>(reader: R) -> impl Iterator<Item = Result<InputRecord, ReplayError>> {
    TaobaoReplay {
        lines: Lines::new(BufReader::new(reader), MAX_CSV_LINE_BYTES),
        row: CsvLine::default(),
        done: false,
    }
}

/// Whether a line looks like a UserBehavior row (five fields, a known behaviour, a whole
/// number of seconds): how the format of a `.csv` file without a header is recognised.
pub fn looks_like_taobao(line: &str) -> bool {
    let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(',').collect();
    fields.len() == 5
        && matches!(fields[BEHAVIOUR], "pv" | "cart" | "fav" | "buy")
        && fields[TIME].trim().parse::<i64>().is_ok()
}

struct TaobaoReplay<R> {
    lines: Lines<BufReader<R>>,
    row: CsvLine,
    done: bool,
}

impl<R: Read> Iterator for TaobaoReplay<R> {
    type Item = Result<InputRecord, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let line = match next_row(&mut self.lines, &mut self.row) {
                Some(Ok(Some(line))) => line,
                // A blank line (a trailing one, say) is nothing, not a bad row.
                Some(Ok(None)) => continue,
                None => {
                    self.done = true;
                    continue;
                }
                Some(Err((error, fatal))) => {
                    self.done = fatal;
                    return Some(Err(error));
                }
            };
            return Some(record(&self.row, line));
        }
    }
}

/// The record of one row.
fn record(row: &CsvLine, line: u64) -> Result<InputRecord, ReplayError> {
    if row.len() != COLUMNS.len() {
        return Err(ReplayError::Csv {
            line,
            message: format!("{} fields, expected {}", row.len(), COLUMNS.len()),
        });
    }
    let fields: [&str; 5] = std::array::from_fn(|i| row.get(i).unwrap_or_default().trim());
    let bad = |field: usize, message: &'static str| ReplayError::Field {
        line,
        field: COLUMNS[field],
        value: fields[field].to_owned(),
        message,
    };
    let millis = fields[TIME]
        .parse::<i64>()
        .ok()
        .and_then(|s| s.checked_mul(1_000))
        .ok_or_else(|| bad(TIME, "not a whole number of Unix seconds"))?;
    let event_time = EventTime(millis);
    let event_type = match fields[BEHAVIOUR] {
        "pv" => Some(ClickEventType::ProductView),
        "fav" => Some(ClickEventType::AddToWishlist),
        "cart" => Some(ClickEventType::AddToCart),
        "buy" => None,
        _ => return Err(bad(BEHAVIOUR, "is not pv, cart, fav or buy")),
    };
    let id = hash_id(&fields);
    let item = fields[ITEM].to_owned();
    let category = Some(fields[CATEGORY].to_owned());
    let customer_id = fields[USER].to_owned();
    Ok(match event_type {
        Some(event_type) => InputRecord::Click(ClickEvent {
            event_id: id,
            customer_id,
            session_id: String::new(),
            event_type,
            product_id: Some(item.clone()),
            sku: Some(item),
            options: Options::new(),
            category,
            price: None,
            query: None,
            channel: "web".to_owned(),
            region: String::new(),
            event_time,
        }),
        None => InputRecord::Purchase(PurchaseEvent {
            order_id: id,
            customer_id,
            session_id: String::new(),
            event_time,
            region: String::new(),
            currency: NO_PRICES.to_owned(),
            lines: vec![PurchaseLine {
                product_id: item.clone(),
                sku: item,
                options: Options::new(),
                category,
                quantity: 1,
                unit_price: Decimal::ZERO,
            }],
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use fitstream_contracts::validate;

    use super::*;

    fn replay(body: &str) -> Vec<Result<InputRecord, ReplayError>> {
        read_taobao(Cursor::new(body.to_owned())).collect()
    }

    fn click(r: &Result<InputRecord, ReplayError>) -> &ClickEvent {
        match r {
            Ok(InputRecord::Click(c)) => c,
            other => panic!("not a click: {other:?}"),
        }
    }

    #[test]
    fn every_behaviour_maps_to_its_record() {
        let got = replay(
            "1,2268318,2520377,pv,1511544070\n\
             1,2268318,2520377,cart,1511544071\n\
             1,2333346,2520771,fav,1511561733\n\
             1,2268318,2520377,buy,1511572885\n",
        );
        assert_eq!(got.len(), 4, "{got:?}");
        let pv = click(&got[0]);
        assert_eq!(pv.event_type, ClickEventType::ProductView);
        assert_eq!(pv.customer_id, "1");
        assert_eq!(pv.product_id.as_deref(), Some("2268318"));
        assert_eq!(pv.sku.as_deref(), Some("2268318"));
        assert_eq!(pv.category.as_deref(), Some("2520377"));
        assert_eq!(pv.price, None);
        assert_eq!(pv.session_id, "");
        assert_eq!(pv.event_time, EventTime(1_511_544_070_000));
        assert_eq!(pv.event_id.len(), 32);
        let cart = click(&got[1]);
        assert_eq!(cart.event_type, ClickEventType::AddToCart);
        assert_ne!(cart.event_id, pv.event_id);
        let fav = click(&got[2]);
        assert_eq!(
            fav.event_type,
            ClickEventType::AddToWishlist,
            "a wishlist click"
        );
        assert_eq!(fav.sku.as_deref(), Some("2333346"));
        let Ok(InputRecord::Purchase(buy)) = &got[3] else {
            panic!("{:?}", got[3])
        };
        assert_eq!(buy.customer_id, "1");
        assert_eq!(buy.currency, NO_PRICES);
        assert_eq!(buy.event_time, EventTime(1_511_572_885_000));
        assert_eq!(buy.lines.len(), 1);
        let line = &buy.lines[0];
        assert_eq!((line.quantity, line.unit_price), (1, Decimal::ZERO));
        assert_eq!(
            (line.sku.as_str(), line.product_id.as_str()),
            ("2268318", "2268318")
        );
        assert_eq!(line.category.as_deref(), Some("2520377"));
        // All of them pass the content rules: nothing a UserBehavior row lacks is required.
        for r in &got {
            match r.as_ref().expect("good rows") {
                InputRecord::Click(c) => validate::click(c).expect("valid click"),
                InputRecord::Purchase(p) => validate::purchase(p).expect("valid buy"),
                InputRecord::Raw { .. } => unreachable!(),
            }
        }
    }

    #[test]
    fn repeated_rows_share_an_id() {
        let got = replay("7,1,2,buy,1511572885\n7,1,2,buy,1511572885\n7,1,2,buy,1511572886\n");
        let ids: Vec<String> = got
            .iter()
            .map(|r| match r {
                Ok(InputRecord::Purchase(p)) => p.order_id.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
    }

    #[test]
    fn bad_rows_are_error_items_with_their_line_and_the_replay_goes_on() {
        let got = replay(
            "1,2,3,pv,1511544070\n\
             1,2,3,like,1511544070\n\
             1,2,3,pv,yesterday\n\
             1,2,3,pv,1511544070.5\n\
             1,2,3,pv\n\
             1,2,3,pv,1511544070,extra\n\
             1,2,3,pv,99999999999999999\n\
             \n\
             1,2,3,cart,-3600\n",
        );
        assert_eq!(got.len(), 8, "{got:?}");
        assert!(got[0].is_ok());
        let field = |r: &Result<InputRecord, ReplayError>| match r {
            Err(ReplayError::Field { line, field, .. }) => (*line, *field),
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&got[1]), (2, "behavior_type"));
        assert_eq!(field(&got[2]), (3, "timestamp"));
        assert_eq!(field(&got[3]), (4, "timestamp"));
        assert!(
            matches!(&got[4], Err(ReplayError::Csv { line: 5, .. })),
            "{:?}",
            got[4]
        );
        assert!(
            matches!(&got[5], Err(ReplayError::Csv { line: 6, .. })),
            "{:?}",
            got[5]
        );
        assert_eq!(field(&got[6]), (7, "timestamp"));
        // A time outside the data set's days parses; the pipeline dead-letters it (before 2000).
        let early = click(&got[7]);
        assert_eq!(early.event_time, EventTime(-3_600_000));
        assert!(validate::click(early).is_err());
    }

    #[test]
    fn the_format_is_recognised_by_its_first_line() {
        assert!(looks_like_taobao("1,2268318,2520377,pv,1511544070\n"));
        assert!(looks_like_taobao("1,2268318,2520377,buy,1511544070\r\n"));
        assert!(!looks_like_taobao(
            ",event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
        ));
        assert!(!looks_like_taobao("1,2,3,view,1511544070"));
    }
}
