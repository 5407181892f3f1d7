//! What a client may ask about its own account and the server's limits:
//! `GET /api/v2/usage` and `GET /api/v2/limits`.

use http::StatusCode;

use super::error::ApiError;
use super::wire::{Limits, TusLimits, TusVersion, Usage, respond};
use super::{AppState, Response};
use crate::config::{BlobBackendKind, Config};
use crate::domain::{Tenant, now_micros};

/// Chunk size recommended to tus clients when nothing else decides it: large enough that the
/// per-request overhead vanishes, small enough to resume cheaply.
const DEFAULT_CHUNK: u64 = 8 * 1024 * 1024;

/// The largest tus chunk accepted (`server.max_request_body`, if set) and the size recommended:
/// on S3 one part (a chunk of at least a part goes straight into the multipart upload, smaller
/// ones are staged first), otherwise [`DEFAULT_CHUNK`]; never above the maximum.
pub fn chunk_sizes(cfg: &Config) -> (Option<u64>, u64) {
    let max = cfg.server.max_request_body;
    let preferred = match cfg.blobs.backend {
        BlobBackendKind::S3 => cfg.blobs.s3.part_size,
        BlobBackendKind::Local => DEFAULT_CHUNK,
    };
    let recommended = max
        .map_or(preferred, |m| preferred.min(m))
        .min(cfg.limits.max_file_size);
    (max, recommended.max(1))
}

/// `GET /api/v2/limits` (no token needed).
pub fn limits(state: &AppState) -> Result<Response, ApiError> {
    let cfg = &state.cfg;
    let (max_chunk, recommended) = chunk_sizes(cfg);
    Ok(respond(
        StatusCode::OK,
        &Limits {
            max_file_size: cfg.limits.max_file_size,
            max_request_body: cfg.server.max_request_body,
            max_page_size: cfg.limits.max_page_size,
            url_ttl_secs: cfg.limits.url_ttl_secs,
            allowed_content_types: cfg.limits.allowed_content_types.clone(),
            default_quota_bytes: cfg.limits.quota_bytes,
            default_quota_files: cfg.limits.quota_files,
            tus: TusLimits {
                endpoint: "/api/v2/uploads".into(),
                version: TusVersion::V1_0_0,
                max_size: cfg.limits.max_file_size,
                max_chunk_size: max_chunk,
                recommended_chunk_size: recommended,
                expire_after_secs: cfg.tus.expire_after_secs,
            },
        },
    ))
}

/// `GET /api/v2/usage`: the caller's live files and bytes, and the quotas in force (`null`:
/// none). Uploads in flight are reported apart; they count against the quota too.
pub async fn usage(state: &AppState, tenant: &Tenant) -> Result<Response, ApiError> {
    let (u, q) = state.files.meta.usage(tenant.id, now_micros()).await?;
    let defaults = state.files.quota;
    Ok(respond(
        StatusCode::OK,
        &Usage {
            files: u.files,
            bytes: u.bytes,
            quota_bytes: q.bytes.resolve(defaults.bytes),
            quota_files: q.files.resolve(defaults.files),
            reserved_bytes: u.reserved_bytes,
            reserved_files: u.reserved_files,
        },
    ))
}
