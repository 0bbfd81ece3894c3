//! Replay of the REES46 cosmetics-shop history (Kaggle "eCommerce events history in
//! cosmetics shop"): CSV rows become click events and orders.
//!
//! Columns, located by their header names: an unnamed row number (ignored), `event_time`
//! (`YYYY-MM-DD HH:MM:SS UTC`), `event_type`, `product_id`, `category_id`, `category_code`,
//! `brand`, `price`, `user_id`, `user_session`.
//!
//! Mapping:
//! - `view` → `PRODUCT_VIEW`, `cart` → `ADD_TO_CART`, `remove_from_cart` →
//!   `REMOVE_FROM_CART`; `product_id` is both product id and SKU (REES46 has no options);
//!   category is `category_code`, or `category_id` when the code is empty; customer is
//!   `user_id`, session `user_session`, channel `web`, region empty.
//! - Event id: hex of the first 16 bytes of SHA-256 over every column but the row number, so
//!   rows that are duplicates in the source (1,242 in the October excerpt) share an id, as
//!   duplicates from real collectors do.
//! - `purchase` rows of one session at one instant are one checkout: one `PurchaseEvent`
//!   whose order id is derived from (session, event time) the same way, currency USD. Each
//!   distinct row is one unit of one product (a line of quantity 1); a row repeated within the
//!   checkout is not a second unit.
//!
//! Streaming: rows are read one at a time and only the purchase rows of the current instant
//! are buffered. An order is emitted when the instant changes and at the end of the file, so
//! it comes after the clicks of its own instant and before those of the next. Rows must be
//! sorted by time (the source is): in an unsorted file, purchase rows of one checkout that
//! are not adjacent in time become several events with the same order id.
//!
//! A row that cannot be used (unparseable time or price, unknown event type, wrong number of
//! columns) is an error item; the replay carries on. Values that parse but break content
//! rules (a zero price, an empty id) are passed on for the pipeline to dead-letter.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufReader, Read};
use std::str::FromStr;

use fitstream_contracts::{
    ClickEvent, ClickEventType, EventTime, Options, PurchaseEvent, PurchaseLine,
};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::error::ReplayError;
use crate::lines::{CsvLine, Line, Lines, MAX_CSV_LINE_BYTES};
use crate::record::InputRecord;

/// Currency of the REES46 prices.
pub const CURRENCY: &str = "USD";

/// The columns used, in the order they are hashed into ids.
const COLUMNS: [&str; 9] = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
];
const TIME: usize = 0;
const TYPE: usize = 1;
const PRODUCT: usize = 2;
const CATEGORY_ID: usize = 3;
const CATEGORY_CODE: usize = 4;
const PRICE: usize = 6;
const USER: usize = 7;
const SESSION: usize = 8;

/// Replays a REES46 CSV file (with its header), streaming, in file order.
pub fn read_rees46<R: Read>(reader: R) -> impl Iterator<Item = Result<InputRecord, ReplayError>> {
    Rees46Replay {
        lines: Lines::new(BufReader::new(reader), MAX_CSV_LINE_BYTES),
        columns: None,
        row: CsvLine::default(),
        out: VecDeque::new(),
        instant: None,
        checkouts: Vec::new(),
        checkout_of: HashMap::new(),
        done: false,
    }
}

/// A checkout being collected: the order, and the ids of the rows already in it.
struct Checkout {
    order: PurchaseEvent,
    rows: HashSet<String>,
}

struct Rees46Replay<R> {
    lines: Lines<BufReader<R>>,
    /// Position of each of [`COLUMNS`] in a row, once the header is read.
    columns: Option<[usize; 9]>,
    row: CsvLine,
    out: VecDeque<Result<InputRecord, ReplayError>>,
    /// Raw `event_time` text of the checkouts being collected.
    instant: Option<String>,
    checkouts: Vec<Checkout>,
    /// Index into `checkouts` by session.
    checkout_of: HashMap<String, usize>,
    done: bool,
}

impl<R: Read> Iterator for Rees46Replay<R> {
    type Item = Result<InputRecord, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            let line = match next_row(&mut self.lines, &mut self.row) {
                Some(Ok(Some(line))) => line,
                Some(Ok(None)) => continue,
                None => {
                    self.flush();
                    self.done = true;
                    continue;
                }
                Some(Err((error, fatal))) => {
                    if fatal {
                        self.flush();
                        self.done = true;
                    }
                    return Some(Err(error));
                }
            };
            let Some(columns) = self.columns else {
                match header(&self.row) {
                    Ok(c) => self.columns = Some(c),
                    Err(message) => {
                        self.done = true;
                        return Some(Err(ReplayError::NotARecord { line, message }));
                    }
                }
                continue;
            };
            if let Err(e) = self.take_row(columns, line) {
                return Some(Err(e));
            }
        }
    }
}

