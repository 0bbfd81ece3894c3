//! The latent customer types behind simulated behaviour.
//!
//! Each [`Persona`] has its own visit rate, session shape, funnel (view -> cart -> checkout
//! -> purchase, with cart removals), basket size, price level, category preferences and
//! time-of-day rhythm. They are made to differ on the features the profiler computes —
//! recency, orders, spend, average order value, sessions, product views, carts, cart
//! abandonment, conversion and category affinity — so that clustering those features can
//! recover them; [`crate::Simulator::ground_truth`] says who is who.
//!
//! Visit rates are relative: the simulator scales them all by one factor so that the whole
//! run produces the configured number of events.

use crate::catalogue::CATEGORIES;

/// A latent customer type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Persona {
    /// Name, as in the ground truth (`loyal_high_spender`, ...).
    pub name: &'static str,
    /// Sessions per day of an average customer, before the simulator's rate scaling.
    pub sessions_per_day: f64,
    /// Fraction of the run before which the customer never visits (new customers arrive late).
    pub arrives_at: f64,
    /// Fraction of the run after which the customer no longer buys (lapsing customers).
    pub buys_until: f64,
    /// Visit rate after `buys_until`, relative to before.
    pub lapsed_visits: f64,
    /// Mean extra page views per session (besides the landing page).
    pub page_views: f64,
    /// Mean searches per session.
    pub searches: f64,
    /// Mean product views per session (at least one).
    pub product_views: f64,
    /// Probability that a product view leads to an add-to-cart.
    pub cart_rate: f64,
    /// Probability of adding one more unit of a carted SKU (repeated: basket depth).
    pub extra_unit_rate: f64,
    /// Probability that a carted unit is removed again.
    pub removal_rate: f64,
    /// Probability of starting the checkout with a non-empty cart.
    pub checkout_rate: f64,
    /// Probability that a started checkout becomes a purchase.
    pub purchase_rate: f64,
    /// Where in a category's price range products are chosen, 0 (cheapest) to 1 (dearest).
    pub price_level: f64,
    /// Probability that a product is from the customer's favourite category.
    pub focus: f64,
    /// Relative weight of each category (in [`CATEGORIES`] order) when drawing favourites
    /// and unfocused views.
    pub category_weights: [f64; CATEGORIES.len()],
    /// Hour of day (UTC) with most visits.
    pub peak_hour: f64,
    /// Spread of visits around the peak, in hours.
    pub rhythm_width: f64,
    /// Mean seconds between two events of a session.
    pub think_seconds: f64,
    /// Share of sessions on the app (the rest on the web).
    pub app_share: f64,
}

