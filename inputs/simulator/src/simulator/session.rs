//! One customer's session: who the customer is, run-unique ids, and the click events and
//! purchase that one visit produces.

use fitstream_contracts::{
    ClickEvent, ClickEventType, EventTime, Options, PurchaseEvent, PurchaseLine,
};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::catalogue::{CATEGORIES, Catalogue, Product, Sku};
use crate::persona::Persona;
use crate::record::InputRecord;

pub(super) const REGIONS: [&str; 4] = ["eu-west", "eu-central", "eu-south", "eu-north"];
/// Currency of simulated orders.
pub const CURRENCY: &str = "EUR";

/// One customer: who they are, and how often they come.
#[derive(Clone, Debug)]
pub(super) struct Customer {
    pub(super) id: String,
    pub(super) persona: &'static Persona,
    pub(super) region: &'static str,
    /// Index into [`CATEGORIES`].
    pub(super) favourite: usize,
    /// Added to the persona's price level.
    pub(super) price_shift: f64,
    /// Sessions per millisecond at the mean of the persona's rhythm, before arrival and lapse.
    pub(super) visits_per_ms: f64,
    /// The persona's mean rhythm, computed once.
    pub(super) mean_rhythm: f64,
}

/// Run-unique ids.
#[derive(Debug)]
pub(super) struct Ids {
    tag: String,
    events: u64,
    sessions: u64,
    orders: u64,
}

impl Ids {
    pub(super) fn new(seed: u64) -> Ids {
        Ids {
            tag: format!("{seed:x}"),
            events: 0,
            sessions: 0,
            orders: 0,
        }
    }
    pub(super) fn event(&mut self) -> String {
        self.events += 1;
        format!("ev-{}-{}", self.tag, self.events)
    }
    pub(super) fn session(&mut self) -> String {
        self.sessions += 1;
        format!("se-{}-{}", self.tag, self.sessions)
    }
    pub(super) fn order(&mut self) -> String {
        self.orders += 1;
        format!("or-{}-{}", self.tag, self.orders)
    }
}

/// An index drawn with probability proportional to its weight.
pub(super) fn weighted<R: Rng>(rng: &mut R, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len().saturating_sub(1)
}

