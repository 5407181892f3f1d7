//! Resumable uploads (tus 1.0.0 at `/api/v2/uploads`) on every store pair: creation, `HEAD`,
//! chunks of uneven sizes (1 byte, 100 KiB, 5 MiB + 3, ...: far below and across S3's part
//! size), creation-with-upload, offset conflicts, checksums, termination, expiry and gc, tenancy,
//! protocol version and discovery, the request cap, a restart in the middle, and two `PATCH`es
//! at once. Then tuspy, a tus client nobody here wrote, through two crashes of the real binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use mtfu::app::App;
use mtfu::config::Config;
use mtfu::domain::TenantName;
use mtfu::http::AppState;
use reqwest::Response;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, client_for, eventually, files_under, spawn_with, test_config};

const MIB: usize = 1024 * 1024;

/// `len` pseudo-random bytes (a different stream per `seed`).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `Upload-Metadata` of `pairs`.
pub fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", b64(v.as_bytes())))
        .collect::<Vec<_>>()
        .join(",")
}

/// The metadata of a file `name` of product/1.
pub fn product(name: &str) -> String {
    metadata(&[
        ("filename", name),
        ("resource", "product"),
        ("resource_id", "1"),
        ("content_type", "application/octet-stream"),
    ])
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A tus client of one server and tenant, speaking raw HTTP.
#[derive(Clone)]
pub struct Tus {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
}

impl Tus {
    pub async fn of(app: &TestApp, user: &str) -> Tus {
        Tus {
            base: app.base.clone(),
            client: app.client.clone(),
            token: app.token(user).await,
        }
    }

    /// The same upload URL on this server (another node, a restarted one).
    pub fn here(&self, url: &str) -> String {
        let path = url.find("/api/v2/uploads").map_or(url, |i| &url[i..]);
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(&self.token)
            .header("Tus-Resumable", "1.0.0")
    }

    pub async fn create(&self, length: u64, meta: &str) -> Response {
        self.req(
            reqwest::Method::POST,
            &format!("{}/api/v2/uploads", self.base),
        )
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .expect("POST")
    }

    /// Create an upload; its absolute URL.
    pub async fn start(&self, length: u64, meta: &str) -> String {
        let r = self.create(length, meta).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let loc = header(&r, "location").expect("Location").to_owned();
        assert!(loc.starts_with("https://"), "absolute: {loc}");
        self.here(&loc)
    }

    pub async fn head(&self, url: &str) -> Response {
        self.req(reqwest::Method::HEAD, url)
            .send()
            .await
            .expect("HEAD")
    }

    pub async fn offset(&self, url: &str) -> u64 {
        let r = self.head(url).await;
        assert_eq!(r.status(), 200, "HEAD {url}");
        header(&r, "upload-offset")
            .expect("Upload-Offset")
            .parse()
            .expect("number")
    }

    pub async fn patch_with(
        &self,
        url: &str,
        offset: u64,
        body: reqwest::Body,
        checksum: Option<String>,
    ) -> Response {
        let mut b = self
            .req(reqwest::Method::PATCH, url)
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream");
        if let Some(c) = checksum {
            b = b.header("Upload-Checksum", c);
        }
        b.body(body).send().await.expect("PATCH")
    }

    pub async fn patch(&self, url: &str, offset: u64, chunk: &[u8]) -> Response {
        self.patch_with(url, offset, chunk.to_vec().into(), None)
            .await
    }

    /// Send `data[from..]` in chunks of `sizes` (the last repeated), each must answer 204 with
    /// the new offset. (Pass a prefix of the file to stop before its end.)
    pub async fn send(&self, url: &str, data: &[u8], from: usize, sizes: &[usize]) {
        let mut at = from;
        let mut i = 0;
        while at < data.len() {
            let n = sizes[i.min(sizes.len() - 1)].min(data.len() - at);
            let r = self.patch(url, at as u64, &data[at..at + n]).await;
            assert_eq!(r.status(), 204, "chunk {i} at {at}: {:?}", r.text().await);
            at += n;
            assert_eq!(header(&r, "upload-offset"), Some(at.to_string().as_str()));
            i += 1;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// The file `name` of product/1 is listed with `data`'s size and sha256 and downloads
    /// byte-exact.
    pub async fn assert_file(&self, name: &str, data: &[u8]) {
        let (s, list) = self.get("/api/files/product/1").await;
        assert_eq!(s, 200, "{list}");
        let f = list["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {list}"))
            .clone();
        assert_eq!(f["size"], data.len() as u64, "{f}");
        assert_eq!(f["sha256"], sha256_hex(data), "{f}");
        let url = f["url"].as_str().expect("url");
        let got = self.client.get(url).send().await.expect("download");
        assert_eq!(got.status(), 200);
        let got = got.bytes().await.expect("body");
        assert_eq!(got.len(), data.len());
        assert!(got == data, "downloaded bytes differ");
    }
}

/// Tail objects in the bucket.
pub fn tail_objects(s3: &crate::s3::S3Server) -> usize {
    files_under(&s3.root().join(crate::s3::BUCKET))
        .iter()
        .filter(|p| p.display().to_string().contains(".tail/"))
        .count()
}

/// Tail objects (S3) and temporary files (local disk) left in the blob store's directories.
pub fn leftovers(app_dir: &Path, s3: Option<&crate::s3::S3Server>) -> Vec<String> {
    let mut out: Vec<String> = files_under(&app_dir.join("blobs").join("tmp"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if let Some(s3) = s3 {
        out.extend(
            files_under(&s3.root().join(crate::s3::BUCKET))
                .iter()
                .map(|p| p.display().to_string())
                .filter(|p| p.contains(".tail")),
        );
        out.extend(s3.uploads_in_progress());
    }
    out
}

store_matrix!(
    uneven_chunks_become_a_listed_file_with_the_right_digest,
    creation_with_upload_takes_the_first_chunk,
    a_wrong_offset_is_a_conflict_and_changes_nothing,
    chunk_checksums_are_verified_and_a_mismatch_discards_the_chunk,
    termination_removes_the_upload_and_its_data,
    expired_uploads_are_gone_and_gc_removes_them,
    another_tenants_upload_is_not_found,
    tus_resumable_is_required_on_every_request_but_options,
    options_tells_versions_extensions_and_limits,
    a_chunk_over_the_request_cap_is_413_and_nothing_is_kept,
    bad_metadata_and_lengths_are_refused_before_anything_is_stored,
    an_upload_resumes_after_a_server_restart,
    a_second_patch_while_one_runs_is_refused_and_nothing_mixes,
    a_finished_upload_replaces_the_file_of_the_same_name,
    many_tiny_chunks_keep_few_tail_objects,
    a_patch_that_stalls_past_its_lease_loses_the_upload,
);

pub async fn uneven_chunks_become_a_listed_file_with_the_right_digest() {
    let app = spawn_with(|c| c.limits.max_file_size = 64 << 20).await;
    let t = Tus::of(&app, "john1").await;
    // 1 byte, 100 KiB, a part and 3, then small ones, then enough to fill a part again.
    let sizes = [
        1,
        100 * 1024,
        5 * MIB + 3,
        7,
        64 * 1024,
        3 * MIB,
        12_345,
        2 * MIB + 1,
    ];
    let total: usize = sizes.iter().sum();
    let d = data(total, 1);
    let meta = product("uneven.bin");
    let url = t.start(total as u64, &meta).await;

    let h = t.head(&url).await;
    assert_eq!(h.status(), 200);
    assert_eq!(header(&h, "tus-resumable"), Some("1.0.0"));
    assert_eq!(header(&h, "upload-offset"), Some("0"));
    assert_eq!(
        header(&h, "upload-length"),
        Some(total.to_string().as_str())
    );
    assert_eq!(header(&h, "upload-metadata"), Some(meta.as_str()));
    assert_eq!(header(&h, "cache-control"), Some("no-store"));
    let expires = header(&h, "upload-expires").expect("Upload-Expires");
    assert!(
        chrono::DateTime::parse_from_rfc2822(expires).is_ok() && expires.ends_with(" GMT"),
        "{expires}"
    );

    // On S3 (5 MiB parts): the tail objects after each chunk. The first two are tails; the
    // third is one part with them read back in front; the next four are tails (together still
    // short of a part); the last makes one part of them and itself, and completes the upload.
    let tails_after = [1, 2, 0, 1, 2, 3, 4, 0];
    let mut at = 0;
    for (i, n) in sizes.iter().enumerate() {
        let r = t.patch(&url, at as u64, &d[at..at + n]).await;
        assert_eq!(r.status(), 204, "chunk {i}: {:?}", r.text().await);
        at += n;
        if let Some(s3) = &app.s3 {
            // Tails a part made obsolete are removed in the background.
            let want = tails_after[i];
            let ok = eventually(10, || async { tail_objects(s3) == want }).await;
            assert!(
                ok,
                "after chunk {i}: {} tails, not {want}",
                tail_objects(s3)
            );
        }
        assert_eq!(header(&r, "upload-offset"), Some(at.to_string().as_str()));
        assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
        if at < total {
            assert!(header(&r, "upload-expires").is_some());
            assert_eq!(t.offset(&url).await, at as u64);
        }
    }
    t.assert_file("uneven.bin", &d).await;
    // The state is gone with the upload; nothing of it is left in the stores.
    assert_eq!(t.head(&url).await.status(), 404);
    assert_eq!(
        app.blob_files().await.len(),
        1,
        "{:?}",
        app.blob_files().await
    );
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    assert_eq!(app.intents().await, 0);
    assert_eq!(app.state.files.budget.in_use(), 0);
    assert!(app.state.files.budget.high_water() <= app.state.files.budget.capacity());
}

pub async fn creation_with_upload_takes_the_first_chunk() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(300_000, 2);
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Length", d.len().to_string())
        .header("Upload-Metadata", product("first.bin"))
        .header("Content-Type", "application/offset+octet-stream")
        .body(d[..100_000].to_vec())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "upload-offset"), Some("100000"));
    assert!(header(&r, "upload-expires").is_some());
    let url = t.here(header(&r, "location").expect("Location"));
    assert_eq!(t.offset(&url).await, 100_000);
    t.send(&url, &d, 100_000, &[200_000]).await;
    t.assert_file("first.bin", &d).await;

    // The whole file in the creation request.
    let small = data(5000, 3);
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Length", small.len().to_string())
        .header("Upload-Metadata", product("whole.bin"))
        .header("Content-Type", "application/offset+octet-stream")
        .body(small.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "upload-offset"), Some("5000"));
    t.assert_file("whole.bin", &small).await;

    // An empty file is done at creation.
    let r = t.create(0, &product("empty.bin")).await;
    assert_eq!(r.status(), 201);
    t.assert_file("empty.bin", b"").await;
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
}

