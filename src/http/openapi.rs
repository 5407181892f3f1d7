//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every route mtfu serves.
//!
//! Written here, next to the handlers, from the same facts: the configuration fills in what is
//! configurable (size limits, the tus maximum), and `servers[0].url` is the base URL the client
//! used (`server.public_url`, else its scheme, host and `server.base_path`), so clients and
//! fuzzers behind a gateway stage reach the routes. Every path below is relative to that URL.
//!
//! It cannot drift silently: `tests/it/openapi.rs` sends every method to every path template of
//! the routing table ([`super::router::templates`]) on a live server and requires the set of
//! (path, method) pairs served to equal the set documented here, and `.ci/schemathesis` fuzzes
//! the server against this document (statuses, headers, bodies).
//!
//! Not documented: `/.well-known/acme-challenge/{token}`, which answers only while an ACME order
//! of this server waits for HTTP-01 validation (and then only the CA), outside `base_path`.

use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::files::base_url;
use super::upload::MAX_EXPIRES_IN_SECS;
use super::v2::MAX_URL_TTL_SECS;
use super::{AppState, Ctx, Response, full};
use crate::config::Config;

/// `GET|HEAD /api/openapi.json` (no token: a client reads it before it has one).
pub fn serve(state: &AppState, ctx: &Ctx, method: &Method) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(super::not_allowed(method, "GET, HEAD"));
    }
    let doc = document(&state.cfg, &base_url(state, ctx));
    let mut resp = http::Response::new(full(doc.to_string()));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The largest integer the query parsers take (`i64`); beyond it a number is "not valid".
const I64_MAX: i64 = i64::MAX;

