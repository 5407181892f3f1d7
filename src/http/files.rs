//! The seed's file routes: list a resource's files, delete them, `list_files`, and the signed
//! `/dl/...` download links that listings hand out on the local-disk store.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, Ctx, Response, json_response, query};
use crate::domain::{FileRecord, Resource, ResourceId, Tenant, TenantId, format_micros};
use crate::meta::ListFilter;

/// `page_size` when the client gives none (the seed's).
const DEFAULT_PAGE_SIZE: u64 = 10;

/// A file as the seed API shows it, with `url` when the route hands out links.
pub fn file_json(f: &FileRecord, url: Option<String>) -> Value {
    let mut v = json!({
        "id": f.id,
        "tenant_username": f.tenant_username,
        "resource": f.resource,
        "resource_id": f.resource_id,
        "name": f.name,
        "location": f.location(),
        "expire_at": f.expire_at.map(format_micros),
        "is_public": f.is_public,
        "size": f.size,
        "content_type": f.content_type,
        "sha256": f.sha256,
        "created_at": format_micros(f.created_at),
    });
    if let (Some(url), Value::Object(map)) = (url, &mut v) {
        map.insert("url".into(), Value::String(url));
    }
    v
}

/// Where links point: `server.public_url`, else the request's scheme and host.
pub fn base_url(state: &AppState, ctx: &Ctx) -> String {
    match &state.cfg.server.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!(
            "{}://{}",
            ctx.conn.scheme,
            ctx.host.as_deref().unwrap_or("localhost")
        ),
    }
}

/// An absolute download link for `f` that needs no token until it expires: the blob store's own
/// (an S3 presigned GET) when it has one, else mtfu's HMAC-signed `/dl/...` link (also when
/// presigning fails, e.g. no credentials could be loaded: `/dl/...` works on every store).
pub async fn signed_url(state: &AppState, base: &str, f: &FileRecord) -> String {
    let ttl = state.cfg.link_ttl_secs();
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
        Ok(Some(url)) => return url,
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "presigning a download link failed; using /dl"),
    }
    let expires = chrono::Utc::now().timestamp() + state.cfg.limits.url_ttl_secs as i64;
    let sig = state.auth.url_signature(f.tenant_id, &f.id, expires);
    format!(
        "{base}/dl/{}/{}?expires={expires}&sig={sig}",
        f.tenant_id.0, f.id
    )
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
    filter: ListFilter,
    q: &HashMap<String, String>,
    link_base: Option<String>,
) -> Result<Response, ApiError> {
    let size = page_size(state, q)?;
    let (info, files) = state
        .files
        .page(tenant, &filter, q.get("page").map(String::as_str), size)
        .await?;
    let mut out = Vec::with_capacity(files.len());
    for f in &files {
        let url = match &link_base {
            Some(b) => Some(signed_url(state, b, f).await),
            None => None,
        };
        out.push(file_json(f, url));
    }
    let files = out;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "count": info.count,
            "num_pages": info.num_pages,
            "page_range": (1..=info.num_pages).collect::<Vec<_>>(),
            "files": files,
        }),
    ))
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
        filter,
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
    state.files.delete_resource(tenant, &r, &id).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"message": "File deleted successfully"}),
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
    let filter = ListFilter {
        resource: get("resource"),
        resource_id: get("resource_id"),
        tenant_username: get("tenant_username"),
    };
    paged(state, tenant, filter, &q, None).await
}

/// RFC 5987 `attr-char`: what may stay unescaped in `filename*=UTF-8''...`.
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

pub fn content_disposition(name: &str) -> String {
    format!(
        "attachment; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    )
}

fn invalid_link() -> ApiError {
    ApiError::Detail {
        status: StatusCode::FORBIDDEN,
        detail: "This download link is invalid or has expired.".into(),
        code: Some("invalid_signature"),
    }
}

/// `GET /dl/{tenant}/{file_id}?expires=&sig=`: no token; the HMAC signature authorises exactly
/// this owner's file until `expires`. A deleted, replaced or expired file answers 404.
pub async fn download(
    state: &AppState,
    req: &Request<Incoming>,
    tenant: &str,
    file_id: &str,
) -> Result<Response, ApiError> {
    let q = query(req);
    let owner = tenant.parse::<i64>().map_err(|_| invalid_link())?;
    let expires = q
        .get("expires")
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or_else(invalid_link)?;
    let sig = q.get("sig").ok_or_else(invalid_link)?;
    if !state.auth.check_url(TenantId(owner), file_id, expires, sig) {
        return Err(invalid_link());
    }
    let file = state
        .files
        .open_owned(TenantId(owner), file_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
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
                return Ok(resp);
            }
        },
    };
    let length = range.as_ref().map_or(file.size, |r| r.end - r.start);
    let body = if req.method() == Method::HEAD {
        super::full(bytes::Bytes::new())
    } else {
        let stream = state.files.read(&file, range.clone()).await?;
        let counted = stream.inspect_ok(|b| {
            metrics::counter!("mtfu_download_bytes_total").increment(b.len() as u64);
        });
        StreamBody::new(counted.map_ok(Frame::data)).boxed_unsync()
    };
    let mut resp = http::Response::new(body);
    let h = resp.headers_mut();
    let ct = HeaderValue::from_str(&file.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(r) = &range {
        let v = format!("bytes {}-{}/{}", r.start, r.end - 1, file.size);
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", file.sha256)) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
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
        (None, Some(n), true, false) => match n {
            0 => RangeSpec::Unsatisfiable,
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
    use super::{RangeSpec, parse_range};

    #[test]
    fn single_byte_ranges_are_parsed_and_others_ignored_or_refused() {
        assert_eq!(parse_range("bytes=0-0", 10), RangeSpec::Bytes(0..1));
        assert_eq!(parse_range("bytes=2-", 10), RangeSpec::Bytes(2..10));
        assert_eq!(parse_range("bytes=-3", 10), RangeSpec::Bytes(7..10));
        assert_eq!(parse_range("bytes=-30", 10), RangeSpec::Bytes(0..10));
        assert_eq!(parse_range("bytes=5-99", 10), RangeSpec::Bytes(5..10));
        assert_eq!(parse_range("bytes=10-", 10), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 10), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=5-2", 10), RangeSpec::Ignore);
    }
}