pub async fn a_wrong_offset_is_a_conflict_and_changes_nothing() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(1000, 4);
    let url = t.start(1000, &product("c.bin")).await;
    assert_eq!(t.patch(&url, 0, &d[..10]).await.status(), 204);
    for wrong in [0, 5, 11, 999] {
        let r = t.patch(&url, wrong, &d[10..20]).await;
        assert_eq!(r.status(), 409, "offset {wrong}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], "offset_mismatch");
        assert_eq!(v["upload_offset"], 10);
    }
    assert_eq!(t.offset(&url).await, 10);
    // A chunk past the length is refused whole.
    let r = t.patch(&url, 10, &data(991, 5)).await;
    assert_eq!(r.status(), 413);
    assert_eq!(t.offset(&url).await, 10);
    // The wrong body type, a missing offset.
    let r = t
        .req(reqwest::Method::PATCH, &url)
        .header("Upload-Offset", "10")
        .header("Content-Type", "application/octet-stream")
        .body(d[10..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 415);
    let r = t
        .req(reqwest::Method::PATCH, &url)
        .header("Content-Type", "application/offset+octet-stream")
        .body(d[10..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 400);
    t.send(&url, &d, 10, &[990]).await;
    t.assert_file("c.bin", &d).await;
}

pub async fn chunk_checksums_are_verified_and_a_mismatch_discards_the_chunk() {
    let app = spawn_with(|c| c.limits.max_file_size = 32 << 20).await;
    let t = Tus::of(&app, "john1").await;
    // Big enough that the bad chunk fills an S3 part before it is found bad.
    let d = data(6 * MIB + 10, 6);
    let url = t.start(d.len() as u64, &product("sum.bin")).await;
    let sha1 = |b: &[u8]| format!("sha1 {}", b64(&<sha1::Sha1 as sha1::Digest>::digest(b)));
    let sha256 = |b: &[u8]| format!("sha256 {}", b64(&Sha256::digest(b)));

    let c1 = &d[..1000];
    let r = t
        .patch_with(&url, 0, c1.to_vec().into(), Some(sha1(c1)))
        .await;
    assert_eq!(r.status(), 204);
    let big = &d[1000..1000 + 5 * MIB + 3];
    let r = t
        .patch_with(
            &url,
            1000,
            big.to_vec().into(),
            Some(sha256(b"not these bytes")),
        )
        .await;
    assert_eq!(r.status().as_u16(), 460);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "checksum_mismatch");
    assert_eq!(t.offset(&url).await, 1000, "the chunk was discarded");
    let r = t
        .patch_with(&url, 1000, big.to_vec().into(), Some(sha1(b"nope")))
        .await;
    assert_eq!(r.status().as_u16(), 460);
    let r = t
        .patch_with(&url, 1000, big.to_vec().into(), Some("md5 AAAA".into()))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(t.offset(&url).await, 1000);

    let r = t
        .patch_with(&url, 1000, big.to_vec().into(), Some(sha256(big)))
        .await;
    assert_eq!(r.status(), 204);
    let at = 1000 + big.len();
    let rest = &d[at..];
    let r = t
        .patch_with(&url, at as u64, rest.to_vec().into(), Some(sha1(rest)))
        .await;
    assert_eq!(r.status(), 204);
    t.assert_file("sum.bin", &d).await;
}

pub async fn termination_removes_the_upload_and_its_data() {
    let app = spawn_with(|c| c.limits.max_file_size = 32 << 20).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(5 * MIB + 3 + 10, 7);
    let url = t.start(20 << 20, &product("gone.bin")).await;
    // A whole part and a tail on S3; a temporary file on disk.
    t.send(&url, &d, 0, &[5 * MIB + 3, 10]).await;
    assert!(!leftovers(app.dir.path(), app.s3.as_ref()).is_empty());
    let r = t
        .req(reqwest::Method::DELETE, &url)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
    assert_eq!(t.head(&url).await.status(), 404);
    assert_eq!(t.patch(&url, d.len() as u64, b"x").await.status(), 404);
    assert_eq!(
        t.req(reqwest::Method::DELETE, &url)
            .send()
            .await
            .expect("DELETE")
            .status(),
        404
    );
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    assert_eq!(app.blob_files().await, Vec::<String>::new());
    let (_, list) = t.get("/api/files/product/1").await;
    assert_eq!(list["count"], 0);
}

pub async fn expired_uploads_are_gone_and_gc_removes_them() {
    let app = spawn_with(|c| {
        c.limits.max_file_size = 32 << 20;
        c.tus.expire_after_secs = 1;
    })
    .await;
    let t = Tus::of(&app, "john1").await;
    let d = data(5 * MIB + 3 + 10, 8);
    let url = t.start(20 << 20, &product("late.bin")).await;
    t.send(&url, &d, 0, &[5 * MIB + 3, 10]).await;
    let idle = t.start(100, &product("idle.bin")).await;
    for u in [&url, &idle] {
        assert!(eventually(10, || async { t.head(u).await.status() == 410 }).await);
    }
    let r = t.patch(&url, d.len() as u64, b"x").await;
    assert_eq!(r.status(), 410);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "upload_expired");

    let report = mtfu::gc::sweep(
        &app.state.files.meta,
        &app.state.files.blob,
        Duration::from_secs(3600),
        false,
    )
    .await
    .expect("gc");
    assert_eq!(report.tus_expired.len(), 2, "{report:?}");
    assert_eq!(t.head(&url).await.status(), 404);
    assert_eq!(t.head(&idle).await.status(), 404);
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    assert_eq!(app.blob_files().await, Vec::<String>::new());
}

