//! The pages, rendered on the server. Each states the event time its data is as of.

use fitstream_contracts::{EventTime, SegmentProfile};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::chart::{self, Series};
use crate::scrape::ServiceHealth;
use crate::view::{AUDIENCE_LIMIT, View};

/// The console's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The latest model, sizes over time, moves.
    Segments,
    /// Cart abandonments by segment.
    Audiences,
    /// Build orders per plant.
    Orders,
    /// Dead letters and the services' metrics.
    Health,
}

impl Page {
    const ALL: [(Page, &'static str, &'static str); 4] = [
        (Page::Segments, "/segments", "Segments"),
        (Page::Audiences, "/audiences", "Audiences"),
        (Page::Orders, "/orders", "Build orders"),
        (Page::Health, "/health", "Health"),
    ];

    fn title(self) -> &'static str {
        Page::ALL
            .iter()
            .find(|(p, ..)| *p == self)
            .map_or("", |(_, _, t)| t)
    }
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1d2b36;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header b{font-size:18px} header a{color:#cfe3f3;text-decoration:none} header a.on{color:#fff;font-weight:600;border-bottom:2px solid #fff}
.asof{margin-left:auto;font-size:12px;color:#cfd8df}
main{padding:12px 20px;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 18px;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.desc{color:#555;font-size:12px;max-width:420px}
figure.chart{margin:6px 0 18px;background:#fff;border:1px solid #ddd;padding:6px;max-width:780px}
figure.chart svg{width:100%;height:auto}
figcaption .key{margin-right:14px;font-size:12px;white-space:nowrap}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.empty{color:#777} .bad{color:#b00020} .ok{color:#1b7a1b}
";

/// Reloads `<main>` when the server says the data moved (server-sent events).
const LIVE: &str = "
const es=new EventSource('/events');
es.addEventListener('update',()=>{fetch(location.href).then(r=>r.text()).then(t=>{
const d=new DOMParser().parseFromString(t,'text/html');
for(const s of ['main','.asof']){const n=d.querySelector(s),o=document.querySelector(s);if(n&&o)o.replaceWith(n);}
});});";

/// Where the data comes from and whether it moves.
#[derive(Clone, Debug)]
pub struct Source {
    /// Shown on every page (`Kafka 127.0.0.1:9092` or `directory out/`).
    pub name: String,
    /// Pages follow new records by server-sent events.
    pub live: bool,
}

/// The page frame: navigation, the as-of line, the body.
pub fn layout(page: Page, view: &View, source: &Source, body: Markup) -> Markup {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "fitstream · " (page.title()) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    b { "fitstream" }
                    @for (p, href, name) in Page::ALL {
                        a href=(href) class=[(p == page).then_some("on")] { (name) }
                    }
                    span.asof id="as-of" {
                        @match view.as_of {
                            Some(t) => { "Data as of " time datetime=(EventTime(t).to_string()) { (EventTime(t)) } " (event time of the latest record)" }
                            None => { "No records yet" }
                        }
                        " · read " (now) " from " (source.name)
                        @if source.live { " · live" }
                        @if let Some(p) = &view.problem { " · " span.bad #problem { (p) } }
                    }
                }
                main { (body) }
                @if source.live { script { (PreEscaped(LIVE)) } }
            }
        }
    }
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

fn segment_row(p: &SegmentProfile) -> Markup {
    html! {
        tr id=(format!("segment-{}", p.segment_id)) {
            td.n { (p.segment_id) }
            td { b.label { (p.label) } @if let Some(d) = &p.description { div.desc { (d) } } }
            td.n.size { (p.size) }
            td.n { (format!("{:.1}d", p.recency_days)) }
            td.n { (format!("{:.2}", p.orders)) }
            td.n { (format!("{:.2}", p.spend)) }
            td.n { (format!("{:.2}", p.avg_order_value)) }
            td.n { (format!("{:.2}", p.sessions)) }
            td.n { (pct(p.cart_abandonment_rate)) }
            td.n { (pct(p.conversion_rate)) }
            td { (p.top_categories.join(", ")) }
        }
    }
}

/// Segments: the latest model's table, sizes per model version, moves into the latest model.
pub fn segments(view: &View) -> Markup {
    let rows = view.segments();
    let series: Vec<Series> = view
        .size_series()
        .into_iter()
        .map(|(id, points)| Series {
            name: format!("{id} {}", view.label(id)),
            points,
        })
        .collect();
    let version = |v: i64| match view.version_times.get(&v) {
        Some(t) => format!("model v{v}, {}", chart::minute(*t)),
        None => format!("model v{v}"),
    };
    let moves = view.moves.matrix();
    let name =
        |s: Option<i32>| s.map_or_else(|| "new (first placed)".to_owned(), |s| view.label(s));
    html! {
        h1 { "Segments" }
        @match &view.model {
            Some(m) => p #model {
                "Model " b #model-version { "v" (m.version) } ", fitted on " (m.sample_size)
                " customers up to " (EventTime(m.cutoff_event_time.millis())) "; "
                (m.quality_metric) " " (format!("{:.3}", m.quality_score)) "; "
                (m.segments.len()) " segments."
            },
            None => p.empty { "No segment model yet." },
        }
        @if rows.is_empty() {
            p.empty { "No segment profiles yet." }
        } @else {
            table #segments {
                thead { tr {
                    th.n { "id" } th { "segment" } th.n { "customers" } th.n { "recency" }
                    th.n { "orders" } th.n { "spend" } th.n { "avg order" } th.n { "sessions" }
                    th.n { "abandon" } th.n { "convert" } th { "top categories" }
                } }
                tbody { @for p in &rows { (segment_row(p)) } }
            }
            p.desc { "Features are the segment's mean per customer in original units: days between first and last visit, orders, money spent, sessions; abandonment is the share of carted units not bought, conversion the share of sessions with an order." }
        }
        h2 { "Customers per segment, by model version" }
        (chart::lines("customers per segment by model version", &version, &series))
        h2 { "Moves into model v" (view.moves.version) }
        @if moves.is_empty() {
            p.empty { "No customer changed segment with the latest model." }
        } @else {
            table #moves {
                thead { tr { th { "from" } th { "to" } th.n { "customers" } } }
                tbody {
                    @for ((from, to), n) in &moves {
                        tr { td { (name(*from)) } td { (view.label(*to)) } td.n { (n) } }
                    }
                }
            }
        }
    }
}

/// The segment filter of the audience page and its CSV: `all`, `unassigned` or an id.
pub fn parse_segment(s: Option<&str>) -> Option<Option<i32>> {
    match s {
        None | Some("") | Some("all") => None,
        Some("unassigned") => Some(None),
        Some(id) => id.parse().ok().map(Some),
    }
}

fn segment_param(filter: Option<Option<i32>>) -> String {
    match filter {
        None => "all".into(),
        Some(None) => "unassigned".into(),
        Some(Some(id)) => id.to_string(),
    }
}

/// Rows shown on the audience page (the CSV has every abandonment kept).
pub const AUDIENCE_ROWS: usize = 200;

/// Audiences: the latest cart abandonments, by segment, with a CSV download.
pub fn audiences(view: &View, filter: Option<Option<i32>>) -> Markup {
    let chosen = segment_param(filter);
    let matching = view.audience(filter).count();
    html! {
        h1 { "Audiences: cart abandonments" }
        form method="get" action="/audiences" {
            label { "Segment " select name="segment" onchange="this.form.submit()" {
                option value="all" selected[chosen == "all"] { "all segments" }
                @for p in view.segments() {
                    option value=(p.segment_id) selected[chosen == p.segment_id.to_string()] { (p.label) }
                }
                option value="unassigned" selected[chosen == "unassigned"] { "unassigned" }
            } }
            " " button type="submit" { "Show" }
            " " a #csv href=(format!("/audiences.csv?segment={chosen}")) { "Download CSV (" (matching) " abandonments)" }
        }
        p { (matching) " abandonments match, of the latest " (view.abandonments.len())
            " kept (" (view.abandonments_total) " read; the console keeps the latest " (AUDIENCE_LIMIT) ")." }
        table #audience {
            thead { tr { th { "customer" } th { "segment" } th { "product" } th { "category" } th { "carted at" } th { "abandoned at" } } }
            tbody {
                @for a in view.audience(filter).take(AUDIENCE_ROWS) {
                    tr { td { (a.customer_id) } td { (a.segment_label) } td { (a.product_id) " / " (a.sku) }
                         td { (a.category.as_deref().unwrap_or("")) } td { (a.carted_at) } td { (a.window_closed_at) } }
                }
            }
        }
    }
}

