//! `GET /api/openapi.json` against the routes the server really serves: every path template of
//! the routing table (`mtfu::http::router::templates`) is sent every method, with a valid token
//! and parameters that name real files and uploads, and the (path, method) pairs that answer
//! anything but 404 `Not found.` or 405 must be exactly the pairs the document lists. A route
//! added without documenting it, or documented without existing, fails here. The document's
//! structure (OpenAPI 3.1, references, path parameters, security) is checked too.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app, spawn_with};

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Routing-table templates the document leaves out on purpose, with why.
const UNDOCUMENTED: [(&str, &str); 1] = [(
    "/.well-known/acme-challenge/{token}",
    "answered only while an ACME order of this server waits for HTTP-01 validation",
)];

/// A template as a comparable shape: every `{param}` is `{}` (the table names the first
/// segment of the raw-upload path `{id}`, the document `{resource}`) and a trailing slash is
/// dropped (`/api/token/` and `/api/token` are one route).
fn shape(template: &str) -> String {
    let t = match template.strip_suffix('/') {
        Some(t) if !t.is_empty() => t,
        _ => template,
    };
    t.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn document(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.expect("the document is JSON")
}

/// The (shape, METHOD) pairs the document lists, with each operation.
fn documented(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let m = method.to_ascii_uppercase();
            if METHODS.contains(&m.as_str()) {
                out.insert((shape(path), m), op.clone());
            }
        }
    }
    out
}

/// A file of john1's, new each time (deleting it must not spoil the next probe).
async fn new_file(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .upload(token, "openapi", "1", "probe.txt", b"probe")
        .await;
    assert_eq!(status, 200, "{body}");
    body["file"]["id"].as_str().expect("id").to_owned()
}

/// A tus upload of john1's, new each time.
async fn new_tus_upload(app: &TestApp, token: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let meta = format!(
        "filename {},resource {},resource_id {}",
        b64("probe.bin"),
        b64("openapi"),
        b64("1")
    );
    let r = app
        .client
        .post(app.url("/api/v2/uploads"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .header("Upload-Metadata", meta)
        .send()
        .await
        .expect("tus create");
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().expect("location");
    location.rsplit('/').next().expect("id").to_owned()
}

/// A path for `template` whose parameters name things that exist where that matters (a
/// file's id, an upload's id), so that "not found" can only mean "no route".
async fn concrete(app: &TestApp, token: &str, template: &str) -> String {
    let mut out = Vec::new();
    for seg in template.split('/') {
        let value = match seg {
            "{id}" if template.starts_with("/api/v2/uploads/") => new_tus_upload(app, token).await,
            // The raw-upload route: this segment is the resource.
            "{id}" if template.ends_with("/{name}") => "openapi".to_owned(),
            "{id}" => new_file(app, token).await,
            "{tenant}" => "1".to_owned(),
            "{name}" => "probe.txt".to_owned(),
            s if s.starts_with('{') => "probe".to_owned(),
            s => s.to_owned(),
        };
        out.push(value);
    }
    out.join("/")
}

/// Whether the server serves `method` on `path`: anything but 405, or 404 `Not found.` (the
/// answer for no route; a HEAD answer has no body, and its parameters exist, so any 404).
async fn served(app: &TestApp, token: Option<&str>, method: &str, path: &str) -> (bool, u16) {
    let mut req = app
        .client
        .request(
            Method::from_bytes(method.as_bytes()).expect("method"),
            app.url(path),
        )
        .header("Tus-Resumable", "1.0.0");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("probe");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let no_route = status == 405
        || (status == 404
            && (method == "HEAD" || body == serde_json::json!({"detail": "Not found."})));
    (!no_route, status)
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let app = spawn_app().await;
    let mut token = app.token("john1").await;
    let doc = document(&app).await;
    let documented = documented(&doc);

    let templates = mtfu::http::router::templates();
    let mut served_pairs = BTreeSet::new();
    let mut statuses = BTreeMap::new();
    for template in &templates {
        for method in METHODS {
            let path = concrete(&app, &token, template).await;
            let (yes, status) = served(&app, Some(&token), method, &path).await;
            if yes {
                served_pairs.insert((shape(template), method.to_owned()));
            }
            statuses.insert((template.to_string(), method), status);
            if status == 200 && *template == "/api/v2/sessions/revoke" {
                // That ended the token's session: the probes go on with a new one.
                token = app.token("john1").await;
            }
        }
    }
    let documented_pairs: BTreeSet<_> = documented.keys().cloned().collect();
    let undocumented: Vec<_> = served_pairs.difference(&documented_pairs).collect();
    let unserved: Vec<_> = documented_pairs.difference(&served_pairs).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}\ndocumented but not served: \
         {unserved:?}\nstatuses: {statuses:?}"
    );

    // Every documented path is a template of the routing table, and every template is
    // documented unless it is one of the few left out on purpose.
    let table: BTreeSet<String> = templates.iter().map(|t| shape(t)).collect();
    let paths: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(|p| shape(p))
        .collect();
    for p in &paths {
        assert!(
            table.contains(p),
            "documented {p} is not in the routing table"
        );
    }
    let excluded: BTreeSet<String> = UNDOCUMENTED.iter().map(|(t, _)| shape(t)).collect();
    for t in &table {
        assert!(
            paths.contains(t) != excluded.contains(t),
            "{t}: documented and excluded, or neither"
        );
    }
    // The left-out routes really serve nothing here (no ACME order is waiting).
    for (t, why) in UNDOCUMENTED {
        assert!(
            templates.contains(&t),
            "{t} ({why}) is not a route any more"
        );
        for method in METHODS {
            assert!(
                !served_pairs.contains(&(shape(t), method.to_owned())),
                "{method} {t} answers; document it"
            );
        }
    }
}