pub async fn another_tenants_upload_is_not_found() {
    let app = spawn_with(|_| {}).await;
    let t1 = Tus::of(&app, "john1").await;
    let t2 = Tus::of(&app, "john2").await;
    let d = data(100, 9);
    let url = t1.start(100, &product("mine.bin")).await;
    assert_eq!(t1.patch(&url, 0, &d[..50]).await.status(), 204);
    assert_eq!(t2.head(&url).await.status(), 404);
    assert_eq!(t2.patch(&url, 50, &d[50..]).await.status(), 404);
    assert_eq!(
        t2.req(reqwest::Method::DELETE, &url)
            .send()
            .await
            .expect("DELETE")
            .status(),
        404
    );
    // Made-up ids too.
    let fake = format!("{}/api/v2/uploads/{}", t1.base, "0".repeat(32));
    assert_eq!(t1.head(&fake).await.status(), 404);
    assert_eq!(
        t1.head(&format!("{}/api/v2/uploads/../x", t1.base))
            .await
            .status(),
        404
    );
    // No token: 401.
    let r = app
        .client
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("HEAD");
    assert_eq!(r.status(), 401);
    assert_eq!(t1.offset(&url).await, 50);
    t1.send(&url, &d, 50, &[50]).await;
    t1.assert_file("mine.bin", &d).await;
    let (_, list) = t2.get("/api/files/product/1").await;
    assert_eq!(list["count"], 0, "private to john1");
}

