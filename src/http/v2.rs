//! The v2 file routes (all but tus): a file by id, its bytes, deleting it, a download link on
//! demand, the keyset listing, the raw-body `PUT` upload, and revoking a tenant's links.
//!
//! Ids are opaque UUIDv7s. A file another tenant keeps private answers exactly like a file that
//! does not exist (404), so ids cannot be probed. Uploads go through the same pipeline as
//! `/api/upload` ([`crate::service::Files::stage_typed`] then `commit`); downloads through the
//! same code as the signed `/dl/...` links ([`super::files::serve_file`]).

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;

use super::body::BodyStream;
use super::error::ApiError;
use super::files::{base_url, download_link, serve_file, signed_url};
use super::proxy::{Capped, request_too_large};
use super::router::Endpoint;
use super::upload::{expiry, parse_bool};
use super::wire::{FileWithUrl, Revoked, SignedUrl, V2Page, respond};
use super::{AppState, Ctx, Response, not_allowed, query};
use crate::domain::{FileId, FileName, FileRecord, Resource, ResourceId, Tenant, format_micros};
use crate::meta::{ListCursor, ListFilter};
use crate::service::{ServiceError, TypeRule};
use crate::upload::UploadError;

/// `limit` of the listing when the client gives none.
const DEFAULT_LIMIT: u64 = 100;
/// Longest lifetime of a link from `POST .../url`: 7 days, SigV4's maximum for presigned URLs
/// (and a bound on how long a leaked `/dl/...` link can live).
pub(crate) const MAX_URL_TTL_SECS: u64 = 7 * 24 * 3600;
/// How the bytes of `/content` may be cached: privately, revalidated each time (the ETag makes
/// that a 304).
const CONTENT_CACHE_CONTROL: &str = "private, no-cache";

/// Method check, then the handler, for an authenticated v2 request.
pub async fn handle(
    state: &AppState,
    ctx: &Ctx,
    ep: Endpoint,
    req: Request<Incoming>,
    tenant: Tenant,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    match ep {
        Endpoint::V2Files => match method {
            Method::GET => list(state, ctx, &req, &tenant).await,
            _ => Err(not_allowed(&method, "GET")),
        },
        Endpoint::V2File { id } => match method {
            Method::GET => metadata(state, ctx, &tenant, &id).await,
            Method::DELETE => delete(state, &tenant, &id).await,
            _ => Err(not_allowed(&method, "GET, DELETE")),
        },
        Endpoint::V2FileContent { id } => match method {
            Method::GET | Method::HEAD => {
                let file = find(state, &tenant, &id).await?;
                serve_file(state, &req, &file, CONTENT_CACHE_CONTROL).await
            }
            _ => Err(not_allowed(&method, "GET, HEAD")),
        },
        Endpoint::V2FileUrl { id } => match method {
            Method::POST => url(state, ctx, &req, &tenant, &id).await,
            _ => Err(not_allowed(&method, "POST")),
        },
        Endpoint::V2Put {
            resource,
            resource_id,
            name,
        } => match method {
            Method::PUT => put(state, ctx, req, &tenant, &resource, &resource_id, &name).await,
            _ => Err(not_allowed(&method, "PUT")),
        },
        Endpoint::V2RevokeUrls => match method {
            Method::POST => revoke(state, &tenant).await,
            _ => Err(not_allowed(&method, "POST")),
        },
        _ => Err(ApiError::Internal("not a v2 endpoint".into())),
    }
}

