//! What the operations share: the schemas of parameters whose rules a Rust type does not carry
//! (labels, "blank means not given" form values), fixed header values, and the shared responses
//! (`#/components/responses/...`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use utoipa::openapi::Required;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{Content, Header, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToResponse, ToSchema};

use crate::http::upload::MAX_EXPIRES_IN_SECS;
use crate::http::v2::MAX_URL_TTL_SECS;

/// The largest integer the query parsers take (`i64`); beyond it a number is "not valid".
pub const I64_MAX: i64 = i64::MAX;

/// Extra keywords utoipa's builders have no setter for (`not`, a header's `required`): its
/// objects flatten their extension map into themselves.
pub fn keywords<const N: usize>(kv: [(&str, serde_json::Value); N]) -> Option<Extensions> {
    Some(kv.into_iter().collect())
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer(min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
}

/// A string schema with exactly one value.
pub fn one_value(value: &str) -> RefOr<Schema> {
    string().enum_values(Some([value])).into()
}

/// Header schemas with one fixed value, usable as types in `headers(...)` and `params(...)`.
macro_rules! fixed_values {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                one_value($value)
            }
        }
        impl ToSchema for $name {}
    )*};
}

fixed_values! {
    /// `X-Content-Type-Options` of a download.
    Nosniff = "nosniff";
    /// `Accept-Ranges` of a download.
    Bytes = "bytes";
    /// The tus version, `Tus-Resumable` and `Tus-Version`.
    Tus100 = "1.0.0";
    /// `Tus-Checksum-Algorithm`.
    ChecksumAlgorithms = crate::tus::CHECKSUM_ALGORITHMS;
    /// `Cache-Control` of a tus `HEAD`.
    NoStore = "no-store";
    /// `WWW-Authenticate` of a 401.
    BearerRealm = "Bearer realm=\"api\"";
    /// `Allow` of `/api/v2/uploads`.
    AllowUploads = "POST, OPTIONS";
    /// `Allow` of `/api/v2/uploads/{id}`.
    AllowUpload = "HEAD, PATCH, DELETE, OPTIONS";
}

/// A schema with its own name in `#/components/schemas`.
macro_rules! named_schema {
    ($($(#[$doc:meta])* $name:ident => $schema:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    )*};
}

/// White space only (Rust's `char::is_whitespace`): these parameters are trimmed first and then
/// taken as not given (an empty form field is no field, as in DRF).
const BLANK: &str =
    "^[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$";

fn or_blank(s: ObjectBuilder, description: &str) -> RefOr<Schema> {
    AnyOfBuilder::new()
        .item(s)
        .item(string().pattern(Some(BLANK)))
        .description(Some(description))
        .into()
}

named_schema! {
    /// A resource or resource id.
    Label => string()
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some("^[^/\\x00-\\x1F\\x7F-\\x9F]+$"))
        .description(Some("resource or resource_id: 1-100 characters, no `/`, no control characters."))
        .into();
    /// A file id.
    FileId => string()
        .pattern(Some("^[0-9a-f]{32}$"))
        .description(Some("Opaque, unguessable file id (a UUIDv7, 32 hex digits)."))
        .into();
    /// `is_public` of an upload. DRF's BooleanField: it also reads `1`/`0`, `yes`/`no`,
    /// `on`/`off`, `t`/`f`, `y`/`n`, in any case.
    IsPublic => or_blank(
        ObjectBuilder::new().schema_type(Type::Boolean),
        "Whether every tenant may see the file (default false).",
    );
    /// A file's lifetime in seconds.
    ExpiresIn => or_blank(
        integer(1, MAX_EXPIRES_IN_SECS),
        "Seconds until the file expires; not with `expire_at`.",
    );
    /// A file's expiry time.
    ExpireAt => or_blank(
        string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        "RFC 3339, in the future (before the year 10000); not with `expires_in`.",
    );
}

/// DRF's validation shape: `{"<field>": ["<message>", ...]}`.
pub struct FieldErrors;
impl PartialSchema for FieldErrors {
    fn schema() -> RefOr<Schema> {
        let messages = ArrayBuilder::new().items(string()).min_items(Some(1));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .min_properties(Some(1))
            .additional_properties(Some(messages))
            .description(Some(
                "DRF's validation shape: `{\"<field>\": [\"<message>\", ...]}`.",
            ))
            .into()
    }
}
impl ToSchema for FieldErrors {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FieldErrors")
    }
}

/// A 400's body: field errors or `{"detail"}`.
pub struct BadRequestBody;
impl PartialSchema for BadRequestBody {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("FieldErrors"))
            .item(Ref::from_schema_name("Error"))
            .into()
    }
}
impl ToSchema for BadRequestBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("BadRequest")
    }
}

