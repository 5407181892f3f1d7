//! The v2 file routes on every store pair: a file by id (own or public, 404 otherwise), its
//! bytes (ranges, conditional GETs, headers), delete by id, links on demand and their
//! revocation, the keyset listing, the raw `PUT` upload, and content types. This module holds
//! the helpers; the tests are in `v2/files.rs`, `v2/content.rs` and `v2/links.rs`.

use std::collections::HashSet;

use reqwest::Response;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, eventually, spawn_app, spawn_with};

mod content;
mod files;
mod links;

/// A PNG header: what `infer` recognises as `image/png`.
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<< >>\nendobj\n%%EOF\n";

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

async fn status_json(r: Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// `PUT /api/v2/files/{path}` with `body` and, if given, a `Content-Type`.
async fn put(app: &TestApp, t: &str, path: &str, ct: Option<&str>, body: &[u8]) -> Response {
    let mut req = app
        .client
        .put(app.url(&format!("/api/v2/files/{path}")))
        .bearer_auth(t)
        .body(body.to_vec());
    if let Some(ct) = ct {
        req = req.header(CONTENT_TYPE, ct);
    }
    req.send().await.expect("put")
}

/// Upload with a multipart form: `name` with the part type `mime` (none if `None`), public or
/// not; the file object.
async fn upload(app: &TestApp, t: &str, name: &str, data: &[u8], public: bool) -> Value {
    let (s, body) = app
        .upload_form(
            t,
            form("product", "1", name, data, Some("text/plain"), public),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body["file"].clone()
}

fn form(r: &str, rid: &str, name: &str, data: &[u8], mime: Option<&str>, public: bool) -> Form {
    let mut part = Part::bytes(data.to_vec()).file_name(name.to_owned());
    if let Some(m) = mime {
        part = part.mime_str(m).expect("mime");
    }
    Form::new()
        .text("resource", r.to_owned())
        .text("resource_id", rid.to_owned())
        .text("is_public", public.to_string())
        .part("file", part)
}

fn id(file: &Value) -> String {
    file["id"].as_str().expect("id").to_owned()
}

/// `POST /api/v2/files/{id}/url` with an optional `expires_in`.
async fn link(app: &TestApp, t: &str, id: &str, expires_in: Option<&str>) -> (u16, Value) {
    let q = expires_in.map_or(String::new(), |e| format!("?expires_in={e}"));
    let r = app
        .client
        .post(app.url(&format!("/api/v2/files/{id}/url{q}")))
        .bearer_auth(t)
        .send()
        .await
        .expect("url");
    status_json(r).await
}

async fn content(app: &TestApp, t: &str, id: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = app
        .client
        .get(app.url(&format!("/api/v2/files/{id}/content")))
        .bearer_auth(t);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("content")
}

/// A client that sends no token and trusts nothing but what it is told (links need no token).
fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
}

async fn fetch(url: &str) -> Response {
    anonymous().get(url).send().await.expect("fetch")
}