/// Text fields that refuse NUL (the tokens' CharFields): any string without U+0000.
const NO_NUL: &str = "^[^\\u0000]*$";

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn param(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn resp(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn json_content(s: Value) -> Value {
    json!({"application/json": {"schema": s}})
}

/// A response with a JSON body.
fn json_resp(description: &str, s: Value) -> Value {
    json!({"description": description, "content": json_content(s)})
}

/// A response without a body.
fn empty(description: &str) -> Value {
    json!({"description": description})
}

fn header_obj(description: &str, s: Value, required: bool) -> Value {
    json!({"description": description, "required": required, "schema": s})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn integer(min: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": I64_MAX})
}

/// Add headers to a response object.
fn with_headers(mut r: Value, headers: &[(&str, Value)]) -> Value {
    for (name, h) in headers {
        r["headers"][*name] = h.clone();
    }
    r
}

/// An operation. `secured`: needs a bearer access token.
fn op(
    id: &str,
    tag: &str,
    summary: &str,
    secured: bool,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&str, Value)>,
) -> Value {
    let mut o = Map::new();
    o.insert("operationId".into(), id.into());
    o.insert("tags".into(), json!([tag]));
    o.insert("summary".into(), summary.into());
    o.insert(
        "security".into(),
        if secured {
            json!([{"bearerAuth": []}])
        } else {
            json!([])
        },
    );
    if !parameters.is_empty() {
        o.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(b) = body {
        o.insert("requestBody".into(), b);
    }
    let mut rs = Map::new();
    for (code, r) in responses {
        rs.insert(code.to_owned(), r);
    }
    o.insert("responses".into(), Value::Object(rs));
    Value::Object(o)
}

/// A `HEAD` twin of a `GET` operation: the same statuses and headers, no bodies.
fn head_of(get: &Value, id: &str) -> Value {
    let mut h = get.clone();
    h["operationId"] = id.into();
    h["summary"] = format!("{} (headers only)", get["summary"].as_str().unwrap_or("")).into();
    if let Some(rs) = h["responses"].as_object_mut() {
        for r in rs.values_mut() {
            if let Some(name) = r
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|s| s.rsplit('/').next())
            {
                *r = resp(&format!("{name}Head"));
            } else if let Some(o) = r.as_object_mut() {
                o.remove("content");
                o.remove("links");
            }
        }
    }
    h
}

/// `s`, or an empty value, which these parameters take as not given.
fn or_empty(s: Value) -> Value {
    json!({"anyOf": [s, {"const": ""}]})
}

/// `s`, or white space only (Rust's `char::is_whitespace`), which these parameters take as not
/// given: they are trimmed first (an empty form field is no field, as in DRF).
fn or_blank(s: Value) -> Value {
    const BLANK: &str = "^[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$";
    json!({"anyOf": [s, {"type": "string", "pattern": BLANK}]})
}

fn described(mut s: Value, description: &str) -> Value {
    s["description"] = description.into();
    s
}

/// Whether every tenant may see the file. DRF's BooleanField: it also reads `1`/`0`,
/// `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n`, in any case.
fn is_public() -> Value {
    described(
        or_blank(json!({"type": "boolean"})),
        "Whether every tenant may see the file (default false).",
    )
}

/// A file's lifetime in seconds (`/api/upload`, `PUT`).
fn expires_in() -> Value {
    described(
        or_blank(json!({"type": "integer", "minimum": 1, "maximum": MAX_EXPIRES_IN_SECS})),
        "Seconds until the file expires; not with `expire_at`.",
    )
}

/// A file's expiry time (`/api/upload`, `PUT`).
fn expire_at() -> Value {
    described(
        or_blank(json!({"type": "string", "format": "date-time"})),
        "RFC 3339, in the future (before the year 10000); not with `expires_in`.",
    )
}

fn schemas(cfg: &Config) -> Value {
    let label = |what: &str| {
        json!({
            "type": "string", "minLength": 1, "maxLength": 100,
            "pattern": "^[^/\\x00-\\x1F\\x7F-\\x9F]+$",
            "description": format!("{what}: 1-100 characters, no `/`, no control characters.")
        })
    };
    let nullable_int = json!({"type": ["integer", "null"], "minimum": 0});
    let time = json!({"type": "string", "format": "date-time",
        "description": "RFC 3339 UTC with microseconds and `Z`."});
    let file = json!({
        "type": "object",
        "required": ["id", "tenant_username", "resource", "resource_id", "name", "location",
                     "expire_at", "is_public", "size", "content_type", "sha256", "created_at"],
        "properties": {
            "id": schema("FileId"),
            "tenant_username": string(),
            "resource": string(),
            "resource_id": {"type": "string", "description": "Always a string, even when numeric."},
            "name": string(),
            "location": {"type": "string", "description": "`tenant/resource/resource_id/name`."},
            "expire_at": {"type": ["string", "null"], "format": "date-time"},
            "is_public": {"type": "boolean"},
            "size": {"type": "integer", "minimum": 0},
            "content_type": string(),
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "created_at": time.clone(),
            "url": {"type": "string", "format": "uri",
                    "description": "Absolute, time-limited download URL that needs no token."}
        }
    });
    let file_with_url = json!({"allOf": [schema("File"), {"required": ["url"]}]});
    let page = |item: Value| {
        json!({
            "type": "object",
            "required": ["count", "num_pages", "page_range", "files"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "num_pages": {"type": "integer", "minimum": 1},
                "page_range": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "files": {"type": "array", "items": item}
            }
        })
    };
    let v2_page = json!({
        "type": "object",
        "required": ["files", "next_cursor"],
        "properties": {
            "files": {"type": "array", "items": schema("FileWithUrl")},
            "next_cursor": {"type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last."}
        }
    });
    let error = json!({
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": string(), "code": string()},
        "description": "`detail` for people, `code` (when present) for programs. Some errors \
                        add fields (`max_request_body`, `max_file_size`, `upload_offset`)."
    });
    let field_errors = json!({
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {"type": "array", "items": string(), "minItems": 1},
        "description": "DRF's validation shape: `{\"<field>\": [\"<message>\", ...]}`."
    });
    let token_pair = json!({
        "type": "object", "required": ["refresh", "access"],
        "properties": {"refresh": string(), "access": string()}
    });
    let credentials = json!({
        "type": "object", "required": ["username", "password"],
        // DRF's CharField refuses NUL (400), as mtfu does.
        "properties": {"username": {"type": "string", "minLength": 1, "pattern": NO_NUL},
                       "password": {"type": "string", "minLength": 1, "pattern": NO_NUL}},
        "additionalProperties": false
    });
    let refresh = json!({
        "type": "object", "required": ["refresh"],
        "properties": {"refresh": {"type": "string", "minLength": 1, "pattern": NO_NUL}},
        "additionalProperties": false
    });
    let upload_form = json!({
        "type": "object",
        "required": ["file", "resource", "resource_id"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": format!(
                "The file; at most {} bytes (`limits.max_file_size`).", cfg.limits.max_file_size)},
            "resource": schema("Label"),
            "resource_id": schema("Label"),
            "is_public": is_public(),
            "expires_in": expires_in(),
            "expire_at": expire_at()
        },
        "additionalProperties": false,
        "description": "`expires_in` or `expire_at`, not both."
    });
    let usage = json!({
        "type": "object",
        "required": ["files", "bytes", "quota_bytes", "quota_files", "reserved_bytes",
                     "reserved_files"],
        "properties": {
            "files": {"type": "integer", "minimum": 0},
            "bytes": {"type": "integer", "minimum": 0},
            "quota_bytes": nullable_int.clone(),
            "quota_files": nullable_int.clone(),
            "reserved_bytes": {"type": "integer", "minimum": 0,
                               "description": "Bytes of uploads in flight (they count too)."},
            "reserved_files": {"type": "integer", "minimum": 0}
        }
    });
    let limits = json!({
        "type": "object",
        "required": ["max_file_size", "max_request_body", "max_page_size", "url_ttl_secs",
                     "allowed_content_types", "default_quota_bytes", "default_quota_files",
                     "tus"],
        "properties": {
            "max_file_size": {"type": "integer", "minimum": 0},
            "max_request_body": nullable_int.clone(),
            "max_page_size": {"type": "integer", "minimum": 1},
            "url_ttl_secs": {"type": "integer", "minimum": 0},
            "allowed_content_types": {"type": "array", "items": string(),
                                      "description": "Empty: any type."},
            "default_quota_bytes": nullable_int.clone(),
            "default_quota_files": nullable_int.clone(),
            "tus": {
                "type": "object",
                "required": ["endpoint", "version", "max_size", "max_chunk_size",
                             "recommended_chunk_size", "expire_after_secs"],
                "properties": {
                    "endpoint": string(),
                    "version": {"const": "1.0.0"},
                    "max_size": {"type": "integer", "minimum": 0},
                    "max_chunk_size": nullable_int.clone(),
                    "recommended_chunk_size": {"type": "integer", "minimum": 1},
                    "expire_after_secs": {"type": "integer", "minimum": 0}
                }
            }
        }
    });
    let health = json!({"type": "object", "required": ["status"],
                        "properties": {"status": {"const": "ok"}}});
    let ready = json!({
        "type": "object", "required": ["status", "metadata", "blobs"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "metadata": {"type": "string", "description": "`ok` or what failed."},
            "blobs": {"type": "string", "description": "`ok` or what failed."}
        }
    });
    json!({
        "FileId": {"type": "string", "pattern": "^[0-9a-f]{32}$",
                   "description": "Opaque, unguessable file id (a UUIDv7, 32 hex digits)."},
        "Label": label("resource or resource_id"),
        "File": file,
        "FileWithUrl": file_with_url,
        "Page": page(schema("File")),
        "PageWithUrls": page(schema("FileWithUrl")),
        "V2Page": v2_page,
        "Error": error,
        "FieldErrors": field_errors,
        "BadRequest": {"anyOf": [schema("FieldErrors"), schema("Error")]},
        "TokenPair": token_pair,
        "Credentials": credentials,
        "RefreshRequest": refresh,
        "UploadForm": upload_form,
        "UploadResult": {
            "type": "object", "required": ["message", "file"],
            "properties": {"message": {"const": "File uploaded successfully"},
                           "file": schema("FileWithUrl")}
        },
        "Message": {"type": "object", "required": ["message"],
                    "properties": {"message": string()}},
        "SignedUrl": {
            "type": "object", "required": ["url", "expires_at"],
            "properties": {"url": {"type": "string", "format": "uri"}, "expires_at": time.clone()}
        },
        "Revoked": {
            "type": "object", "required": ["revoked_before"],
            "properties": {"revoked_before": time}
        },
        "Usage": usage,
        "Limits": limits,
        "Health": health,
        "Ready": ready,
    })
}

