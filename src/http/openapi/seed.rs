//! The original service's operations: tokens, the seed file routes and the signed `/dl/...`
//! links. Each function only carries its operation for [`super::ApiDoc`].
#![allow(dead_code)]

use super::shared::{
    BadRequest, Label, NotFound, PageSize, PayloadTooLarge, RequestTimeout, Unauthorized,
    Unavailable, UnsupportedMediaType, UploadForm,
};
use crate::http::wire::{
    Credentials, ErrorBody, FileInfo, FileWithUrl, Message, Page, RefreshRequest, TokenPair,
    UploadResult,
};

/// Obtain an access and a refresh token (SimpleJWT). Also at `/api/token`.
///
/// The same fields are also taken as `application/x-www-form-urlencoded` or
/// `multipart/form-data`, as DRF does.
#[utoipa::path(
    post, path = "/api/token/", tag = "tokens", operation_id = "obtainToken",
    request_body(content = Credentials, content_type = "application/json"),
    responses(
        (status = 200, description = "A token pair.", body = TokenPair),
        (status = 400, response = BadRequest),
        (status = 401, description = "`No active account found with the given credentials`.",
            body = ErrorBody),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, description = "Too many failed logins.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, response = Unavailable),
    ),
)]
fn obtain_token() {}

/// Rotate a refresh token: a new pair; the one sent is spent. Also at `/api/token/refresh`.
///
/// The same field is also taken as `application/x-www-form-urlencoded` or
/// `multipart/form-data`, as DRF does.
#[utoipa::path(
    post, path = "/api/token/refresh/", tag = "tokens", operation_id = "refreshToken",
    request_body(content = RefreshRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A new token pair.", body = TokenPair),
        (status = 400, response = BadRequest),
        (status = 401, description = "`Token is invalid or expired` (`code: token_not_valid`).",
            body = ErrorBody),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
)]
fn refresh_token() {}

/// Upload a file (multipart), streamed; replaces the caller's file of the same resource,
/// resource id and name. Also at `/api/upload/`.
#[utoipa::path(
    post, path = "/api/upload", tag = "files", operation_id = "upload",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Stored.", body = UploadResult,
            links(("GetFile" = (operation_id = "v2GetFile",
                parameters(("id" = "$response.body#/file/id")))))),
        (status = 400, description = "Field errors, including a file over \
            `limits.max_file_size`: `{\"file\": [\"File size exceeds the maximum allowed size \
            of N bytes\"]}`.", body = super::shared::BadRequestBody),
        (status = 401, response = Unauthorized),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn upload() {}

/// The caller's files and every tenant's public ones of a resource, by name, a page at a
/// time, with download URLs.
#[utoipa::path(
    get, path = "/api/files/{resource}/{resource_id}", tag = "files",
    operation_id = "listResourceFiles",
    params(
        ("resource" = Label, Path, description = "The resource."),
        ("resource_id" = Label, Path, description = "The resource id."),
        ("page" = Option<String>, Query,
            description = "1-based page number. Not an integer: page 1; past the end: the last page."),
        ("page_size" = inline(Option<PageSize>), Query,
            description = "Files per page (default 10); above `limits.max_page_size` it is capped."),
    ),
    responses(
        (status = 200, description = "A page.", body = Page<FileWithUrl>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn list_resource_files() {}

/// Delete the caller's own files of a resource (also when there are none).
#[utoipa::path(
    delete, path = "/api/files/{resource}/{resource_id}", tag = "files",
    operation_id = "deleteResourceFiles",
    params(
        ("resource" = Label, Path, description = "The resource."),
        ("resource_id" = Label, Path, description = "The resource id."),
    ),
    responses(
        (status = 200, description = "`File deleted successfully`.", body = Message),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn delete_resource_files() {}

/// Visible files filtered by owner, resource and resource id, a page at a time (no URLs).
#[utoipa::path(
    get, path = "/api/list_files", tag = "files", operation_id = "listFiles",
    params(
        ("tenant_username" = Option<String>, Query,
            description = "Only this owner's files (empty: no filter)."),
        ("resource" = Option<String>, Query, description = "Only this resource (empty: no filter)."),
        ("resource_id" = Option<String>, Query,
            description = "Only this resource id (empty: no filter)."),
        ("page" = Option<String>, Query,
            description = "1-based page number. Not an integer: page 1; past the end: the last page."),
        ("page_size" = inline(Option<PageSize>), Query,
            description = "Files per page (default 10); above `limits.max_page_size` it is capped."),
    ),
    responses(
        (status = 200, description = "A page.", body = Page<FileInfo>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn list_files() {}

/// A signed download link (from a listing or `POST /api/v2/files/{id}/url`): no token.
#[utoipa::path(
    get, path = "/dl/{tenant}/{file_id}", tag = "files", operation_id = "download",
    params(
        ("tenant" = String, Path, pattern = "^[0-9]+$"),
        ("file_id" = String, Path),
        ("expires" = i64, Query),
        ("iat" = Option<i64>, Query, minimum = 1),
        ("sig" = String, Query),
        super::shared::DownloadHeaders,
    ),
    responses(
        super::shared::DownloadResponses,
        (status = 403, description = "Invalid or expired signature (`invalid_signature`), or a \
            link revoked after it was issued (`url_revoked`).", body = ErrorBody),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
fn download() {}