/// `expires_in` of a signed URL.
pub struct UrlExpiresIn;
impl PartialSchema for UrlExpiresIn {
    fn schema() -> RefOr<Schema> {
        or_blank(
            integer(1, MAX_URL_TTL_SECS as i64),
            "Lifetime in seconds (default `limits.url_ttl_secs`), never past the file's own \
             expiry.",
        )
    }
}
impl ToSchema for UrlExpiresIn {}

/// `page_size`: at least 1.
pub struct PageSize;
impl PartialSchema for PageSize {
    fn schema() -> RefOr<Schema> {
        integer(1, I64_MAX).into()
    }
}
impl ToSchema for PageSize {}

/// `limit` of the v2 listing: at least 1, or empty (not given).
pub struct Limit;
impl PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(integer(1, I64_MAX))
            .item(one_value(""))
            .into()
    }
}
impl ToSchema for Limit {}

/// The `name` of a raw upload.
pub struct FileName;
impl PartialSchema for FileName {
    fn schema() -> RefOr<Schema> {
        string()
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some("^[^/\\\\\\x00-\\x1F\\x7F-\\x9F]+$"))
            .extensions(keywords([(
                "not",
                serde_json::json!({"enum": [".", ".."]}),
            )]))
            .into()
    }
}
impl ToSchema for FileName {}

/// A non-negative integer header (`Upload-Offset`, `Upload-Length`).
pub struct Offset;
impl PartialSchema for Offset {
    fn schema() -> RefOr<Schema> {
        integer(0, I64_MAX).into()
    }
}
impl ToSchema for Offset {}

/// `Upload-Checksum`.
pub struct Checksum;
impl PartialSchema for Checksum {
    fn schema() -> RefOr<Schema> {
        string()
            .pattern(Some("^(sha1|sha256) [A-Za-z0-9+/]+={0,2}$"))
            .into()
    }
}
impl ToSchema for Checksum {}

/// The multipart form of `POST /api/upload` (read part by part, streamed). `expires_in` or
/// `expire_at`, not both.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; at most `limits.max_file_size` bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    resource: Label,
    resource_id: Label,
    #[schema(inline)]
    is_public: Option<IsPublic>,
    #[schema(inline)]
    expires_in: Option<ExpiresIn>,
    #[schema(inline)]
    expire_at: Option<ExpireAt>,
}

/// A response header.
pub fn header(schema: RefOr<Schema>, description: &str) -> Header {
    let mut h = Header::new(schema);
    if !description.is_empty() {
        h.description = Some(description.to_owned());
    }
    h
}

/// Shared responses with a JSON body (an `Error` unless said otherwise).
macro_rules! shared_responses {
    ($($name:ident $(($schema:literal))? => $description:expr $(, $hname:literal = $hschema:expr)*;)*) => {$(
        pub struct $name;
        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                #[allow(unused_mut, unused_assignments)]
                let mut schema = "Error";
                $(schema = $schema;)?
                let r = ResponseBuilder::new()
                    .description($description)
                    .content("application/json", Content::new(Some(Ref::from_schema_name(schema))))
                    $(.header($hname, header($hschema, "")))*;
                (stringify!($name), r.into())
            }
        }
    )*};
}

