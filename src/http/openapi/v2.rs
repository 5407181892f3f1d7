//! The v2 operations (files by id, streamed content, signed URLs, raw uploads), the account
//! operations and the operations endpoints. Each function only carries its operation for
//! [`super::ApiDoc`].
#![allow(dead_code)]

use super::shared::{
    BadRequest, Binary, DownloadHeaders, DownloadResponses, ExpireAt, ExpiresIn, FileId, FileName,
    IsPublic, Label, Limit, NotFound, PayloadTooLarge, RequestTimeout, Unauthorized, Unavailable,
    UnsupportedMediaType, UrlExpiresIn,
};
use crate::http::wire::{FileWithUrl, Health, Limits, Ready, Revoked, SignedUrl, Usage, V2Page};

/// Visible files, keyset-paginated: follow `next_cursor`.
#[utoipa::path(
    get, path = "/api/v2/files", tag = "v2", operation_id = "v2ListFiles",
    params(
        ("resource" = Option<String>, Query, description = "Only this resource (empty: no filter)."),
        ("resource_id" = Option<String>, Query,
            description = "Only this resource id (empty: no filter)."),
        ("tenant_username" = Option<String>, Query,
            description = "Only this owner's files (empty: no filter)."),
        ("limit" = inline(Option<Limit>), Query,
            description = "Files per page (default 100); capped at `limits.max_page_size`."),
        ("cursor" = Option<String>, Query,
            description = "`next_cursor` of the previous page; anything else: 400."),
    ),
    responses(
        (status = 200, description = "A page.", body = V2Page),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn list() {}

/// A file's metadata (own or public).
#[utoipa::path(
    get, path = "/api/v2/files/{id}", tag = "v2", operation_id = "v2GetFile",
    params(("id" = FileId, Path, description = "The file's id.")),
    responses(
        (status = 200, description = "The file.", body = FileWithUrl),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn get_file() {}

/// Delete one of the caller's files; its download URLs stop working.
#[utoipa::path(
    delete, path = "/api/v2/files/{id}", tag = "v2", operation_id = "v2DeleteFile",
    params(("id" = FileId, Path, description = "The file's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn delete_file() {}

/// A file's bytes, streamed, with ranges and conditional requests.
#[utoipa::path(
    get, path = "/api/v2/files/{id}/content", tag = "v2", operation_id = "v2GetContent",
    params(("id" = FileId, Path, description = "The file's id."), DownloadHeaders),
    responses(DownloadResponses, (status = 401, response = Unauthorized)),
    security(("bearerAuth" = [])),
)]
fn get_content() {}

/// A download URL that needs no token until it expires.
#[utoipa::path(
    post, path = "/api/v2/files/{id}/url", tag = "v2", operation_id = "v2CreateUrl",
    params(
        ("id" = FileId, Path, description = "The file's id."),
        ("expires_in" = inline(Option<UrlExpiresIn>), Query),
    ),
    responses(
        (status = 200, description = "The URL.", body = SignedUrl),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn create_url() {}

/// Upload a file as the raw request body (no multipart), streamed; the rules of `/api/upload`.
/// `Location` names the file.
#[utoipa::path(
    put, path = "/api/v2/files/{resource}/{resource_id}/{name}", tag = "v2",
    operation_id = "v2PutFile",
    params(
        ("resource" = Label, Path, description = "The resource."),
        ("resource_id" = Label, Path, description = "The resource id."),
        ("name" = inline(FileName), Path, description = "The file name: at most 255 bytes of \
            UTF-8, not `.` or `..`, no `/`, `\\` or control characters."),
        ("is_public" = inline(Option<IsPublic>), Query),
        ("expires_in" = inline(Option<ExpiresIn>), Query),
        ("expire_at" = inline(Option<ExpireAt>), Query),
    ),
    request_body(
        content = inline(Binary), content_type = "application/octet-stream",
        description = "The bytes; at most `limits.max_file_size`. Any `Content-Type` is taken \
            and kept (sniffed when absent or generic), not only this one.",
    ),
    responses(
        (status = 200, description = "Replaced the caller's file of that name.",
            body = FileWithUrl,
            headers(("Location" = String, description = "The file's URL.")),
            links(
                ("GetFile" = (operation_id = "v2GetFile", parameters(("id" = "$response.body#/id")))),
                ("GetContent" = (operation_id = "v2GetContent", parameters(("id" = "$response.body#/id")))),
                ("HeadContent" = (operation_id = "v2HeadContent", parameters(("id" = "$response.body#/id")))),
                ("CreateUrl" = (operation_id = "v2CreateUrl", parameters(("id" = "$response.body#/id")))),
                ("DeleteFile" = (operation_id = "v2DeleteFile", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 201, description = "Created.", body = FileWithUrl,
            headers(("Location" = String, description = "The file's URL.")),
            links(
                ("GetFile" = (operation_id = "v2GetFile", parameters(("id" = "$response.body#/id")))),
                ("GetContent" = (operation_id = "v2GetContent", parameters(("id" = "$response.body#/id")))),
                ("HeadContent" = (operation_id = "v2HeadContent", parameters(("id" = "$response.body#/id")))),
                ("CreateUrl" = (operation_id = "v2CreateUrl", parameters(("id" = "$response.body#/id")))),
                ("DeleteFile" = (operation_id = "v2DeleteFile", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn put_file() {}

/// Every `/dl/...` link the caller was handed until now stops working.
#[utoipa::path(
    post, path = "/api/v2/urls/revoke", tag = "v2", operation_id = "v2RevokeUrls",
    responses(
        (status = 200, description = "Revoked.", body = Revoked),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn revoke_urls() {}

/// End the caller's sessions: every access and refresh token of the caller issued until now
/// (this one too) answers 401, on every node.
#[utoipa::path(
    post, path = "/api/v2/sessions/revoke", tag = "account", operation_id = "v2RevokeSessions",
    responses(
        (status = 200, description = "Ended: tokens issued before `revoked_before` answer 401.",
            body = Revoked),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn revoke_sessions() {}

/// The caller's files, bytes and quotas (`null`: none).
#[utoipa::path(
    get, path = "/api/v2/usage", tag = "account", operation_id = "v2Usage",
    responses(
        (status = 200, description = "Usage.", body = Usage),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    ),
    security(("bearerAuth" = [])),
)]
fn usage() {}

/// The limits a client must respect (no token needed).
#[utoipa::path(
    get, path = "/api/v2/limits", tag = "account", operation_id = "v2Limits",
    responses((status = 200, description = "Limits.", body = Limits)),
)]
fn limits() {}

/// 200 while the process runs.
#[utoipa::path(
    get, path = "/healthz", tag = "ops", operation_id = "healthz",
    responses((status = 200, description = "Alive.", body = Health)),
)]
fn healthz() {}

/// 200 when the metadata store and the blob store answer, else 503.
#[utoipa::path(
    get, path = "/readyz", tag = "ops", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", body = Ready),
        (status = 503, description = "A store does not answer.", body = Ready),
    ),
)]
fn readyz() {}

/// This document.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "ops", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1.", body = Object)),
)]
fn openapi() {}