fn www_authenticate() -> Value {
    header_obj(
        "`Bearer realm=\"api\"`",
        json!({"const": "Bearer realm=\"api\""}),
        true,
    )
}

/// The shared responses, by name; each also has a `...Head` twin without a body.
fn responses() -> Vec<(&'static str, Value)> {
    let error = || schema("Error");
    vec![
        (
            "BadRequest",
            json_resp(
                "Invalid input: field errors (DRF's shape) or `{\"detail\"}`.",
                schema("BadRequest"),
            ),
        ),
        (
            "Unauthorized",
            with_headers(
                json_resp(
                    "No token (`Authentication credentials were not provided.`), or a bad, \
                     expired, ended (session revoked) or non-access one (`code: token_not_valid`).",
                    error(),
                ),
                &[("WWW-Authenticate", www_authenticate())],
            ),
        ),
        (
            "NotFound",
            json_resp(
                "`{\"detail\": \"Not found.\"}`: no such thing visible to the caller (another \
                 tenant's private file answers the same), or no route for the path.",
                error(),
            ),
        ),
        (
            "RequestTimeout",
            json_resp(
                "The request body stopped arriving (`server.body_read_timeout_secs`); \
                 `code: body_timeout`.",
                error(),
            ),
        ),
        (
            "PayloadTooLarge",
            json_resp(
                "Over a limit; nothing was kept. `code`: `quota_exceeded` (tenant quota), \
                 `request_too_large` (`server.max_request_body`, with `max_request_body`), \
                 `file_too_large` (`limits.max_file_size`).",
                error(),
            ),
        ),
        (
            "UnsupportedMediaType",
            json_resp(
                "A request body type this route does not read, or a file type outside \
                 `limits.allowed_content_types`.",
                error(),
            ),
        ),
        (
            "MethodNotAllowed",
            with_headers(
                json_resp(
                    "`Method \"X\" not allowed.`: here only through \
                     `X-HTTP-Method-Override` naming a method the path does not take (any \
                     method a path does not list answers this way).",
                    error(),
                ),
                &[(
                    "Allow",
                    header_obj("The methods the path takes.", string(), true),
                )],
            ),
        ),
        (
            "Unavailable",
            json_resp(
                "A store did not answer: `code` is `metadata_unavailable` or \
                 `blob_store_unavailable`.",
                error(),
            ),
        ),
    ]
}

fn parameters() -> Value {
    let path = |name: &str, s: Value, description: &str| {
        json!({"name": name, "in": "path", "required": true, "schema": s,
               "description": description})
    };
    let query = |name: &str, s: Value, description: &str| {
        json!({"name": name, "in": "query", "required": false, "schema": s,
               "description": description})
    };
    let hdr = |name: &str, s: Value, description: &str| {
        json!({"name": name, "in": "header", "required": false, "schema": s,
               "description": description})
    };
    json!({
        "FileId": path("id", schema("FileId"), "The file's id."),
        "Resource": path("resource", schema("Label"), "The resource."),
        "ResourceId": path("resource_id", schema("Label"), "The resource id."),
        "Page": query("page", string(),
            "1-based page number. Not an integer: page 1; past the end: the last page."),
        "PageSize": query("page_size", integer(1),
            "Files per page (default 10); above `limits.max_page_size` it is capped."),
        "FilterResource": query("resource", string(), "Only this resource (empty: no filter)."),
        "FilterResourceId": query("resource_id", string(),
            "Only this resource id (empty: no filter)."),
        "FilterTenant": query("tenant_username", string(),
            "Only this owner's files (empty: no filter)."),
        "Range": hdr("Range", string(),
            "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several ranges or a \
             malformed one: the whole body."),
        "IfNoneMatch": hdr("If-None-Match", string(),
            "ETags (weak comparison) or `*`: 304 when one is the file's."),
        "IfRange": hdr("If-Range", string(),
            "The Range applies only if this is exactly the current ETag."),
        "TusResumable": {"name": "Tus-Resumable", "in": "header", "required": true,
            "schema": {"const": "1.0.0"},
            "description": "The tus version; anything else answers 412."},
    })
}

/// The headers of a file download (`/dl/...` and `/content`).
fn download_headers(range: bool, body: bool) -> Vec<(&'static str, Value)> {
    let mut h = vec![
        (
            "ETag",
            header_obj("The sha256 of the bytes, quoted (strong).", string(), true),
        ),
        (
            "Cache-Control",
            header_obj("How the bytes may be cached.", string(), true),
        ),
        (
            "X-Content-Type-Options",
            header_obj(
                "The stored type is never trusted for rendering.",
                json!({"const": "nosniff"}),
                true,
            ),
        ),
        (
            "Accept-Ranges",
            header_obj("", json!({"const": "bytes"}), true),
        ),
    ];
    if body {
        h.push((
            "Content-Disposition",
            header_obj(
                "`attachment; filename=\"<ascii>\"; filename*=UTF-8''<name>`",
                string(),
                true,
            ),
        ));
    }
    if range {
        h.push((
            "Content-Range",
            header_obj(
                "`bytes a-b/size` (206) or `bytes */size` (416).",
                string(),
                true,
            ),
        ));
    }
    h
}

