//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every route mtfu serves.
//!
//! Derived with `utoipa` from the types the handlers write: the response bodies are the
//! [`crate::http::wire`] types (`ToSchema`), so a field added to one is in the document; the
//! operations are `#[utoipa::path]` items, one module per group ([`seed`], [`v2`], [`tus`]),
//! and [`shared`] holds the parameter schemas and responses they share. [`finish`] then adds
//! what holds for every operation (the `HEAD` twin of a `GET`, `X-Request-Id`, `Tus-Resumable`
//! on tus answers, which headers are always sent) and what the configuration decides (the tus
//! maximum). `servers[0].url` is the base URL the client used (`server.public_url`, else its
//! scheme, host and `server.base_path`), so clients and fuzzers behind a gateway stage reach
//! the routes. Every path is relative to that URL.
//!
//! It cannot drift silently: `tests/it/openapi.rs` sends every method to every path template of
//! the routing table ([`super::router::templates`]) on a live server and requires the set of
//! (path, method) pairs served to equal the set documented here, `docs/api.md` is checked
//! against it, `.ci/schemathesis` fuzzes the server against it (statuses, headers, bodies) and
//! `.ci/openapi-client` generates a Python client from it and drives the server with that.
//!
//! Not documented: `/.well-known/acme-challenge/{token}`, which answers only while an ACME order
//! of this server waits for HTTP-01 validation (and then only the CA), outside `base_path`.

mod finish;
mod seed;
mod shared;
mod tus;
mod v2;

use http::{HeaderValue, Method, StatusCode, header};
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;

use super::error::ApiError;
use super::files::base_url;
use super::wire;
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
Every response carries `X-Request-Id`. Times are RFC 3339 UTC with microseconds. With \
`[cors] allowed_origins` set, an `OPTIONS` preflight (with `Access-Control-Request-Method`) \
from an allowed origin answers 204 on every path, without a token; the `OPTIONS` operations \
listed here are those answered without CORS.\n\n\
Not listed: `/.well-known/acme-challenge/{token}`, answered only while an ACME order of this \
server waits for HTTP-01 validation.";

#[derive(OpenApi)]
#[openapi(
    info(title = "mtfu"),
    paths(
        seed::obtain_token, seed::refresh_token, seed::upload, seed::list_resource_files,
        seed::delete_resource_files, seed::list_files, seed::download,
        v2::list, v2::get_file, v2::delete_file, v2::get_content, v2::create_url, v2::put_file,
        v2::revoke_urls, v2::revoke_sessions, v2::usage, v2::limits,
        tus::create, tus::options_uploads, tus::options_upload, tus::head, tus::patch,
        tus::delete,
        v2::healthz, v2::readyz, v2::openapi,
    ),
    components(
        schemas(
            shared::FileId, shared::Label, shared::FieldErrors, shared::BadRequestBody,
            wire::ErrorBody, wire::FileInfo, wire::FileWithUrl,
        ),
        responses(
            shared::BadRequest, shared::Unauthorized, shared::NotFound, shared::RequestTimeout,
            shared::PayloadTooLarge, shared::UnsupportedMediaType, shared::MethodNotAllowed,
            shared::Unavailable,
        ),
    ),
    tags(
        (name = "tokens", description = "JWT access and refresh tokens (SimpleJWT)."),
        (name = "files", description = "The original service's file routes."),
        (name = "v2", description = "Files by id, streamed downloads, signed URLs."),
        (name = "uploads", description = "Resumable uploads, tus 1.0.0."),
        (name = "account", description = "Usage, quotas and limits."),
        (name = "ops", description = "Health, readiness, this document."),
    ),
)]
struct ApiDoc;

/// The document, with `server_url` (the client's base URL) as its server.
pub fn document(cfg: &Config, server_url: &str) -> Value {
    let mut api = ApiDoc::openapi();
    api.info.description = Some(DESCRIPTION.to_owned());
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.servers = Some(vec![Server::new(server_url)]);
    if let Some(components) = api.components.as_mut() {
        let mut bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        bearer.description = Some("An access token from `POST /api/token/`.".to_owned());
        components.add_security_scheme("bearerAuth", SecurityScheme::Http(bearer));
    }
    let mut doc = serde_json::to_value(&api).unwrap_or(Value::Null);
    finish::finish(&mut doc, cfg);
    doc
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("item").values() {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "duplicate {id}");
            }
        }
        assert_eq!(doc["servers"][0]["url"], "https://example.test/prod");
    }

    /// A response body's schema is the type the handler writes: a field added to it is in the
    /// document without anyone writing it there.
    #[test]
    fn response_schemas_come_from_the_handlers_types() {
        let doc = document(&Config::default(), "https://example.test");
        let usage = &doc["paths"]["/api/v2/usage"]["get"]["responses"]["200"];
        let usage = &usage["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(usage, "#/components/schemas/Usage");
        let props = doc["components"]["schemas"]["Usage"]["properties"]
            .as_object()
            .expect("Usage properties");
        let body = serde_json::to_value(wire::Usage {
            files: 0,
            bytes: 0,
            quota_bytes: None,
            quota_files: None,
            reserved_bytes: 0,
            reserved_files: 0,
        })
        .expect("usage");
        let written: BTreeSet<&String> = body.as_object().expect("object").keys().collect();
        let documented: BTreeSet<&String> = props.keys().collect();
        assert_eq!(written, documented);
    }
}
