//! `ApiError`: every way a request can fail, mapped to a status and the contract's JSON shape in
//! exactly one place. 5xx bodies are opaque; their cause is logged with the request id.

use std::collections::BTreeMap;

use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{Response, json_response};
use crate::blob::BlobError;
use crate::meta::MetaError;
use crate::service::ServiceError;
use crate::upload::UploadError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization` header (or not a Bearer one).
    #[error("not authenticated")]
    NotAuthenticated,
    /// `Authorization: Bearer` without exactly one token after it.
    #[error("bad authorization header")]
    BadAuthorizationHeader,
    /// Bad, expired, forged or non-access token.
    #[error("invalid token")]
    InvalidToken,
    /// A valid token whose tenant no longer exists.
    #[error("user not found")]
    UserNotFound,
    /// Wrong username or password.
    #[error("bad credentials")]
    BadCredentials,
    /// A refresh token that is invalid, expired or already used.
    #[error("refresh token invalid")]
    RefreshInvalid,
    /// Too many failed logins.
    #[error("throttled")]
    Throttled { wait_secs: u64 },
    /// DRF's field validation shape: `{"field": ["message"]}`.
    #[error("invalid fields: {0:?}")]
    Fields(BTreeMap<String, Vec<String>>),
    /// A 4xx with `{"detail": ...}`.
    #[error("{status}: {detail}")]
    Detail {
        status: StatusCode,
        detail: String,
        code: Option<&'static str>,
    },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    /// A store that did not answer: 503 naming it.
    #[error("{code}: {cause}")]
    Unavailable { code: &'static str, cause: String },
    /// A bug or an unexpected store failure: 500, opaque.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn field(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::Fields(BTreeMap::from([(name.to_owned(), vec![message.into()])]))
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::Detail {
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
            code: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotAuthenticated
            | ApiError::BadAuthorizationHeader
            | ApiError::InvalidToken
            | ApiError::UserNotFound
            | ApiError::BadCredentials
            | ApiError::RefreshInvalid => StatusCode::UNAUTHORIZED,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Fields(_) => StatusCode::BAD_REQUEST,
            ApiError::Detail { status, .. } => *status,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        match self {
            ApiError::NotAuthenticated => {
                json!({"detail": "Authentication credentials were not provided."})
            }
            ApiError::BadAuthorizationHeader => json!({
                "detail": "Authorization header must contain two space-delimited values",
                "code": "bad_authorization_header"}),
            ApiError::InvalidToken => json!({
                "detail": "Given token not valid for any token type", "code": "token_not_valid"}),
            ApiError::UserNotFound => json!({"detail": "User not found", "code": "user_not_found"}),
            ApiError::BadCredentials => {
                json!({"detail": "No active account found with the given credentials"})
            }
            ApiError::RefreshInvalid => {
                json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
            }
            ApiError::Throttled { wait_secs } => json!({
                "detail": format!("Request was throttled. Expected available in {wait_secs} seconds.")}),
            ApiError::Fields(f) => json!(f),
            ApiError::Detail { detail, code, .. } => match code {
                Some(c) => json!({"detail": detail, "code": c}),
                None => json!({"detail": detail}),
            },
            ApiError::NotFound => json!({"detail": "Not found."}),
            ApiError::MethodNotAllowed { method, .. } => {
                json!({"detail": format!("Method \"{method}\" not allowed.")})
            }
            ApiError::UnsupportedMediaType(ct) => {
                json!({"detail": format!("Unsupported media type \"{ct}\" in request.")})
            }
            ApiError::Unavailable { code, .. } => {
                json!({"detail": "Service unavailable", "code": code})
            }
            ApiError::Internal(_) => {
                json!({"detail": "A server error occurred.", "code": "internal_error"})
            }
        }
    }

    pub fn into_response(self, request_id: &str) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(request_id, error = %self, "request failed");
        }
        let mut resp = json_response(status, &self.body());
        let h = resp.headers_mut();
        match &self {
            ApiError::NotAuthenticated
            | ApiError::BadAuthorizationHeader
            | ApiError::InvalidToken
            | ApiError::UserNotFound => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"api\""),
                );
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Throttled { wait_secs } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*wait_secs));
            }
            _ => {}
        }
        resp
    }
}

/// Count a store failure that reached a request (`mtfu_store_errors_total`).
fn store_error(store: &'static str, kind: &'static str) {
    metrics::counter!("mtfu_store_errors_total", "store" => store, "kind" => kind).increment(1);
}

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Unavailable(cause) => {
                store_error("metadata", "unavailable");
                ApiError::Unavailable {
                    code: "metadata_unavailable",
                    cause,
                }
            }
            MetaError::Gone(key) => {
                tracing::warn!(%key, "an upload was given up before its commit (lease lost)");
                ApiError::Detail {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    detail: "The upload stalled past its lease and was given up; nothing was \
                             stored. Send it again."
                        .into(),
                    code: Some("upload_abandoned"),
                }
            }
            other => {
                store_error("metadata", "other");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => ApiError::NotFound,
            BlobError::Unavailable(cause) => {
                store_error("blob", "unavailable");
                ApiError::Unavailable {
                    code: "blob_store_unavailable",
                    cause,
                }
            }
            BlobError::Full(cause) => {
                store_error("blob", "full");
                tracing::error!(%cause, "the blob store is full");
                ApiError::Detail {
                    status: StatusCode::INSUFFICIENT_STORAGE,
                    detail: "The file store is full; nothing was stored.".into(),
                    code: Some("insufficient_storage"),
                }
            }
            BlobError::Other(cause) => {
                store_error("blob", "other");
                ApiError::Internal(format!("blob store: {cause}"))
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Meta(m) => m.into(),
            ServiceError::Blob(b) => b.into(),
            ServiceError::Upload(UploadError::Store(b)) => b.into(),
            ServiceError::Upload(UploadError::TooLarge { limit }) => ApiError::field(
                "file",
                format!("File size exceeds the maximum allowed size of {limit} bytes"),
            ),
            ServiceError::Upload(UploadError::Body(m)) => {
                ApiError::bad_request(format!("Multipart form parse error - {m}"))
            }
            ServiceError::Upload(UploadError::QuotaExceeded) => ApiError::Detail {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                detail: "Quota exceeded".into(),
                code: Some("quota_exceeded"),
            },
            ServiceError::Upload(UploadError::Meta(m)) => m.into(),
            ServiceError::ExpiredBeforeCommit => {
                ApiError::field("expire_at", "Must be in the future.")
            }
            ServiceError::TenantGone => ApiError::UserNotFound,
            ServiceError::ContentTypeNotAllowed(ct) => ApiError::Detail {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: format!("Content type {ct} is not allowed"),
                code: Some("unsupported_media_type"),
            },
        }
    }
}
