//! The product catalogue of a cosmetics shop: categories, products with base prices, and SKUs
//! (a product plus its chosen options), and the plant that builds each category.
//!
//! Categories are fixed ([`CATEGORIES`]); the planner's routing configuration uses the same
//! names. Default routing ([`Catalogue::plant_for`]):
//!
//! | category | plant |
//! | --- | --- |
//! | skincare, bodycare | `berlin` |
//! | makeup, fragrance, nails | `lyon` |
//! | haircare, tools | `porto` |
//!
//! Products (`prod-00001`, ...) are spread over the categories by a fixed share and priced
//! around a median per category (log-normal, ending in .99). Options are configured per
//! category ([`CatalogueConfig::options`]); a SKU is the product id followed by its option
//! values in option-name order, separated by `/` (`prod-00042/50ml`). Values of an option
//! named `size` are listed smallest first and each step up adds 40% of the base price; other
//! options do not change the price.

use std::collections::BTreeMap;

use fitstream_contracts::Options;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The product categories, in a fixed order.
pub const CATEGORIES: [&str; 7] = [
    "skincare",
    "makeup",
    "haircare",
    "fragrance",
    "nails",
    "bodycare",
    "tools",
];

/// The plants that build products.
pub const PLANTS: [&str; 3] = ["berlin", "lyon", "porto"];

/// Share of the products in each category, and their median base price, in
/// [`CATEGORIES`] order.
const SHARE_AND_MEDIAN: [(f64, f64); 7] = [
    (0.25, 24.0),
    (0.22, 16.0),
    (0.14, 11.0),
    (0.10, 55.0),
    (0.12, 7.0),
    (0.10, 9.0),
    (0.07, 14.0),
];

/// Search terms per category, in [`CATEGORIES`] order.
const SEARCH_TERMS: [&[&str]; 7] = [
    &[
        "serum",
        "moisturizer",
        "spf 50",
        "retinol",
        "cleanser",
        "eye cream",
    ],
    &["mascara", "foundation", "lipstick", "concealer", "eyeliner"],
    &["shampoo", "conditioner", "hair mask", "hair oil"],
    &["eau de parfum", "perfume", "cologne", "body mist"],
    &["nail polish", "gel polish", "top coat", "nail file"],
    &["body lotion", "shower gel", "body scrub", "hand cream"],
    &["makeup brush", "sponge", "tweezers", "hair dryer"],
];

/// How the catalogue is generated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogueConfig {
    /// Number of products, spread over the categories (at least one per category).
    pub products: usize,
    /// Options offered per category: category -> option name -> values. A category that is
    /// not listed has no options, and its SKUs are its product ids. Values of an option named
    /// `size` go from smallest to largest.
    pub options: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Default for CatalogueConfig {
    fn default() -> Self {
        let option = |name: &str, values: &[&str]| {
            (
                name.to_owned(),
                values.iter().map(|v| (*v).to_owned()).collect(),
            )
        };
        let options = [
            ("skincare", vec![option("size", &["30ml", "50ml", "100ml"])]),
            (
                "makeup",
                vec![option(
                    "shade",
                    &["porcelain", "ivory", "sand", "honey", "caramel", "espresso"],
                )],
            ),
            ("haircare", vec![option("size", &["250ml", "500ml"])]),
            (
                "fragrance",
                vec![option("size", &["30ml", "50ml", "100ml"])],
            ),
            (
                "nails",
                vec![option("colour", &["red", "nude", "coral", "plum", "black"])],
            ),
            (
                "bodycare",
                vec![
                    option("size", &["200ml", "400ml"]),
                    option("scent", &["unscented", "lavender", "citrus"]),
                ],
            ),
        ]
        .into_iter()
        .map(|(category, opts)| (category.to_owned(), opts.into_iter().collect()))
        .collect();
        CatalogueConfig {
            products: 300,
            options,
        }
    }
}

/// A product: what a customer views; a [`Sku`] is what is carted and built.
#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    /// Product id (`prod-00042`).
    pub id: String,
    /// One of [`CATEGORIES`].
    pub category: &'static str,
    /// Price of the smallest SKU.
    pub base_price: Decimal,
    /// Option name -> values, by name.
    pub options: Vec<(String, Vec<String>)>,
}

