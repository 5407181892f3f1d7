//! `/api/v2/uploads`: resumable uploads with the tus 1.0.0 protocol (core, creation,
//! creation-with-upload, termination, expiration and checksum extensions) over [`crate::tus`].
//!
//! Everything tus-specific about HTTP is here: its headers, `Upload-Metadata` parsed into the
//! same domain types as `/api/upload`, and its statuses (409, 410, 412, 423, 460) mapped in one
//! place ([`Refusal::into_response`]). Every response carries `Tus-Resumable: 1.0.0`.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use super::body::BodyStream;
use super::error::ApiError;
use super::proxy::{Capped, CappedError, request_too_large};
use super::router::Endpoint;
use super::{AppState, Ctx, Response, authenticate, full, json_response};
use crate::domain::{Micros, Tenant};
use crate::meta::tus::TusUpload;
use crate::tus::{BodyFault, CHECKSUM_ALGORITHMS, Checksum, Tus, TusError, TusSettings};

/// The protocol version spoken, and the only one accepted.
const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
/// The body type of `PATCH` (and of a `POST` with a first chunk).
const CHUNK_TYPE: &str = "application/offset+octet-stream";
/// Longest `Upload-Metadata` accepted (names are at most 255 bytes, labels 100 characters).
const MAX_METADATA: usize = 8 * 1024;

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");

mod metadata;

/// Why a tus request was refused.
enum Refusal {
    Api(ApiError),
    Tus(TusError),
    /// `Tus-Resumable` missing or not [`VERSION`].
    Version,
    /// The body stopped arriving (`server.body_read_timeout_secs`).
    BodyTimeout,
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

impl From<TusError> for Refusal {
    fn from(e: TusError) -> Self {
        Refusal::Tus(e)
    }
}

fn detail(status: StatusCode, detail: String, code: &str) -> Response {
    json_response(status, &json!({"detail": detail, "code": code}))
}

impl Refusal {
    /// The one mapping of tus failures to statuses and bodies.
    fn into_response(self, state: &AppState, request_id: &str) -> Response {
        let e = match self {
            Refusal::Api(e) => e,
            Refusal::Version => {
                let mut r = detail(
                    StatusCode::PRECONDITION_FAILED,
                    format!("Tus-Resumable must be {VERSION}, the tus version this server speaks"),
                    "tus_version_unsupported",
                );
                r.headers_mut()
                    .insert(TUS_VERSION, HeaderValue::from_static(VERSION));
                return r;
            }
            Refusal::BodyTimeout => {
                return detail(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request body was not received in time.".into(),
                    "body_timeout",
                );
            }
            Refusal::Tus(t) => match t {
                TusError::NotFound => ApiError::NotFound,
                TusError::Gone => {
                    return detail(
                        StatusCode::GONE,
                        "The upload expired; start a new one.".into(),
                        "upload_expired",
                    );
                }
                TusError::Locked => {
                    return detail(
                        StatusCode::LOCKED,
                        "Another request is writing this upload; retry in a moment.".into(),
                        "upload_busy",
                    );
                }
                TusError::OffsetMismatch { given, actual } => {
                    return json_response(
                        StatusCode::CONFLICT,
                        &json!({
                            "detail": format!(
                                "Upload-Offset {given} is not the upload's offset {actual}."
                            ),
                            "code": "offset_mismatch",
                            "upload_offset": actual,
                        }),
                    );
                }
                TusError::ChecksumMismatch => {
                    let status = StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST);
                    return detail(
                        status,
                        "Upload-Checksum does not match the chunk; it was discarded.".into(),
                        "checksum_mismatch",
                    );
                }
                TusError::TooLarge { limit } => {
                    return json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &json!({
                            "detail": format!(
                                "File size exceeds the maximum allowed size of {limit} bytes"
                            ),
                            "code": "file_too_large",
                            "max_file_size": limit,
                        }),
                    );
                }
                TusError::PastLength { length, offset } => {
                    return detail(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "The chunk goes past Upload-Length {length} (from offset {offset}); \
                             it was discarded."
                        ),
                        "upload_length_exceeded",
                    );
                }
                TusError::RequestTooLarge { cap } => {
                    return request_too_large(cap, &state.cfg.server.base_path);
                }
                TusError::ContentTypeNotAllowed(ct) => {
                    return detail(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!("Content type {ct} is not allowed"),
                        "unsupported_media_type",
                    );
                }
                TusError::TooManyUnfinished { max } => {
                    return detail(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "{max} unfinished uploads already: finish or terminate one first \
                             (unfinished uploads expire after tus.expire_after_secs)."
                        ),
                        "too_many_unfinished_uploads",
                    );
                }
                TusError::ExpiredBeforeCommit => ApiError::field(
                    "expire_at",
                    "Must be in the future: it passed before the upload was complete.",
                ),
                TusError::QuotaExceeded => {
                    return detail(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Quota exceeded".into(),
                        "quota_exceeded",
                    );
                }
                TusError::Body(m) => ApiError::bad_request(format!("Request body: {m}")),
                TusError::Meta(m) => m.into(),
                TusError::Blob(b) => b.into(),
            },
        };
        e.into_response(request_id)
    }
}