pub async fn tus_resumable_is_required_on_every_request_but_options() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let url = t.start(10, &product("v.bin")).await;
    let without = |m: reqwest::Method, u: &str| {
        app.client
            .request(m, u)
            .bearer_auth(&t.token)
            .header("Upload-Offset", "0")
            .header("Upload-Length", "10")
            .header("Upload-Metadata", product("w.bin"))
            .header("Content-Type", "application/offset+octet-stream")
    };
    let collection = format!("{}/api/v2/uploads", t.base);
    for (m, u) in [
        (reqwest::Method::HEAD, url.as_str()),
        (reqwest::Method::PATCH, url.as_str()),
        (reqwest::Method::DELETE, url.as_str()),
        (reqwest::Method::POST, collection.as_str()),
    ] {
        for version in [None, Some("0.2.2"), Some("2.0.0")] {
            let mut b = without(m.clone(), u);
            if let Some(v) = version {
                b = b.header("Tus-Resumable", v);
            }
            let r = b.body("0123456789").send().await.expect("request");
            assert_eq!(r.status(), 412, "{m} {version:?}");
            assert_eq!(header(&r, "tus-version"), Some("1.0.0"));
            assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
        }
    }
    // Nothing was processed.
    assert_eq!(t.offset(&url).await, 0);
    let (_, list) = t.get("/api/files/product/1").await;
    assert_eq!(list["count"], 0);
    // A method tus does not have on an upload.
    let r = t.req(reqwest::Method::GET, &url).send().await.expect("GET");
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
}