#[tokio::test]
async fn operations_without_security_are_exactly_those_that_need_no_token() {
    let app = spawn_app().await;
    let token = app.token("john1").await;
    let doc = document(&app).await;
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = method.to_ascii_uppercase();
            let secured = !op["security"].as_array().expect("security").is_empty();
            let concrete_path = concrete(&app, &token, path).await;
            let (_, status) = served(&app, None, &method, &concrete_path).await;
            if secured != (status == 401) {
                wrong.push(format!(
                    "{method} {path}: secured {secured}, {status} without a token"
                ));
            }
            if secured {
                assert_eq!(op["security"], serde_json::json!([{"bearerAuth": []}]));
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path}: no 401"
                );
            } else {
                // A 401 here is about credentials in the body (`/api/token/`), not a token.
                assert_ne!(
                    op["responses"]["401"]["$ref"], "#/components/responses/Unauthorized",
                    "{method} {path}"
                );
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Every `$ref` in `v` that does not point into `doc`.
fn dangling(doc: &Value, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
                if target.is_none() {
                    out.push(r.clone());
                }
            }
            m.values().for_each(|x| dangling(doc, x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| dangling(doc, x, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .expect("reference resolves"),
        None => v,
    }
}

#[tokio::test]
async fn the_document_is_well_formed_openapi_3_1() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"]
            .as_str()
            .expect("openapi")
            .starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // Paths are relative to the base URL this client used.
    assert_eq!(doc["servers"][0]["url"], app.base.as_str());
    let mut refs = Vec::new();
    dangling(&doc, &doc, &mut refs);
    assert!(refs.is_empty(), "dangling references: {refs:?}");

    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        assert!(path.starts_with('/'), "{path}");
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            let here = format!("{method} {path}");
            assert!(
                ids.insert(op["operationId"].as_str().expect("operationId").to_owned()),
                "{here}: duplicate operationId"
            );
            // Each template parameter is declared, required, in the path; nothing else is.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| resolve(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{here}: {p}");
                    p["name"].as_str().expect("name")
                })
                .collect();
            assert_eq!(declared, in_path, "{here}: path parameters");
            for requirement in op["security"].as_array().expect("security") {
                for name in requirement.as_object().expect("requirement").keys() {
                    assert!(schemes.contains_key(name), "{here}: scheme {name}");
                }
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{here}: no responses");
            for (code, r) in responses {
                assert!(
                    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
                    "{here}: status {code}"
                );
                let r = resolve(&doc, r);
                assert!(r["description"].is_string(), "{here} {code}: description");
                assert!(
                    r["headers"]["X-Request-Id"]["required"] == true,
                    "{here} {code}: X-Request-Id"
                );
            }
        }
    }
}

