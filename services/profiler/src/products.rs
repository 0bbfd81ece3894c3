//! What sells in each category, per task: the products bought most (units) in each category,
//! for the lookup API's next-best products.
//!
//! Keyed by the order line's category, so the counts depend on the orders only (applied in
//! event-time order), never on when a segment model reached the task: a Kafka run and an
//! embedded run of the same input count the same.
//!
//! Bounded: [`TopProducts::CAPACITY`] counters per category, kept by the space-saving
//! algorithm (Metwally et al.), like a customer's categories: a product without a counter
//! takes over the smallest one, plus its units, so a count overestimates by at most the
//! smallest count, and a product bought more than `total / CAPACITY` units always has a
//! counter. At most [`MAX_CATEGORIES`] categories per task; lines of further categories are
//! not counted.
//!
//! A task sees the orders of its partition's customers only: a partition holds a random
//! share of the customers (keys are hashed), so its counts estimate the shop's. An answer
//! depends on the customer's partition, never on which instance holds it.

use std::collections::BTreeSet;

use fitstream_contracts::PurchaseEvent;
use fitstream_runtime::state::Keyed;
use serde::{Deserialize, Serialize};

/// Categories counted per task at most.
pub const MAX_CATEGORIES: usize = 1_024;

/// Counts the lines of an order into `by_category` (key: the line's category, empty when it
/// has none), within [`MAX_CATEGORIES`], adding the categories it counted to `changed`.
pub fn count_order(
    p: &PurchaseEvent,
    by_category: &mut Keyed<String, TopProducts>,
    changed: &mut BTreeSet<String>,
) {
    for line in &p.lines {
        let units = u64::try_from(line.quantity).unwrap_or(0);
        let category = line.category.clone().unwrap_or_default();
        if units == 0
            || (!by_category.contains_key(&category) && by_category.len() >= MAX_CATEGORIES)
        {
            continue;
        }
        by_category
            .get_or_insert_default(category.clone())
            .add(&line.product_id, units);
        changed.insert(category);
    }
}

/// One product and the units bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCount {
    /// Product id.
    pub product_id: String,
    /// Units (an overestimate by at most the smallest count once the counters are full).
    pub units: u64,
}

/// The products of one category bought most, space-saving counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopProducts {
    /// Counters in slot order.
    pub items: Vec<ProductCount>,
    /// Units counted (the counters sum to it).
    pub total: u64,
}

impl TopProducts {
    /// Counters per category.
    pub const CAPACITY: usize = 16;

    /// Counts `units` of a product.
    pub fn add(&mut self, product_id: &str, units: u64) {
        self.total = self.total.saturating_add(units);
        if let Some(c) = self.items.iter_mut().find(|c| c.product_id == product_id) {
            c.units = c.units.saturating_add(units);
            return;
        }
        let counter = ProductCount {
            product_id: product_id.to_owned(),
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
        t.add("a", 5);
        t.add("b", 2);
        t.add("a", 15);
        assert_eq!(t.ranked()[0].units, 20);
        assert_eq!(t.total, 22);
        for i in 0..100 {
            t.add(&format!("p{i}"), 1);
        }
        assert_eq!(t.items.len(), TopProducts::CAPACITY);
        assert_eq!(t.items.iter().map(|c| c.units).sum::<u64>(), t.total);
        // More than total / CAPACITY (122 / 16) units: the heavy hitter keeps its counter.
        assert_eq!(t.ranked()[0].product_id, "a");
    }

    #[test]
    fn orders_count_by_line_category_within_the_category_bound() {
        use fitstream_contracts::{PurchaseLine, samples};
        let line = |product: &str, category: Option<&str>, quantity: i32| PurchaseLine {
            product_id: product.to_owned(),
            category: category.map(str::to_owned),
            quantity,
            ..samples::purchase_line()
        };
        let order = PurchaseEvent {
            lines: vec![
                line("a", Some("x"), 2),
                line("b", None, 1),
                line("c", Some("x"), 0),
            ],
            ..samples::purchase()
        };
        let mut by: Keyed<String, TopProducts> = Keyed::default();
        let mut changed = BTreeSet::new();
        count_order(&order, &mut by, &mut changed);
        assert_eq!(changed, BTreeSet::from(["".to_owned(), "x".to_owned()]));
        assert_eq!(
            by["x"].items,
            vec![ProductCount {
                product_id: "a".into(),
                units: 2
            }]
        );
        assert_eq!(by[""].total, 1);
        let mut full: Keyed<String, TopProducts> = Keyed::default();
        for i in 0..MAX_CATEGORIES {
            full.insert(format!("k{i}"), TopProducts::default());
        }
        let mut more = BTreeSet::new();
        count_order(&order, &mut full, &mut more);
        assert!(more.is_empty(), "past the bound nothing is counted");
        assert_eq!(full.len(), MAX_CATEGORIES);
    }
}