pub async fn options_tells_versions_extensions_and_limits() {
    let app = spawn_with(|c| {
        c.limits.max_file_size = 123_456_789;
        c.server.max_request_body = Some(5_000_000);
    })
    .await;
    for path in [
        "/api/v2/uploads",
        "/api/v2/uploads/0123456789abcdef0123456789abcdef",
    ] {
        // No token needed, Tus-Resumable ignored.
        let r = app
            .client
            .request(reqwest::Method::OPTIONS, app.url(path))
            .send()
            .await
            .expect("OPTIONS");
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(header(&r, "tus-version"), Some("1.0.0"));
        assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
        let ext: Vec<&str> = header(&r, "tus-extension")
            .expect("ext")
            .split(',')
            .collect();
        for e in [
            "creation",
            "creation-with-upload",
            "termination",
            "expiration",
            "checksum",
        ] {
            assert!(ext.contains(&e), "{e} in {ext:?}");
        }
        assert_eq!(header(&r, "tus-max-size"), Some("123456789"));
        assert_eq!(header(&r, "tus-checksum-algorithm"), Some("sha1,sha256"));
        assert_eq!(header(&r, "tus-max-chunk-size"), Some("5000000"));
    }
}

pub async fn a_chunk_over_the_request_cap_is_413_and_nothing_is_kept() {
    const CAP: usize = 256 * 1024;
    let app = spawn_with(|c| c.server.max_request_body = Some(CAP as u64)).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(4 * CAP, 10);
    let url = t.start(d.len() as u64, &product("capped.bin")).await;
    assert_eq!(t.patch(&url, 0, &d[..CAP]).await.status(), 204);
    // Said by Content-Length: refused before reading.
    let r = t.patch(&url, CAP as u64, &d[CAP..2 * CAP + 1]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "request_too_large");
    assert_eq!(v["max_request_body"], CAP as u64);
    assert_eq!(t.offset(&url).await, CAP as u64);
    // No length: found while streaming, the chunk is dropped whole.
    let chunks: Vec<Result<Bytes, std::io::Error>> = d[CAP..2 * CAP + 100]
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = t.patch_with(&url, CAP as u64, body, None).await;
    assert_eq!(r.status(), 413);
    assert_eq!(t.offset(&url).await, CAP as u64);
    // The creation request's body is capped too.
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Length", d.len().to_string())
        .header("Upload-Metadata", product("big-first.bin"))
        .header("Content-Type", "application/offset+octet-stream")
        .body(d[..CAP + 1].to_vec())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 413);
    t.send(&url, &d, CAP, &[CAP]).await;
    t.assert_file("capped.bin", &d).await;
}

