//! The v2 file routes on every store pair: a file by id (own or public, 404 otherwise), its
//! bytes (ranges, conditional GETs, headers), delete by id, links on demand and their
//! revocation, the keyset listing, the raw `PUT` upload, and content types.

use std::collections::HashSet;

use reqwest::Response;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, eventually, spawn_app, spawn_with};

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

pub async fn a_file_by_id_is_its_owners_or_public_and_404_otherwise() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let private = upload(&app, &t1, "private.txt", b"secret", false).await;
    let public = upload(&app, &t1, "public.txt", b"open", true).await;

    let (s, got) = app
        .get(&t1, &format!("/api/v2/files/{}", id(&private)))
        .await;
    assert_eq!(s, 200, "{got}");
    for k in [
        "id",
        "tenant_username",
        "resource",
        "resource_id",
        "name",
        "location",
        "expire_at",
        "is_public",
        "size",
        "content_type",
        "sha256",
        "created_at",
    ] {
        assert_eq!(got[k], private[k], "{k}");
    }
    assert!(got["url"].as_str().is_some_and(|u| u.starts_with("http")));
    assert_eq!(got["sha256"], sha(b"secret"));

    // Another tenant: the public file, and the private one exactly like a missing id.
    let (s, body) = app
        .get(&t2, &format!("/api/v2/files/{}", id(&private)))
        .await;
    assert_eq!(
        (s, body),
        (404, serde_json::json!({"detail": "Not found."}))
    );
    let (s, body) = app
        .get(&t2, &format!("/api/v2/files/{}", id(&public)))
        .await;
    assert_eq!((s, body["name"].as_str()), (200, Some("public.txt")));
    let missing = "0".repeat(32);
    for bad in [missing.as_str(), "nope", "..%2F..%2Fetc"] {
        let (s, body) = app.get(&t1, &format!("/api/v2/files/{bad}")).await;
        assert_eq!(
            (s, body),
            (404, serde_json::json!({"detail": "Not found."}))
        );
    }
    // No token: 401, whatever the id.
    let r = app
        .client
        .get(app.url(&format!("/api/v2/files/{}", id(&public))))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);

    // An expired file is gone.
    let (s, body) = app
        .upload_form(
            &t1,
            form("product", "1", "soon.txt", b"x", None, true).text("expires_in", "1"),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let soon = id(&body["file"]);
    assert_eq!(app.get(&t1, &format!("/api/v2/files/{soon}")).await.0, 200);
    assert!(
        eventually(5, || async {
            app.get(&t1, &format!("/api/v2/files/{soon}")).await.0 == 404
        })
        .await
    );
}

