//! Resumable uploads (tus 1.0.0 at `/api/v2/uploads`) on every store pair: creation, `HEAD`,
//! chunks of uneven sizes (1 byte, 100 KiB, 5 MiB + 3, ...: far below and across S3's part
//! size), creation-with-upload, offset conflicts, checksums, termination, expiry and gc, tenancy,
//! protocol version and discovery, the request cap, a restart in the middle, and two `PATCH`es
//! at once (tuspy, a tus client nobody here wrote, is in `tus_interop.rs`).
//!
//! This module holds the test client ([`Tus`]) and the helpers other tus tests share; the tests
//! are in `tus/chunks.rs` (how bytes arrive), `tus/lifecycle.rs` (termination, expiry, restarts,
//! leases) and `tus/protocol.rs` (tenancy, headers, discovery, refusals).

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

mod chunks;
mod lifecycle;
mod protocol;

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

/// Wait until a request holds upload `id` of `user` (a probe lease is refused as busy).
pub async fn leased(state: &AppState, user: &str, id: &str) -> bool {
    let meta = state.files.meta.clone();
    let (tenant, _) = meta
        .tenant_by_name(user)
        .await
        .expect("tenant")
        .expect("exists");
    // The probe's lease ends before it begins (at 0): a PATCH that waited on the probe's row
    // lock then finds it lapsed and takes the upload. (A lease until `now + 1` could be later
    // than the `now` of that PATCH, which then answered 423: the probe broke what it watched.)
    eventually(10, || {
        let meta = meta.clone();
        async move {
            let now = mtfu::domain::now_micros();
            match meta.tus_lease(tenant.id, id, "probe", now, 0).await {
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