/// Serve a request to `/api/v2/uploads` or `/api/v2/uploads/{id}`.
pub async fn handle(state: &AppState, ctx: &Ctx, ep: Endpoint, req: Request<Incoming>) -> Response {
    let mut resp = match serve(state, ctx, ep, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(state, &ctx.request_id),
    };
    resp.headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    resp
}

fn service(state: &AppState) -> Tus {
    Tus::new(state.files.clone(), TusSettings::from_config(&state.cfg))
}

async fn serve(
    state: &AppState,
    ctx: &Ctx,
    ep: Endpoint,
    req: Request<Incoming>,
) -> Result<Response, Refusal> {
    // `X-HTTP-Method-Override` is the request's method when present (clients that cannot send
    // PATCH or DELETE).
    let method = req
        .headers()
        .get("x-http-method-override")
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
        .unwrap_or_else(|| req.method().clone());
    if method == Method::OPTIONS {
        // Discovery needs no token (the protocol says Tus-Resumable is ignored here).
        return Ok(options(state, &ep));
    }
    let tenant = authenticate(state, req.headers()).await?;
    let tag = super::TenantTag(tenant.name.to_string());
    let allow = match ep {
        Endpoint::TusUploads => "POST, OPTIONS",
        _ => "HEAD, PATCH, DELETE, OPTIONS",
    };
    let not_allowed = || {
        Refusal::Api(ApiError::MethodNotAllowed {
            method: method.as_str().to_owned(),
            allow,
        })
    };
    let mut resp = match (ep, &method) {
        (Endpoint::TusUploads, &Method::POST) => {
            version(req.headers())?;
            create(state, ctx, req, &tenant).await?
        }
        (Endpoint::TusUpload { id }, m) => match *m {
            Method::HEAD => {
                version(req.headers())?;
                head(state, &tenant, &id).await?
            }
            Method::PATCH => {
                version(req.headers())?;
                patch(state, req, &tenant, &id).await?
            }
            Method::DELETE => {
                version(req.headers())?;
                service(state).terminate(&tenant, &id).await?;
                no_content()
            }
            _ => return Err(not_allowed()),
        },
        _ => return Err(not_allowed()),
    };
    resp.extensions_mut().insert(tag);
    Ok(resp)
}

/// `Tus-Resumable` must name the version spoken.
fn version(headers: &HeaderMap) -> Result<(), Refusal> {
    match headers.get(TUS_RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(v) if v.trim() == VERSION => Ok(()),
        _ => Err(Refusal::Version),
    }
}

fn no_content() -> Response {
    let mut r = http::Response::new(full(""));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn set(resp: &mut Response, name: HeaderName, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(name, v);
    }
}

/// RFC 7231's IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as `Upload-Expires` wants.
fn http_date(t: Micros) -> String {
    match Utc.timestamp_micros(t).single() {
        Some(d) => d.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        None => String::new(),
    }
}