pub async fn content_is_streamed_with_ranges_etags_and_safe_headers() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let name = "r\u{e9}sum\u{e9} \"1\".bin";
    let (s, body) = app
        .upload_form(
            &t1,
            form(
                "product",
                "1",
                name,
                &data,
                Some("application/x-thing"),
                false,
            ),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let fid = id(&body["file"]);
    let etag = format!("\"{}\"", sha(&data));

    let r = content(&app, &t1, &fid, &[]).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/x-thing");
    assert_eq!(h["content-length"], "100000");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["etag"], etag.as_str());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["cache-control"]
            .to_str()
            .expect("cc")
            .starts_with("private")
    );
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"r_sum_ _1_.bin\"; \
         filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.bin"
    );
    assert_eq!(r.bytes().await.expect("body").to_vec(), data);

    // Ranges: the first byte, a suffix, an open end, past the end, and several (whole body).
    let range = |spec: &'static str| {
        let (app, t1, fid) = (&app, &t1, &fid);
        async move { content(app, t1, fid, &[("range", spec)]).await }
    };
    let r = range("bytes=0-0").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-0/100000");
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[..1]);
    let r = range("bytes=-10").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 99990-99999/100000");
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[99_990..]);
    let r = range("bytes=99000-").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[99_000..]);
    let r = range("bytes=100000-").await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    let r = range("bytes=0-1,5-6").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("b").len(), data.len());

    // Conditional GETs: If-None-Match (weak comparison, lists, *) and If-Range.
    let weak = format!("W/{etag}");
    let listed = format!("\"nope\", {etag}");
    for inm in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let r = content(&app, &t1, &fid, &[("if-none-match", inm)]).await;
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert!(r.bytes().await.expect("b").is_empty());
    }
    let r = content(&app, &t1, &fid, &[("if-none-match", "\"nope\"")]).await;
    assert_eq!(r.status(), 200);
    let r = content(
        &app,
        &t1,
        &fid,
        &[("range", "bytes=0-0"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(r.status(), 206);
    for stale in ["\"nope\"", weak.as_str(), "Wed, 21 Oct 2015 07:28:00 GMT"] {
        let r = content(
            &app,
            &t1,
            &fid,
            &[("range", "bytes=0-0"), ("if-range", stale)],
        )
        .await;
        assert_eq!(r.status(), 200, "{stale}");
        assert_eq!(r.bytes().await.expect("b").to_vec(), data);
    }

    // HEAD: the headers, no body.
    let r = app
        .client
        .head(app.url(&format!("/api/v2/files/{fid}/content")))
        .bearer_auth(&t1)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-length"], "10");
    assert!(r.bytes().await.expect("b").is_empty());

    // Another tenant's private file: 404 like a missing one.
    let r = content(&app, &t2, &fid, &[]).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        serde_json::json!({"detail": "Not found."})
    );
    let r = app
        .client
        .post(app.url(&format!("/api/v2/files/{fid}/content")))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

pub async fn delete_by_id_takes_only_own_files_and_kills_their_links_at_once() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let private = upload(&app, &t1, "a.txt", b"aaa", false).await;
    let public = upload(&app, &t1, "b.txt", b"bbb", true).await;
    let (s, made) = link(&app, &t1, &id(&public), None).await;
    assert_eq!(s, 200, "{made}");
    let url = made["url"].as_str().expect("url").to_owned();
    let listed = app.get(&t1, "/api/v2/files").await.1;
    let listed_url = listed["files"][1]["url"].as_str().expect("url").to_owned();
    assert_eq!(listed["files"][1]["id"], public["id"]);
    assert_eq!(fetch(&url).await.status(), 200);
    assert_eq!(fetch(&listed_url).await.status(), 200);

    // Another tenant cannot delete them, public or not: 404, and they stay.
    for f in [&private, &public] {
        let (s, body) = app.delete(&t2, &format!("/api/v2/files/{}", id(f))).await;
        assert_eq!(
            (s, body),
            (404, serde_json::json!({"detail": "Not found."}))
        );
        assert_eq!(
            app.get(&t1, &format!("/api/v2/files/{}", id(f))).await.0,
            200
        );
    }

    let r = app
        .client
        .delete(app.url(&format!("/api/v2/files/{}", id(&public))))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.expect("b").is_empty());
    assert_eq!(
        app.delete(&t1, &format!("/api/v2/files/{}", id(&public)))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&t1, &format!("/api/v2/files/{}", id(&public)))
            .await
            .0,
        404
    );
    assert_eq!(content(&app, &t1, &id(&public), &[]).await.status(), 404);
    assert_eq!(link(&app, &t1, &id(&public), None).await.0, 404);
    let names: Vec<_> = app.get(&t1, "/api/v2/files").await.1["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(names, ["a.txt"]);
    // Its links die at once: mtfu's /dl answers 404, and on S3 the object is gone, so a
    // presigned URL fails too.
    for u in [&url, &listed_url] {
        let s = fetch(u).await.status();
        assert_eq!(s, 404, "{u}");
    }

    // The seed's delete by resource does the same to its links.
    let listed = app.get(&t1, "/api/files/product/1").await.1;
    let seed_url = listed["files"][0]["url"].as_str().expect("url").to_owned();
    assert_eq!(fetch(&seed_url).await.status(), 200);
    assert_eq!(app.delete(&t1, "/api/files/product/1").await.0, 200);
    assert_eq!(fetch(&seed_url).await.status(), 404);

    // gc still reaps the rows, finding the blobs gone or removing them, without failures.
    let r = mtfu::gc::sweep(
        &app.state.files.meta,
        &app.state.files.blob,
        std::time::Duration::ZERO,
        false,
    )
    .await
    .expect("gc");
    assert_eq!(r.failures, 0);
    assert_eq!(r.files_reaped, 2);
    assert!(app.blob_files().await.is_empty());
}

