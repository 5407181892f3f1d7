//! Test harness: start the real server (TLS on an ephemeral loopback port, a fresh data
//! directory) and talk to it with a real HTTPS client that trusts its self-signed certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mtfu::app::App;
use mtfu::config::Config;
use mtfu::domain::TenantName;
use mtfu::http::AppState;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::sync::OnceCell;

pub struct TestApp {
    pub base: String,
    /// The plain-HTTP listener, when the test configured one.
    pub plain: Option<std::net::SocketAddr>,
    /// The metrics listener (`server.metrics_listen`), unless the test turned it off.
    pub metrics: Option<std::net::SocketAddr>,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    /// The in-process S3 server, when the test runs on the S3 blob store.
    pub s3: Option<crate::s3::S3Server>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// One argon2 hash of "test", shared by every tenant of every test (hashing is the slow part).
async fn test_hash(app: &App) -> String {
    static HASH: OnceCell<String> = OnceCell::const_new();
    HASH.get_or_init(|| async {
        app.state()
            .auth
            .hash_password("test".into())
            .await
            .expect("hash")
    })
    .await
    .clone()
}

/// The configuration every test starts from.
pub fn test_config(dir: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.metrics_listen = "127.0.0.1:0".into();
    cfg.server.data_dir = dir.to_owned();
    cfg.gc.interval_secs = 0;
    cfg
}

/// A client trusting the certificate in `data_dir`.
pub fn client_for(data_dir: &Path) -> reqwest::Client {
    let pem = std::fs::read(data_dir.join("tls/self-signed.crt")).expect("certificate");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client")
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// The in-process servers' log: what `MTFU_TEST_LOG` selects (tracing's filter syntax), by
/// default only the warnings that explain a transport cutting an upload short, so that CI output
/// carries them next to a failure without the noise of the refusals the tests provoke.
fn init_log() {
    let filter =
        std::env::var("MTFU_TEST_LOG").unwrap_or_else(|_| "mtfu::http::upload=warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

/// Start the server with tenants john1..john3 (password `test`), after `tweak` edits the config.
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    init_log();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    let s3 = crate::store::configure(&mut cfg).await;
    tweak(&mut cfg);
    let app = App::build(cfg).await.expect("app builds");
    let hash = test_hash(&app).await;
    for i in 1..=3 {
        let name = TenantName::parse(&format!("john{i}")).expect("name");
        // A second node on a shared database finds the tenants there already.
        match app.state().files.meta.create_tenant(&name, &hash).await {
            Ok(_) | Err(mtfu::meta::MetaError::Conflict(_)) => {}
            Err(e) => panic!("tenant: {e}"),
        }
    }
    let port = app.https_addr().port();
    let plain = app.plain_addr();
    let metrics = app.metrics_addr();
    let state = app.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("https://localhost:{port}"),
        plain,
        metrics,
        client: client_for(dir.path()),
        state,
        dir,
        s3,
        stop: Some(tx),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `/metrics` from the metrics listener, as text.
    pub async fn metrics_text(&self) -> String {
        let addr = self.metrics.expect("metrics listener");
        let r = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("metrics");
        assert_eq!(r.status(), 200);
        r.text().await.expect("text")
    }

    pub async fn token(&self, user: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/token/"))
            .json(&serde_json::json!({"username": user, "password": "test"}))
            .send()
            .await
            .expect("token request");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        v["access"].as_str().expect("access").to_owned()
    }

    /// POST a multipart form to `/api/upload`; the raw result (a client that gives up mid-body
    /// gets an error).
    pub async fn send_upload(&self, token: &str, form: Form) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(self.url("/api/upload"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
    }

    /// The bytes behind a download link.
    pub async fn download(&self, url: &str) -> Vec<u8> {
        let r = self.client.get(url).send().await.expect("download");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await.expect("body").to_vec()
    }

    pub async fn upload_form(&self, token: &str, form: Form) -> (u16, Value) {
        let r = self.send_upload(token, form).await.expect("upload request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Upload `data` as `name` to resource/resource_id; returns (status, body).
    pub async fn upload(
        &self,
        token: &str,
        resource: &str,
        resource_id: &str,
        name: &str,
        data: &[u8],
    ) -> (u16, Value) {
        let form = Form::new()
            .text("resource", resource.to_owned())
            .text("resource_id", resource_id.to_owned())
            .part(
                "file",
                Part::bytes(data.to_vec())
                    .file_name(name.to_owned())
                    .mime_str("text/plain")
                    .expect("mime"),
            );
        self.upload_form(token, form).await
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("delete");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Blobs in the store, finished and unfinished, through the store's own listing (any age),
    /// plus, on S3, the multipart uploads in progress that s3s-fs cannot list.
    pub async fn blob_files(&self) -> Vec<String> {
        let far = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
        let mut keys: Vec<String> = self
            .state
            .files
            .blob
            .list_older_than(far)
            .await
            .expect("list blobs")
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        if let Some(s3) = &self.s3 {
            keys.extend(s3.uploads_in_progress());
        }
        keys
    }

    /// mtfu's own signed `/dl/...` link for a file of `tenant`, valid for an hour.
    pub fn dl_url(&self, tenant: i64, file_id: &str) -> String {
        let expires = chrono::Utc::now().timestamp() + 3600;
        let sig = self
            .state
            .auth
            .url_signature(mtfu::domain::TenantId(tenant), file_id, expires);
        self.url(&format!(
            "/dl/{tenant}/{file_id}?expires={expires}&sig={sig}"
        ))
    }

    /// Write a blob no file or intent names (an orphan) through the store's API.
    pub async fn write_orphan(&self, key: &str, data: &[u8]) {
        let key = mtfu::domain::BlobKey::from_stored(key).expect("key");
        let mut w = self
            .state
            .files
            .blob
            .create(&key, data.len() as u64)
            .await
            .expect("create");
        w.write(bytes::Bytes::copy_from_slice(data))
            .await
            .expect("write");
        w.finish().await.expect("finish");
    }

    /// Upload intents still recorded (uploads in progress or abandoned).
    pub async fn intents(&self) -> usize {
        self.state
            .files
            .meta
            .stale_intents(i64::MAX)
            .await
            .expect("intents")
            .len()
    }
}

pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Names of the files in a listing, in order.
pub fn names(listing: &Value) -> Vec<String> {
    listing["files"]
        .as_array()
        .expect("files array")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Wait up to `secs` for `cond`.
pub async fn eventually<F, Fut>(secs: u64, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cond().await
}

/// A multipart form whose file part is `chunks` chunks of `chunk` bytes (chunk `i` filled with
/// `i % 251`), with `pause` between them; chunk `fail_at` (if any) is an error, which makes the
/// client drop the connection.
pub fn streamed_form(chunks: usize, chunk: usize, pause: Duration, fail_at: Option<usize>) -> Form {
    let s = futures_util::stream::iter(0..chunks).then(move |i| async move {
        if i > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        if Some(i) == fail_at {
            return Err(std::io::Error::other("client gave up"));
        }
        Ok(Bytes::from(vec![(i % 251) as u8; chunk]))
    });
    Form::new()
        .text("resource", "product")
        .text("resource_id", "1")
        .part(
            "file",
            Part::stream_with_length(reqwest::Body::wrap_stream(s), (chunks * chunk) as u64)
                .file_name("big.bin"),
        )
}
