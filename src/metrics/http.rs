//! The metrics listener (`[metrics] listen`): `GET /metrics` (OpenMetrics text), `/healthz`
//! (the process answers) and `/readyz` (the daemon can serve: the caller's check), all else
//! 404.
//!
//! HTTP/1.1 is hyper's (`server`, `http1`) rather than a parser of our own: keep-alive,
//! pipelining, chunked bodies and malformed requests are its problem, under limits set here
//! — at most [`MAX_BUF`] octets of buffered request (headers included), [`HEADER_TIMEOUT`]
//! to send a request's headers (an idle keep-alive connection is closed by it too),
//! [`MAX_CONNECTIONS`] connections at once (more wait for the accept), and a connection
//! lives at most [`CONNECTION_LIFETIME`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The check behind `/readyz`: `Err(reason)` (one line) when the daemon cannot serve.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The content type of the OpenMetrics text format (OpenMetrics 1.0, "Overall structure").
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Most octets hyper buffers for one request (its minimum is 8 KiB).
const MAX_BUF: usize = 16 * 1024;
/// Time to send a request's headers, and the most a keep-alive connection idles.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// The longest one connection is kept.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Serves `listener` until `shutdown` fires.
pub async fn serve(listener: TcpListener, ready: Readiness, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let tracker = TaskTracker::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ready = ready.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ready = ready.clone();
                async move { Ok::<_, Infallible>(respond(&req, &ready)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_BUF)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("metrics connection: {e}");
                    }
                }
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                _ = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
}

/// The answer to one request.
fn respond(req: &Request<Incoming>, ready: &Readiness) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(super::get().encode())));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        _ => match ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
        },
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