#[tokio::test]
async fn behind_a_base_path_the_server_url_carries_it() {
    let app = spawn_with(|c| c.server.base_path = "/prod".into()).await;
    let r = app
        .client
        .get(app.url("/prod/api/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("json");
    assert_eq!(
        doc["servers"][0]["url"],
        format!("{}/prod", app.base).as_str()
    );
    // The paths stay relative to it.
    assert!(doc["paths"]["/api/openapi.json"]["get"].is_object());
    assert!(doc["paths"].get("/prod/api/openapi.json").is_none());
}

#[tokio::test]
async fn the_document_states_the_configured_limits() {
    let app = spawn_with(|c| c.limits.max_file_size = 12_345).await;
    let doc = document(&app).await;
    let create = &doc["paths"]["/api/v2/uploads"]["post"];
    let length = create["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "Upload-Length")
        .expect("Upload-Length");
    assert_eq!(length["schema"]["maximum"], 12_345);
    // And the server holds to it: one byte more is refused.
    let token = app.token("john1").await;
    let r = app
        .client
        .post(app.url("/api/v2/uploads"))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "12346")
        .send()
        .await
        .expect("tus create");
    assert_eq!(r.status(), 413);
}

/// The (shape, METHOD) pairs `docs/api.md` names: every code span `METHOD[|METHOD...] /path`
/// (a query string dropped), but `/metrics`, which the metrics listener serves.
fn contract_routes(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for span in text.split('`').skip(1).step_by(2) {
        let Some((methods, path)) = span.split_once(' ') else {
            continue;
        };
        let methods: Vec<&str> = methods.split('|').collect();
        if !path.starts_with('/') || !methods.iter().all(|m| METHODS.contains(m)) {
            continue;
        }
        let path = path.split('?').next().unwrap_or(path);
        if path == "/metrics" {
            continue;
        }
        for m in methods {
            out.insert((shape(path), m.to_owned()));
        }
    }
    out
}

#[tokio::test]
async fn docs_api_md_names_exactly_the_documented_operations() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let documented: BTreeSet<_> = documented(&doc).into_keys().collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
    let text = std::fs::read_to_string(path).expect("docs/api.md");
    let contract = contract_routes(&text);
    assert!(contract.len() > 20, "too few routes found: {contract:?}");
    let missing: Vec<_> = documented.difference(&contract).collect();
    let extra: Vec<_> = contract.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in /api/openapi.json, not in docs/api.md: {missing:?}\nin docs/api.md, not in \
         /api/openapi.json: {extra:?}"
    );
}

#[test]
fn contract_routes_reads_methods_paths_and_queries() {
    let text = "`GET|HEAD /api/files/{resource}/{resource_id}?page=` and `POST /x/`, \
                `GET /metrics`, `Tus-Resumable: 1.0.0`, `FOO /bar`";
    let got: Vec<_> = contract_routes(text).into_iter().collect();
    let want = [
        ("/api/files/{}/{}", "GET"),
        ("/api/files/{}/{}", "HEAD"),
        ("/x", "POST"),
    ]
    .map(|(p, m)| (p.to_owned(), m.to_owned()));
    assert_eq!(got, want);
}