impl<R: Read> Rees46Replay<R> {
    /// Turns the current row into a click (queued) or a unit of a checkout (collected).
    fn take_row(&mut self, columns: [usize; 9], line: u64) -> Result<(), ReplayError> {
        let row = std::mem::take(&mut self.row);
        let result = self.take_fields(&row, columns, line);
        self.row = row;
        result
    }

    fn take_fields(
        &mut self,
        row: &CsvLine,
        columns: [usize; 9],
        line: u64,
    ) -> Result<(), ReplayError> {
        let mut fields = [""; 9];
        for (field, &i) in fields.iter_mut().zip(&columns) {
            *field = row.get(i).ok_or_else(|| ReplayError::Csv {
                line,
                message: format!("{} fields, fewer than the header's", row.len()),
            })?;
        }
        let bad = |field: usize, message: &'static str| ReplayError::Field {
            line,
            field: COLUMNS[field],
            value: fields[field].to_owned(),
            message,
        };
        let event_time = EventTime::parse(fields[TIME]).ok_or_else(|| bad(TIME, "not a time"))?;
        let price =
            Decimal::from_str(fields[PRICE].trim()).map_err(|_| bad(PRICE, "not a decimal"))?;
        if fitstream_contracts::avro::decimal(price, 2).is_err() {
            return Err(bad(PRICE, "more digits than a decimal of scale 2 can hold"));
        }
        let event_type = match fields[TYPE] {
            "view" => Some(ClickEventType::ProductView),
            "cart" => Some(ClickEventType::AddToCart),
            "remove_from_cart" => Some(ClickEventType::RemoveFromCart),
            "purchase" => None,
            _ => return Err(bad(TYPE, "is not view, cart, remove_from_cart or purchase")),
        };
        if self.instant.as_deref() != Some(fields[TIME]) {
            self.flush();
            self.instant = Some(fields[TIME].to_owned());
        }
        let row_id = hash_id(&fields);
        let category = if fields[CATEGORY_CODE].is_empty() {
            fields[CATEGORY_ID]
        } else {
            fields[CATEGORY_CODE]
        };
        let Some(event_type) = event_type else {
            let session = fields[SESSION];
            let index = match self.checkout_of.get(session) {
                Some(&i) => i,
                None => {
                    self.checkouts.push(Checkout {
                        order: PurchaseEvent {
                            order_id: hash_id(&[fields[SESSION], fields[TIME]]),
                            customer_id: fields[USER].to_owned(),
                            session_id: session.to_owned(),
                            event_time,
                            region: String::new(),
                            currency: CURRENCY.to_owned(),
                            lines: Vec::new(),
                        },
                        rows: HashSet::new(),
                    });
                    self.checkout_of
                        .insert(session.to_owned(), self.checkouts.len() - 1);
                    self.checkouts.len() - 1
                }
            };
            let checkout = &mut self.checkouts[index];
            if checkout.rows.insert(row_id) {
                checkout.order.lines.push(PurchaseLine {
                    product_id: fields[PRODUCT].to_owned(),
                    sku: fields[PRODUCT].to_owned(),
                    options: Options::new(),
                    category: Some(category.to_owned()),
                    quantity: 1,
                    unit_price: price,
                });
            }
            return Ok(());
        };
        self.out.push_back(Ok(InputRecord::Click(ClickEvent {
            event_id: row_id,
            customer_id: fields[USER].to_owned(),
            session_id: fields[SESSION].to_owned(),
            event_type,
            product_id: Some(fields[PRODUCT].to_owned()),
            sku: Some(fields[PRODUCT].to_owned()),
            options: Options::new(),
            category: Some(category.to_owned()),
            price: Some(price),
            query: None,
            channel: "web".to_owned(),
            region: String::new(),
            event_time,
        })));
        Ok(())
    }

    /// Queues the orders of the current instant, in the order their first rows came.
    fn flush(&mut self) {
        self.checkout_of.clear();
        for checkout in self.checkouts.drain(..) {
            self.out
                .push_back(Ok(InputRecord::Purchase(checkout.order)));
        }
    }
}