pub async fn bad_metadata_and_lengths_are_refused_before_anything_is_stored() {
    let app = spawn_with(|c| c.limits.max_file_size = 1000).await;
    let t = Tus::of(&app, "john1").await;
    let cases = [
        (
            metadata(&[("resource", "product"), ("resource_id", "1")]),
            "filename",
        ),
        (
            metadata(&[("filename", "a"), ("resource_id", "1")]),
            "resource",
        ),
        (
            metadata(&[("filename", "a"), ("resource", "p")]),
            "resource_id",
        ),
        (
            metadata(&[
                ("filename", "../x"),
                ("resource", "p"),
                ("resource_id", "1"),
            ]),
            "filename",
        ),
        (
            metadata(&[("filename", "a"), ("resource", "a/b"), ("resource_id", "1")]),
            "resource",
        ),
        (
            metadata(&[
                ("filename", "a"),
                ("resource", "p"),
                ("resource_id", "1"),
                ("is_public", "maybe"),
            ]),
            "is_public",
        ),
        ("filename !!!,resource cA==".to_owned(), "Upload-Metadata"),
    ];
    for (meta, field) in cases {
        let r = t.create(10, &meta).await;
        assert_eq!(r.status(), 400, "{meta}");
        let v: Value = r.json().await.expect("json");
        assert!(v[field].is_array(), "{field}: {v}");
    }
    let r = t.create(1001, &product("big.bin")).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["max_file_size"], 1000);
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Metadata", product("x.bin"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400, "no Upload-Length");
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Defer-Length", "1")
        .header("Upload-Metadata", product("x.bin"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400, "deferred length");
    assert_eq!(app.blob_files().await, Vec::<String>::new());
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    // The metadata's labels and flags reach the file, under tus-js-client's names too.
    let meta = metadata(&[
        ("name", "pub.txt"),
        ("resource", "product"),
        ("resource_id", "1"),
        ("is_public", "true"),
        ("filetype", "text/plain"),
    ]);
    let url = t.start(5, &meta).await;
    t.send(&url, b"hello", 0, &[5]).await;
    let other = Tus::of(&app, "john2").await;
    let (_, list) = other.get("/api/files/product/1").await;
    assert_eq!(list["files"][0]["name"], "pub.txt", "{list}");
    assert_eq!(list["files"][0]["is_public"], true);
    assert_eq!(list["files"][0]["content_type"], "text/plain");
    assert_eq!(list["files"][0]["tenant_username"], "john1");
}

/// Wait until a request holds upload `id` of `user` (a probe lease is refused as busy).
pub async fn leased(state: &AppState, user: &str, id: &str) -> bool {
    let meta = state.files.meta.clone();
    let (tenant, _) = meta
        .tenant_by_name(user)
        .await
        .expect("tenant")
        .expect("exists");
    eventually(10, || {
        let meta = meta.clone();
        async move {
            let now = mtfu::domain::now_micros();
            match meta.tus_lease(tenant.id, id, "probe", now, now + 1).await {
                Ok(mtfu::meta::tus::Leased::Busy) => true,
                Ok(mtfu::meta::tus::Leased::Upload(_)) => {
                    let _ = meta.tus_release(id, "probe").await;
                    false
                }
                _ => false,
            }
        }
    })
    .await
}