pub async fn links_on_demand_have_the_asked_lifetime_and_refuse_tampering() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let private = upload(&app, &t1, "a.txt", b"private bytes", false).await;
    let public = upload(&app, &t1, "b.txt", b"public bytes", true).await;

    let before = chrono::Utc::now();
    let (s, body) = link(&app, &t1, &id(&private), Some("120")).await;
    assert_eq!(s, 200, "{body}");
    let at = body["expires_at"].as_str().expect("expires_at");
    assert!(
        at.ends_with('Z') && at.len() == "2026-11-24T12:00:00.123456Z".len(),
        "{at}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("rfc3339");
    let secs = (at.with_timezone(&chrono::Utc) - before).num_seconds();
    assert!((110..=130).contains(&secs), "{secs}");
    let url = body["url"].as_str().expect("url").to_owned();
    match &app.s3 {
        None => assert!(url.starts_with(&format!("{}/dl/", app.base)), "{url}"),
        Some(s3) => assert!(url.starts_with(&s3.endpoint()), "{url}"),
    }
    let r = fetch(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"private bytes");

    // Default lifetime: limits.url_ttl_secs.
    let (_, body) = link(&app, &t1, &id(&private), None).await;
    let at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("at"))
        .expect("rfc3339");
    let secs = (at.with_timezone(&chrono::Utc) - before).num_seconds();
    assert!((3590..=3610).contains(&secs), "{secs}");

    // Bounds: 1..=7 days, DRF-style errors.
    for (bad, msg) in [
        ("0", "Ensure this value is greater than or equal to 1."),
        (
            "604801",
            "Ensure this value is less than or equal to 604800.",
        ),
        ("soon", "A valid integer is required."),
    ] {
        let (s, body) = link(&app, &t1, &id(&private), Some(bad)).await;
        assert_eq!(
            (s, body),
            (400, serde_json::json!({"expires_in": [msg]})),
            "{bad}"
        );
    }
    assert_eq!(link(&app, &t1, &id(&private), Some("604800")).await.0, 200);

    // Another tenant: its public files yes, private ones 404.
    assert_eq!(link(&app, &t2, &id(&private), None).await.0, 404);
    let (s, body) = link(&app, &t2, &id(&public), None).await;
    assert_eq!(s, 200);
    let r = fetch(body["url"].as_str().expect("url")).await;
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"public bytes");

    // Tampered: any changed character of the signature, or a changed expiry or issue time.
    let mut bad = vec![];
    let mut flipped = url.clone();
    let last = flipped.pop().expect("char");
    flipped.push(if last == '0' { '1' } else { '0' });
    bad.push(flipped);
    if app.s3.is_none() {
        let q = |k: &str| {
            let v = url.split(&format!("{k}=")).nth(1).expect(k);
            v.split('&').next().expect("v").to_owned()
        };
        let (exp, iat) = (q("expires"), q("iat"));
        let later: i64 = exp.parse::<i64>().expect("exp") + 100;
        bad.push(url.replace(&format!("expires={exp}"), &format!("expires={later}")));
        let iat_later: i64 = iat.parse::<i64>().expect("iat") + 1;
        bad.push(url.replace(&format!("iat={iat}"), &format!("iat={iat_later}")));
        bad.push(url.replace(&format!("&iat={iat}"), ""));
    }
    for b in &bad {
        let r = fetch(b).await;
        assert_eq!(r.status(), 403, "{b}");
        if app.s3.is_none() {
            assert_eq!(
                r.json::<Value>().await.expect("json")["code"],
                "invalid_signature"
            );
        }
    }

    // Expired: 403 once its second has passed.
    let (_, body) = link(&app, &t1, &id(&private), Some("1")).await;
    let short = body["url"].as_str().expect("url").to_owned();
    assert!(eventually(5, || async { fetch(&short).await.status() == 403 }).await);

    let r = app
        .client
        .get(app.url(&format!("/api/v2/files/{}/url", id(&private))))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405);
}

/// Upload one file as `user` and return (its id, a fresh link to it).
async fn file_and_link(app: &TestApp, user: &str) -> (String, String) {
    let t = app.token(user).await;
    let f = upload(app, &t, &format!("{user}.txt"), user.as_bytes(), false).await;
    let (s, body) = link(app, &t, &id(&f), None).await;
    assert_eq!(s, 200, "{body}");
    (id(&f), body["url"].as_str().expect("url").to_owned())
}