/// Reads the next line into `row`: `None` at the end of the file; `Some(Ok(None))` for a
/// blank line (nothing, not a bad row); `Some(Ok(Some(line)))` for a row on that 1-based line;
/// an error item for a line that is too long or not UTF-8 (`true`: after an I/O error, which
/// ends the replay).
pub(crate) fn next_row<R: std::io::BufRead>(
    lines: &mut Lines<R>,
    row: &mut CsvLine,
) -> Option<Result<Option<u64>, (ReplayError, bool)>> {
    Some(match lines.next_line()? {
        Err(e) => Err((e, true)),
        Ok((line, Line::TooLong(bytes))) => Err((ReplayError::TooLong { line, bytes }, false)),
        Ok((_, Line::Text(t))) if t.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok((line, Line::Text(t))) => match row.parse(t) {
            Ok(()) => Ok(Some(line)),
            Err(message) => Err((
                ReplayError::Csv {
                    line,
                    message: message.to_owned(),
                },
                false,
            )),
        },
    })
}

/// Positions of [`COLUMNS`] in the header row.
fn header(row: &CsvLine) -> Result<[usize; 9], String> {
    let mut columns = [0; 9];
    for (slot, name) in columns.iter_mut().zip(COLUMNS) {
        *slot = (0..row.len())
            .position(|i| row.get(i).is_some_and(|h| h.trim() == name))
            .ok_or_else(|| format!("the header has no `{name}` column; is this a REES46 file?"))?;
    }
    Ok(columns)
}

