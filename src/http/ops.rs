//! Operations endpoints: `/healthz` (the process runs), `/readyz` (both stores answer) and
//! `/metrics` (Prometheus text).

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};

use super::error::ApiError;
use super::wire::{Alive, Health, Readiness, Ready, respond};
use super::{AppState, Response, full};

/// How long `/readyz` waits for each store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn healthz() -> Result<Response, ApiError> {
    Ok(respond(StatusCode::OK, &Health { status: Alive::Ok }))
}

pub async fn readyz(state: &AppState) -> Result<Response, ApiError> {
    let meta = tokio::time::timeout(READY_TIMEOUT, state.files.meta.ping()).await;
    let blob = tokio::time::timeout(READY_TIMEOUT, state.files.blob.ping()).await;
    let describe = |r: Result<Result<(), String>, _>| match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => e,
        Err(_) => "timed out".to_owned(),
    };
    let meta = describe(meta.map(|r| r.map_err(|e| e.to_string())));
    let blob = describe(blob.map(|r| r.map_err(|e| e.to_string())));
    let ready = meta == "ok" && blob == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status_word = if ready {
        Readiness::Ok
    } else {
        Readiness::Unavailable
    };
    Ok(respond(
        status,
        &Ready {
            status: status_word,
            metadata: meta,
            blobs: blob,
        },
    ))
}

pub fn metrics(state: &AppState) -> Result<Response, ApiError> {
    let budget = &state.files.budget;
    metrics::gauge!("mtfu_buffer_bytes_budget").set(budget.capacity() as f64);
    let mut resp = http::Response::new(full(state.metrics.render()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(resp)
}