async fn revoke(app: &TestApp, user: &str) -> (u16, Value) {
    let t = app.token(user).await;
    let r = app
        .client
        .post(app.url("/api/v2/urls/revoke"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("revoke");
    status_json(r).await
}

/// Revocation of mtfu's `/dl/...` links: local disk, and S3 with `presigned_urls = false`
/// (S3 objects streamed through mtfu). Earlier links of the tenant answer 403 `url_revoked`;
/// other tenants' and later links work.
pub async fn revoking_a_tenants_links_kills_those_issued_before_only() {
    let app = spawn_with(|c| c.blobs.s3.presigned_urls = false).await;
    let (fid, url) = file_and_link(&app, "john1").await;
    let (_, other) = file_and_link(&app, "john2").await;
    assert!(url.starts_with(&format!("{}/dl/", app.base)), "{url}");
    let r = fetch(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"john1");
    // A link of the first version (no issue time) is valid until the first revocation.
    let tenant = url
        .split("/dl/")
        .nth(1)
        .expect("dl")
        .split('/')
        .next()
        .expect("t");
    let legacy = app.dl_url(tenant.parse().expect("tenant id"), &fid);
    assert_eq!(fetch(&legacy).await.status(), 200);

    let (s, body) = revoke(&app, "john1").await;
    assert_eq!(s, 200, "{body}");
    let at = body["revoked_before"].as_str().expect("revoked_before");
    assert!(
        chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'),
        "{at}"
    );

    for dead in [&url, &legacy] {
        let r = fetch(dead).await;
        assert_eq!(r.status(), 403, "{dead}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "url_revoked");
    }
    assert_eq!(
        fetch(&other).await.status(),
        200,
        "john2's links are not touched"
    );
    let t1 = app.token("john1").await;
    let (_, body) = link(&app, &t1, &fid, None).await;
    let fresh = body["url"].as_str().expect("url");
    assert_eq!(
        fetch(fresh).await.status(),
        200,
        "a link issued afterwards works"
    );
    let (_, meta) = app.get(&t1, &format!("/api/v2/files/{fid}")).await;
    assert_eq!(
        fetch(meta["url"].as_str().expect("url")).await.status(),
        200
    );
    let r = app
        .client
        .get(app.url("/api/v2/urls/revoke"))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405);
}

/// With S3 presigned URLs (the default), revocation cannot reach URLs already handed out: they
/// live until their TTL (documented), while deleting the file kills them (the object goes).
pub async fn presigned_urls_outlive_revocation_but_not_deletion() {
    let app = spawn_app().await;
    let Some(s3) = &app.s3 else {
        return; // Local disk has no presigned URLs: the test above covers it.
    };
    let (fid, url) = file_and_link(&app, "john1").await;
    assert!(url.starts_with(&s3.endpoint()), "{url}");
    assert_eq!(revoke(&app, "john1").await.0, 200);
    assert_eq!(fetch(&url).await.status(), 200);
    let t1 = app.token("john1").await;
    assert_eq!(
        app.delete(&t1, &format!("/api/v2/files/{fid}")).await.0,
        204
    );
    assert_eq!(fetch(&url).await.status(), 404);
}

pub async fn the_listing_pages_through_every_visible_file_once() {
    let app = spawn_with(|c| c.limits.max_page_size = 10).await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    for i in 0..23 {
        let (r, rid) = if i % 2 == 0 {
            ("doc", "1")
        } else {
            ("img", "2")
        };
        let (s, b) = app
            .upload_form(
                &t1,
                form(r, rid, &format!("f{i:02}"), b"x", None, i % 5 == 0),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    for i in 0..6 {
        let (s, b) = app
            .upload_form(
                &t2,
                form("doc", "1", &format!("g{i}"), b"y", None, i % 2 == 0),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    for (filter, seed_q, n) in [
        ("", "/api/list_files?page_size=10", 26),
        (
            "&resource=doc",
            "/api/list_files?page_size=10&resource=doc",
            15,
        ),
        (
            "&resource=img&resource_id=2",
            "/api/list_files?page_size=10&resource=img&resource_id=2",
            11,
        ),
        (
            "&tenant_username=john2",
            "/api/list_files?page_size=10&tenant_username=john2",
            3,
        ),
    ] {
        // What the seed listing shows, in its order, page by page (its size is capped too).
        let mut want: Vec<String> = Vec::new();
        for page in 1..=3 {
            let (_, l) = app.get(&t1, &format!("{seed_q}&page={page}")).await;
            want.extend(
                l["files"]
                    .as_array()
                    .expect("files")
                    .iter()
                    .map(|f| f["id"].as_str().expect("id").to_owned()),
            );
            if l["num_pages"] == page {
                break;
            }
        }
        assert_eq!(want.len(), n, "{filter}");
        let mut got: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let c = cursor
                .as_ref()
                .map_or(String::new(), |c| format!("&cursor={c}"));
            let (s, page) = app
                .get(&t1, &format!("/api/v2/files?limit=4{filter}{c}"))
                .await;
            assert_eq!(s, 200, "{page}");
            let files = page["files"].as_array().expect("files");
            assert!(files.len() <= 4);
            for f in files {
                assert!(f["url"].is_string());
                got.push(f["id"].as_str().expect("id").to_owned());
            }
            pages += 1;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    assert!(page["next_cursor"].is_null());
                    break;
                }
            }
        }
        assert_eq!(got, want, "{filter}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), n);
        assert_eq!(pages, n.div_ceil(4).max(1), "no empty last page");
    }
    // john2 sees its own six and john1's public five.
    let (_, page) = app.get(&t2, "/api/v2/files?limit=100").await;
    assert_eq!(page["files"].as_array().expect("files").len(), 10, "capped");
    let (_, page) = app
        .get(
            &t2,
            &format!(
                "/api/v2/files?cursor={}",
                page["next_cursor"].as_str().expect("next")
            ),
        )
        .await;
    assert_eq!(page["files"].as_array().expect("files").len(), 1);
    assert!(page["next_cursor"].is_null());

    for (q, field, msg) in [
        ("limit=x", "limit", "A valid integer is required."),
        (
            "limit=0",
            "limit",
            "Ensure this value is greater than or equal to 1.",
        ),
        ("cursor=garbage!", "cursor", "Invalid cursor."),
        ("cursor=WyJhIl0", "cursor", "Invalid cursor."),
    ] {
        let (s, body) = app.get(&t1, &format!("/api/v2/files?{q}")).await;
        assert_eq!(s, 400, "{q}");
        assert_eq!(body, serde_json::json!({field: [msg]}), "{q}");
    }
}

pub async fn a_raw_put_uploads_replaces_and_validates_like_the_form_upload() {
    let app = spawn_with(|c| c.limits.max_file_size = 1000).await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let r = put(
        &app,
        &t1,
        "product/1/hello.txt",
        Some("text/plain; charset=utf-8"),
        b"hi",
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().expect("loc").to_owned();
    let (_, first) = status_json(r).await;
    assert_eq!(first["name"], "hello.txt");
    assert_eq!(first["size"], 2);
    assert_eq!(first["content_type"], "text/plain; charset=utf-8");
    assert_eq!(first["sha256"], sha(b"hi"));
    assert_eq!(first["is_public"], false);
    assert!(first["url"].is_string());
    assert_eq!(location, app.url(&format!("/api/v2/files/{}", id(&first))));
    let r = content(&app, &t1, &id(&first), &[]).await;
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"hi");

    // The same name again replaces it: 200, a new id, the old one gone, one blob left.
    let r = put(
        &app,
        &t1,
        "product/1/hello.txt",
        Some("text/plain"),
        b"hello again",
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, second) = status_json(r).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(
        app.get(&t1, &format!("/api/v2/files/{}", id(&first)))
            .await
            .0,
        404
    );
    let (_, list) = app.get(&t1, "/api/files/product/1").await;
    assert_eq!(list["count"], 1);
    assert!(eventually(5, || async { app.blob_files().await.len() == 1 }).await);

    // Query options, and a percent-encoded name.
    let r = put(
        &app,
        &t1,
        "product/1/r%C3%A9sum%C3%A9%20(1).txt?is_public=true&expires_in=3600",
        None,
        b"cv",
    )
    .await;
    assert_eq!(r.status(), 201);
    let (_, cv) = status_json(r).await;
    assert_eq!(cv["name"], "r\u{e9}sum\u{e9} (1).txt");
    assert_eq!(cv["is_public"], true);
    assert!(cv["expire_at"].is_string());
    assert_eq!(cv["content_type"], "text/plain", "guessed from the name");
    assert_eq!(
        app.get(&t2, &format!("/api/v2/files/{}", id(&cv))).await.0,
        200
    );

    // Validation: the domain types' messages, before any byte is kept.
    let long = "r".repeat(101);
    let bad_name = "Invalid file name: it must not be '.' or '..' nor contain '/', '\\' or control characters.";
    for (path, field, msg) in [
        // (`..` itself cannot be sent: clients resolve it, `%2E%2E` included, per the URL
        // standard; `FileName`'s unit tests cover it.)
        ("product/1/..%2F..%2Fetc%2Fpasswd", "name", bad_name),
        ("product/1/a%2Fb.txt", "name", bad_name),
        ("product/1/a%0Ab.txt", "name", bad_name),
        ("product/1/a%5Cb.txt", "name", bad_name),
        (
            &*format!("{long}/1/a.txt"),
            "resource",
            "Resource must be at most 100 characters.",
        ),
        (
            "product/1/a.txt?is_public=maybe",
            "is_public",
            "Must be a valid boolean.",
        ),
        (
            "product/1/a.txt?expires_in=soon",
            "expires_in",
            "A valid integer is required.",
        ),
    ] {
        let (s, body) = status_json(put(&app, &t1, path, None, b"data").await).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(body[field], serde_json::json!([msg]), "{path}");
    }

    // The size limit, with a Content-Length and without one (chunked), counted while streaming.
    let (s, body) = status_json(put(&app, &t1, "product/1/big.bin", None, &[7; 1001]).await).await;
    assert_eq!(s, 413);
    assert_eq!(
        body,
        serde_json::json!({"detail": "File size exceeds the maximum allowed size of 1000 bytes",
                           "code": "file_too_large"})
    );
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![1u8; 400]))),
    );
    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/chunked.bin"))
        .bearer_auth(&t1)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    assert_eq!(
        put(&app, &t1, "product/1/exact.bin", None, &[7; 1000])
            .await
            .status(),
        201
    );
    assert!(eventually(5, || async { app.blob_files().await.len() == 3 }).await);
    assert_eq!(app.intents().await, 0);

    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/x.txt"))
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/api/v2/files/product/1/x.txt"))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "PUT");
}