/// A stock-keeping unit: a product with a value chosen for each of its options.
#[derive(Clone, Debug, PartialEq)]
pub struct Sku {
    /// SKU id: the product id and the option values, separated by `/`.
    pub id: String,
    /// The product.
    pub product_id: String,
    /// The chosen options.
    pub options: Options,
    /// Price of one unit.
    pub unit_price: Decimal,
}

impl Product {
    /// The SKU with the `choice[i]`-th value of the `i`-th option (missing or out-of-range
    /// indices choose the first value).
    pub fn sku(&self, choice: &[usize]) -> Sku {
        let mut id = self.id.clone();
        let mut options = Options::new();
        let mut steps = 0;
        for (i, (name, values)) in self.options.iter().enumerate() {
            let k = choice
                .get(i)
                .copied()
                .filter(|k| *k < values.len())
                .unwrap_or(0);
            let Some(value) = values.get(k) else { continue };
            id.push('/');
            id.push_str(value);
            options.insert(name.clone(), value.clone());
            if name == "size" {
                steps += k;
            }
        }
        let factor = Decimal::ONE + Decimal::new(4, 1) * Decimal::from(steps);
        Sku {
            id,
            product_id: self.id.clone(),
            options,
            unit_price: (self.base_price * factor).round_dp(2),
        }
    }

    /// A SKU with random option values.
    pub fn random_sku<R: Rng>(&self, rng: &mut R) -> Sku {
        let choice: Vec<usize> = self
            .options
            .iter()
            .map(|(_, v)| rng.random_range(0..v.len().max(1)))
            .collect();
        self.sku(&choice)
    }

    /// The length of this product's longest SKU id.
    pub fn longest_sku(&self) -> usize {
        self.id.len()
            + self
                .options
                .iter()
                .map(|(_, v)| 1 + v.iter().map(String::len).max().unwrap_or(0))
                .sum::<usize>()
    }
}

/// The products on sale, grouped by category and sorted by price within a category.
#[derive(Clone, Debug)]
pub struct Catalogue {
    products: Vec<Product>,
    /// Index range in `products` of each category, in [`CATEGORIES`] order.
    ranges: Vec<std::ops::Range<usize>>,
}