/// A running server built from `cfg` (tenants john1, john2 made if missing).
pub struct Node {
    pub base: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    pub async fn start(cfg: Config) -> Node {
        let data_dir = cfg.server.data_dir.clone();
        let app = App::build(cfg).await.expect("app builds");
        let state = app.state();
        let hash = state.auth.hash_password("test".into()).await.expect("hash");
        for name in ["john1", "john2"] {
            let name = TenantName::parse(name).expect("name");
            match state.files.meta.create_tenant(&name, &hash).await {
                Ok(_) | Err(mtfu::meta::MetaError::Conflict(_)) => {}
                Err(e) => panic!("tenant: {e}"),
            }
        }
        let port = app.https_addr().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Node {
            base: format!("https://localhost:{port}"),
            client: client_for(&data_dir),
            state,
            stop: Some(tx),
            done: Some(done),
        }
    }

    pub async fn tus(&self, user: &str) -> Tus {
        let r = self
            .client
            .post(format!("{}/api/token/", self.base))
            .json(&serde_json::json!({"username": user, "password": "test"}))
            .send()
            .await
            .expect("token");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        Tus {
            base: self.base.clone(),
            client: self.client.clone(),
            token: v["access"].as_str().expect("access").to_owned(),
        }
    }

    /// Stop serving and wait until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A fresh configuration on fresh stores of the matrix's kinds (kept alive by the returned
/// directory and S3 server).
pub async fn fresh_config(
    tweak: impl FnOnce(&mut Config),
) -> (Config, tempfile::TempDir, Option<crate::s3::S3Server>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    let s3 = crate::store::configure(&mut cfg).await;
    tweak(&mut cfg);
    (cfg, dir, s3)
}

pub async fn an_upload_resumes_after_a_server_restart() {
    let (cfg, dir, s3) = fresh_config(|c| c.limits.max_file_size = 64 << 20).await;
    let d = data(12 * MIB + 77, 11);
    let a = Node::start(cfg.clone()).await;
    let t = a.tus("john1").await;
    let url = t.start(d.len() as u64, &product("restart.bin")).await;
    // A part and a tail on S3, then more tails.
    let at = 5 * MIB + 3 + 1 + 100 * 1024;
    t.send(&url, &d[..at], 0, &[5 * MIB + 3, 1, 100 * 1024])
        .await;
    a.stop().await;

    let b = Node::start(cfg).await;
    let t = b.tus("john1").await;
    let url = t.here(&url);
    assert_eq!(t.offset(&url).await, at as u64);
    t.send(&url, &d, at, &[3 * MIB, 1, 5 * MIB]).await;
    t.assert_file("restart.bin", &d).await;
    assert_eq!(leftovers(dir.path(), s3.as_ref()), Vec::<String>::new());
}

/// A request body that sends `d[..at]` at once and the rest when the sender is used (or dropped).
fn held_body(d: &[u8], at: usize) -> (reqwest::Body, tokio::sync::oneshot::Sender<()>) {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (first, second) = (
        Bytes::copy_from_slice(&d[..at]),
        Bytes::copy_from_slice(&d[at..]),
    );
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            let _ = go_rx.await;
            Ok(second)
        }),
    );
    (reqwest::Body::wrap_stream(body), go_tx)
}

pub async fn a_second_patch_while_one_runs_is_refused_and_nothing_mixes() {
    let app = spawn_with(|c| c.limits.max_file_size = 32 << 20).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(2 * MIB, 12);
    let url = t.start(d.len() as u64, &product("race.bin")).await;
    let id = url.rsplit('/').next().expect("id").to_owned();

    // A PATCH whose body waits half-way for a signal.
    let (body, go_tx) = held_body(&d, MIB);
    let slow = {
        let t = t.clone();
        let url = url.clone();
        tokio::spawn(async move { t.patch_with(&url, 0, body, None).await.status() })
    };
    assert!(
        leased(&app.state, "john1", &id).await,
        "the first PATCH took the lease"
    );
    let r = t.patch(&url, 0, &d).await;
    assert_eq!(r.status(), 423);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "upload_busy");
    let r = t
        .req(reqwest::Method::DELETE, &url)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 423);
    let _ = go_tx.send(());
    assert_eq!(slow.await.expect("task"), 204);
    t.assert_file("race.bin", &d).await;
}

