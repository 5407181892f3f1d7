//! The HTTP layer: shared state, request dispatch, and helpers every endpoint uses.
//!
//! [`handle`] is the whole request path: request id → route → (auth) → handler → response, with
//! one access-log line and metrics per request. Handlers live one file per endpoint group.

pub mod body;
pub mod error;
pub mod files;
pub mod ops;
pub mod router;
pub mod server;
pub mod tokens;
pub mod upload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Auth;
use crate::config::Config;
use crate::domain::Tenant;
use crate::service::Files;
use error::ApiError;
use router::Endpoint;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type Response = http::Response<Body>;

/// Everything a request handler may use.
pub struct AppState {
    pub cfg: Arc<Config>,
    pub auth: Auth,
    pub files: Files,
    pub metrics: PrometheusHandle,
}

/// Facts about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `https` on the TLS listener, `http` on the plain one.
    pub scheme: &'static str,
}

/// What a handler knows about its request besides the request itself.
pub struct Ctx {
    pub conn: ConnInfo,
    pub request_id: String,
    /// The `Host` header (HTTP/1) or the URI authority (HTTP/2).
    pub host: Option<String>,
}

/// The authenticated tenant, attached to a response for the access log.
#[derive(Clone)]
struct TenantTag(String);

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut resp = http::Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Query parameters; the last value of a repeated key wins (Django's `QueryDict.get`).
pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// A valid client-given request id (short, visible ASCII) or a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The tenant of the request's access token.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::NotAuthenticated);
    };
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let mut parts = value.split_whitespace();
    if parts.next() != Some("Bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    let (Some(token), None) = (parts.next(), parts.next()) else {
        return Err(ApiError::BadAuthorizationHeader);
    };
    let id = state
        .auth
        .verify_access(token)
        .map_err(|_| ApiError::InvalidToken)?;
    state
        .files
        .meta
        .tenant_by_id(id)
        .await?
        .ok_or(ApiError::UserNotFound)
}

fn not_allowed(method: &Method, allow: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.as_str().to_owned(),
        allow,
    }
}

/// Serve one request.
pub async fn handle(
    state: Arc<AppState>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response, std::convert::Infallible> {
    let started = Instant::now();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let ctx = Ctx {
        conn,
        request_id: request_id(req.headers()),
        host,
    };
    let method = req.method().clone();
    let endpoint = router::route(req.uri().path());
    let route = endpoint.as_ref().map_or("unknown", Endpoint::name);
    let result = match endpoint {
        None => Err(ApiError::NotFound),
        Some(ep) => dispatch(&state, &ctx, ep, req).await,
    };
    let mut resp = result.unwrap_or_else(|e| e.into_response(&ctx.request_id));
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let tenant = resp
        .extensions()
        .get::<TenantTag>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let elapsed = started.elapsed();
    tracing::info!(
        target: "mtfu::access",
        request_id = %ctx.request_id,
        peer = %conn.peer,
        method = %method,
        route,
        status,
        tenant,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    let labels = [("route", route.to_owned()), ("status", status.to_string())];
    metrics::counter!("mtfu_requests_total", &labels).increment(1);
    metrics::histogram!("mtfu_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    Ok(resp)
}

/// Method check and authentication per endpoint, then the handler. Like DRF, authentication
/// comes before the method check on authenticated routes (401 before 405).
async fn dispatch(
    state: &AppState,
    ctx: &Ctx,
    ep: Endpoint,
    req: Request<Incoming>,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    match ep {
        Endpoint::Token if method == Method::POST => tokens::obtain(state, ctx, req).await,
        Endpoint::Token => Err(not_allowed(&method, "POST, OPTIONS")),
        Endpoint::TokenRefresh if method == Method::POST => tokens::refresh(state, req).await,
        Endpoint::TokenRefresh => Err(not_allowed(&method, "POST, OPTIONS")),
        Endpoint::Healthz => ops::healthz(),
        Endpoint::Readyz => ops::readyz(state).await,
        Endpoint::Metrics => ops::metrics(state),
        Endpoint::Download { tenant, file_id } => match method {
            Method::GET | Method::HEAD => files::download(state, &req, &tenant, &file_id).await,
            _ => Err(not_allowed(&method, "GET, HEAD")),
        },
        Endpoint::Upload | Endpoint::ResourceFiles { .. } | Endpoint::ListFiles => {
            let tenant = authenticate(state, req.headers()).await?;
            let tag = TenantTag(tenant.name.to_string());
            let mut resp = match (ep, &method) {
                (Endpoint::Upload, &Method::POST) => upload::upload(state, ctx, req, tenant).await,
                (Endpoint::Upload, _) => Err(not_allowed(&method, "POST, OPTIONS")),
                (
                    Endpoint::ResourceFiles {
                        resource,
                        resource_id,
                    },
                    m,
                ) => match *m {
                    Method::GET => {
                        files::resource_files(state, ctx, &req, &tenant, &resource, &resource_id)
                            .await
                    }
                    Method::DELETE => {
                        files::delete_resource(state, &tenant, &resource, &resource_id).await
                    }
                    _ => Err(not_allowed(&method, "GET, DELETE, OPTIONS")),
                },
                (_, &Method::GET) => files::list_files(state, &req, &tenant).await,
                _ => Err(not_allowed(&method, "GET, OPTIONS")),
            }?;
            resp.extensions_mut().insert(tag);
            Ok(resp)
        }
    }
}
