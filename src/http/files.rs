//! The seed's file routes: list a resource's files, delete them, `list_files`, and the signed
//! `/dl/...` download links that listings hand out on the local-disk store.

use std::collections::HashMap;

use super::error::ApiError;
use super::wire::{FileInfo, FileWithUrl, Message, Page, respond};
use super::{AppState, Ctx, Response, query};
use crate::domain::disposition::content_disposition;
use crate::domain::{FileRecord, Micros, Resource, ResourceId, Tenant, TenantId, now_micros};
use crate::meta::ListFilter;
use crate::service::PageInfo;
use futures_util::TryStreamExt;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

/// `page_size` when the client gives none (the seed's).
const DEFAULT_PAGE_SIZE: u64 = 10;

/// Where links point: `server.public_url` as-is, else the scheme and host the client used (as
/// a trusted proxy forwarded them) and `server.base_path`.
pub fn base_url(state: &AppState, ctx: &Ctx) -> String {
    match &state.cfg.server.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!(
            "{}://{}{}",
            ctx.scheme,
            ctx.host.as_deref().unwrap_or("localhost"),
            state.cfg.server.base_path
        ),
    }
}

/// A download link and when it stops working.
#[derive(Debug, Clone)]
pub struct DownloadLink {
    pub url: String,
    pub expires_at: Micros,
}

/// An absolute download link for `f` that needs no token for `ttl_secs` (default: the
/// listings' TTL), and never past the file's own expiry: an S3 presigned GET when the store is
/// S3 and `blobs.s3.presigned_urls` is on, else mtfu's HMAC-signed `/dl/...` link (also when
/// presigning fails, e.g. no credentials could be loaded: `/dl/...` works on every store).
///
/// A `/dl/...` link carries its issue time under the signature, so `mtfu tenant revoke-urls`
/// can kill it; a presigned URL lives until it expires unless the file (its object) is deleted.
pub async fn download_link(
    state: &AppState,
    base: &str,
    f: &FileRecord,
    ttl_secs: Option<u64>,
) -> DownloadLink {
    let now = now_micros();
    let mut ttl = ttl_secs.unwrap_or_else(|| state.cfg.link_ttl_secs()).max(1);
    if let Some(at) = f.expire_at {
        let left = (at - now).max(1_000_000) as u64;
        ttl = ttl.min(left.div_ceil(1_000_000));
    }
    let expires = now / 1_000_000 + ttl as i64;
    if state.cfg.presigns() {
        let presigned = state
            .files
            .blob
            .presign_get(
                &f.blob_key,
                std::time::Duration::from_secs(ttl),
                &f.name,
                &f.content_type,
            )
            .await;
        match presigned {
            Ok(Some(url)) => {
                return DownloadLink {
                    url,
                    expires_at: now + ttl as i64 * 1_000_000,
                };
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "presigning a download link failed; using /dl"),
        }
    }
    let sig = state.auth.link_signature(f.tenant_id, &f.id, expires, now);
    DownloadLink {
        url: format!(
            "{base}/dl/{}/{}?expires={expires}&iat={now}&sig={sig}",
            f.tenant_id.0, f.id
        ),
        expires_at: expires * 1_000_000,
    }
}

/// The URL of [`download_link`] with the listings' TTL.
pub async fn signed_url(state: &AppState, base: &str, f: &FileRecord) -> String {
    download_link(state, base, f, None).await.url
}

/// `page_size`: a positive integer, capped at `limits.max_page_size`.
fn page_size(state: &AppState, q: &HashMap<String, String>) -> Result<u64, ApiError> {
    let Some(raw) = q.get("page_size") else {
        return Ok(DEFAULT_PAGE_SIZE.min(state.cfg.limits.max_page_size));
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok((n as u64).min(state.cfg.limits.max_page_size)),
        Ok(_) => Err(ApiError::field(
            "page_size",
            "Ensure this value is greater than or equal to 1.",
        )),
        Err(_) => Err(ApiError::field("page_size", "A valid integer is required.")),
    }
}

async fn paged(
    state: &AppState,
    tenant: &Tenant,
    filter: Option<ListFilter>,
    q: &HashMap<String, String>,
    link_base: Option<String>,
) -> Result<Response, ApiError> {
    let size = page_size(state, q)?;
    let page = q.get("page").map(String::as_str);
    let (info, files) = match &filter {
        Some(filter) => state.files.page(tenant, filter, page, size).await?,
        // A filter that can match nothing (see ListFilter::from_query): an empty listing.
        None => (PageInfo::new(0, size, page), Vec::new()),
    };
    fn page_of<F>(info: &PageInfo, files: Vec<F>) -> Page<F> {
        Page {
            count: info.count,
            num_pages: info.num_pages,
            page_range: (1..=info.num_pages).collect(),
            files,
        }
    }
    Ok(match &link_base {
        Some(b) => {
            let mut out = Vec::with_capacity(files.len());
            for f in &files {
                out.push(FileWithUrl::new(f, signed_url(state, b, f).await));
            }
            respond(StatusCode::OK, &page_of(&info, out))
        }
        None => respond(
            StatusCode::OK,
            &page_of(&info, files.iter().map(FileInfo::from).collect()),
        ),
    })
}

