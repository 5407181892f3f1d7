//! The HTTP layer: shared state, request dispatch, and helpers every endpoint uses.
//!
//! [`handle`] is the whole request path: request id → route → (auth) → handler → response, with
//! one access-log line and metrics per request. Handlers live one file per endpoint group.

pub mod access;
pub mod account;
pub mod body;
pub mod cors;
pub mod error;
pub mod files;
pub mod form;
pub mod idle;
pub mod limits;
pub mod metrics_listener;
pub mod openapi;
pub mod ops;
pub mod proxy;
pub mod router;
pub mod seed_tokens;
pub mod server;
pub mod sessions;
pub mod tokens;
pub mod tus;
pub mod upload;
pub mod v2;
pub mod windows;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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
use crate::domain::{Tenant, TenantId};
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
    /// HTTP-01 answers while an ACME order waits for validation.
    pub acme_http01: crate::acme::Http01Tokens,
    /// HTTP/2 flow-control windows, paid for from `http2.window_budget`.
    pub windows: Arc<windows::WindowGrants>,
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
    /// The client's address: the TCP peer's, or the one a trusted proxy forwarded for
    /// (`server.trusted_proxies`). The login limiter and the access log use this.
    pub client: IpAddr,
    /// The scheme the client used: the listener's, or the one a trusted proxy forwarded.
    pub scheme: &'static str,
    /// The host the client asked for: a trusted proxy's forwarded host, else the `Host` header
    /// (HTTP/1) or the URI authority (HTTP/2).
    pub host: Option<String>,
}

/// The authenticated tenant, attached to a response for the access log.
#[derive(Clone)]
struct TenantTag(String);

/// The response of an authenticated request, an error's included, tagged with its tenant for the
/// access log.
fn tagged(
    resp: Result<Response, ApiError>,
    tag: TenantTag,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let mut resp = resp.unwrap_or_else(|e| e.into_response(&ctx.request_id));
    resp.extensions_mut().insert(tag);
    Ok(resp)
}

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
    let claims = match state.auth.verify_access(token) {
        Ok(c) => c,
        // Perhaps one the original service issued (`auth.seed_secret_key`).
        Err(_) => return seed_tokens::authenticate(state, token).await,
    };
    let (tenant, epoch) = state
        .files
        .meta
        .tenant_session(TenantId(claims.user_id))
        .await?
        .ok_or(ApiError::UserNotFound)?;
    // A session ended since (password change, logout, revoke), or a token of a removed tenant
    // whose id was given again.
    if claims.epoch != epoch || claims.username != tenant.name.as_str() {
        return Err(ApiError::InvalidToken);
    }
    Ok(tenant)
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
    let client = proxy::resolve(&state.cfg.server.trusted_proxies, conn, req.headers(), host);
    let ctx = Ctx {
        conn,
        request_id: request_id(req.headers()),
        client: client.ip,
        scheme: client.scheme,
        host: client.host,
    };
    let method = req.method().clone();
    let origin = cors::allowed_origin(&state.cfg.cors, req.headers());
    let preflight = cors::preflight(&state.cfg.cors, origin.as_ref(), &method, req.headers());
    let mut req = req;
    proxy::route_within_base_path(&state.cfg.server.base_path, &mut req);
    let endpoint = router::route(req.uri().path());
    let route = endpoint.as_ref().map_or("unknown", Endpoint::name);
    let bytes_in = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let policy = limits::body_policy(&state.cfg, endpoint.as_ref());
    let result = match (preflight, endpoint) {
        (_, None) => Err(ApiError::NotFound),
        (Some(preflight), Some(_)) => Ok(preflight),
        (None, Some(ep)) => {
            let served = body::with_policy(policy, dispatch(&state, &ctx, ep, req));
            access::with_bytes_in(bytes_in.clone(), served).await
        }
    };
    let mut resp = result.unwrap_or_else(|e| e.into_response(&ctx.request_id));
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    cors::finish(&state.cfg.cors, origin, &mut resp);
    let status = resp.status().as_u16();
    let tenant = resp
        .extensions()
        .get::<TenantTag>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let elapsed = started.elapsed();
    let labels = [("route", route.to_owned()), ("status", status.to_string())];
    metrics::counter!("mtfu_requests_total", &labels).increment(1);
    metrics::histogram!("mtfu_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    let line = access::Line {
        request_id: ctx.request_id,
        client: ctx.client.to_string(),
        method: method.to_string(),
        route,
        status,
        tenant,
        started,
        bytes_in,
    };
    let resp = access::log_when_sent(without_body_for_head(&method, resp), line);
    Ok(resp)
}