/// Hex of the first 16 bytes of SHA-256 over the fields, each followed by a unit separator.
pub(crate) fn hash_id(fields: &[&str]) -> String {
    let mut hash = Sha256::new();
    for f in fields {
        hash.update(f.as_bytes());
        hash.update([0x1f]);
    }
    hex::encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Cursor;

    use super::*;

    const HEADER: &str = ",event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n";

    fn replay(body: &str) -> Vec<Result<InputRecord, ReplayError>> {
        read_rees46(Cursor::new(format!("{HEADER}{body}"))).collect()
    }

    #[test]
    fn rows_map_to_clicks_and_checkouts_to_orders() {
        let got = replay(
            "0,2019-10-01 00:00:00 UTC,view,5773203,1487580005134238553,,runail,2.62,463240011,s1\n\
             1,2019-10-01 00:00:03 UTC,cart,5773353,1487580005134238553,beauty.nail,runail,2.62,463240011,s1\n\
             2,2019-10-01 00:00:07 UTC,purchase,5773203,1487580005134238553,,runail,2.62,463240011,s1\n\
             3,2019-10-01 00:00:07 UTC,purchase,5773353,1487580005134238553,,runail,2.62,463240011,s1\n\
             4,2019-10-01 00:00:07 UTC,purchase,5773353,1487580005134238553,,runail,2.62,463240011,s1\n\
             5,2019-10-01 00:00:07 UTC,remove_from_cart,5773203,1487580005134238553,,runail,2.62,463240011,s1\n\
             6,2019-10-01 00:00:09 UTC,view,5773203,1487580005134238553,,runail,2.62,463240011,s1\n",
        );
        let got: Vec<InputRecord> = got.into_iter().map(|r| r.expect("good rows")).collect();
        assert_eq!(got.len(), 5, "{got:#?}");
        let InputRecord::Click(view) = &got[0] else {
            panic!("{:?}", got[0])
        };
        assert_eq!(view.event_type, ClickEventType::ProductView);
        assert_eq!(view.product_id.as_deref(), Some("5773203"));
        assert_eq!(view.sku.as_deref(), Some("5773203"));
        assert_eq!(view.category.as_deref(), Some("1487580005134238553"));
        assert_eq!(view.price, Some(Decimal::new(262, 2)));
        assert_eq!(view.customer_id, "463240011");
        assert_eq!(view.event_time, EventTime(1_569_888_000_000));
        assert_eq!(view.event_id.len(), 32);
        let InputRecord::Click(cart) = &got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(cart.category.as_deref(), Some("beauty.nail"));
        // The remove of the same instant comes before the order, which closes with the instant.
        assert!(
            matches!(&got[2], InputRecord::Click(c) if c.event_type == ClickEventType::RemoveFromCart)
        );
        let InputRecord::Purchase(order) = &got[3] else {
            panic!("{:?}", got[3])
        };
        assert_eq!(
            order.lines.len(),
            2,
            "the repeated row is not a second unit"
        );
        assert!(order.lines.iter().all(|l| l.quantity == 1));
        assert_eq!(order.currency, "USD");
        let InputRecord::Click(again) = &got[4] else {
            panic!("{:?}", got[4])
        };
        assert_ne!(again.event_id, view.event_id, "another time, another id");
    }

    #[test]
    fn identical_rows_share_an_id_and_sessions_make_separate_orders() {
        let got: Vec<InputRecord> = replay(
            "0,2019-10-01 00:00:00 UTC,view,1,2,,,1.00,u1,s1\n\
             9,2019-10-01 00:00:00 UTC,view,1,2,,,1.00,u1,s1\n\
             1,2019-10-01 00:00:00 UTC,purchase,1,2,,,1.00,u1,s1\n\
             2,2019-10-01 00:00:00 UTC,purchase,1,2,,,1.00,u2,s2\n",
        )
        .into_iter()
        .map(|r| r.expect("good rows"))
        .collect();
        let ids: Vec<_> = got
            .iter()
            .filter_map(|r| {
                if let InputRecord::Click(c) = r {
                    Some(c.event_id.clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], ids[1]);
        let orders: BTreeSet<_> = got
            .iter()
            .filter_map(|r| {
                if let InputRecord::Purchase(p) = r {
                    Some(p.order_id.clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(orders.len(), 2);
    }

    #[test]
    fn bad_rows_are_error_items_and_the_replay_goes_on() {
        let got = replay(
            "0,yesterday,view,1,2,,,1.00,u1,s1\n\
             1,2019-10-01 00:00:00 UTC,view,1,2,,,one,u1,s1\n\
             2,2019-10-01 00:00:00 UTC,wishlist,1,2,,,1.00,u1,s1\n\
             3,2019-10-01 00:00:00 UTC,view\n\
             4,2019-10-01 00:00:01 UTC,view,1,2,,,1.00,u1,s1\n",
        );
        assert_eq!(got.len(), 5);
        assert!(
            matches!(
                &got[0],
                Err(ReplayError::Field {
                    line: 2,
                    field: "event_time",
                    ..
                })
            ),
            "{:?}",
            got[0]
        );
        assert!(
            matches!(
                &got[1],
                Err(ReplayError::Field {
                    line: 3,
                    field: "price",
                    ..
                })
            ),
            "{:?}",
            got[1]
        );
        assert!(
            matches!(
                &got[2],
                Err(ReplayError::Field {
                    line: 4,
                    field: "event_type",
                    ..
                })
            ),
            "{:?}",
            got[2]
        );
        assert!(
            matches!(&got[3], Err(ReplayError::Csv { line: 5, .. })),
            "{:?}",
            got[3]
        );
        assert!(got[4].is_ok());
    }

    #[test]
    fn a_stray_quote_or_a_huge_row_costs_that_row_only() {
        let good = |i: u32| format!("{i},2019-10-01 00:00:0{i} UTC,view,1,2,,,1.00,u1,s1\n");
        let huge = format!(
            "9,2019-10-01 00:00:00 UTC,view,1,2,,{},1.00,u1,s1\n",
            "b".repeat(200_000)
        );
        let body = format!(
            "{}0,2019-10-01 00:00:00 UTC,view,1,2,,\"runail,1.00,u1,s1\n{}{huge}{}",
            good(1),
            good(2),
            good(3)
        );
        let got = replay(&body);
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(
            got[0].is_ok() && got[2].is_ok() && got[4].is_ok(),
            "{got:?}"
        );
        assert!(
            matches!(&got[1], Err(ReplayError::Csv { line: 3, .. })),
            "{:?}",
            got[1]
        );
        assert!(
            matches!(&got[3], Err(ReplayError::TooLong { line: 5, bytes }) if *bytes as usize == huge.len() - 1),
            "{:?}",
            got[3]
        );
    }

    #[test]
    fn a_file_without_the_columns_is_one_error() {
        let got: Vec<_> = read_rees46(Cursor::new("a,b,c\n1,2,3\n")).collect();
        assert_eq!(got.len(), 1);
        assert!(
            matches!(&got[0], Err(ReplayError::NotARecord { line: 1, .. })),
            "{:?}",
            got[0]
        );
    }
}