fn parse_labels(resource: &str, resource_id: &str) -> Result<(Resource, ResourceId), ApiError> {
    let r = Resource::parse(resource).map_err(|m| ApiError::field("resource", m))?;
    let id = ResourceId::parse(resource_id).map_err(|m| ApiError::field("resource_id", m))?;
    Ok((r, id))
}

/// `GET /api/files/{resource}/{resource_id}`.
pub async fn resource_files(
    state: &AppState,
    ctx: &Ctx,
    req: &Request<Incoming>,
    tenant: &Tenant,
    resource: &str,
    resource_id: &str,
) -> Result<Response, ApiError> {
    let (r, id) = parse_labels(resource, resource_id)?;
    let filter = ListFilter {
        resource: Some(r.to_string()),
        resource_id: Some(id.to_string()),
        tenant_username: None,
    };
    paged(
        state,
        tenant,
        Some(filter),
        &query(req),
        Some(base_url(state, ctx)),
    )
    .await
}

/// `DELETE /api/files/{resource}/{resource_id}`: the caller's own files only.
pub async fn delete_resource(
    state: &AppState,
    tenant: &Tenant,
    resource: &str,
    resource_id: &str,
) -> Result<Response, ApiError> {
    let (r, id) = parse_labels(resource, resource_id)?;
    state
        .files
        .delete_resource(tenant, &r, &id, state.cfg.presigns())
        .await?;
    Ok(respond(
        StatusCode::OK,
        &Message {
            message: "File deleted successfully".into(),
        },
    ))
}

/// `GET /api/list_files`: optional filters; an empty parameter is no filter (as in the seed).
pub async fn list_files(
    state: &AppState,
    req: &Request<Incoming>,
    tenant: &Tenant,
) -> Result<Response, ApiError> {
    let q = query(req);
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let filter = ListFilter::from_query(get);
    paged(state, tenant, filter, &q, None).await
}

fn invalid_link() -> ApiError {
    ApiError::Detail {
        status: StatusCode::FORBIDDEN,
        detail: "This download link is invalid or has expired.".into(),
        code: Some("invalid_signature"),
    }
}

fn revoked_link() -> ApiError {
    ApiError::Detail {
        status: StatusCode::FORBIDDEN,
        detail: "This download link has been revoked.".into(),
        code: Some("url_revoked"),
    }
}