impl Persona {
    /// Every persona, in ground-truth order.
    pub const ALL: [Persona; 6] = [
        // Visits often, knows what she wants, buys premium products in her categories.
        Persona {
            name: "loyal_high_spender",
            sessions_per_day: 5.0,
            arrives_at: 0.0,
            buys_until: 1.0,
            lapsed_visits: 1.0,
            page_views: 1.0,
            searches: 0.5,
            product_views: 5.0,
            cart_rate: 0.35,
            extra_unit_rate: 0.3,
            removal_rate: 0.05,
            checkout_rate: 0.75,
            purchase_rate: 0.95,
            price_level: 0.85,
            focus: 0.8,
            category_weights: [3.0, 2.0, 1.0, 3.0, 1.0, 1.0, 1.0],
            peak_hour: 20.0,
            rhythm_width: 2.5,
            think_seconds: 25.0,
            app_share: 0.6,
        },
        // Searches and compares a lot, carts cheap products, removes and abandons often.
        Persona {
            name: "bargain_hunter",
            sessions_per_day: 3.0,
            arrives_at: 0.0,
            buys_until: 1.0,
            lapsed_visits: 1.0,
            page_views: 1.0,
            searches: 2.0,
            product_views: 9.0,
            cart_rate: 0.15,
            extra_unit_rate: 0.1,
            removal_rate: 0.45,
            checkout_rate: 0.85,
            purchase_rate: 0.9,
            price_level: 0.05,
            focus: 0.15,
            category_weights: [1.0, 1.0, 3.0, 0.5, 2.0, 3.0, 1.0],
            peak_hour: 12.5,
            rhythm_width: 2.0,
            think_seconds: 20.0,
            app_share: 0.3,
        },
        // Browses a lot across categories, rarely carts, may start a checkout but never buys.
        Persona {
            name: "window_shopper",
            sessions_per_day: 3.2,
            arrives_at: 0.0,
            buys_until: 1.0,
            lapsed_visits: 1.0,
            page_views: 1.5,
            searches: 1.0,
            product_views: 7.0,
            cart_rate: 0.05,
            extra_unit_rate: 0.0,
            removal_rate: 0.5,
            checkout_rate: 0.15,
            purchase_rate: 0.0,
            price_level: 0.6,
            focus: 0.15,
            category_weights: [1.0, 2.0, 1.0, 2.0, 1.0, 1.0, 1.0],
            peak_hour: 15.0,
            rhythm_width: 4.0,
            think_seconds: 35.0,
            app_share: 0.5,
        },
        // First visits in the last fifth of the run; a few sessions, usually a first order.
        Persona {
            name: "new_customer",
            sessions_per_day: 4.0,
            arrives_at: 0.8,
            buys_until: 1.0,
            lapsed_visits: 1.0,
            page_views: 1.0,
            searches: 1.0,
            product_views: 4.0,
            cart_rate: 0.5,
            extra_unit_rate: 0.0,
            removal_rate: 0.25,
            checkout_rate: 0.95,
            purchase_rate: 0.95,
            price_level: 0.5,
            focus: 0.3,
            category_weights: [2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            peak_hour: 19.0,
            rhythm_width: 3.0,
            think_seconds: 40.0,
            app_share: 0.2,
        },
        // Buys in the first quarter of the run, then visits less and no longer buys.
        Persona {
            name: "at_risk",
            sessions_per_day: 6.0,
            arrives_at: 0.0,
            buys_until: 0.25,
            lapsed_visits: 0.35,
            page_views: 1.0,
            searches: 1.0,
            product_views: 4.0,
            cart_rate: 0.4,
            extra_unit_rate: 0.1,
            removal_rate: 0.1,
            checkout_rate: 0.9,
            purchase_rate: 0.9,
            price_level: 0.75,
            focus: 0.7,
            category_weights: [2.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0],
            peak_hour: 9.0,
            rhythm_width: 3.0,
            think_seconds: 30.0,
            app_share: 0.4,
        },
        // Short late-night sessions in one category; carts at once, buys almost always.
        Persona {
            name: "impulse_buyer",
            sessions_per_day: 2.5,
            arrives_at: 0.0,
            buys_until: 1.0,
            lapsed_visits: 1.0,
            page_views: 0.3,
            searches: 0.2,
            product_views: 1.5,
            cart_rate: 0.8,
            extra_unit_rate: 0.4,
            removal_rate: 0.02,
            checkout_rate: 0.97,
            purchase_rate: 0.97,
            price_level: 0.9,
            focus: 0.97,
            category_weights: [1.0, 3.0, 0.5, 1.0, 3.0, 0.5, 0.5],
            peak_hour: 23.0,
            rhythm_width: 2.0,
            think_seconds: 12.0,
            app_share: 0.8,
        },
    ];

    /// The persona with this name.
    pub fn by_name(name: &str) -> Option<&'static Persona> {
        Persona::ALL.iter().find(|p| p.name == name)
    }

    /// Relative visit intensity at an hour of day (UTC): a floor plus a bump around the peak,
    /// not normalised (see [`Persona::mean_rhythm`]).
    pub fn rhythm(&self, hour: f64) -> f64 {
        let d = (hour - self.peak_hour).rem_euclid(24.0);
        let d = d.min(24.0 - d);
        0.15 + 0.85 * (-(d * d) / (2.0 * self.rhythm_width * self.rhythm_width)).exp()
    }

    /// The mean of [`Persona::rhythm`] over a day.
    pub fn mean_rhythm(&self) -> f64 {
        let steps = 24 * 12;
        (0..steps)
            .map(|i| self.rhythm(i as f64 * 24.0 / steps as f64))
            .sum::<f64>()
            / steps as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for p in &Persona::ALL {
            assert_eq!(Persona::by_name(p.name).map(|q| q.name), Some(p.name));
        }
        assert!(Persona::by_name("nobody").is_none());
    }

    #[test]
    fn rhythm_peaks_at_the_peak_hour_across_midnight() {
        let p = Persona::ALL[5];
        assert!(p.rhythm(23.0) > p.rhythm(1.0));
        assert!(p.rhythm(1.0) > p.rhythm(12.0));
        assert!((p.rhythm(22.0) - p.rhythm(0.0)).abs() < 1e-9);
        let mean = p.mean_rhythm();
        assert!(mean > 0.15 && mean < 1.0);
    }
}