/// The audience as CSV: one row per abandonment kept, newest first.
pub fn audience_csv(view: &View, filter: Option<Option<i32>>) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "customer_id",
        "segment_id",
        "segment_label",
        "product_id",
        "sku",
        "category",
        "carted_at",
        "window_closed_at",
        "session_id",
    ])?;
    for a in view.audience(filter) {
        w.write_record([
            a.customer_id.as_str(),
            &a.segment_id.map(|s| s.to_string()).unwrap_or_default(),
            &a.segment_label,
            &a.product_id,
            &a.sku,
            a.category.as_deref().unwrap_or(""),
            &a.carted_at.to_string(),
            &a.window_closed_at.to_string(),
            &a.session_id,
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Build orders: per plant, quantities per window and the latest orders.
pub fn orders(view: &View) -> Markup {
    html! {
        h1 { "Build orders" }
        @if view.plants.is_empty() { p.empty { "No build orders yet." } }
        @else {
            table #plants {
                thead { tr {
                    th { "plant" } th.n { "Released orders" } th.n { "Released quantity" }
                    th.n { "Forecast orders" } th.n { "Forecast quantity" } th.n { "Cancelled" }
                    th.n { "windows" } th { "latest window" }
                } }
                tbody {
                    @for (plant, p) in &view.plants {
                        tr id=(format!("plant-{plant}")) {
                            td.plant { (plant) }
                            td.n { (p.released_orders) } td.n.released { (p.released) }
                            td.n { (p.forecast_orders) } td.n.forecast { (p.forecast) }
                            td.n { (p.cancelled_orders) } td.n { (p.windows.len()) }
                            td { @if let Some((t, _)) = p.windows.last_key_value() { (EventTime(*t)) } }
                        }
                    }
                }
            }
        }
        @for (plant, p) in &view.plants {
            h2 { "Plant " (plant) }
            @let released = p.windows.iter().map(|(t, (r, _))| (*t, f64::try_from(*r).unwrap_or(0.0))).collect();
            @let forecast = p.windows.iter().map(|(t, (_, f))| (*t, f64::try_from(*f).unwrap_or(0.0))).collect();
            (chart::lines(&format!("{plant}: quantity per window"), &chart::minute, &[
                Series { name: "Released".into(), points: released },
                Series { name: "Forecast".into(), points: forecast },
            ]))
            table.latest {
                thead { tr {
                    th { "request id" } th { "state" } th { "production rule" } th { "material" }
                    th.n { "quantity" } th { "location" } th { "window" } th { "segment mix" }
                } }
                tbody {
                    @for o in p.latest.iter().rev() {
                        tr {
                            td { code { (o.request_id) } } td { (o.request_state.symbol()) }
                            td { (o.product_production_rule_id) } td { (o.material_definition_id) }
                            td.n { (o.quantity) " " (o.unit_of_measure) }
                            td { (o.location.site) " / " (o.location.area) " / " (o.location.line) }
                            td { (chart::minute(o.window_start.millis())) " – " (chart::minute(o.window_end.millis()).get(11..).unwrap_or("")) }
                            td { @for s in &o.segment_mix { (s.segment_label) " " (s.quantity) br; } }
                        }
                    }
                }
            }
        }
    }
}

fn seconds(t: f64) -> String {
    EventTime((t * 1000.0) as i64).to_string()
}

/// Health: dead letters by service and reason, the services' metrics.
pub fn health(view: &View, services: &[ServiceHealth]) -> Markup {
    let total: u64 = view.dead_letters.values().sum();
    html! {
        h1 { "Health" }
        h2 { "Dead letters (" (total) ")" }
        @if view.dead_letters.is_empty() { p.empty { "None." } }
        @else {
            table #dead-letters {
                thead { tr { th { "service" } th { "reason" } th.n { "records" } } }
                tbody { @for ((service, reason), n) in &view.dead_letters {
                    tr { td { (service) } td { (reason) } td.n { (n) } }
                } }
            }
        }
        h2 { "Services" }
        @if services.is_empty() {
            p.empty { "No metrics endpoints given (start the console with --metrics URL ...)." }
        } @else {
            table #services {
                thead { tr {
                    th { "endpoint" } th { "ready" } th { "watermarks" } th.n { "lag (records)" }
                    th.n { "records in" } th.n { "dead letters" } th.n { "restoring tasks" } th { "brokers up" }
                } }
                tbody { @for s in services {
                    tr {
                        td { (s.url) }
                        @if let Some(e) = &s.error {
                            td.bad colspan="7" { "unreachable: " (e) }
                        } @else {
                            td { @match s.ready { Some(true) => span.ok { "ready" }, Some(false) => span.bad { "not ready" }, None => "?" } }
                            td { @for (stage, t) in &s.watermarks { (stage) ": " (seconds(*t)) br; } }
                            td.n { @for (topic, n) in &s.lag { (topic) ": " (n) br; } }
                            td.n { (s.records_in) } td.n { (s.dead_letters) } td.n { (s.restore_pending) }
                            td { (s.brokers_up.0) " of " (s.brokers_up.1) }
                        }
                    }
                } }
            }
        }
        p.desc { (view.records) " output records read; " (view.skipped) " lines skipped (other topics, or values that do not decode)." }
    }
}
