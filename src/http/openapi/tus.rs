//! The tus 1.0.0 operations (`/api/v2/uploads`). Every answer carries `Tus-Resumable`, which
//! [`super::finish`] adds to each response here; shared responses are inlined for that. Each
//! function only carries its operation for [`super::ApiDoc`].
#![allow(dead_code)]

use super::shared::{
    AllowUpload, AllowUploads, BadRequest, BearerRealm, Binary, Checksum, ChecksumAlgorithms,
    MethodNotAllowed, NoStore, NotFound, Offset, RequestTimeout, Tus100, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use crate::http::wire::ErrorBody;

/// tus creation (and creation-with-upload when there is a body). Clients that cannot send
/// PATCH or DELETE may POST to the upload's URL with `X-HTTP-Method-Override`.
#[utoipa::path(
    post, path = "/api/v2/uploads", tag = "uploads", operation_id = "tusCreate",
    params(
        ("Tus-Resumable" = inline(Tus100), Header,
            description = "The tus version; anything else answers 412."),
        ("Upload-Length" = inline(Offset), Header,
            description = "The file's size in bytes; over `limits.max_file_size` answers 413."),
        ("Upload-Metadata" = String, Header,
            description = "Comma-separated `key base64(value)`: `filename` (or `name`), \
            `resource`, `resource_id` required; `is_public`, `content_type` (or `filetype`, \
            `type`), `expires_in` or `expire_at` optional. Field errors name the key."),
        ("Upload-Checksum" = inline(Option<Checksum>), Header,
            description = "`<algorithm> <base64 digest>` of this chunk (sha1 or sha256); a \
            mismatch answers 460 and the chunk is discarded."),
    ),
    request_body(content = inline(Option<Binary>), content_type = "application/offset+octet-stream",
        description = "A first chunk, of any size up to `server.max_request_body` when set."),
    responses(
        (status = 201, description = "Created; with a first chunk, `Upload-Offset` says how \
            much was kept.", headers(
                ("Location" = String, description = "The upload's URL."),
                ("Upload-Offset" = inline(Offset), description = "Bytes received so far."),
                ("Upload-Expires" = String, description = "When an unfinished upload is \
                    discarded (IMF-fixdate); absent once complete."),
            )),
        (status = 400, response = inline(BadRequest)),
        (status = 401, response = inline(Unauthorized)),
        (status = 405, response = inline(MethodNotAllowed)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 412, description = "`Tus-Resumable` is not 1.0.0 \
            (`code: tus_version_unsupported`).", body = ErrorBody,
            headers(("Tus-Version" = inline(Tus100)))),
        (status = 413, description = "Over `limits.max_file_size` (`file_too_large`), past \
            `Upload-Length` (`upload_length_exceeded`), over the tenant's quota \
            (`quota_exceeded`), or a chunk over `server.max_request_body` \
            (`request_too_large`).", body = ErrorBody),
        (status = 415, response = inline(UnsupportedMediaType)),
        (status = 460, description = "`Upload-Checksum` does not match \
            (`code: checksum_mismatch`).", body = ErrorBody),
        (status = 503, response = inline(Unavailable)),
    ),
    security(("bearerAuth" = [])),
)]
fn create() {}

/// tus discovery: version, extensions, checksum algorithms and limits (no token).
#[utoipa::path(
    options, path = "/api/v2/uploads", tag = "uploads", operation_id = "tusOptions",
    responses(
        (status = 204, description = "What this server supports.", headers(
            ("Tus-Version" = inline(Tus100)),
            ("Tus-Extension" = String, description = "The tus extensions: creation, \
                creation-with-upload, termination, expiration, checksum."),
            ("Tus-Checksum-Algorithm" = inline(ChecksumAlgorithms)),
            ("Tus-Max-Size" = u64, description = "`limits.max_file_size`."),
            ("Tus-Max-Chunk-Size" = u64, description = "The largest chunk accepted \
                (`server.max_request_body`), when set."),
            ("Allow" = inline(AllowUploads)),
        )),
    ),
)]
fn options_uploads() {}

/// tus discovery: version, extensions, checksum algorithms and limits (no token).
#[utoipa::path(
    options, path = "/api/v2/uploads/{id}", tag = "uploads", operation_id = "tusUploadOptions",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "What this server supports.", headers(
            ("Tus-Version" = inline(Tus100)),
            ("Tus-Extension" = String, description = "The tus extensions: creation, \
                creation-with-upload, termination, expiration, checksum."),
            ("Tus-Checksum-Algorithm" = inline(ChecksumAlgorithms)),
            ("Tus-Max-Size" = u64, description = "`limits.max_file_size`."),
            ("Tus-Max-Chunk-Size" = u64, description = "The largest chunk accepted \
                (`server.max_request_body`), when set."),
            ("Allow" = inline(AllowUpload)),
        )),
    ),
)]
fn options_upload() {}