/// GET responses of a file's bytes; `unauthorized`/`forbidden` per route.
fn download_responses(extra: Vec<(&'static str, Value)>) -> Vec<(&'static str, Value)> {
    // Any type: the stored one (no schema: the bytes are the file's, whatever they are).
    let bytes = json!({"*/*": {}});
    let mut ok = json!({"description": "The whole file, streamed; `Content-Type` is the stored type.",
                        "content": bytes.clone()});
    ok = with_headers(ok, &download_headers(false, true));
    let mut partial = json!({"description": "The requested range.", "content": bytes});
    partial = with_headers(partial, &download_headers(true, true));
    let mut out = vec![
        ("200", ok),
        ("206", partial),
        (
            "304",
            with_headers(
                empty("`If-None-Match` names the current ETag."),
                &download_headers(false, false),
            ),
        ),
        (
            "416",
            with_headers(
                empty("The range starts past the end; `Content-Range: bytes */size`."),
                &download_headers(true, false),
            ),
        ),
        ("404", resp("NotFound")),
        ("503", resp("Unavailable")),
    ];
    out.extend(extra);
    out
}

fn tus_resumable() -> Value {
    header_obj("The tus version spoken.", json!({"const": "1.0.0"}), true)
}

/// A tus response: a shared one with `Tus-Resumable` added (tus answers every outcome with it).
fn tus(r: Value) -> Value {
    with_headers(r, &[("Tus-Resumable", tus_resumable())])
}

fn tus_shared(name: &str) -> Value {
    let r = responses()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| r)
        .unwrap_or_else(|| empty(name));
    tus(r)
}

fn tus_error(description: &str) -> Value {
    tus(json_resp(description, schema("Error")))
}

fn add(p: &mut Map<String, Value>, path: &str, method: &str, operation: Value) {
    if let Some(item) = p
        .entry(path.to_owned())
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        item.insert(method.to_owned(), operation);
    }
}