pub async fn content_types_are_sniffed_and_the_allow_list_refuses_with_415() {
    // No allow-list: the client's type is kept; none or octet-stream is sniffed.
    let app = spawn_app().await;
    let t = app.token("john1").await;
    for (path, ct, data, want) in [
        ("p/1/a.pdf.bin", None, PDF, "application/pdf"),
        ("p/1/b", Some("application/octet-stream"), PNG, "image/png"),
        ("p/1/c.html", Some("text/html"), PNG, "text/html"),
        (
            "p/1/d.unknownext",
            None,
            b"just text" as &[u8],
            "application/octet-stream",
        ),
    ] {
        let (s, f) = status_json(put(&app, &t, path, ct, data).await).await;
        assert_eq!(s, 201, "{path}: {f}");
        assert_eq!(f["content_type"], want, "{path}");
        let r = content(&app, &t, &id(&f), &[]).await;
        assert_eq!(r.headers()["content-type"], want);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(
            r.headers()["content-disposition"]
                .to_str()
                .expect("cd")
                .starts_with("attachment;")
        );
    }
    let (s, body) = app
        .upload_form(&t, form("p", "2", "noname", PNG, None, false))
        .await;
    assert_eq!(
        (s, &body["file"]["content_type"]),
        (200, &serde_json::json!("image/png"))
    );

    let app = spawn_with(|c| {
        c.limits.allowed_content_types = vec!["image/*".into(), "text/plain".into()];
    })
    .await;
    let t = app.token("john1").await;
    let refused = |ct: &str| {
        serde_json::json!({"detail": format!("Content type {ct} is not allowed"),
                           "code": "unsupported_media_type"})
    };
    // Multipart: a PNG as image/png or untyped; a PDF passed off as image/png is refused.
    let (s, body) = app
        .upload_form(&t, form("p", "1", "a.png", PNG, Some("image/png"), false))
        .await;
    assert_eq!(
        (s, &body["file"]["content_type"]),
        (200, &serde_json::json!("image/png"))
    );
    let (s, body) = app
        .upload_form(&t, form("p", "1", "b", PNG, None, false))
        .await;
    assert_eq!(
        (s, &body["file"]["content_type"]),
        (200, &serde_json::json!("image/png"))
    );
    let (s, body) = app
        .upload_form(&t, form("p", "1", "c.png", PDF, Some("image/png"), false))
        .await;
    assert_eq!((s, body), (415, refused("application/pdf")));
    // PUT: the same rules.
    let (s, f) = status_json(
        put(
            &app,
            &t,
            "p/1/notes.txt",
            Some("application/octet-stream"),
            b"hello",
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, &f["content_type"]),
        (201, &serde_json::json!("text/plain"))
    );
    let (s, body) =
        status_json(put(&app, &t, "p/1/d.pdf", Some("application/pdf"), PDF).await).await;
    assert_eq!((s, body), (415, refused("application/pdf")));
    let (s, body) = status_json(put(&app, &t, "p/1/e.html", Some("text/html"), PNG).await).await;
    assert_eq!((s, body), (415, refused("text/html")));
    let (s, body) = status_json(put(&app, &t, "p/1/f", None, b"\x00\x01 no idea").await).await;
    assert_eq!((s, body), (415, refused("application/octet-stream")));
    // Nothing of the refused uploads was kept.
    let (_, list) = app.get(&t, "/api/v2/files").await;
    assert_eq!(list["files"].as_array().expect("files").len(), 3);
    assert!(eventually(5, || async { app.blob_files().await.len() == 3 }).await);
    assert_eq!(app.intents().await, 0);
}