/// A `HEAD` request gets the headers of its `GET` and no body: HTTP/1 would drop it anyway,
/// but an HTTP/2 peer treats body frames after a `HEAD` as a protocol error. The length the
/// body would have had stays as `Content-Length`.
fn without_body_for_head(method: &Method, mut resp: Response) -> Response {
    use http_body::Body as _;
    if method != Method::HEAD {
        return resp;
    }
    if let Some(n) = resp.body().size_hint().exact()
        && !resp.headers().contains_key(header::CONTENT_LENGTH)
    {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp.map(|_| full(Bytes::new()))
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
        Endpoint::Healthz | Endpoint::Readyz if method != Method::GET && method != Method::HEAD => {
            Err(not_allowed(&method, "GET, HEAD"))
        }
        Endpoint::Healthz => ops::healthz(),
        Endpoint::AcmeChallenge { token } => match state.acme_http01.get(&token) {
            Some(key_authorization) => {
                let mut resp = http::Response::new(full(key_authorization));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                Ok(resp)
            }
            None => Err(ApiError::NotFound),
        },
        Endpoint::Readyz => ops::readyz(state).await,
        Endpoint::OpenApi => openapi::serve(state, ctx, &method),
        Endpoint::Download { tenant, file_id } => match method {
            Method::GET | Method::HEAD => files::download(state, &req, &tenant, &file_id).await,
            _ => Err(not_allowed(&method, "GET, HEAD")),
        },
        Endpoint::Upload | Endpoint::ResourceFiles { .. } | Endpoint::ListFiles => {
            let tenant = authenticate(state, req.headers()).await?;
            let tag = TenantTag(tenant.name.to_string());
            let resp = match (ep, &method) {
                (Endpoint::Upload, &Method::POST) => upload::upload(state, ctx, req, tenant).await,
                (Endpoint::Upload, _) => Err(not_allowed(&method, "POST, OPTIONS")),
                (
                    Endpoint::ResourceFiles {
                        resource,
                        resource_id,
                    },
                    m,
                ) => match *m {
                    // Django answers HEAD like GET (hyper sends no body).
                    Method::GET | Method::HEAD => {
                        files::resource_files(state, ctx, &req, &tenant, &resource, &resource_id)
                            .await
                    }
                    Method::DELETE => {
                        files::delete_resource(state, &tenant, &resource, &resource_id).await
                    }
                    _ => Err(not_allowed(&method, "GET, DELETE, HEAD, OPTIONS")),
                },
                (_, &Method::GET | &Method::HEAD) => files::list_files(state, &req, &tenant).await,
                _ => Err(not_allowed(&method, "GET, HEAD, OPTIONS")),
            };
            tagged(resp, tag, ctx)
        }
        Endpoint::V2Files
        | Endpoint::V2File { .. }
        | Endpoint::V2FileContent { .. }
        | Endpoint::V2FileUrl { .. }
        | Endpoint::V2Put { .. }
        | Endpoint::V2RevokeUrls => {
            let tenant = authenticate(state, req.headers()).await?;
            let tag = TenantTag(tenant.name.to_string());
            let resp = v2::handle(state, ctx, ep, req, tenant).await;
            tagged(resp, tag, ctx)
        }
        Endpoint::SessionsRevoke => {
            let tenant = authenticate(state, req.headers()).await?;
            let tag = TenantTag(tenant.name.to_string());
            let resp = match method {
                Method::POST => sessions::revoke(state, &tenant).await,
                _ => Err(not_allowed(&method, "POST")),
            };
            tagged(resp, tag, ctx)
        }
        Endpoint::V2Usage => {
            let tenant = authenticate(state, req.headers()).await?;
            let tag = TenantTag(tenant.name.to_string());
            let resp = match method {
                Method::GET | Method::HEAD => account::usage(state, &tenant).await,
                _ => Err(not_allowed(&method, "GET, HEAD")),
            };
            tagged(resp, tag, ctx)
        }
        // Public: a client learns the limits before it has a token.
        Endpoint::V2Limits => match method {
            Method::GET | Method::HEAD => account::limits(state),
            _ => Err(not_allowed(&method, "GET, HEAD")),
        },
        // tus answers every outcome itself (each response carries Tus-Resumable).
        Endpoint::TusUploads | Endpoint::TusUpload { .. } => {
            Ok(tus::handle(state, ctx, ep, req).await)
        }
    }
}