fn paths(cfg: &Config) -> Value {
    let auth = || ("401", resp("Unauthorized"));
    let unavailable = || ("503", resp("Unavailable"));
    let bad = || ("400", resp("BadRequest"));
    let not_found = || ("404", resp("NotFound"));
    let mut p = Map::new();

    // Tokens.
    let form_bodies = |s: &str| {
        json!({"required": true, "content": {
            "application/json": {"schema": schema(s)},
            "application/x-www-form-urlencoded": {"schema": schema(s)},
            "multipart/form-data": {"schema": schema(s)},
        }})
    };
    add(
        &mut p,
        "/api/token/",
        "post",
        op(
            "obtainToken",
            "tokens",
            "Obtain an access and a refresh token (SimpleJWT). Also at `/api/token`.",
            false,
            vec![],
            Some(form_bodies("Credentials")),
            vec![
                ("200", json_resp("A token pair.", schema("TokenPair"))),
                bad(),
                (
                    "401",
                    json_resp(
                        "`No active account found with the given credentials`.",
                        schema("Error"),
                    ),
                ),
                ("415", resp("UnsupportedMediaType")),
                (
                    "429",
                    with_headers(
                        json_resp("Too many failed logins.", schema("Error")),
                        &[(
                            "Retry-After",
                            header_obj("Seconds to wait.", json!({"type": "integer"}), true),
                        )],
                    ),
                ),
                unavailable(),
            ],
        ),
    );
    add(
        &mut p,
        "/api/token/refresh/",
        "post",
        op(
            "refreshToken",
            "tokens",
            "Rotate a refresh token: a new pair; the one sent is spent. Also at \
             `/api/token/refresh`.",
            false,
            vec![],
            Some(form_bodies("RefreshRequest")),
            vec![
                ("200", json_resp("A new token pair.", schema("TokenPair"))),
                bad(),
                (
                    "401",
                    json_resp(
                        "`Token is invalid or expired` (`code: token_not_valid`).",
                        schema("Error"),
                    ),
                ),
                ("415", resp("UnsupportedMediaType")),
                unavailable(),
            ],
        ),
    );

    // Seed files.
    add(
        &mut p,
        "/api/upload",
        "post",
        op(
            "upload",
            "files",
            "Upload a file (multipart), streamed; replaces the caller's file of the same \
             resource, resource id and name. Also at `/api/upload/`.",
            true,
            vec![],
            Some(json!({"required": true, "content": {
                "multipart/form-data": {"schema": schema("UploadForm")}
            }})),
            vec![
                (
                    "200",
                    json!({
                        "description": "Stored.",
                        "content": json_content(schema("UploadResult")),
                        "links": {
                            "GetFile": {"operationId": "v2GetFile",
                                        "parameters": {"id": "$response.body#/file/id"}},
                        }
                    }),
                ),
                (
                    "400",
                    json_resp(
                        &format!(
                            "Field errors, including a file over `limits.max_file_size` \
                             ({} bytes): `{{\"file\": [\"File size exceeds the maximum \
                             allowed size of N bytes\"]}}`.",
                            cfg.limits.max_file_size
                        ),
                        schema("BadRequest"),
                    ),
                ),
                auth(),
                ("408", resp("RequestTimeout")),
                ("413", resp("PayloadTooLarge")),
                ("415", resp("UnsupportedMediaType")),
                unavailable(),
            ],
        ),
    );
    let resource_params = || vec![param("Resource"), param("ResourceId")];
    let mut list_params = resource_params();
    list_params.extend([param("Page"), param("PageSize")]);
    let list_resource = op(
        "listResourceFiles",
        "files",
        "The caller's files and every tenant's public ones of a resource, by name, a page \
             at a time, with download URLs.",
        true,
        list_params,
        None,
        vec![
            ("200", json_resp("A page.", schema("PageWithUrls"))),
            bad(),
            auth(),
            not_found(),
            unavailable(),
        ],
    );
    add(
        &mut p,
        "/api/files/{resource}/{resource_id}",
        "head",
        head_of(&list_resource, "listResourceFilesHead"),
    );
    add(
        &mut p,
        "/api/files/{resource}/{resource_id}",
        "get",
        list_resource,
    );
    add(
        &mut p,
        "/api/files/{resource}/{resource_id}",
        "delete",
        op(
            "deleteResourceFiles",
            "files",
            "Delete the caller's own files of a resource (also when there are none).",
            true,
            resource_params(),
            None,
            vec![
                (
                    "200",
                    json_resp("`File deleted successfully`.", schema("Message")),
                ),
                bad(),
                auth(),
                not_found(),
                unavailable(),
            ],
        ),
    );
    let list_files = op(
        "listFiles",
        "files",
        "Visible files filtered by owner, resource and resource id, a page at a time (no \
             URLs).",
        true,
        vec![
            param("FilterTenant"),
            param("FilterResource"),
            param("FilterResourceId"),
            param("Page"),
            param("PageSize"),
        ],
        None,
        vec![
            ("200", json_resp("A page.", schema("Page"))),
            bad(),
            auth(),
            unavailable(),
        ],
    );
    add(
        &mut p,
        "/api/list_files",
        "head",
        head_of(&list_files, "listFilesHead"),
    );
    add(&mut p, "/api/list_files", "get", list_files);
    let dl = op(
        "download",
        "files",
        "A signed download link (from a listing or `POST /api/v2/files/{id}/url`): no token.",
        false,
        vec![
            json!({"name": "tenant", "in": "path", "required": true,
                   "schema": {"type": "string", "pattern": "^[0-9]+$"}}),
            json!({"name": "file_id", "in": "path", "required": true, "schema": string()}),
            json!({"name": "expires", "in": "query", "required": true,
                   "schema": {"type": "integer"}}),
            json!({"name": "iat", "in": "query", "required": false,
                   "schema": {"type": "integer", "minimum": 1}}),
            json!({"name": "sig", "in": "query", "required": true, "schema": string()}),
            param("Range"),
            param("IfNoneMatch"),
            param("IfRange"),
        ],
        None,
        download_responses(vec![(
            "403",
            json_resp(
                "Invalid or expired signature (`invalid_signature`), or a link revoked after it \
                 was issued (`url_revoked`).",
                schema("Error"),
            ),
        )]),
    );
    add(
        &mut p,
        "/dl/{tenant}/{file_id}",
        "head",
        head_of(&dl, "downloadHead"),
    );
    add(&mut p, "/dl/{tenant}/{file_id}", "get", dl);

    // v2 files.
    add(
        &mut p,
        "/api/v2/files",
        "get",
        op(
            "v2ListFiles",
            "v2",
            "Visible files, keyset-paginated: follow `next_cursor`.",
            true,
            vec![
                param("FilterResource"),
                param("FilterResourceId"),
                param("FilterTenant"),
                json!({"name": "limit", "in": "query", "required": false,
                       "schema": or_empty(integer(1)),
                       "description": "Files per page (default 100); capped at \
                                       `limits.max_page_size`."}),
                json!({"name": "cursor", "in": "query", "required": false, "schema": string(),
                       "description": "`next_cursor` of the previous page; anything else: 400."}),
            ],
            None,
            vec![
                ("200", json_resp("A page.", schema("V2Page"))),
                bad(),
                auth(),
                unavailable(),
            ],
        ),
    );
    let file_links = || {
        json!({
            "GetFile": {"operationId": "v2GetFile", "parameters": {"id": "$response.body#/id"}},
            "GetContent": {"operationId": "v2GetContent",
                           "parameters": {"id": "$response.body#/id"}},
            "HeadContent": {"operationId": "v2HeadContent",
                            "parameters": {"id": "$response.body#/id"}},
            "CreateUrl": {"operationId": "v2CreateUrl",
                          "parameters": {"id": "$response.body#/id"}},
            "DeleteFile": {"operationId": "v2DeleteFile",
                           "parameters": {"id": "$response.body#/id"}},
        })
    };
    add(
        &mut p,
        "/api/v2/files/{id}",
        "get",
        op(
            "v2GetFile",
            "v2",
            "A file's metadata (own or public).",
            true,
            vec![param("FileId")],
            None,
            vec![
                ("200", json_resp("The file.", schema("FileWithUrl"))),
                auth(),
                not_found(),
                unavailable(),
            ],
        ),
    );
    add(
        &mut p,
        "/api/v2/files/{id}",
        "delete",
        op(
            "v2DeleteFile",
            "v2",
            "Delete one of the caller's files; its download URLs stop working.",
            true,
            vec![param("FileId")],
            None,
            vec![
                ("204", empty("Deleted.")),
                auth(),
                not_found(),
                unavailable(),
            ],
        ),
    );
    let mut content = op(
        "v2GetContent",
        "v2",
        "A file's bytes, streamed, with ranges and conditional requests.",
        true,
        vec![
            param("FileId"),
            param("Range"),
            param("IfNoneMatch"),
            param("IfRange"),
        ],
        None,
        download_responses(vec![auth()]),
    );
    add(
        &mut p,
        "/api/v2/files/{id}/content",
        "head",
        head_of(&content, "v2HeadContent"),
    );
    content["responses"]["200"]["description"] = "The whole file, streamed.".into();
    add(&mut p, "/api/v2/files/{id}/content", "get", content);
    add(
        &mut p,
        "/api/v2/files/{id}/url",
        "post",
        op(
            "v2CreateUrl",
            "v2",
            "A download URL that needs no token until it expires.",
            true,
            vec![
                param("FileId"),
                json!({"name": "expires_in", "in": "query", "required": false,
                       "schema": or_blank(json!({"type": "integer", "minimum": 1,
                                                 "maximum": MAX_URL_TTL_SECS})),
                       "description": "Lifetime in seconds (default `limits.url_ttl_secs`), \
                                       never past the file's own expiry."}),
            ],
            None,
            vec![
                ("200", json_resp("The URL.", schema("SignedUrl"))),
                bad(),
                auth(),
                not_found(),
                unavailable(),
            ],
        ),
    );
    add(
        &mut p,
        "/api/v2/files/{resource}/{resource_id}/{name}",
        "put",
        op(
            "v2PutFile",
            "v2",
            "Upload a file as the raw request body (no multipart), streamed; the rules of \
             `/api/upload`. `Location` names the file.",
            true,
            vec![
                param("Resource"),
                param("ResourceId"),
                json!({"name": "name", "in": "path", "required": true,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                  "pattern": "^[^/\\\\\\x00-\\x1F\\x7F-\\x9F]+$",
                                  "not": {"enum": [".", ".."]}},
                       "description": "The file name: at most 255 bytes of UTF-8, not `.` or \
                                       `..`, no `/`, `\\` or control characters."}),
                json!({"name": "is_public", "in": "query", "required": false,
                       "schema": is_public()}),
                json!({"name": "expires_in", "in": "query", "required": false,
                       "schema": expires_in()}),
                json!({"name": "expire_at", "in": "query", "required": false,
                       "schema": expire_at()}),
            ],
            Some(json!({"required": true, "content": {
                "*/*": {"schema": {"type": "string", "format": "binary"}}
            }, "description": format!(
                "The bytes; at most {} (`limits.max_file_size`). `Content-Type` is kept \
                 (sniffed when absent or generic).", cfg.limits.max_file_size)})),
            vec![
                (
                    "200",
                    with_headers(
                        json!({"description": "Replaced the caller's file of that name.",
                               "content": json_content(schema("FileWithUrl")),
                               "links": file_links()}),
                        &[("Location", header_obj("The file's URL.", string(), true))],
                    ),
                ),
                (
                    "201",
                    with_headers(
                        json!({"description": "Created.",
                               "content": json_content(schema("FileWithUrl")),
                               "links": file_links()}),
                        &[("Location", header_obj("The file's URL.", string(), true))],
                    ),
                ),
                bad(),
                auth(),
                not_found(),
                ("408", resp("RequestTimeout")),
                ("413", resp("PayloadTooLarge")),
                ("415", resp("UnsupportedMediaType")),
                unavailable(),
            ],
        ),
    );
    add(
        &mut p,
        "/api/v2/urls/revoke",
        "post",
        op(
            "v2RevokeUrls",
            "v2",
            "Every `/dl/...` link the caller was handed until now stops working.",
            true,
            vec![],
            None,
            vec![
                ("200", json_resp("Revoked.", schema("Revoked"))),
                auth(),
                unavailable(),
            ],
        ),
    );
    add(
        &mut p,
        "/api/v2/sessions/revoke",
        "post",
        op(
            "v2RevokeSessions",
            "account",
            "End the caller's sessions: every access and refresh token of the caller issued \
             until now (this one too) answers 401, on every node.",
            true,
            vec![],
            None,
            vec![
                (
                    "200",
                    json_resp(
                        "Ended: tokens issued before `revoked_before` answer 401.",
                        schema("Revoked"),
                    ),
                ),
                auth(),
                unavailable(),
            ],
        ),
    );
    let usage = op(
        "v2Usage",
        "account",
        "The caller's files, bytes and quotas (`null`: none).",
        true,
        vec![],
        None,
        vec![
            ("200", json_resp("Usage.", schema("Usage"))),
            auth(),
            unavailable(),
        ],
    );
    add(
        &mut p,
        "/api/v2/usage",
        "head",
        head_of(&usage, "v2UsageHead"),
    );
    add(&mut p, "/api/v2/usage", "get", usage);
    let limits = op(
        "v2Limits",
        "account",
        "The limits a client must respect (no token needed).",
        false,
        vec![],
        None,
        vec![("200", json_resp("Limits.", schema("Limits")))],
    );
    add(
        &mut p,
        "/api/v2/limits",
        "head",
        head_of(&limits, "v2LimitsHead"),
    );
    add(&mut p, "/api/v2/limits", "get", limits);

    // tus.
    tus_paths(&mut p, cfg);

    // Operations.
    let health = op(
        "healthz",
        "ops",
        "200 while the process runs.",
        false,
        vec![],
        None,
        vec![("200", json_resp("Alive.", schema("Health")))],
    );
    add(&mut p, "/healthz", "head", head_of(&health, "healthzHead"));
    add(&mut p, "/healthz", "get", health);
    let ready = op(
        "readyz",
        "ops",
        "200 when the metadata store and the blob store answer, else 503.",
        false,
        vec![],
        None,
        vec![
            ("200", json_resp("Ready.", schema("Ready"))),
            (
                "503",
                json_resp("A store does not answer.", schema("Ready")),
            ),
        ],
    );
    add(&mut p, "/readyz", "head", head_of(&ready, "readyzHead"));
    add(&mut p, "/readyz", "get", ready);
    let openapi = op(
        "openapi",
        "ops",
        "This document.",
        false,
        vec![],
        None,
        vec![("200", json_resp("OpenAPI 3.1.", json!({"type": "object"})))],
    );
    add(
        &mut p,
        "/api/openapi.json",
        "head",
        head_of(&openapi, "openapiHead"),
    );
    add(&mut p, "/api/openapi.json", "get", openapi);
    Value::Object(p)
}