/// A Poisson draw (Knuth; the means here are small).
fn poisson<R: Rng>(rng: &mut R, mean: f64) -> usize {
    if mean <= 0.0 {
        return 0;
    }
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p = rng.random::<f64>();
    while p > limit && k < 1_000 {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

/// What a customer does next within a session.
#[derive(Clone, Copy)]
enum Step {
    Page,
    Search,
    View,
}

/// One carted SKU.
struct CartLine {
    sku: Sku,
    category: &'static str,
    units: i32,
}

/// The records of one session starting at `start`, and when it ended.
pub(super) fn session(
    catalogue: &Catalogue,
    rng: &mut ChaCha8Rng,
    ids: &mut Ids,
    customer: &Customer,
    start: i64,
    buying: bool,
) -> (Vec<(i64, InputRecord)>, i64) {
    let p = customer.persona;
    let session_id = ids.session();
    let channel = if rng.random_bool(p.app_share.clamp(0.0, 1.0)) {
        "app"
    } else {
        "web"
    };
    let mut out = Vec::new();
    let mut t = start + rng.random_range(0..1_000);
    let click = |ids: &mut Ids,
                 t: i64,
                 event_type,
                 product: Option<(&Product, Option<&Sku>)>,
                 query: Option<String>| {
        let (product_id, sku, options, category, price) = match product {
            Some((prod, Some(sku))) => (
                Some(prod.id.clone()),
                Some(sku.id.clone()),
                sku.options.clone(),
                Some(prod.category.to_owned()),
                Some(sku.unit_price),
            ),
            Some((prod, None)) => (
                Some(prod.id.clone()),
                None,
                Options::new(),
                Some(prod.category.to_owned()),
                Some(prod.base_price),
            ),
            None => (None, None, Options::new(), None, None),
        };
        let event = ClickEvent {
            event_id: ids.event(),
            customer_id: customer.id.clone(),
            session_id: session_id.clone(),
            event_type,
            product_id,
            sku,
            options,
            category,
            price,
            query,
            channel: channel.to_owned(),
            region: customer.region.to_owned(),
            event_time: EventTime(t),
        };
        (t, InputRecord::Click(event))
    };
    let think = |rng: &mut ChaCha8Rng| {
        let u: f64 = rng.random();
        (-(1.0 - u).ln() * p.think_seconds * 1000.0).max(1_000.0) as i64
    };
    let category = |rng: &mut ChaCha8Rng| {
        if rng.random_bool(p.focus.clamp(0.0, 1.0)) {
            customer.favourite
        } else {
            weighted(rng, &p.category_weights)
        }
    };

    out.push(click(ids, t, ClickEventType::PageView, None, None));
    let mut steps: Vec<Step> =
        std::iter::repeat_n(Step::View, 1 + poisson(rng, p.product_views - 1.0))
            .chain(std::iter::repeat_n(Step::Search, poisson(rng, p.searches)))
            .chain(std::iter::repeat_n(Step::Page, poisson(rng, p.page_views)))
            .collect();
    steps.shuffle(rng);

    let mut cart: Vec<CartLine> = Vec::new();
    for step in steps {
        t += think(rng);
        match step {
            Step::Page => out.push(click(ids, t, ClickEventType::PageView, None, None)),
            Step::Search => {
                let terms = catalogue.search_terms(CATEGORIES[category(rng)]);
                let query = terms
                    .get(rng.random_range(0..terms.len().max(1)))
                    .map(|q| (*q).to_owned());
                out.push(click(ids, t, ClickEventType::Search, None, query));
            }
            Step::View => {
                let products = catalogue.in_category(CATEGORIES[category(rng)]);
                if products.is_empty() {
                    continue;
                }
                let level = p.price_level
                    + customer.price_shift
                    + 0.12 * rng.sample::<f64, _>(StandardNormal);
                let index = (level.clamp(0.0, 1.0) * (products.len() - 1) as f64).round() as usize;
                let product = &products[index.min(products.len() - 1)];
                out.push(click(
                    ids,
                    t,
                    ClickEventType::ProductView,
                    Some((product, None)),
                    None,
                ));
                if !rng.random_bool(p.cart_rate.clamp(0.0, 1.0)) {
                    continue;
                }
                let sku = product.random_sku(rng);
                let mut units = 1;
                while units < 5 && rng.random_bool(p.extra_unit_rate.clamp(0.0, 1.0)) {
                    units += 1;
                }
                for _ in 0..units {
                    t += rng.random_range(2_000..8_000);
                    out.push(click(
                        ids,
                        t,
                        ClickEventType::AddToCart,
                        Some((product, Some(&sku))),
                        None,
                    ));
                }
                match cart.iter_mut().find(|l| l.sku.id == sku.id) {
                    Some(line) => line.units += units,
                    None => cart.push(CartLine {
                        sku,
                        category: product.category,
                        units,
                    }),
                }
            }
        }
    }

    for line in &mut cart {
        for _ in 0..line.units {
            if rng.random_bool(p.removal_rate.clamp(0.0, 1.0)) {
                t += think(rng);
                line.units -= 1;
                let product = catalogue
                    .in_category(line.category)
                    .iter()
                    .find(|q| q.id == line.sku.product_id);
                if let Some(product) = product {
                    out.push(click(
                        ids,
                        t,
                        ClickEventType::RemoveFromCart,
                        Some((product, Some(&line.sku))),
                        None,
                    ));
                }
            }
        }
    }
    cart.retain(|l| l.units > 0);

    if !cart.is_empty() && buying && rng.random_bool(p.checkout_rate.clamp(0.0, 1.0)) {
        t += think(rng);
        out.push(click(ids, t, ClickEventType::CheckoutStart, None, None));
        if rng.random_bool(p.purchase_rate.clamp(0.0, 1.0)) {
            t += think(rng).max(20_000);
            let order = PurchaseEvent {
                order_id: ids.order(),
                customer_id: customer.id.clone(),
                session_id: session_id.clone(),
                event_time: EventTime(t),
                region: customer.region.to_owned(),
                currency: CURRENCY.to_owned(),
                lines: cart
                    .iter()
                    .map(|l| PurchaseLine {
                        product_id: l.sku.product_id.clone(),
                        sku: l.sku.id.clone(),
                        options: l.sku.options.clone(),
                        category: Some(l.category.to_owned()),
                        quantity: l.units,
                        unit_price: l.sku.unit_price,
                    })
                    .collect(),
            };
            out.push((t, InputRecord::Purchase(order)));
        }
    }
    (out, t)
}
