//! The observability endpoints on their own port: `/metrics` (Prometheus text), `/healthz`
//! (every processing loop polled within `kafka.liveness_timeout_ms` and none stopped for good:
//! [`crate::health`]) and `/readyz` (state restored and processing: `fitstream_ready` is 1).

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::METRICS;

/// The router.
pub fn router() -> Router {
    Router::new()
        .route("/metrics", get(|| async { METRICS.render() }))
        .route(
            "/healthz",
            get(|| async {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                match crate::health::LIVENESS.check(now) {
                    Ok(()) => (StatusCode::OK, "ok".to_owned()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                }
            }),
        )
        .route(
            "/readyz",
            get(|| async {
                if METRICS.ready.get() == 1 {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "restoring")
                }
            }),
        )
}

/// Serves the endpoints on `listen` until the process ends.
pub async fn serve(listen: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router()).await {
            tracing::error!("metrics endpoint: {e}");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn endpoints_answer_and_readiness_follows_the_gauge() {
        let addr = serve("127.0.0.1:0").await.expect("bind");
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        };
        METRICS.ready.set(0);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        METRICS.ready.set(1);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/metrics").await.contains("fitstream_build_info"));
        // A loop that last polled in 1970 is wedged: the process is unhealthy, and says why.
        let wedged = crate::health::LIVENESS.register("wedged", 0);
        let answer = get("/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.contains("the wedged loop has not polled"),
            "{answer}"
        );
        drop(wedged);
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    }
}
