//! The lookup API over HTTP, on its own port (`--api ADDR`):
//!
//! - `GET /v1/customers/{id}`: 200 with the [`Answer`](super::Answer); 404 for a customer the
//!   partition's committed state does not know; 400 for an id that is empty, longer than
//!   the inputs allow ([`MAX_ID_LEN`] bytes) or not UTF-8 once percent-decoded. A partition
//!   held by another instance is forwarded there (one hop: a forwarded request that misses
//!   again answers 421 Misdirected Request naming the owner); a partition being restored
//!   here, or that no instance holds (a rebalance), answers 503 with `Retry-After`.
//! - `GET /v1/status`: this instance's partitions (ready or restoring, as of when), the
//!   customers it holds and the owner of every partition as the endpoints topic says.
//!
//! Every error is a JSON object with an `error` field.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fitstream_contracts::validate::MAX_ID_LEN;
use serde_json::json;

use super::endpoints::Directory;
use super::{Lookup, Partition, Reply};

/// The header on a forwarded request (its value: the forwarding instance).
pub const FORWARDED: &str = "x-fitstream-forwarded-by";
/// The header naming the instance that answered.
pub const SERVED_BY: &str = "x-fitstream-served-by";
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The committed view.
    pub lookup: Arc<Lookup>,
    /// Where the other instances are (None: one process holds every partition, the
    /// embedded demo).
    pub directory: Option<Arc<Directory>>,
    /// This instance's advertised endpoint.
    pub endpoint: String,
    client: reqwest::Client,
}

impl Api {
    /// The API of `lookup`, advertised at `endpoint`.
    pub fn new(lookup: Arc<Lookup>, directory: Option<Arc<Directory>>, endpoint: String) -> Api {
        let client = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .build()
            .unwrap_or_default();
        Api {
            lookup,
            directory,
            endpoint,
            client,
        }
    }
}

/// The router.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/customers/{id}", get(customer))
        .route("/v1/customers/", get(empty_id))
        .route("/v1/customers", get(empty_id))
        .route("/v1/status", get(status))
        .with_state(api)
}

/// Serves the API on `listener` from a thread of its own, with a single-threaded runtime, until
/// the process ends: requests are handled on one thread and never wake the processing
/// threads' cores for work stealing.
pub fn spawn_thread(listener: std::net::TcpListener, api: Api) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("lookup-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, router(api)).await {
                            tracing::error!("lookup API: {e}");
                        }
                    }
                    Err(e) => tracing::error!("lookup API: {e}"),
                }
            });
        })?;
    Ok(())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn retry_later(message: String) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn empty_id() -> Response {
    error(StatusCode::BAD_REQUEST, "customer id: empty")
}

async fn customer(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("customer id: {e}")),
    };
    if id.is_empty() {
        return error(StatusCode::BAD_REQUEST, "customer id: empty");
    }
    if id.len() > MAX_ID_LEN {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "customer id: {} bytes, at most {MAX_ID_LEN} (as on the input topics)",
                id.len()
            ),
        );
    }
    let mut response = match api.lookup.get(&id) {
        Reply::Found(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Reply::Unknown { partition, as_of } => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "error": "no such customer",
                "partition": partition,
                "as_of_ms": as_of.map(|t| t.0),
            })),
        )
            .into_response(),
        Reply::Restoring(p) => {
            retry_later(format!("partition {p} is being restored here: ask again"))
        }
        Reply::Elsewhere(p) => return elsewhere(&api, &headers, &id, p).await,
    };
    if let Ok(v) = HeaderValue::from_str(&api.endpoint) {
        response.headers_mut().insert(SERVED_BY, v);
    }
    response
}

/// A partition this instance does not hold: forward to its owner, once.
async fn elsewhere(api: &Api, headers: &HeaderMap, id: &str, p: i32) -> Response {
    let owner = api.directory.as_ref().and_then(|d| d.owner(p));
    if headers.contains_key(FORWARDED) {
        let mut r = (
            StatusCode::MISDIRECTED_REQUEST,
            axum::Json(json!({
                "error": format!("partition {p} is not held here"),
                "partition": p,
                "owner": owner,
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let Some(owner) = owner else {
        return retry_later(format!(
            "no instance holds partition {p} now (a rebalance, or its state is being restored): ask again"
        ));
    };
    let Ok(mut url) = reqwest::Url::parse(&format!("http://{owner}/v1/customers/")) else {
        return retry_later(format!(
            "the owner of partition {p} has a bad endpoint {owner:?}"
        ));
    };
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(id);
    }
    let sent = api
        .client
        .get(url)
        .header(FORWARDED, api.endpoint.as_str())
        .send()
        .await;
    let answered = match sent {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut relay = HeaderMap::new();
            for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
                if let Some(v) = r.headers().get(name.as_str())
                    && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
                {
                    relay.insert(name, v);
                }
            }
            if let Some(v) = r
                .headers()
                .get(SERVED_BY)
                .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            {
                relay.insert(SERVED_BY, v);
            }
            r.bytes().await.map(|body| (status, relay, body))
        }
        Err(e) => Err(e),
    };
    match answered {
        // The owner has moved on since (421): the client asks again.
        Ok((StatusCode::MISDIRECTED_REQUEST, _, _)) => retry_later(format!(
            "partition {p} is moving (its owner {owner} no longer holds it): ask again"
        )),
        Ok((status, relay, body)) => (status, relay, body).into_response(),
        Err(e) => retry_later(format!(
            "the owner of partition {p} ({owner}) did not answer: {e}"
        )),
    }
}

async fn status(State(api): State<Api>) -> Response {
    let partitions: Vec<serde_json::Value> = api
        .lookup
        .partitions()
        .into_iter()
        .map(|(p, s)| match s {
            Partition::Restoring => json!({ "partition": p, "state": "restoring" }),
            Partition::Ready(s) => json!({
                "partition": p,
                "state": "ready",
                "as_of_ms": s.as_of.map(|t| t.0),
                "model_version": s.model_version,
            }),
        })
        .collect();
    let owners = api
        .directory
        .as_ref()
        .map(|d| d.owners())
        .unwrap_or_default();
    axum::Json(json!({
        "endpoint": api.endpoint,
        "customers": api.lookup.len(),
        "partitions": partitions,
        "owners": owners,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::EventTime;

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("answer");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bad_ids_are_refused_and_unknown_partitions_wait() {
        let lookup = Arc::new(Lookup::new(3));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        spawn_thread(listener, Api::new(lookup.clone(), None, addr.to_string())).expect("serve");
        for path in [
            "/v1/customers/",
            "/v1/customers",
            "/v1/customers/%FF%FE",
            &format!("/v1/customers/{}", "x".repeat(MAX_ID_LEN + 1)),
        ] {
            let (status, body) = get(addr, path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.contains("\"error\""), "{body}");
        }
        // No partition here and nobody to forward to: ask again.
        let (status, _) = get(addr, "/v1/customers/c1").await;
        assert_eq!(status, 503);
        let p = lookup.partition_of("c1");
        lookup.assigning(p);
        let (status, body) = get(addr, "/v1/customers/c1").await;
        assert_eq!(status, 503);
        assert!(body.contains("restored"), "{body}");
        lookup.publish(p, Vec::new(), Some(EventTime(1)), 0, Vec::new());
        let (status, body) = get(addr, "/v1/customers/c1").await;
        assert_eq!(status, 404, "{body}");
        // An id of the longest length allowed is asked, not refused.
        let long = "y".repeat(MAX_ID_LEN);
        let (status, _) = get(addr, &format!("/v1/customers/{long}")).await;
        assert_ne!(status, 400);
    }
}