fn tus_paths(p: &mut Map<String, Value>, cfg: &Config) {
    let hdr = |name: &str, required: bool, s: Value, description: &str| {
        json!({"name": name, "in": "header", "required": required, "schema": s,
               "description": description})
    };
    let checksum = hdr(
        "Upload-Checksum",
        false,
        json!({"type": "string", "pattern": "^(sha1|sha256) [A-Za-z0-9+/]+={0,2}$"}),
        "`<algorithm> <base64 digest>` of this chunk (sha1 or sha256); a mismatch answers 460 \
         and the chunk is discarded.",
    );
    let chunk_body = |required: bool| {
        json!({"required": required, "content": {
            "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
        }, "description": match cfg.server.max_request_body {
            Some(max) => format!("A chunk of any size up to {max} bytes \
                                  (`server.max_request_body`)."),
            None => "A chunk of any size.".to_owned(),
        }})
    };
    let offset = || {
        header_obj(
            "Bytes received so far.",
            json!({"type": "integer", "minimum": 0}),
            true,
        )
    };
    let expires = || {
        header_obj(
            "When an unfinished upload is discarded (IMF-fixdate); absent once complete.",
            string(),
            false,
        )
    };
    let common = |extra: Vec<(&'static str, Value)>| {
        let mut v = vec![
            ("400", tus_shared("BadRequest")),
            ("401", tus_shared("Unauthorized")),
            (
                "412",
                with_headers(
                    tus_error("`Tus-Resumable` is not 1.0.0 (`code: tus_version_unsupported`)."),
                    &[(
                        "Tus-Version",
                        header_obj("", json!({"const": "1.0.0"}), true),
                    )],
                ),
            ),
            ("405", tus_shared("MethodNotAllowed")),
            ("503", tus_shared("Unavailable")),
        ];
        v.extend(extra);
        v
    };
    let gone = || {
        (
            "410",
            tus_error("The upload expired (`code: upload_expired`)."),
        )
    };
    let locked = || {
        (
            "423",
            tus_error("Another request is writing this upload (`code: upload_busy`)."),
        )
    };
    let chunk_errors = || {
        vec![
            ("408", tus_shared("RequestTimeout")),
            (
                "413",
                tus_error(
                    "Over `limits.max_file_size` (`file_too_large`), past `Upload-Length` \
                     (`upload_length_exceeded`), over the tenant's quota (`quota_exceeded`), \
                     or a chunk over `server.max_request_body` (`request_too_large`).",
                ),
            ),
            ("415", tus_shared("UnsupportedMediaType")),
            (
                "460",
                tus_error("`Upload-Checksum` does not match (`code: checksum_mismatch`)."),
            ),
        ]
    };
    let mut created = vec![(
        "201",
        with_headers(
            tus(empty(
                "Created; with a first chunk, `Upload-Offset` says how much was kept.",
            )),
            &[
                ("Location", header_obj("The upload's URL.", string(), true)),
                ("Upload-Offset", offset()),
                ("Upload-Expires", expires()),
            ],
        ),
    )];
    created.extend(chunk_errors());
    add(
        p,
        "/api/v2/uploads",
        "post",
        op(
            "tusCreate",
            "uploads",
            "tus creation (and creation-with-upload when there is a body). Clients that cannot \
             send PATCH or DELETE may POST to the upload's URL with `X-HTTP-Method-Override`.",
            true,
            vec![
                param("TusResumable"),
                hdr(
                    "Upload-Length",
                    true,
                    json!({"type": "integer", "minimum": 0,
                           "maximum": cfg.limits.max_file_size}),
                    "The file's size in bytes; over `limits.max_file_size` answers 413.",
                ),
                hdr(
                    "Upload-Metadata",
                    true,
                    string(),
                    "Comma-separated `key base64(value)`: `filename` (or `name`), `resource`, \
                     `resource_id` required; `is_public`, `content_type` (or `filetype`, \
                     `type`), `expires_in` or `expire_at` optional. Field errors name the key.",
                ),
                checksum.clone(),
            ],
            Some(chunk_body(false)),
            common(created),
        ),
    );
    let discovery = |id: &str, allow: &str| {
        let mut headers = vec![
            (
                "Tus-Version",
                header_obj("", json!({"const": "1.0.0"}), true),
            ),
            (
                "Tus-Extension",
                header_obj(
                    "The tus extensions: creation, creation-with-upload, termination, \
                     expiration, checksum.",
                    string(),
                    true,
                ),
            ),
            (
                "Tus-Checksum-Algorithm",
                header_obj("", json!({"const": crate::tus::CHECKSUM_ALGORITHMS}), true),
            ),
            (
                "Tus-Max-Size",
                header_obj("`limits.max_file_size`.", json!({"type": "integer"}), true),
            ),
            (
                "Tus-Max-Chunk-Size",
                header_obj(
                    "The largest chunk accepted (`server.max_request_body`), when set.",
                    json!({"type": "integer"}),
                    cfg.server.max_request_body.is_some(),
                ),
            ),
            ("Allow", header_obj("", json!({"const": allow}), true)),
        ];
        headers.push(("Tus-Resumable", tus_resumable()));
        let mut params = vec![];
        if id == "tusUploadOptions" {
            params.push(json!({"name": "id", "in": "path", "required": true, "schema": string()}));
        }
        op(
            id,
            "uploads",
            "tus discovery: version, extensions, checksum algorithms and limits (no token).",
            false,
            params,
            None,
            vec![(
                "204",
                with_headers(empty("What this server supports."), &headers),
            )],
        )
    };
    add(
        p,
        "/api/v2/uploads",
        "options",
        discovery("tusOptions", "POST, OPTIONS"),
    );
    add(
        p,
        "/api/v2/uploads/{id}",
        "options",
        discovery("tusUploadOptions", "HEAD, PATCH, DELETE, OPTIONS"),
    );
    let id = || json!({"name": "id", "in": "path", "required": true, "schema": string()});
    let head_error = |code: &'static str, description: &str| (code, tus(empty(description)));
    add(
        p,
        "/api/v2/uploads/{id}",
        "head",
        op(
            "tusHead",
            "uploads",
            "Where an upload stands.",
            true,
            vec![id(), param("TusResumable")],
            None,
            vec![
                (
                    "200",
                    with_headers(
                        tus(empty("The upload's offset and length.")),
                        &[
                            ("Upload-Offset", offset()),
                            (
                                "Upload-Length",
                                header_obj("", json!({"type": "integer", "minimum": 0}), true),
                            ),
                            (
                                "Upload-Metadata",
                                header_obj("As sent at creation.", string(), false),
                            ),
                            ("Upload-Expires", expires()),
                            (
                                "Cache-Control",
                                header_obj("", json!({"const": "no-store"}), true),
                            ),
                        ],
                    ),
                ),
                head_error("400", "Bad header."),
                (
                    "401",
                    with_headers(
                        tus(empty("Not authenticated.")),
                        &[("WWW-Authenticate", www_authenticate())],
                    ),
                ),
                head_error("404", "No such upload of the caller's."),
                head_error("410", "The upload expired."),
                (
                    "412",
                    with_headers(
                        tus(empty("`Tus-Resumable` is not 1.0.0.")),
                        &[(
                            "Tus-Version",
                            header_obj("", json!({"const": "1.0.0"}), true),
                        )],
                    ),
                ),
                (
                    "405",
                    with_headers(
                        tus(empty(
                            "`X-HTTP-Method-Override` names a method not taken here.",
                        )),
                        &[(
                            "Allow",
                            header_obj("The methods the path takes.", string(), true),
                        )],
                    ),
                ),
                head_error("503", "A store did not answer."),
            ],
        ),
    );
    let mut patched = vec![
        (
            "204",
            with_headers(
                tus(empty(
                    "The chunk is stored; when it completes the upload, the file exists.",
                )),
                &[("Upload-Offset", offset()), ("Upload-Expires", expires())],
            ),
        ),
        ("404", tus_shared("NotFound")),
        (
            "409",
            tus_error(
                "`Upload-Offset` is not the upload's (`code: offset_mismatch`, with \
                 `upload_offset`).",
            ),
        ),
        gone(),
        locked(),
    ];
    patched.extend(chunk_errors());
    add(
        p,
        "/api/v2/uploads/{id}",
        "patch",
        op(
            "tusPatch",
            "uploads",
            "Append a chunk at `Upload-Offset`.",
            true,
            vec![
                id(),
                param("TusResumable"),
                hdr(
                    "Upload-Offset",
                    true,
                    json!({"type": "integer", "minimum": 0}),
                    "Where this chunk starts: the upload's current offset.",
                ),
                checksum,
            ],
            Some(chunk_body(true)),
            common(patched),
        ),
    );
    add(
        p,
        "/api/v2/uploads/{id}",
        "delete",
        op(
            "tusDelete",
            "uploads",
            "tus termination: discard an unfinished upload.",
            true,
            vec![id(), param("TusResumable")],
            None,
            common(vec![
                ("204", tus(empty("Terminated."))),
                ("404", tus_shared("NotFound")),
                gone(),
                locked(),
            ]),
        ),
    );
}