shared_responses! {
    BadRequest("BadRequest") => "Invalid input: field errors (DRF's shape) or `{\"detail\"}`.";
    Unauthorized => "No token (`Authentication credentials were not provided.`), or a bad, \
        expired, ended (session revoked) or non-access one (`code: token_not_valid`).",
        "WWW-Authenticate" = BearerRealm::schema();
    NotFound => "`{\"detail\": \"Not found.\"}`: no such thing visible to the caller (another \
        tenant's private file answers the same), or no route for the path.";
    RequestTimeout => "The request body stopped arriving (`server.body_read_timeout_secs`); \
        `code: body_timeout`.";
    PayloadTooLarge => "Over a limit; nothing was kept. `code`: `quota_exceeded` (tenant quota), \
        `request_too_large` (`server.max_request_body`, with `max_request_body`), \
        `file_too_large` (`limits.max_file_size`).";
    UnsupportedMediaType => "A request body type this route does not read, or a file type \
        outside `limits.allowed_content_types`.";
    MethodNotAllowed => "`Method \"X\" not allowed.`: here only through \
        `X-HTTP-Method-Override` naming a method the path does not take (any method a path \
        does not list answers this way).",
        "Allow" = string().into();
    Unavailable => "A store did not answer: `code` is `metadata_unavailable` or \
        `blob_store_unavailable`.";
}

/// `Range`, `If-None-Match` and `If-Range` of a download.
pub struct DownloadHeaders;
impl IntoParams for DownloadHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let h = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .schema(Some(string()))
                .description(Some(description))
                .build()
        };
        vec![
            h(
                "Range",
                "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several ranges or a \
                 malformed one: the whole body.",
            ),
            h(
                "If-None-Match",
                "ETags (weak comparison) or `*`: 304 when one is the file's.",
            ),
            h(
                "If-Range",
                "The Range applies only if this is exactly the current ETag.",
            ),
        ]
    }
}

/// The answers of a file download (`/dl/...` and `/content`), but for who may ask.
pub struct DownloadResponses;
impl IntoResponses for DownloadResponses {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let headers = |r: ResponseBuilder, body: bool, range: &str| {
            let mut r = r
                .header(
                    "ETag",
                    header(string().into(), "The sha256 of the bytes, quoted (strong)."),
                )
                .header(
                    "Cache-Control",
                    header(string().into(), "How the bytes may be cached."),
                )
                .header(
                    "X-Content-Type-Options",
                    header(
                        Nosniff::schema(),
                        "The stored type is never trusted for rendering.",
                    ),
                )
                .header("Accept-Ranges", header(Bytes::schema(), ""));
            if body {
                // Any type: the stored one (no schema: the bytes are the file's).
                r = r.content("*/*", Content::default()).header(
                    "Content-Disposition",
                    header(
                        string().into(),
                        "`attachment; filename=\"<ascii>\"; filename*=UTF-8''<name>`",
                    ),
                );
            }
            if !range.is_empty() {
                r = r.header("Content-Range", header(string().into(), range));
            }
            r.into()
        };
        let r = |d: &str| ResponseBuilder::new().description(d);
        BTreeMap::from([
            (
                "200".to_owned(),
                headers(
                    r("The whole file, streamed; `Content-Type` is the stored type."),
                    true,
                    "",
                ),
            ),
            (
                "206".to_owned(),
                headers(r("The requested range."), true, "`bytes a-b/size`."),
            ),
            (
                "304".to_owned(),
                headers(r("`If-None-Match` names the current ETag."), false, ""),
            ),
            (
                "416".to_owned(),
                headers(
                    r("The range starts past the end; `Content-Range: bytes */size`."),
                    false,
                    "`bytes */size`.",
                ),
            ),
            ("404".to_owned(), Ref::from_response_name("NotFound").into()),
            (
                "503".to_owned(),
                Ref::from_response_name("Unavailable").into(),
            ),
        ])
    }
}

/// A request body of raw bytes.
pub struct Binary;
impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        string()
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}
impl ToSchema for Binary {}