impl Catalogue {
    /// Generates a catalogue, deterministic for `seed`. Needs at least one product per
    /// category (fewer products are raised to that).
    pub fn generate(cfg: &CatalogueConfig, seed: u64) -> Catalogue {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let total = cfg.products.max(CATEGORIES.len());
        // Largest remainder: every category gets its share, and at least one product.
        let mut counts: Vec<usize> = SHARE_AND_MEDIAN
            .iter()
            .map(|(s, _)| ((s * total as f64) as usize).max(1))
            .collect();
        let mut i = 0;
        let n = counts.len();
        while counts.iter().sum::<usize>() < total {
            counts[i % n] += 1;
            i += 1;
        }
        while counts.iter().sum::<usize>() > total {
            if let Some(c) = counts.iter_mut().filter(|c| **c > 1).max() {
                *c -= 1;
            }
        }
        let mut products = Vec::with_capacity(total);
        let mut ranges = Vec::with_capacity(CATEGORIES.len());
        for (c, category) in CATEGORIES.iter().enumerate() {
            let median = SHARE_AND_MEDIAN[c].1;
            let options: Vec<(String, Vec<String>)> = cfg
                .options
                .get(*category)
                .map(|o| {
                    o.iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(n, v)| (n.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let prices = LogNormal::new(median.ln(), 0.45).ok();
            let mut these: Vec<Decimal> = (0..counts[c])
                .map(|_| {
                    let x = prices.as_ref().map_or(median, |d| d.sample(&mut rng));
                    let cents = ((x.round().max(2.0) * 100.0) as i64) - 1;
                    Decimal::new(cents, 2)
                })
                .collect();
            these.sort();
            let start = products.len();
            for price in these {
                products.push(Product {
                    id: format!("prod-{:05}", products.len() + 1),
                    category,
                    base_price: price,
                    options: options.clone(),
                });
            }
            ranges.push(start..products.len());
        }
        Catalogue { products, ranges }
    }

    /// Every product, grouped by category in [`CATEGORIES`] order, cheapest first within one.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The products of a category, cheapest first (empty for an unknown category).
    pub fn in_category(&self, category: &str) -> &[Product] {
        CATEGORIES
            .iter()
            .position(|c| *c == category)
            .and_then(|i| self.ranges.get(i))
            .and_then(|r| self.products.get(r.clone()))
            .unwrap_or(&[])
    }

    /// The plant that builds products of `category` by default (see the module doc).
    pub fn plant_for(&self, category: &str) -> Option<&'static str> {
        default_plant(category)
    }

    /// The default routing, category -> plant, for every category.
    pub fn routing(&self) -> BTreeMap<String, String> {
        CATEGORIES
            .iter()
            .filter_map(|c| default_plant(c).map(|p| ((*c).to_owned(), p.to_owned())))
            .collect()
    }

    /// Things customers type when looking for products of `category`.
    pub fn search_terms(&self, category: &str) -> &'static [&'static str] {
        CATEGORIES
            .iter()
            .position(|c| *c == category)
            .map_or(&[], |i| SEARCH_TERMS[i])
    }
}

/// The default plant of a category.
fn default_plant(category: &str) -> Option<&'static str> {
    match category {
        "skincare" | "bodycare" => Some("berlin"),
        "makeup" | "fragrance" | "nails" => Some("lyon"),
        "haircare" | "tools" => Some("porto"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_has_products_sorted_by_price_and_a_plant() {
        let cat = Catalogue::generate(&CatalogueConfig::default(), 7);
        assert_eq!(cat.products().len(), 300);
        for c in CATEGORIES {
            let products = cat.in_category(c);
            assert!(!products.is_empty(), "{c}");
            assert!(
                products
                    .windows(2)
                    .all(|w| w[0].base_price <= w[1].base_price),
                "{c}"
            );
            assert!(
                products
                    .iter()
                    .all(|p| p.category == c && p.base_price > Decimal::ZERO)
            );
            let plant = cat.plant_for(c).expect("routed");
            assert!(PLANTS.contains(&plant));
        }
        assert_eq!(cat.routing().len(), CATEGORIES.len());
        assert_eq!(cat.plant_for("garden"), None);
        assert!(cat.in_category("garden").is_empty());
    }

    #[test]
    fn skus_carry_options_and_sizes_cost_more() {
        let cat = Catalogue::generate(&CatalogueConfig::default(), 7);
        let p = &cat.in_category("skincare")[0];
        let small = p.sku(&[0]);
        let large = p.sku(&[2]);
        assert_eq!(small.id, format!("{}/30ml", p.id));
        assert_eq!(small.unit_price, p.base_price);
        assert_eq!(large.options.get("size").map(String::as_str), Some("100ml"));
        assert_eq!(
            large.unit_price,
            (p.base_price * Decimal::new(18, 1)).round_dp(2)
        );
        let body = &cat.in_category("bodycare")[0];
        // Options in name order: scent, then size.
        let sku = body.sku(&[1, 1]);
        assert_eq!(sku.id, format!("{}/lavender/400ml", body.id));
        assert_eq!(
            sku.unit_price,
            (body.base_price * Decimal::new(14, 1)).round_dp(2)
        );
        // An index out of range chooses the first value.
        assert_eq!(body.sku(&[1, 9]).id, format!("{}/lavender/200ml", body.id));
    }

    #[test]
    fn generation_is_deterministic_and_small_catalogues_still_cover_categories() {
        let a = Catalogue::generate(&CatalogueConfig::default(), 1);
        let b = Catalogue::generate(&CatalogueConfig::default(), 1);
        assert_eq!(a.products(), b.products());
        let tiny = Catalogue::generate(
            &CatalogueConfig {
                products: 2,
                ..Default::default()
            },
            1,
        );
        assert_eq!(tiny.products().len(), CATEGORIES.len());
        let tools = &tiny.in_category("tools")[0];
        assert_eq!(tools.sku(&[]).id, tools.id);
    }
}