/// Every response object (inline or shared) carries `X-Request-Id`.
fn add_request_id(doc: &mut Value) {
    let header = header_obj(
        "The request's id: the client's `X-Request-Id` if valid, else a new one.",
        string(),
        true,
    );
    let mut stamp = |r: &mut Value| {
        if r.get("$ref").is_none() {
            let h = r
                .as_object_mut()
                .map(|o| o.entry("headers").or_insert_with(|| json!({})));
            if let Some(Value::Object(h)) = h {
                h.insert("X-Request-Id".into(), header.clone());
            }
        }
    };
    if let Some(Value::Object(rs)) = doc.pointer_mut("/components/responses") {
        rs.values_mut().for_each(&mut stamp);
    }
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for item in paths.values_mut() {
            let Value::Object(ops) = item else { continue };
            for operation in ops.values_mut() {
                if let Some(Value::Object(rs)) = operation.get_mut("responses") {
                    rs.values_mut().for_each(&mut stamp);
                }
            }
        }
    }
}

const DESCRIPTION: &str = "mtfu, a multi-tenant file upload service. The routes under \
`/api/` (not `/api/v2/`) are those of the original Django REST framework service, with its \
field names, statuses and error shapes; `/api/v2/` adds file ids, streamed downloads with \
ranges, signed URLs, resumable uploads (tus 1.0.0) and quotas.\n\n\
Conventions: JSON errors are `{\"detail\": ..., \"code\"?: ...}`, field validation errors \
`{\"<field>\": [\"<message>\"]}` (400). A path no route matches answers 404 `{\"detail\": \
\"Not found.\"}`; a method a documented path does not list answers 405 with `Allow` (on \
authenticated paths, after authentication: 401 first). The seed routes also answer with or \
without their trailing slash (`/api/token` and `/api/token/`, `/api/upload/`, \
`/api/files/{resource}/{resource_id}/`, `/api/list_files/`), as does `/api/v2/uploads/`. \
Every response carries `X-Request-Id`. Times are RFC 3339 UTC with microseconds.\n\n\
Not listed: `/.well-known/acme-challenge/{token}`, answered only while an ACME order of this \
server waits for HTTP-01 validation.";