pub async fn v2_routes_need_a_token_and_the_right_method() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let f = upload(&app, &t, "a.txt", b"a", false).await;
    let fid = id(&f);
    let paths = [
        "/api/v2/files".to_owned(),
        format!("/api/v2/files/{fid}"),
        format!("/api/v2/files/{fid}/content"),
        format!("/api/v2/files/{fid}/url"),
        "/api/v2/urls/revoke".to_owned(),
    ];
    for p in &paths {
        let r = app.client.post(app.url(p)).send().await.expect("post");
        assert_eq!(r.status(), 401, "{p}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let r = app
        .client
        .patch(app.url(&format!("/api/v2/files/{fid}")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 405);
    let h: HeaderMap = r.headers().clone();
    assert_eq!(h["allow"], "GET, DELETE");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        serde_json::json!({"detail": "Method \"PATCH\" not allowed."})
    );
}

crate::store_matrix!(
    a_file_by_id_is_its_owners_or_public_and_404_otherwise,
    content_is_streamed_with_ranges_etags_and_safe_headers,
    delete_by_id_takes_only_own_files_and_kills_their_links_at_once,
    links_on_demand_have_the_asked_lifetime_and_refuse_tampering,
    revoking_a_tenants_links_kills_those_issued_before_only,
    presigned_urls_outlive_revocation_but_not_deletion,
    the_listing_pages_through_every_visible_file_once,
    a_raw_put_uploads_replaces_and_validates_like_the_form_upload,
    content_types_are_sniffed_and_the_allow_list_refuses_with_415,
    v2_routes_need_a_token_and_the_right_method,
);

/// `mtfu tenant revoke-urls NAME` against the store of a running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revoke_urls_command_kills_the_tenants_links() {
    let app = spawn_app().await;
    let (_, url) = file_and_link(&app, "john1").await;
    let (_, other) = file_and_link(&app, "john2").await;
    assert_eq!(fetch(&url).await.status(), 200);
    let out = crate::cli::mtfu(app.dir.path(), &["tenant", "revoke-urls", "john1"], None);
    assert!(out.contains("john1") && out.contains("revoked"), "{out}");
    let r = fetch(&url).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "url_revoked"
    );
    assert_eq!(fetch(&other).await.status(), 200);
}