/// The progress headers of a response about `up`.
fn progress(resp: &mut Response, up: &TusUpload, settled: bool) {
    set(resp, UPLOAD_OFFSET, up.offset);
    if !settled {
        set(resp, UPLOAD_EXPIRES, http_date(up.expires_at));
    }
}

/// `OPTIONS`: what this server supports, and its limits. `Tus-Max-Chunk-Size` (not a tus
/// header) is the largest `PATCH` body accepted: `server.max_request_body`, when set.
fn options(state: &AppState, ep: &Endpoint) -> Response {
    let mut r = no_content();
    let h = r.headers_mut();
    h.insert(TUS_VERSION, HeaderValue::from_static(VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(CHECKSUM_ALGORITHMS),
    );
    h.insert(
        "tus-max-size",
        HeaderValue::from(state.cfg.limits.max_file_size),
    );
    if let Some(max) = state.cfg.server.max_request_body {
        h.insert("tus-max-chunk-size", HeaderValue::from(max));
    }
    let allow = match ep {
        Endpoint::TusUploads => "POST, OPTIONS",
        _ => "HEAD, PATCH, DELETE, OPTIONS",
    };
    h.insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn bad_header(message: impl Into<String>) -> Refusal {
    Refusal::Api(ApiError::Detail {
        status: StatusCode::BAD_REQUEST,
        detail: message.into(),
        code: Some("invalid_tus_header"),
    })
}

/// A non-negative integer header.
fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, Refusal> {
    match header_str(headers, name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad_header(format!("{name} must be a non-negative integer"))),
    }
}

/// `Content-Length`, when the client sent one (hyper holds the body to it).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, "content-length").and_then(|v| v.parse().ok())
}

/// Whether the request has a body: a non-zero length, or a chunked one.
fn has_body(headers: &HeaderMap) -> bool {
    match content_length(headers) {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

fn chunk_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let ct = header_str(headers, "content-type").unwrap_or("");
    if ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(CHUNK_TYPE)
    {
        Ok(())
    } else {
        Err(Refusal::Api(ApiError::UnsupportedMediaType(ct.to_owned())))
    }
}

fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, Refusal> {
    header_str(headers, "upload-checksum")
        .map(|v| Checksum::parse(v).map_err(bad_header))
        .transpose()
}

/// The body of a chunk: idle timeout, `server.max_request_body`, as [`BodyFault`]s.
fn chunk_stream<'a>(
    body: &'a mut BodyStream,
    cap: Option<u64>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, BodyFault>> + Unpin + 'a {
    Capped::new(body, cap).map(|r| {
        r.map_err(|e| match e {
            CappedError::TooLarge(cap) => BodyFault::OverCap(cap),
            CappedError::Body(b) => BodyFault::Broken(b.to_string()),
        })
    })
}

/// A chunk over `server.max_request_body` by its `Content-Length` is refused before reading.
fn over_cap(state: &AppState, declared: Option<u64>) -> Result<(), Refusal> {
    match (state.cfg.server.max_request_body, declared) {
        (Some(cap), Some(n)) if n > cap => Err(Refusal::Tus(TusError::RequestTooLarge { cap })),
        _ => Ok(()),
    }
}