/// Where an upload stands.
#[utoipa::path(
    head, path = "/api/v2/uploads/{id}", tag = "uploads", operation_id = "tusHead",
    params(
        ("id" = String, Path),
        ("Tus-Resumable" = inline(Tus100), Header,
            description = "The tus version; anything else answers 412."),
    ),
    responses(
        (status = 200, description = "The upload's offset and length.", headers(
            ("Upload-Offset" = inline(Offset), description = "Bytes received so far."),
            ("Upload-Length" = inline(Offset)),
            ("Upload-Metadata" = String, description = "As sent at creation."),
            ("Upload-Expires" = String, description = "When an unfinished upload is \
                discarded (IMF-fixdate); absent once complete."),
            ("Cache-Control" = inline(NoStore)),
        )),
        (status = 400, description = "Bad header."),
        (status = 401, description = "Not authenticated.",
            headers(("WWW-Authenticate" = inline(BearerRealm)))),
        (status = 404, description = "No such upload of the caller's."),
        (status = 405, description = "`X-HTTP-Method-Override` names a method not taken here.",
            headers(("Allow" = String, description = "The methods the path takes."))),
        (status = 410, description = "The upload expired."),
        (status = 412, description = "`Tus-Resumable` is not 1.0.0.",
            headers(("Tus-Version" = inline(Tus100)))),
        (status = 503, description = "A store did not answer."),
    ),
    security(("bearerAuth" = [])),
)]
fn head() {}

/// Append a chunk at `Upload-Offset`.
#[utoipa::path(
    patch, path = "/api/v2/uploads/{id}", tag = "uploads", operation_id = "tusPatch",
    params(
        ("id" = String, Path),
        ("Tus-Resumable" = inline(Tus100), Header,
            description = "The tus version; anything else answers 412."),
        ("Upload-Offset" = inline(Offset), Header,
            description = "Where this chunk starts: the upload's current offset."),
        ("Upload-Checksum" = inline(Option<Checksum>), Header,
            description = "`<algorithm> <base64 digest>` of this chunk (sha1 or sha256); a \
            mismatch answers 460 and the chunk is discarded."),
    ),
    request_body(content = inline(Binary), content_type = "application/offset+octet-stream",
        description = "A chunk of any size up to `server.max_request_body` when set."),
    responses(
        (status = 204, description = "The chunk is stored; when it completes the upload, the \
            file exists.", headers(
                ("Upload-Offset" = inline(Offset), description = "Bytes received so far."),
                ("Upload-Expires" = String, description = "When an unfinished upload is \
                    discarded (IMF-fixdate); absent once complete."),
            )),
        (status = 400, response = inline(BadRequest)),
        (status = 401, response = inline(Unauthorized)),
        (status = 404, response = inline(NotFound)),
        (status = 405, response = inline(MethodNotAllowed)),
        (status = 408, response = inline(RequestTimeout)),
        (status = 409, description = "`Upload-Offset` is not the upload's \
            (`code: offset_mismatch`, with `upload_offset`).", body = ErrorBody),
        (status = 410, description = "The upload expired (`code: upload_expired`).",
            body = ErrorBody),
        (status = 412, description = "`Tus-Resumable` is not 1.0.0 \
            (`code: tus_version_unsupported`).", body = ErrorBody,
            headers(("Tus-Version" = inline(Tus100)))),
        (status = 413, description = "Over `limits.max_file_size` (`file_too_large`), past \
            `Upload-Length` (`upload_length_exceeded`), over the tenant's quota \
            (`quota_exceeded`), or a chunk over `server.max_request_body` \
            (`request_too_large`).", body = ErrorBody),
        (status = 415, response = inline(UnsupportedMediaType)),
        (status = 423, description = "Another request is writing this upload \
            (`code: upload_busy`).", body = ErrorBody),
        (status = 460, description = "`Upload-Checksum` does not match \
            (`code: checksum_mismatch`).", body = ErrorBody),
        (status = 503, response = inline(Unavailable)),
    ),
    security(("bearerAuth" = [])),
)]
fn patch() {}

/// tus termination: discard an unfinished upload.
#[utoipa::path(
    delete, path = "/api/v2/uploads/{id}", tag = "uploads", operation_id = "tusDelete",
    params(
        ("id" = String, Path),
        ("Tus-Resumable" = inline(Tus100), Header,
            description = "The tus version; anything else answers 412."),
    ),
    responses(
        (status = 204, description = "Terminated."),
        (status = 400, response = inline(BadRequest)),
        (status = 401, response = inline(Unauthorized)),
        (status = 404, response = inline(NotFound)),
        (status = 405, response = inline(MethodNotAllowed)),
        (status = 410, description = "The upload expired (`code: upload_expired`).",
            body = ErrorBody),
        (status = 412, description = "`Tus-Resumable` is not 1.0.0 \
            (`code: tus_version_unsupported`).", body = ErrorBody,
            headers(("Tus-Version" = inline(Tus100)))),
        (status = 423, description = "Another request is writing this upload \
            (`code: upload_busy`).", body = ErrorBody),
        (status = 503, response = inline(Unavailable)),
    ),
    security(("bearerAuth" = [])),
)]
fn delete() {}
