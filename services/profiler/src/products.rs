//! What each segment buys, per task: the products bought most by the customers of a segment
//! (units, by the buyer's segment when the order was applied), for the lookup API's
//! next-best products.
//!
//! Bounded: [`TopProducts::CAPACITY`] counters per segment, kept by the space-saving algorithm
//! (Metwally et al.), like a customer's categories: a product without a counter takes over
//! the smallest one, plus its units, so a count overestimates by at most the smallest count,
//! and a product bought more than `total / CAPACITY` units always has a counter. Segments are
//! the model's few ids and one key for customers not placed yet.
//!
//! A task sees the orders of its partition's customers only: a partition holds a random
//! share of the customers (keys are hashed), so its counts estimate the segment's. An
//! answer depends on the customer's partition, never on which instance holds it.

use fitstream_contracts::PurchaseEvent;
use serde::{Deserialize, Serialize};

/// The store key of a segment (`none`: customers not placed yet).
pub fn segment_key(segment: Option<i32>) -> String {
    segment.map_or_else(|| "none".to_owned(), |s| s.to_string())
}

/// One product and the units bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCount {
    /// Product id.
    pub product_id: String,
    /// Its category (of the latest line that took the counter), if known.
    pub category: Option<String>,
    /// Units (an overestimate by at most the smallest count once the counters are full).
    pub units: u64,
}

/// The products a segment bought most, space-saving counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopProducts {
    /// Counters in slot order.
    pub items: Vec<ProductCount>,
    /// Units counted (the counters sum to it).
    pub total: u64,
}

impl TopProducts {
    /// Counters per segment.
    pub const CAPACITY: usize = 16;

    /// Counts the lines of an order.
    pub fn order(&mut self, p: &PurchaseEvent) {
        for line in &p.lines {
            let units = u64::try_from(line.quantity).unwrap_or(0);
            if units > 0 {
                self.add(&line.product_id, line.category.as_deref(), units);
            }
        }
    }

    /// Counts `units` of a product.
    pub fn add(&mut self, product_id: &str, category: Option<&str>, units: u64) {
        self.total = self.total.saturating_add(units);
        if let Some(c) = self.items.iter_mut().find(|c| c.product_id == product_id) {
            c.units = c.units.saturating_add(units);
            if category.is_some() {
                c.category = category.map(str::to_owned);
            }
            return;
        }
        let counter = ProductCount {
            product_id: product_id.to_owned(),
            category: category.map(str::to_owned),
            units,
        };
        if self.items.len() < Self::CAPACITY {
            self.items.push(counter);
            return;
        }
        // The smallest counter, the first one on a tie, takes the product over.
        let mut min = 0;
        for (i, c) in self.items.iter().enumerate() {
            if c.units < self.items[min].units {
                min = i;
            }
        }
        let floor = self.items[min].units;
        self.items[min] = ProductCount {
            units: floor.saturating_add(units),
            ..counter
        };
    }

    /// The counters, most units first (then product id).
    pub fn ranked(&self) -> Vec<&ProductCount> {
        let mut v: Vec<&ProductCount> = self.items.iter().collect();
        v.sort_by(|a, b| {
            b.units
                .cmp(&a.units)
                .then_with(|| a.product_id.cmp(&b.product_id))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_below_capacity_and_bounded_above() {
        let mut t = TopProducts::default();
        t.add("a", Some("x"), 5);
        t.add("b", None, 2);
        t.add("a", None, 15);
        assert_eq!(t.ranked()[0].units, 20);
        assert_eq!(t.ranked()[0].category.as_deref(), Some("x"));
        assert_eq!(t.total, 22);
        for i in 0..100 {
            t.add(&format!("p{i}"), None, 1);
        }
        assert_eq!(t.items.len(), TopProducts::CAPACITY);
        assert_eq!(t.items.iter().map(|c| c.units).sum::<u64>(), t.total);
        // More than total / CAPACITY (122 / 16) units: the heavy hitter keeps its counter.
        assert_eq!(t.ranked()[0].product_id, "a");
    }
}
