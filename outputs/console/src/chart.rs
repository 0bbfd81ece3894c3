//! Line charts over event time, as inline SVG: no script, no library, nothing fetched.

use fitstream_contracts::EventTime;
use maud::{Markup, html};

/// Colours of the series, in order (then round again).
pub const PALETTE: [&str; 20] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#393b41", "#dbdb8d", "#0b5563",
];

/// One line: its name and its points `(event time ms, value)`, in time order.
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// The points.
    pub points: Vec<(i64, f64)>,
}

const W: f64 = 760.0;
const H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// A round upper bound for the y axis: 1, 2 or 5 times a power of ten.
fn ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= max)
        .unwrap_or(10.0 * p)
}

/// An event time as the x axis shows it: to the minute.
pub fn minute(t: i64) -> String {
    let s = EventTime(t).to_string();
    // 2019-10-01T07:00:00.000Z -> 2019-10-01 07:00
    s.get(..16).map(|d| d.replace('T', " ")).unwrap_or(s)
}

fn number(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A line is broken where the data has a gap: a step more than [`GAP`] times the smallest
/// step of the series (a silent month is not drawn as a slope).
pub const GAP: i64 = 10;

fn runs(points: &[(i64, f64)]) -> Vec<&[(i64, f64)]> {
    let step = points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(1);
    points
        .chunk_by(|a, b| b.0 - a.0 <= step.saturating_mul(GAP))
        .collect()
}

/// The chart, with its legend; `title` names it for screen readers, `label` writes an x value
/// (the axis shows the first and the last).
pub fn lines(title: &str, label: &dyn Fn(i64) -> String, series: &[Series]) -> Markup {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut ymax) = (i64::MAX, i64::MIN, 0f64);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        ymax = ymax.max(y);
    }
    if x0 > x1 {
        return html! { p.empty { "No data yet." } };
    }
    if x0 == x1 {
        x1 = x0 + 1;
    }
    let ytop = ceiling(ymax);
    let px = |x: i64| LEFT + (x - x0) as f64 / (x1 - x0) as f64 * (W - LEFT - RIGHT);
    let py = |y: f64| TOP + (1.0 - y / ytop) * (H - TOP - BOTTOM);
    let ticks: Vec<f64> = (0..=4).map(|i| ytop * f64::from(i) / 4.0).collect();
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
                title { (title) }
                @for t in &ticks {
                    line x1=(LEFT) x2=(W - RIGHT) y1=(py(*t)) y2=(py(*t)) stroke="#e3e3e3" {}
                    text x=(LEFT - 6.0) y=(py(*t) + 4.0) text-anchor="end" font-size="11" { (number(*t)) }
                }
                text x=(LEFT) y=(H - 8.0) font-size="11" { (label(x0)) }
                text x=(W - RIGHT) y=(H - 8.0) font-size="11" text-anchor="end" { (label(x1)) }
                @for (i, s) in series.iter().enumerate() {
                    @let colour = PALETTE[i % PALETTE.len()];
                    @for run in runs(&s.points) {
                        @if run.len() == 1 {
                            circle cx=(px(run[0].0)) cy=(py(run[0].1)) r="2.5" fill=(colour) {}
                        } @else {
                            @let pts = run.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect::<Vec<_>>().join(" ");
                            polyline points=(pts) fill="none" stroke=(colour) stroke-width="1.5" {}
                        }
                    }
                }
            }
            figcaption {
                @for (i, s) in series.iter().enumerate() {
                    span.key { span.swatch style=(format!("background:{}", PALETTE[i % PALETTE.len()])) {} (s.name) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_bounds_are_round_and_cover_the_data() {
        assert_eq!(ceiling(0.0), 1.0);
        assert_eq!(ceiling(7.0), 10.0);
        assert_eq!(ceiling(1720.0), 2000.0);
        assert_eq!(ceiling(0.3), 0.5);
        assert_eq!(ceiling(5.0), 5.0);
    }

    #[test]
    fn a_chart_draws_one_line_per_series_and_names_them() {
        let s = [
            Series {
                name: "Released".into(),
                points: vec![(0, 1.0), (1_000, 3.0)],
            },
            Series {
                name: "Forecast <&>".into(),
                points: vec![(0, 0.5)],
            },
        ];
        let svg = lines("orders", &minute, &s).into_string();
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("Forecast &lt;&amp;&gt;"), "{svg}");
        assert!(
            lines("none", &minute, &[])
                .into_string()
                .contains("No data yet")
        );
        // A gap breaks the line: two runs, one of them a single point.
        let gap = [Series {
            name: "g".into(),
            points: vec![(0, 1.0), (10, 2.0), (20, 1.0), (10_000, 4.0)],
        }];
        let svg = lines("gap", &minute, &gap).into_string();
        assert_eq!(
            (
                svg.matches("<polyline").count(),
                svg.matches("<circle").count()
            ),
            (1, 1)
        );
    }
}
