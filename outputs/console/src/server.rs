//! The HTTP side: the pages, the audience CSV, a status document and the server-sent events
//! that tell open pages the data moved.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use fitstream_contracts::topics::TopicsConfig;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::pages::{self, Page, Source};
use crate::source::Directory;
use crate::view::View;

/// Open pages hear of new data at most this often.
pub const UPDATE_EVERY: Duration = Duration::from_secs(1);
/// A metrics endpoint that does not answer within this is shown as unreachable.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// The console: the view, where its data comes from, and who is told when it moves.
pub struct Console {
    view: Mutex<View>,
    topics: TopicsConfig,
    source: Source,
    metrics: Vec<String>,
    client: reqwest::Client,
    updates: watch::Sender<u64>,
}

impl Console {
    /// A console over the outputs named by `topics`; `metrics` are the services' `/metrics`
    /// URLs for the health page.
    pub fn new(topics: TopicsConfig, source: Source, metrics: Vec<String>) -> Arc<Console> {
        Arc::new(Console {
            view: Mutex::new(View::new(topics.clone())),
            topics,
            source,
            metrics,
            client: reqwest::Client::new(),
            updates: watch::channel(0).0,
        })
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // A panic while folding leaves a view that is still whole enough to show.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Folds JSON lines in and tells open pages.
    pub fn ingest<'a>(&self, lines: impl IntoIterator<Item = &'a Value>) {
        let mut view = self.view();
        for line in lines {
            view.ingest(line);
        }
        let records = view.records;
        drop(view);
        self.updates.send_replace(records);
    }

    /// The topics the console reads from Kafka, with the given plants' build orders.
    pub fn topics(&self, plants: &[String]) -> Vec<String> {
        self.view().topics(plants)
    }

    /// Says on every page that the source failed (the data shown stops there).
    pub fn fail(&self, problem: String) {
        self.view().problem = Some(problem);
        self.updates.send_modify(|n| *n += 1);
    }

    /// Forgets everything read (the source starts over).
    pub fn reset(&self) {
        *self.view() = View::new(self.topics.clone());
        self.updates.send_modify(|n| *n += 1);
    }

    /// Follows a directory of topic JSON lines until the process ends, polling every
    /// `every`.
    pub async fn follow(self: Arc<Self>, dir: std::path::PathBuf, every: Duration) {
        let topics = self.topics.clone();
        let mut d = Directory::new(&dir, move |t| View::wants(&topics, t));
        loop {
            let (polled, back) = match tokio::task::spawn_blocking(move || (d.poll(), d)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("console: reading {}: {e}", dir.display());
                    return;
                }
            };
            d = back;
            match polled {
                Ok(p) => {
                    if p.reset {
                        self.reset();
                    }
                    if !p.lines.is_empty() || p.bad > 0 {
                        self.view().skipped += p.bad;
                        self.ingest(&p.lines);
                    }
                }
                Err(e) => tracing::warn!("console: reading {}: {e}", dir.display()),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(|| async { Redirect::to("/segments") }))
            .route("/segments", get(segments))
            .route("/audiences", get(audiences))
            .route("/audiences.csv", get(audience_csv))
            .route("/orders", get(orders))
            .route("/health", get(health))
            .route("/status.json", get(status))
            .route("/events", get(events))
            .with_state(self.clone())
    }

    fn page(&self, page: Page, body: impl FnOnce(&View) -> maud::Markup) -> Html<String> {
        let view = self.view();
        Html(pages::layout(page, &view, &self.source, body(&view)).into_string())
    }
}

async fn segments(State(c): State<Arc<Console>>) -> Html<String> {
    c.page(Page::Segments, pages::segments)
}

#[derive(Deserialize)]
struct SegmentFilter {
    segment: Option<String>,
}

async fn audiences(State(c): State<Arc<Console>>, Query(q): Query<SegmentFilter>) -> Html<String> {
    let filter = pages::parse_segment(q.segment.as_deref());
    c.page(Page::Audiences, |v| pages::audiences(v, filter))
}

async fn audience_csv(State(c): State<Arc<Console>>, Query(q): Query<SegmentFilter>) -> Response {
    let filter = pages::parse_segment(q.segment.as_deref());
    let csv = pages::audience_csv(&c.view(), filter);
    match csv {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"cart-abandonments.csv\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn orders(State(c): State<Arc<Console>>) -> Html<String> {
    c.page(Page::Orders, pages::orders)
}

async fn health(State(c): State<Arc<Console>>) -> Html<String> {
    let services = crate::scrape::scrape_all(&c.client, &c.metrics, SCRAPE_TIMEOUT).await;
    c.page(Page::Health, |v| pages::health(v, &services))
}

async fn status(State(c): State<Arc<Console>>) -> axum::Json<Value> {
    let v = c.view();
    axum::Json(json!({
        "records": v.records,
        "skipped": v.skipped,
        "as_of": v.as_of,
        "model_version": v.model.as_ref().map(|m| m.version),
        "source": c.source.name,
    }))
}

async fn events(
    State(c): State<Arc<Console>>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let rx = c.updates.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        // Many records in a burst make one update.
        tokio::time::sleep(UPDATE_EVERY).await;
        let records = *rx.borrow_and_update();
        Some((
            Ok(Event::default().event("update").data(records.to_string())),
            rx,
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Serves the console on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Arc<Console>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, console.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves a console over a followed directory from a thread of its own (the embedded demo
/// and tests, which are not async): returns the address it listens on.
pub fn spawn_on_directory(
    topics: TopicsConfig,
    dir: std::path::PathBuf,
    listen: &str,
    metrics: Vec<String>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let source = Source {
        name: format!("directory {}", dir.display()),
        live: true,
    };
    let console = Console::new(topics, source, metrics);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(console.clone().follow(dir, Duration::from_millis(500)));
                let served = async {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    serve(listener, console, std::future::pending()).await
                };
                if let Err(e) = served.await {
                    tracing::error!("console: {e}");
                }
            })
        })?;
    Ok(addr)
}