/// `POST /api/v2/uploads`: creation, with the first chunk when there is a body.
async fn create(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Incoming>,
    tenant: &Tenant,
) -> Result<Response, Refusal> {
    let headers = req.headers();
    if headers.contains_key("upload-defer-length") {
        return Err(bad_header(
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    if headers.contains_key("upload-concat") {
        return Err(bad_header("Upload-Concat (concatenation) is not supported"));
    }
    let length =
        number(headers, "upload-length")?.ok_or_else(|| bad_header("Upload-Length is required"))?;
    let raw = header_str(headers, "upload-metadata").unwrap_or("");
    if raw.len() > MAX_METADATA {
        return Err(bad_header(format!(
            "Upload-Metadata is longer than {MAX_METADATA} bytes"
        )));
    }
    if length > state.cfg.limits.max_file_size {
        return Err(Refusal::Tus(TusError::TooLarge {
            limit: state.cfg.limits.max_file_size,
        }));
    }
    let new = metadata::new_upload(length, raw, state.cfg.limits.default_ttl_secs)
        .map_err(|e| Refusal::Api(ApiError::Fields(e)))?;
    let with_body = has_body(headers);
    let (sum, declared) = if with_body {
        chunk_type(headers)?;
        let declared = content_length(headers);
        over_cap(state, declared)?;
        (checksum(headers)?, declared)
    } else {
        (None, None)
    };
    let mut session = service(state).create(tenant, new).await?;
    let location = format!(
        "{}/api/v2/uploads/{}",
        super::files::base_url(state, ctx),
        session.upload().id
    );
    let mut outcome: Result<(), Refusal> = Ok(());
    if with_body {
        let idle = Duration::from_secs(state.cfg.server.body_read_timeout_secs);
        let mut body = BodyStream::new(req.into_body(), idle);
        let cap = state.cfg.server.max_request_body;
        let written = session
            .write(sum, chunk_stream(&mut body, cap), declared)
            .await;
        outcome = body_outcome(written, body);
    }
    let (up, settled) = (session.upload().clone(), session.settled());
    session.close().await;
    // The upload exists whatever became of its first chunk: say where, and how far it got.
    let mut resp = match outcome {
        Ok(()) => {
            let mut r = no_content();
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => e.into_response(state, &ctx.request_id),
    };
    set(&mut resp, header::LOCATION, location);
    progress(&mut resp, &up, settled);
    Ok(resp)
}

/// A chunk's outcome, with a timed-out body told apart; the rest of a refused body is read and
/// thrown away in the background, so the client reads the answer.
fn body_outcome(outcome: Result<(), TusError>, body: BodyStream) -> Result<(), Refusal> {
    match outcome {
        Ok(()) => Ok(()),
        Err(e) => {
            let timed_out = body.timed_out();
            body.drain_in_background();
            if timed_out {
                Err(Refusal::BodyTimeout)
            } else {
                Err(Refusal::Tus(e))
            }
        }
    }
}

/// `HEAD /api/v2/uploads/{id}`.
async fn head(state: &AppState, tenant: &Tenant, id: &str) -> Result<Response, Refusal> {
    let up = service(state).head(tenant, id).await?;
    let mut r = http::Response::new(full(""));
    set(&mut r, UPLOAD_LENGTH, up.length);
    if !up.metadata.is_empty() {
        set(&mut r, UPLOAD_METADATA, &up.metadata);
    }
    progress(&mut r, &up, up.offset == up.length);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `PATCH /api/v2/uploads/{id}`: one chunk at `Upload-Offset`.
async fn patch(
    state: &AppState,
    req: Request<Incoming>,
    tenant: &Tenant,
    id: &str,
) -> Result<Response, Refusal> {
    let idle = Duration::from_secs(state.cfg.server.body_read_timeout_secs);
    let headers = req.headers();
    let prepared = (|| {
        chunk_type(headers)?;
        let offset = number(headers, "upload-offset")?
            .ok_or_else(|| bad_header("Upload-Offset is required"))?;
        let declared = content_length(headers);
        over_cap(state, declared)?;
        Ok::<_, Refusal>((offset, checksum(headers)?, declared))
    })();
    let (offset, sum, declared) = match prepared {
        Ok(p) => p,
        Err(e) => {
            BodyStream::new(req.into_body(), idle).drain_in_background();
            return Err(e);
        }
    };
    let mut body = BodyStream::new(req.into_body(), idle);
    let mut session = match service(state).open(tenant, id, offset).await {
        Ok(s) => s,
        Err(e) => {
            body.drain_in_background();
            return Err(e.into());
        }
    };
    let cap = state.cfg.server.max_request_body;
    let written = session
        .write(sum, chunk_stream(&mut body, cap), declared)
        .await;
    let (up, settled) = (session.upload().clone(), session.settled());
    session.close().await;
    body_outcome(written, body)?;
    let mut r = no_content();
    progress(&mut r, &up, settled);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_expires_is_an_imf_fixdate() {
        assert_eq!(
            http_date(784_111_777_000_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
