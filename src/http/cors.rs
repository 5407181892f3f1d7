//! CORS (`[cors]`): answers browsers' preflights and marks every response to a page of an
//! allowed origin, so that a front-end on another origin (tus-js-client, Uppy, `fetch`) can log
//! in, upload and download.
//!
//! Hand-written rather than `tower-http`'s `CorsLayer`: the server is a hyper `service_fn`
//! around [`super::handle`], not a tower stack, and a layer outside it would answer preflights
//! before the request id, the base path, the access log and the metrics that `handle` gives
//! every request. Here both halves are one call each in `handle`.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::{Response, full};
use crate::config::cors::CorsConfig;

/// Methods a page may use (every route's, tus's `PATCH` and `OPTIONS` included).
const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a page may send: auth, bodies, request ids, method override, and every tus
/// request header.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Request-Id, X-HTTP-Method-Override, \
    Range, If-Match, If-None-Match, Tus-Resumable, Upload-Length, Upload-Offset, \
    Upload-Metadata, Upload-Checksum, Upload-Defer-Length, Upload-Concat";
/// Response headers a page's script may read.
const EXPOSE_HEADERS: &str = "Location, Upload-Offset, Upload-Length, Upload-Expires, \
    Tus-Resumable, Tus-Version, Tus-Max-Size, Tus-Extension, ETag, Content-Disposition, \
    Content-Range, X-Request-Id";

/// The request's `Origin` when it is allowed, to echo in `Access-Control-Allow-Origin`.
pub fn allowed_origin(cfg: &CorsConfig, headers: &HeaderMap) -> Option<HeaderValue> {
    if cfg.allowed_origins.is_empty() {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    cfg.allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

/// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed
/// origin: 204, no token needed. Other requests, and preflights from other origins, are served
/// as usual (and get no CORS headers, so the browser refuses).
pub fn preflight(
    cfg: &CorsConfig,
    origin: Option<&HeaderValue>,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response> {
    origin?;
    if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let mut resp = http::Response::new(full(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cfg.max_age_secs),
    );
    Some(resp)
}

/// Mark a response (any status) for an allowed origin; with CORS on, every response varies by
/// `Origin`, so that a cache never serves one origin's answer to another.
pub fn finish(cfg: &CorsConfig, origin: Option<HeaderValue>, resp: &mut Response) {
    if cfg.allowed_origins.is_empty() {
        return;
    }
    let h = resp.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin else { return };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    if cfg.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..CorsConfig::default()
        }
    }

    fn with_origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("origin"));
        h
    }

    #[test]
    fn only_listed_origins_are_echoed() {
        let c = cfg(&["https://app.example.com"]);
        assert!(allowed_origin(&c, &with_origin("https://app.example.com")).is_some());
        assert!(allowed_origin(&c, &with_origin("https://evil.example.com")).is_none());
        assert!(allowed_origin(&c, &HeaderMap::new()).is_none());
        assert!(allowed_origin(&cfg(&[]), &with_origin("https://app.example.com")).is_none());
        assert!(allowed_origin(&cfg(&["*"]), &with_origin("https://any.example")).is_some());
    }
}