/// The live file `tenant` may see under `id` (own or public), else 404.
async fn find(state: &AppState, tenant: &Tenant, id: &str) -> Result<FileRecord, ApiError> {
    let id = FileId::parse(id).ok_or(ApiError::NotFound)?;
    state
        .files
        .visible(tenant, &id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// `GET /api/v2/files/{id}`: the file object of the seed listings, with `url`.
async fn metadata(
    state: &AppState,
    ctx: &Ctx,
    tenant: &Tenant,
    id: &str,
) -> Result<Response, ApiError> {
    let file = find(state, tenant, id).await?;
    let url = signed_url(state, &base_url(state, ctx), &file).await;
    Ok(respond(StatusCode::OK, &FileWithUrl::new(&file, url)))
}

/// `DELETE /api/v2/files/{id}`: the caller's own live file only; 204, else 404.
async fn delete(state: &AppState, tenant: &Tenant, id: &str) -> Result<Response, ApiError> {
    let id = FileId::parse(id).ok_or(ApiError::NotFound)?;
    // With presigned URLs the object goes now, or those URLs would outlive the file.
    if !state
        .files
        .delete_file(tenant, &id, state.cfg.presigns())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    let mut resp = http::Response::new(super::full(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// `POST /api/v2/files/{id}/url?expires_in=N`: a link for any file the caller may see (its own
/// or a public one, which it could download through `/content` anyway).
async fn url(
    state: &AppState,
    ctx: &Ctx,
    req: &Request<Incoming>,
    tenant: &Tenant,
    id: &str,
) -> Result<Response, ApiError> {
    let q = query(req);
    let ttl = match q
        .get("expires_in")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => Some(match raw.parse::<i64>() {
            Ok(n) if n < 1 => {
                return Err(ApiError::field(
                    "expires_in",
                    "Ensure this value is greater than or equal to 1.",
                ));
            }
            Ok(n) if n as u64 > MAX_URL_TTL_SECS => {
                return Err(ApiError::field(
                    "expires_in",
                    format!("Ensure this value is less than or equal to {MAX_URL_TTL_SECS}."),
                ));
            }
            Ok(n) => n as u64,
            Err(_) => {
                return Err(ApiError::field(
                    "expires_in",
                    "A valid integer is required.",
                ));
            }
        }),
    };
    let file = find(state, tenant, id).await?;
    let link = download_link(state, &base_url(state, ctx), &file, ttl).await;
    Ok(respond(
        StatusCode::OK,
        &SignedUrl {
            url: link.url,
            expires_at: format_micros(link.expires_at),
        },
    ))
}

/// `GET /api/v2/files?resource=&resource_id=&tenant_username=&limit=&cursor=`: what the seed
/// listings show (own files and public ones, live), in their order, a page at a time through an
/// opaque cursor. An empty filter is no filter.
async fn list(
    state: &AppState,
    ctx: &Ctx,
    req: &Request<Incoming>,
    tenant: &Tenant,
) -> Result<Response, ApiError> {
    let q = query(req);
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let max = state.cfg.limits.max_page_size;
    let limit = match get("limit") {
        None => DEFAULT_LIMIT.min(max),
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if n >= 1 => (n as u64).min(max),
            Ok(_) => {
                return Err(ApiError::field(
                    "limit",
                    "Ensure this value is greater than or equal to 1.",
                ));
            }
            Err(_) => return Err(ApiError::field("limit", "A valid integer is required.")),
        },
    };
    let after = match get("cursor") {
        None => None,
        Some(c) => Some(
            ListCursor::decode(&c).ok_or_else(|| ApiError::field("cursor", "Invalid cursor."))?,
        ),
    };
    let Some(filter) = ListFilter::from_query(get) else {
        // A filter that can match nothing: an empty listing, no store asked.
        return Ok(respond(
            StatusCode::OK,
            &V2Page {
                files: Vec::new(),
                next_cursor: None,
            },
        ));
    };
    let (files, next) = state
        .files
        .list_after(tenant, &filter, after.as_ref(), limit)
        .await?;
    let base = base_url(state, ctx);
    let mut out = Vec::with_capacity(files.len());
    for f in &files {
        out.push(FileWithUrl::new(f, signed_url(state, &base, f).await));
    }
    Ok(respond(
        StatusCode::OK,
        &V2Page {
            files: out,
            next_cursor: next.map(|c| c.encode()),
        },
    ))
}

/// `PUT /api/v2/files/{resource}/{resource_id}/{name}`: the body is the file. The rules of
/// `/api/upload`: same validation (400 in DRF's shape, before any byte is read), same size limit
/// enforced while streaming (413 here: there is no form field to blame), same content types,
/// same replacement. Query: `is_public`, `expires_in` or `expire_at`. 201 with the file object
/// when it is new, 200 when it replaced one; `Location` names it.
async fn put(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Incoming>,
    tenant: &Tenant,
    resource: &str,
    resource_id: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let idle = Duration::from_secs(state.cfg.server.body_read_timeout_secs);
    let limit = state.cfg.limits.max_file_size;
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut field = |key: &str, r: Result<(), String>| {
        if let Err(m) = r {
            errors.insert(key.into(), vec![m]);
        }
    };
    let parsed_resource = Resource::parse(resource);
    field(
        "resource",
        parsed_resource.as_ref().map(drop).map_err(Clone::clone),
    );
    let parsed_id = ResourceId::parse(resource_id);
    field(
        "resource_id",
        parsed_id.as_ref().map(drop).map_err(Clone::clone),
    );
    let parsed_name = FileName::parse(name);
    field("name", parsed_name.as_ref().map(drop).map_err(Clone::clone));
    let text: BTreeMap<String, String> = query(&req).into_iter().collect();
    let is_public = match text.get("is_public").map(|s| parse_bool(s)) {
        None => false,
        Some(Some(b)) => b,
        Some(None) => {
            errors.insert("is_public".into(), vec!["Must be a valid boolean.".into()]);
            false
        }
    };
    let expire_at = expiry(&text, state.cfg.limits.default_ttl_secs, &mut errors);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let claimed = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = BodyStream::new(req.into_body(), idle);
    let (Ok(resource), Ok(resource_id), Ok(name), true) =
        (parsed_resource, parsed_id, parsed_name, errors.is_empty())
    else {
        // Refused before reading: let the client finish sending so it reads this answer.
        body.drain_in_background();
        return Err(ApiError::Fields(errors));
    };
    // server.max_request_body, like every upload route: refused before reading when the
    // declared length passes it, else while streaming.
    let cap = state.cfg.server.max_request_body;
    if let (Some(max), Some(len)) = (cap, declared)
        && len > max
        && max <= limit
    {
        body.drain_in_background();
        return Ok(request_too_large(max, &state.cfg.server.base_path));
    }
    if declared.is_some_and(|d| d > limit) {
        body.drain_in_background();
        return Err(too_large(limit));
    }
    let rule = TypeRule {
        claimed: claimed.as_deref(),
        file_name: name.as_str(),
        allowed: &state.cfg.limits.allowed_content_types,
    };
    let mut capped = Capped::new(&mut body, cap);
    let staged = state
        .files
        .stage_typed(tenant, &mut capped, limit, declared, rule)
        .await;
    let over_cap = capped.exceeded();
    let (staged, content_type) = match staged {
        Ok(s) => s,
        Err(e) => {
            if body.timed_out() {
                return Err(ApiError::Detail {
                    status: StatusCode::REQUEST_TIMEOUT,
                    detail: "The request body was not received in time.".into(),
                    code: Some("body_timeout"),
                });
            }
            body.drain_in_background();
            if let (true, Some(max)) = (over_cap, cap) {
                return Ok(request_too_large(max, &state.cfg.server.base_path));
            }
            return Err(match e {
                ServiceError::Upload(UploadError::TooLarge { limit }) => too_large(limit),
                ServiceError::Upload(UploadError::Body(m)) => {
                    ApiError::bad_request(format!("The request body could not be read - {m}"))
                }
                other => other.into(),
            });
        }
    };
    let (record, replaced) = state
        .files
        .commit_replacing(
            tenant,
            staged,
            resource,
            resource_id,
            name,
            content_type,
            is_public,
            expire_at,
        )
        .await?;
    let base = base_url(state, ctx);
    let url = signed_url(state, &base, &record).await;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut resp = respond(status, &FileWithUrl::new(&record, url));
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/api/v2/files/{}", record.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::Detail {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        detail: format!("File size exceeds the maximum allowed size of {limit} bytes"),
        code: Some("file_too_large"),
    }
}

/// `POST /api/v2/urls/revoke`: every `/dl/...` link of the caller issued until now stops
/// working (403 `url_revoked`); links issued afterwards work. S3 presigned URLs are not covered
/// (see `blobs.s3.presigned_urls`).
async fn revoke(state: &AppState, tenant: &Tenant) -> Result<Response, ApiError> {
    let at = state
        .files
        .revoke_urls(tenant.id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(respond(
        StatusCode::OK,
        &Revoked {
            revoked_before: format_micros(at),
        },
    ))
}
