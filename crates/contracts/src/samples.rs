//! Fully populated example records, for tests and documentation in every crate.

use rust_decimal::Decimal;

use crate::records::*;
use crate::time::EventTime;

/// 2019-10-01T00:00:00Z.
pub const T0: EventTime = EventTime(1_569_888_000_000);

fn opts() -> Options {
    [
        ("shade".to_owned(), "rose".to_owned()),
        ("size".to_owned(), "50ml".to_owned()),
    ]
    .into()
}

/// An add-to-cart with every optional field set.
pub fn click() -> ClickEvent {
    ClickEvent {
        event_id: "e-1".into(),
        customer_id: "c-1".into(),
        session_id: "s-1".into(),
        event_type: ClickEventType::AddToCart,
        product_id: Some("p-1".into()),
        sku: Some("p-1/rose/50ml".into()),
        options: opts(),
        category: Some("skincare".into()),
        price: Some(Decimal::new(1348, 2)),
        query: Some("serum".into()),
        channel: "app".into(),
        region: "eu-west".into(),
        event_time: T0,
    }
}

/// A page view with every optional field unset.
pub fn bare_click() -> ClickEvent {
    ClickEvent {
        event_id: "e-2".into(),
        customer_id: "c-1".into(),
        session_id: "s-1".into(),
        event_type: ClickEventType::PageView,
        product_id: None,
        sku: None,
        options: Options::new(),
        category: None,
        price: None,
        query: None,
        channel: "web".into(),
        region: String::new(),
        event_time: T0.plus(1_000),
    }
}

/// A two-line order.
pub fn purchase() -> PurchaseEvent {
    PurchaseEvent {
        order_id: "o-1".into(),
        customer_id: "c-1".into(),
        session_id: "s-1".into(),
        event_time: T0.plus(60_000),
        region: "eu-west".into(),
        currency: "EUR".into(),
        lines: vec![
            purchase_line(),
            PurchaseLine {
                product_id: "p-2".into(),
                sku: "p-2".into(),
                options: Options::new(),
                category: None,
                quantity: 1,
                unit_price: Decimal::new(-0, 2) + Decimal::new(99_999_999_999, 2),
            },
        ],
    }
}

/// The first line of [`purchase`]: two of the add-to-cart's SKU, with its options.
pub fn purchase_line() -> PurchaseLine {
    PurchaseLine {
        product_id: "p-1".into(),
        sku: "p-1/rose/50ml".into(),
        options: opts(),
        category: Some("skincare".into()),
        quantity: 2,
        unit_price: Decimal::new(1348, 2),
    }
}

/// A profile.
pub fn profile() -> CustomerProfile {
    CustomerProfile {
        customer_id: "c-1".into(),
        first_event_time: T0,
        last_event_time: T0.plus(86_400_000),
        last_purchase_time: Some(T0.plus(60_000)),
        orders: 1,
        spend: Decimal::new(12345, 2),
        units: 3,
        sessions: 2,
        product_views: 7,
        carts: 3,
        cart_removals: 1,
        top_categories: vec!["skincare".into(), "makeup".into()],
        features: ProfileFeatures {
            recency_days: 1.0,
            frequency: 1.0,
            monetary: 123.45,
            avg_order_value: 123.45,
            sessions: 2.0,
            product_views: 7.0,
            carts: 3.0,
            cart_abandonment_rate: 0.0,
            conversion_rate: 0.5,
            category_affinity: 0.6,
        },
    }
}

/// An assignment that moved a customer.
pub fn assignment() -> SegmentAssignment {
    SegmentAssignment {
        customer_id: "c-1".into(),
        segment_id: 3,
        segment_label: "loyal high spenders".into(),
        model_version: 2,
        distance: 0.42,
        previous_segment_id: Some(1),
        event_time: T0.plus(3_600_000),
    }
}

/// A two-segment model.
pub fn model() -> SegmentModel {
    SegmentModel {
        version: 2,
        cutoff_event_time: T0.plus(3_600_000),
        feature_names: ProfileFeatures::NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        log1p_features: vec!["monetary".into()],
        means: vec![0.5; 10],
        scales: vec![1.5; 10],
        segments: vec![
            ModelSegment {
                segment_id: 1,
                label: "window shoppers".into(),
                centroid: vec![0.1; 10],
                description: Some("Browse many products and rarely buy.".into()),
            },
            ModelSegment {
                segment_id: 3,
                label: "loyal high spenders".into(),
                centroid: vec![-0.2; 10],
                description: None,
            },
        ],
        quality_metric: "silhouette".into(),
        quality_score: 0.61,
        next_segment_id: 4,
        sample_size: 2000,
    }
}

/// A segment profile.
pub fn segment_profile() -> SegmentProfile {
    SegmentProfile {
        segment_id: 3,
        label: "loyal high spenders".into(),
        size: 420,
        model_version: 2,
        quality_score: 0.61,
        recency_days: 3.5,
        orders: 6.2,
        spend: 512.0,
        avg_order_value: 82.6,
        sessions: 14.0,
        cart_abandonment_rate: 0.2,
        conversion_rate: 0.44,
        top_categories: vec!["skincare".into()],
        retired: false,
        description: Some("Repeat buyers who spend the most.".into()),
    }
}

/// An abandonment.
pub fn abandonment() -> CartAbandonment {
    CartAbandonment {
        customer_id: "c-1".into(),
        session_id: "s-1".into(),
        product_id: "p-1".into(),
        sku: "p-1/rose/50ml".into(),
        category: Some("skincare".into()),
        segment_id: None,
        segment_label: "unassigned".into(),
        carted_at: T0,
        window_closed_at: T0.plus(1_800_000),
        source_event_id: "e-1".into(),
    }
}

/// A released build order.
pub fn build_order() -> BuildOrder {
    BuildOrder {
        request_id: "br-0123456789abcdef".into(),
        request_state: RequestState::Released,
        product_production_rule_id: "p-1".into(),
        material_definition_id: "p-1/rose/50ml".into(),
        quantity: Decimal::new(2500, 3),
        unit_of_measure: "EA".into(),
        parameters: vec![
            ProductionParameter {
                id: "shade".into(),
                value: "rose".into(),
            },
            ProductionParameter {
                id: "size".into(),
                value: "50ml".into(),
            },
        ],
        location: Location {
            site: "berlin".into(),
            area: "filling".into(),
            line: "L1".into(),
        },
        earliest_start: T0.plus(900_000),
        latest_end: T0.plus(900_000 + 86_400_000),
        priority: 500,
        order_count: 2,
        segment_mix: vec![
            SegmentShare {
                segment_id: Some(3),
                segment_label: "loyal high spenders".into(),
                quantity: Decimal::new(2000, 3),
            },
            SegmentShare {
                segment_id: None,
                segment_label: "unassigned".into(),
                quantity: Decimal::new(500, 3),
            },
        ],
        window_start: T0,
        window_end: T0.plus(900_000),
        model_version: Some(2),
    }
}