/// `GET /dl/{tenant}/{file_id}?expires=&iat=&sig=`: no token; the HMAC signature authorises
/// exactly this owner's file until `expires`, unless the owner revoked its links after `iat`
/// (403 `url_revoked`). A deleted, replaced or expired file answers 404.
pub async fn download(
    state: &AppState,
    req: &Request<Incoming>,
    tenant: &str,
    file_id: &str,
) -> Result<Response, ApiError> {
    let q = query(req);
    let owner = TenantId(tenant.parse::<i64>().map_err(|_| invalid_link())?);
    let int = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let expires = int("expires").ok_or_else(invalid_link)?;
    // Links of the first version carry no issue time: 0, valid until the first revocation.
    let issued = match q.get("iat") {
        None => 0,
        Some(_) => int("iat").filter(|i| *i > 0).ok_or_else(invalid_link)?,
    };
    let sig = q.get("sig").ok_or_else(invalid_link)?;
    if !state.auth.check_link(owner, file_id, expires, issued, sig) {
        return Err(invalid_link());
    }
    if state.files.link_revoked(owner, issued).await? {
        return Err(revoked_link());
    }
    let file = state
        .files
        .open_owned(owner, file_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    serve_file(state, req, &file, "private, no-store").await
}

/// Whether an `If-None-Match` list names `etag` (weak comparison: `W/` is ignored) or is `*`.
fn none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The bytes of `file`, streamed from the blob store (never held whole), for GET or HEAD: the
/// one download path of `/dl/...` and `/api/v2/files/{id}/content`.
///
/// - `If-None-Match` naming the ETag (the sha256, strong), or `*`: 304 with no body.
/// - One `Range` (`a-b`, `a-`, `-n`): 206 with `Content-Range`; past the end: 416 with
///   `Content-Range: bytes */size`; several ranges or a malformed one: the whole body (200).
///   `If-Range` other than the current ETag (a date, a weak or stale tag): the whole body.
/// - Always `Content-Disposition: attachment` and `X-Content-Type-Options: nosniff`: the stored
///   type comes from a client and is never trusted for rendering.
pub async fn serve_file(
    state: &AppState,
    req: &Request<Incoming>,
    file: &FileRecord,
    cache_control: &'static str,
) -> Result<Response, ApiError> {
    let etag = format!("\"{}\"", file.sha256);
    let headers = req.headers();
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let common = |h: &mut http::HeaderMap| {
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    };
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| none_match(v, &etag)) {
        let mut resp = http::Response::new(super::full(bytes::Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        common(resp.headers_mut());
        return Ok(resp);
    }
    // If-Range: a strong, exact match of the current ETag, or the range is ignored.
    let range_ok = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let range = match header_str(header::RANGE).filter(|_| range_ok) {
        None => None,
        Some(spec) => match parse_range(spec, file.size) {
            RangeSpec::Ignore => None,
            RangeSpec::Bytes(r) => Some(r),
            RangeSpec::Unsatisfiable => {
                let mut resp = http::Response::new(super::full(bytes::Bytes::new()));
                *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", file.size)) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                common(resp.headers_mut());
                return Ok(resp);
            }
        },
    };
    let length = range.as_ref().map_or(file.size, |r| r.end - r.start);
    let body = if req.method() == Method::HEAD {
        super::full(bytes::Bytes::new())
    } else {
        let stream = state.files.read(file, range.clone()).await?;
        let counted = stream.inspect_ok(|b| {
            metrics::counter!("mtfu_download_bytes_total").increment(b.len() as u64);
        });
        StreamBody::new(counted.map_ok(Frame::data)).boxed_unsync()
    };
    let mut resp = http::Response::new(body);
    let h = resp.headers_mut();
    common(h);
    let ct = HeaderValue::from_str(&file.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(r) = &range {
        let v = format!("bytes {}-{}/{}", r.start, r.end - 1, file.size);
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}

/// What a `Range` header asks of a body of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// Absent meaning: not `bytes=`, several ranges, or malformed: serve the whole body (RFC 9110
    /// lets a server ignore Range).
    Ignore,
    /// One satisfiable range, end exclusive.
    Bytes(std::ops::Range<u64>),
    /// A well-formed range that starts past the end: 416.
    Unsatisfiable,
}

/// Parse a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range.
pub fn parse_range(spec: &str, size: u64) -> RangeSpec {
    let Some(r) = spec.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if r.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = r.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    match (
        a.parse::<u64>().ok(),
        b.parse::<u64>().ok(),
        a.is_empty(),
        b.is_empty(),
    ) {
        // bytes=-n: the last n bytes.
        // An empty body has no last bytes: nothing is satisfiable (RFC 9110, 14.1.2).
        (None, Some(n), true, false) => match n {
            0 => RangeSpec::Unsatisfiable,
            _ if size == 0 => RangeSpec::Unsatisfiable,
            n => RangeSpec::Bytes(size.saturating_sub(n)..size),
        },
        (Some(start), None, false, true) if start < size => RangeSpec::Bytes(start..size),
        (Some(start), Some(end), false, false) if start <= end && start < size => {
            RangeSpec::Bytes(start..end.saturating_add(1).min(size))
        }
        (Some(start), _, false, _) if start >= size => RangeSpec::Unsatisfiable,
        _ => RangeSpec::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::{RangeSpec, none_match, parse_range};

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let tag = "\"abc\"";
        assert!(none_match("\"abc\"", tag));
        assert!(none_match("W/\"abc\"", tag));
        assert!(none_match("\"x\", \"abc\"", tag));
        assert!(none_match("*", tag));
        assert!(!none_match("\"abcd\"", tag));
        assert!(!none_match("abc", tag));
    }

    #[test]
    fn single_byte_ranges_are_parsed_and_others_ignored_or_refused() {
        assert_eq!(parse_range("bytes=0-0", 10), RangeSpec::Bytes(0..1));
        assert_eq!(parse_range("bytes=2-", 10), RangeSpec::Bytes(2..10));
        assert_eq!(parse_range("bytes=-3", 10), RangeSpec::Bytes(7..10));
        assert_eq!(parse_range("bytes=-30", 10), RangeSpec::Bytes(0..10));
        assert_eq!(parse_range("bytes=5-99", 10), RangeSpec::Bytes(5..10));
        assert_eq!(parse_range("bytes=10-", 10), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeSpec::Unsatisfiable);
        // An empty file: no range is satisfiable (a suffix range once made `bytes 0--1/0`).
        assert_eq!(parse_range("bytes=-39", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 10), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=5-2", 10), RangeSpec::Ignore);
    }
}
