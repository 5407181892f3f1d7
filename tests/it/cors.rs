//! CORS (`[cors]`): preflights from an allowed origin answer 204 without a token, every actual
//! response to it (errors, tus, `/dl/` links) carries the CORS headers, and other origins get
//! none.

use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::helpers::{TestApp, spawn_with};

const PAGE: &str = "https://app.example.com";
const OTHER: &str = "https://evil.example.com";

async fn app() -> TestApp {
    spawn_with(|c| c.cors.allowed_origins = vec![PAGE.into()]).await
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().expect("ascii"))
        .unwrap_or("")
}

fn no_cors_headers(headers: &HeaderMap) {
    let cors: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{cors:?}");
}

/// The headers every actual response to the page carries.
fn marked_for_page(headers: &HeaderMap) {
    assert_eq!(h(headers, "access-control-allow-origin"), PAGE);
    let exposed = h(headers, "access-control-expose-headers").to_ascii_lowercase();
    for name in [
        "location",
        "upload-offset",
        "upload-length",
        "upload-expires",
        "tus-resumable",
        "tus-version",
        "tus-max-size",
        "tus-extension",
        "etag",
        "content-disposition",
        "content-range",
        "x-request-id",
    ] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    assert!(
        headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("Origin"))),
        "Vary: Origin"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
}

async fn preflight(app: &TestApp, origin: &str, path: &str, method: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization,tus-resumable,upload-length,upload-metadata",
        )
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_answers_204_without_a_token() {
    let app = app().await;
    for (path, method) in [
        ("/api/upload", "POST"),
        ("/api/token/", "POST"),
        ("/api/v2/uploads", "POST"),
        ("/api/v2/uploads/abc", "PATCH"),
        ("/api/list_files", "GET"),
    ] {
        let r = preflight(&app, PAGE, path, method).await;
        assert_eq!(r.status(), 204, "{path}");
        let hs = r.headers();
        assert_eq!(h(hs, "access-control-allow-origin"), PAGE);
        let methods = h(hs, "access-control-allow-methods");
        for m in ["GET", "POST", "PATCH", "DELETE", "HEAD"] {
            assert!(methods.contains(m), "{m} in {methods}");
        }
        let allowed = h(hs, "access-control-allow-headers").to_ascii_lowercase();
        for name in [
            "authorization",
            "content-type",
            "x-request-id",
            "x-http-method-override",
            "tus-resumable",
            "upload-length",
            "upload-offset",
            "upload-metadata",
            "upload-checksum",
            "upload-defer-length",
            "upload-concat",
        ] {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }
        assert_eq!(h(hs, "access-control-max-age"), "600");
    }
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_cors_headers() {
    let app = app().await;
    let r = preflight(&app, OTHER, "/api/upload", "POST").await;
    // Served like any OPTIONS without a token: refused, and nothing a browser would accept.
    assert_ne!(r.status(), 204);
    no_cors_headers(r.headers());
    // Without `[cors]`, even the page's origin gets nothing.
    let off = spawn_with(|_| {}).await;
    let r = preflight(&off, PAGE, "/api/upload", "POST").await;
    assert_eq!(r.status(), 401);
    no_cors_headers(r.headers());
    assert!(r.headers().get("vary").is_none());
}

#[tokio::test]
async fn success_and_error_responses_carry_the_cors_headers() {
    let app = app().await;
    // An error: no token.
    let r = app
        .client
        .get(app.url("/api/list_files"))
        .header("Origin", PAGE)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    marked_for_page(r.headers());
    // A login, an upload, a listing, a `/dl/` link.
    let r = app
        .client
        .post(app.url("/api/token/"))
        .header("Origin", PAGE)
        .json(&serde_json::json!({"username": "john1", "password": "test"}))
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    marked_for_page(r.headers());
    let token = app.token("john1").await;
    let (status, v) = app.upload(&token, "doc", "1", "a.txt", b"hello").await;
    assert_eq!(status, 200, "{v}");
    let url = v["file"]["url"].as_str().expect("url").to_owned();
    let r = app
        .client
        .get(app.url("/api/list_files"))
        .bearer_auth(&token)
        .header("Origin", PAGE)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), 200);
    marked_for_page(r.headers());
    let r = app
        .client
        .get(&url)
        .header("Origin", PAGE)
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    marked_for_page(r.headers());
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"hello");
    // Another origin: the same requests, no CORS headers.
    let r = app
        .client
        .get(&url)
        .header("Origin", OTHER)
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    no_cors_headers(r.headers());
}

#[tokio::test]
async fn a_tus_creation_exposes_its_location() {
    let app = app().await;
    let token = app.token("john1").await;
    let r = app
        .client
        .post(app.url("/api/v2/uploads"))
        .bearer_auth(&token)
        .header("Origin", PAGE)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "5")
        // filename a.txt, resource doc, resource_id 1
        .header(
            "Upload-Metadata",
            "filename YS50eHQ=,resource ZG9j,resource_id MQ==",
        )
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    marked_for_page(r.headers());
    let location = h(r.headers(), "location").to_owned();
    assert!(!location.is_empty());
    let r = app
        .client
        .head(&location)
        .bearer_auth(&token)
        .header("Origin", PAGE)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), 200);
    marked_for_page(r.headers());
    assert_eq!(h(r.headers(), "upload-offset"), "0");
}

#[test]
fn a_wildcard_with_credentials_is_refused() {
    let mut cfg = mtfu::config::Config::default();
    cfg.cors.allowed_origins = vec!["*".into()];
    cfg.cors.allow_credentials = true;
    let err = cfg.validate().expect_err("* with credentials").to_string();
    assert!(err.contains("cors.allowed_origins"), "{err}");
}
