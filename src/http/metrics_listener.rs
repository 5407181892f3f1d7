//! The metrics listener (`server.metrics_listen`, loopback by default): `GET /metrics` in
//! Prometheus text over plain HTTP/1.1, on a port of its own so that the service port never
//! serves it. Everything else there is 404. It has its own small connection cap and timeouts.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::server::IdleTimeout;
use super::{AppState, json_response, ops};
use crate::shutdown::stopped;

/// Scrapers served at once.
const MAX_CONNECTIONS: usize = 16;
/// Time to send a request's headers, and silence allowed on a connection.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stopped(&mut stop) => break,
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let state = state.clone();
        conns.spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let resp = match (req.method(), req.uri().path()) {
                        (&Method::GET | &Method::HEAD, "/metrics") => {
                            ops::metrics(&state).unwrap_or_else(|e| e.into_response("metrics"))
                        }
                        (_, "/metrics") => json_response(
                            StatusCode::METHOD_NOT_ALLOWED,
                            &json!({"detail": "Use GET."}),
                        ),
                        _ => json_response(StatusCode::NOT_FOUND, &json!({"detail": "Not found."})),
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(TIMEOUT)
                .serve_connection(TokioIo::new(IdleTimeout::new(tcp, TIMEOUT)), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
    conns.abort_all();
}