pub async fn a_finished_upload_replaces_the_file_of_the_same_name() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let (s, _) = app
        .upload(&t.token, "product", "1", "same.bin", b"old bytes")
        .await;
    assert_eq!(s, 200);
    let d = data(70_000, 13);
    let url = t.start(d.len() as u64, &product("same.bin")).await;
    t.send(&url, &d, 0, &[1, 69_999]).await;
    let (_, list) = t.get("/api/files/product/1").await;
    assert_eq!(list["count"], 1, "{list}");
    t.assert_file("same.bin", &d).await;
    // The replaced blob went to garbage and was removed.
    assert!(
        eventually(10, || async { app.blob_files().await.len() == 1 }).await,
        "{:?}",
        app.blob_files().await
    );
}

pub async fn many_tiny_chunks_keep_few_tail_objects() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let sizes: Vec<usize> = (0..40).map(|i| 1 + (i * 37) % 1000).collect();
    let d = data(sizes.iter().sum(), 14);
    let url = t.start(d.len() as u64, &product("tiny.bin")).await;
    let mut at = 0;
    for n in sizes {
        assert_eq!(t.patch(&url, at as u64, &d[at..at + n]).await.status(), 204);
        at += n;
        if let Some(s3) = &app.s3 {
            // Merged once they pass 16 (the state names at most that many; the merged ones are
            // removed in the background).
            let ok = eventually(10, || async { tail_objects(s3) <= 16 }).await;
            assert!(ok, "{}", tail_objects(s3));
        }
    }
    t.assert_file("tiny.bin", &d).await;
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
}

/// With 8 MiB parts, chunks of S3's minimum part size (5 MiB) or more are sent as parts of
/// their own size, never through tail objects; shorter ones wait in tails until enough came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_chunks_of_a_minimum_part_or_more_skip_the_tails() {
    let app = crate::store::BLOBS
        .scope(
            crate::store::BlobStore::S3,
            spawn_with(|c| {
                c.limits.max_file_size = 64 << 20;
                c.blobs.s3.part_size = 8 << 20;
            }),
        )
        .await;
    let s3 = app.s3.as_ref().expect("S3");
    let t = Tus::of(&app, "john1").await;
    let sizes = [5 * MIB, 5 * MIB + 1, MIB, 4 * MIB, 9 * MIB, 3];
    let tails_after = [0, 0, 1, 0, 0, 0];
    let d = data(sizes.iter().sum(), 15);
    let url = t.start(d.len() as u64, &product("parts.bin")).await;
    let mut at = 0;
    for (i, n) in sizes.into_iter().enumerate() {
        assert_eq!(t.patch(&url, at as u64, &d[at..at + n]).await.status(), 204);
        at += n;
        let want = tails_after[i];
        let ok = eventually(10, || async { tail_objects(s3) == want }).await;
        assert!(
            ok,
            "after chunk {i}: {} tails, not {want}",
            tail_objects(s3)
        );
    }
    t.assert_file("parts.bin", &d).await;
}

pub async fn a_patch_that_stalls_past_its_lease_loses_the_upload() {
    let app = spawn_with(|c| c.tus.lease_secs = 1).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(2 * MIB, 16);
    let url = t.start(d.len() as u64, &product("stalled.bin")).await;
    let id = url.rsplit('/').next().expect("id").to_owned();
    let (body, go_tx) = held_body(&d, MIB);
    let slow = {
        let (t, url) = (t.clone(), url.clone());
        tokio::spawn(async move { t.patch_with(&url, 0, body, None).await.status() })
    };
    assert!(leased(&app.state, "john1", &id).await);
    // Another writer takes the upload once the stalled one's lease has lapsed.
    let meta = app.state.files.meta.clone();
    let (tenant, _) = meta
        .tenant_by_name("john1")
        .await
        .expect("tenant")
        .expect("john1");
    let taken = eventually(10, || async {
        let now = mtfu::domain::now_micros();
        matches!(
            meta.tus_lease(tenant.id, &id, "other", now, now + 60_000_000)
                .await,
            Ok(mtfu::meta::tus::Leased::Upload(_))
        )
    })
    .await;
    assert!(taken);
    meta.tus_release(&id, "other").await.expect("release");
    // The stalled PATCH finds its lease gone before it writes again, and keeps nothing.
    let _ = go_tx.send(());
    assert_eq!(slow.await.expect("task"), 423);
    assert_eq!(t.offset(&url).await, 0);
    t.send(&url, &d, 0, &[2 * MIB]).await;
    t.assert_file("stalled.bin", &d).await;
}
