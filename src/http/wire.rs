//! The JSON bodies mtfu writes, one type each: the handlers serialize these, and the OpenAPI
//! document ([`super::openapi`]) describes them from the same types (`utoipa::ToSchema`), so a
//! field added here is in the document too. Doc comments become the schemas' descriptions.
//!
//! Request bodies read field by field (the token forms, the multipart upload) are described by
//! the schema-only types at the end.

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Response, json_response};
use crate::domain::{FileRecord, format_micros};

/// `body` as a JSON response.
pub fn respond<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // These types have string keys only: serializing them cannot fail.
    json_response(
        status,
        &serde_json::to_value(body).unwrap_or(serde_json::Value::Null),
    )
}

/// A file as the seed API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileInfo {
    /// Opaque, unguessable file id (a UUIDv7, 32 hex digits).
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    pub tenant_username: String,
    pub resource: String,
    /// Always a string, even when numeric.
    pub resource_id: String,
    pub name: String,
    /// `tenant/resource/resource_id/name`.
    pub location: String,
    #[schema(format = DateTime, required = true)]
    pub expire_at: Option<String>,
    pub is_public: bool,
    pub size: u64,
    pub content_type: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// RFC 3339 UTC with microseconds and `Z`.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&FileRecord> for FileInfo {
    fn from(f: &FileRecord) -> Self {
        FileInfo {
            id: f.id.clone(),
            tenant_username: f.tenant_username.clone(),
            resource: f.resource.clone(),
            resource_id: f.resource_id.clone(),
            name: f.name.clone(),
            location: f.location(),
            expire_at: f.expire_at.map(format_micros),
            is_public: f.is_public,
            size: f.size,
            content_type: f.content_type.clone(),
            sha256: f.sha256.clone(),
            created_at: format_micros(f.created_at),
        }
    }
}

/// A file with a download link, on the routes that hand links out.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileWithUrl {
    #[serde(flatten)]
    pub file: FileInfo,
    /// Absolute, time-limited download URL that needs no token.
    #[schema(format = "uri")]
    pub url: String,
}

impl FileWithUrl {
    pub fn new(f: &FileRecord, url: String) -> Self {
        FileWithUrl {
            file: f.into(),
            url,
        }
    }
}

/// One page of a seed listing (Django's paginator).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<F> {
    pub count: u64,
    #[schema(minimum = 1)]
    pub num_pages: u64,
    /// `1..=num_pages`.
    pub page_range: Vec<u64>,
    pub files: Vec<F>,
}

/// One page of `GET /api/v2/files`.
#[derive(Debug, Serialize, ToSchema)]
pub struct V2Page {
    pub files: Vec<FileWithUrl>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `{"detail", "code"?}`: `detail` for people, `code` (when present) for programs. Some errors
/// add fields (`max_request_body`, `max_file_size`, `upload_offset`). Written by
/// [`super::error::ApiError`].
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// An access and a refresh token (SimpleJWT).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub refresh: String,
    pub access: String,
}

/// The one value `message` has.
#[derive(Debug, Serialize, ToSchema)]
pub enum UploadedMessage {
    #[serde(rename = "File uploaded successfully")]
    Uploaded,
}

/// `POST /api/upload`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResult {
    pub message: UploadedMessage,
    pub file: FileWithUrl,
}

/// A message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

/// A signed download link.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUrl {
    #[schema(format = "uri")]
    pub url: String,
    /// RFC 3339 UTC with microseconds and `Z`.
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// What was ended, and from when.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// Links (or tokens) issued before this time stop working.
    #[schema(format = DateTime)]
    pub revoked_before: String,
}

/// The caller's usage and the quotas in force (`null`: none).
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
    #[schema(required = true)]
    pub quota_bytes: Option<u64>,
    #[schema(required = true)]
    pub quota_files: Option<u64>,
    /// Bytes of uploads in flight (they count too).
    pub reserved_bytes: u64,
    pub reserved_files: u64,
}

/// The tus version mtfu speaks.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum TusVersion {
    #[serde(rename = "1.0.0")]
    V1_0_0,
}

/// Resumable uploads (tus) as this server takes them.
#[derive(Debug, Serialize, ToSchema)]
pub struct TusLimits {
    pub endpoint: String,
    pub version: TusVersion,
    pub max_size: u64,
    #[schema(required = true)]
    pub max_chunk_size: Option<u64>,
    #[schema(minimum = 1)]
    pub recommended_chunk_size: u64,
    pub expire_after_secs: u64,
}

/// The limits a client must respect.
#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    pub max_file_size: u64,
    #[schema(required = true)]
    pub max_request_body: Option<u64>,
    #[schema(minimum = 1)]
    pub max_page_size: u64,
    pub url_ttl_secs: u64,
    /// Empty: any type.
    pub allowed_content_types: Vec<String>,
    #[schema(required = true)]
    pub default_quota_bytes: Option<u64>,
    #[schema(required = true)]
    pub default_quota_files: Option<u64>,
    pub tus: TusLimits,
}

/// `ok`: the only answer while the process runs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Alive {
    Ok,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: Alive,
}

#[derive(Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Ok,
    Unavailable,
}

/// Whether both stores answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: Readiness,
    /// `ok` or what failed.
    pub metadata: String,
    /// `ok` or what failed.
    pub blobs: String,
}

// Request bodies: read field by field by the handlers (a JSON object, a urlencoded form or a
// multipart form with these fields), described here.

/// A login. DRF's CharField refuses NUL (400), as mtfu does.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Credentials {
    #[schema(min_length = 1, pattern = "^[^\\u0000]*$")]
    pub username: String,
    #[schema(min_length = 1, pattern = "^[^\\u0000]*$")]
    pub password: String,
}

/// A refresh token to rotate.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RefreshRequest {
    #[schema(min_length = 1, pattern = "^[^\\u0000]*$")]
    pub refresh: String,
}