/// The document, with `server_url` (the client's base URL) as its server.
pub fn document(cfg: &Config, server_url: &str) -> Value {
    let mut shared = Map::new();
    for (name, r) in responses() {
        let mut head = r.clone();
        if let Some(o) = head.as_object_mut() {
            o.remove("content");
        }
        shared.insert(format!("{name}Head"), head);
        shared.insert(name.to_owned(), r);
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mtfu",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "servers": [{"url": server_url}],
        "tags": [
            {"name": "tokens", "description": "JWT access and refresh tokens (SimpleJWT)."},
            {"name": "files", "description": "The original service's file routes."},
            {"name": "v2", "description": "Files by id, streamed downloads, signed URLs."},
            {"name": "uploads", "description": "Resumable uploads, tus 1.0.0."},
            {"name": "account", "description": "Usage, quotas and limits."},
            {"name": "ops", "description": "Health, readiness, this document."},
        ],
        "paths": paths(cfg),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "An access token from `POST /api/token/`."}
            },
            "schemas": schemas(cfg),
            "parameters": parameters(),
            "responses": Value::Object(shared),
        }
    });
    add_request_id(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v` points into `doc`.
    fn refs_resolve(doc: &Value, v: &Value, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
                    if target.is_none() {
                        bad.push(r.clone());
                    }
                }
                m.values().for_each(|x| refs_resolve(doc, x, bad));
            }
            Value::Array(a) => a.iter().for_each(|x| refs_resolve(doc, x, bad)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves_and_operation_ids_are_unique() {
        let doc = document(&Config::default(), "https://example.test/prod");
        let mut bad = Vec::new();
        refs_resolve(&doc, &doc, &mut bad);
        assert!(bad.is_empty(), "dangling: {bad:?}");
        let mut ids = std::collections::BTreeSet::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("item").values() {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "duplicate {id}");
            }
        }
        assert_eq!(doc["servers"][0]["url"], "https://example.test/prod");
    }
}
