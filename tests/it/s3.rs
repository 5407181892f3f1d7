//! The S3 blob store against a real S3 protocol implementation: `s3s-fs` served in-process on a
//! loopback port (one server, root directory and bucket per test), and S3-only tests: multipart
//! layout of a 1 GiB upload, the buffer budget under many concurrent uploads, S3 going away
//! mid-upload, and a client disconnecting mid-multipart-upload.
//!
//! s3s-fs 0.14 does not implement `ListMultipartUploads`; it keeps one `.upload-{id}.json` file
//! per in-progress multipart upload in its root, which is what "uploads in progress" counts here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mtfu::config::{BlobBackendKind, Config};
use reqwest::multipart::{Form, Part};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, eventually, spawn_with};
use crate::store::{BLOBS, BlobStore};

pub const BUCKET: &str = "mtfu-test";
const ACCESS_KEY: &str = "mtfu-test-access";
const SECRET_KEY: &str = "mtfu-test-secret";
/// Parts as small as S3 allows, so tests cross part boundaries quickly.
pub const PART: u64 = 5 * 1024 * 1024;

/// An s3s-fs server on a loopback port; stopped when dropped.
pub struct S3Server {
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = Some(tokio::spawn(serve(dir.path().to_owned(), listener)));
        S3Server { dir, addr, task }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Stop answering: the listener and every open connection close.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Serve the same root on the same port again.
    pub async fn restart(&mut self) {
        self.stop();
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("rebind {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.task = Some(tokio::spawn(serve(self.root().to_owned(), listener)));
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The same settings as [`S3Server::configure`], as `MTFU_*` variables for a child process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MTFU_BLOBS__BACKEND", "s3".into()),
            ("MTFU_BLOBS__S3__BUCKET", BUCKET.into()),
            ("MTFU_BLOBS__S3__REGION", "us-east-1".into()),
            ("MTFU_BLOBS__S3__ENDPOINT_URL", self.endpoint()),
            ("MTFU_BLOBS__S3__FORCE_PATH_STYLE", "true".into()),
            ("MTFU_BLOBS__S3__ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("MTFU_BLOBS__S3__SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("MTFU_BLOBS__S3__KEY_PREFIX", "files/".into()),
            ("MTFU_BLOBS__S3__PART_SIZE", PART.to_string()),
        ]
    }

    /// Point `cfg` at this server.
    pub fn configure(&self, cfg: &mut Config) {
        configure_at(cfg, &self.endpoint(), ACCESS_KEY, SECRET_KEY);
    }

    /// Multipart uploads in progress (s3s-fs's `.upload-{id}.json` files).
    pub fn uploads_in_progress(&self) -> Vec<String> {
        std::fs::read_dir(self.root())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".upload-") && n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Part files of in-progress multipart uploads.
    pub fn part_files(&self) -> usize {
        std::fs::read_dir(self.root())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The object's file on disk, for checking what s3s-fs holds.
    pub fn object_path(&self, object_key: &str) -> PathBuf {
        self.root().join(BUCKET).join(object_key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(root: PathBuf, listener: tokio::net::TcpListener) {
    let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs root");
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    // Connection tasks live in this set: aborting this task closes them all.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let svc = service.clone();
        conns.spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

fn expected_sha(chunks: usize, chunk: usize) -> String {
    let mut want = Sha256::new();
    for i in 0..chunks {
        want.update(vec![(i % 251) as u8; chunk]);
    }
    hex::encode(want.finalize())
}

async fn spawn_s3(tweak: impl FnOnce(&mut Config)) -> TestApp {
    BLOBS.scope(BlobStore::S3, spawn_with(tweak)).await
}

fn s3(app: &mut TestApp) -> &mut S3Server {
    app.s3.as_mut().expect("an S3 test app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_upload_arrives_byte_exact_as_a_multipart_object() {
    const BUDGET: u64 = 16 * 1024 * 1024;
    let app = spawn_s3(|c| {
        c.limits.max_file_size = 2 << 30;
        c.limits.buffer_budget = BUDGET;
    })
    .await;
    let t = app.token("john1").await;
    let (chunks, chunk) = (4096, 256 * 1024); // 1 GiB
    let want = expected_sha(chunks, chunk);
    let (s, body) = app
        .upload_form(
            &t,
            crate::helpers::streamed_form(chunks, chunk, Duration::ZERO, None),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["file"]["sha256"], want);
    let budget = &app.state.files.budget;
    assert!(budget.high_water() <= BUDGET, "{}", budget.high_water());
    assert_eq!(budget.in_use(), 0);

    // The object: multipart, ceil(1 GiB / 5 MiB) parts, byte-exact.
    let s3 = app.s3.as_ref().expect("s3");
    let (_, files) = app.get(&t, "/api/files/product/1").await;
    let url = files["files"][0]["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&s3.endpoint()) && url.contains("X-Amz-Signature="),
        "a presigned S3 URL: {url}"
    );
    let objects = app.blob_files().await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    let client = s3_client(s3).await;
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key(format!("files/{}", objects[0]))
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(1 << 30));
    let parts = (1u64 << 30).div_ceil(PART);
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    assert!(etag.ends_with(&format!("-{parts}")), "etag {etag}");
    let mut got = Sha256::new();
    let mut f = tokio::fs::File::open(s3.object_path(&format!("files/{}", objects[0])))
        .await
        .expect("object file");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        use tokio::io::AsyncReadExt;
        let n = f.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got.update(&buf[..n]);
    }
    assert_eq!(hex::encode(got.finalize()), want, "s3s-fs holds the bytes");
    // Downloading through the presigned URL gives them back.
    let mut got = Sha256::new();
    let r = app.client.get(&url).send().await.expect("dl");
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    while let Some(b) = stream.next().await {
        got.update(b.expect("chunk"));
    }
    assert_eq!(hex::encode(got.finalize()), want);
    assert!(s3.uploads_in_progress().is_empty());
}

pub async fn s3_client(s3: &S3Server) -> aws_sdk_s3::Client {
    client_at(&s3.endpoint(), ACCESS_KEY, SECRET_KEY)
}

/// Point `cfg` at bucket [`BUCKET`] of the S3 server at `endpoint`, in parts of [`PART`].
pub fn configure_at(cfg: &mut Config, endpoint: &str, access_key: &str, secret_key: &str) {
    cfg.blobs.backend = BlobBackendKind::S3;
    let s3 = &mut cfg.blobs.s3;
    s3.bucket = BUCKET.into();
    s3.region = "us-east-1".into();
    s3.endpoint_url = Some(endpoint.into());
    s3.force_path_style = true;
    s3.access_key_id = Some(access_key.into());
    s3.secret_access_key = Some(secret_key.into());
    s3.key_prefix = "files/".into();
    s3.part_size = PART;
    s3.parts_in_flight = 2;
}

/// An S3 client of the server at `endpoint`.
pub fn client_at(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            access_key, secret_key, None, None, "test",
        ))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Size of each of the concurrent uploads, MiB (`MTFU_TEST_S3_CONCURRENT_MIB`, default 64).
fn concurrent_size() -> usize {
    std::env::var("MTFU_TEST_S3_CONCURRENT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_never_buffer_more_than_the_budget() {
    const UPLOADS: usize = 32;
    const BUDGET: u64 = 32 * 1024 * 1024;
    let app = spawn_s3(|c| {
        c.limits.max_file_size = 1 << 30;
        c.limits.buffer_budget = BUDGET;
        c.server.body_read_timeout_secs = 600;
    })
    .await;
    let t = app.token("john1").await;
    let mib = concurrent_size();
    let chunk = 256 * 1024;
    let chunks = mib * 4;
    let want = expected_sha(chunks, chunk);
    let uploads = (0..UPLOADS).map(|i| {
        let form = Form::new()
            .text("resource", "bulk")
            .text("resource_id", i.to_string())
            .part(
                "file",
                Part::stream_with_length(
                    reqwest::Body::wrap_stream(futures_util::stream::iter((0..chunks).map(
                        move |j| Ok::<_, std::io::Error>(Bytes::from(vec![(j % 251) as u8; chunk])),
                    ))),
                    (chunks * chunk) as u64,
                )
                .file_name(format!("f{i}.bin")),
            );
        app.upload_form(&t, form)
    });
    let results = futures_util::future::join_all(uploads).await;
    for (s, body) in &results {
        assert_eq!(*s, 200, "{body}");
        assert_eq!(body["file"]["sha256"], want);
    }
    let budget = &app.state.files.budget;
    assert!(
        budget.high_water() <= BUDGET,
        "buffered {} bytes with a budget of {BUDGET}",
        budget.high_water()
    );
    assert!(
        budget.high_water() >= 2 * PART,
        "uploads ran in parallel: {}",
        budget.high_water()
    );
    assert_eq!(budget.in_use(), 0);
    assert_eq!(app.blob_files().await.len(), UPLOADS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_stopping_mid_upload_is_a_clear_error_and_the_multipart_upload_is_aborted() {
    let mut app = spawn_s3(|c| c.limits.max_file_size = 1 << 30).await;
    let t = app.token("john1").await;
    let form = crate::helpers::streamed_form(100, 1024 * 1024, Duration::from_millis(100), None);
    let req = app
        .client
        .post(app.url("/api/upload"))
        .bearer_auth(&t)
        .multipart(form)
        .send();
    let upload = tokio::spawn(req);
    assert!(
        eventually(30, || async {
            let s = app.s3.as_ref().expect("s3");
            !s.uploads_in_progress().is_empty() && s.part_files() > 0
        })
        .await,
        "no multipart upload began"
    );
    s3(&mut app).stop();
    let r = upload.await.expect("join").expect("an answer, not a reset");
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["code"], "blob_store_unavailable", "{body}");
    assert_eq!(app.intents().await, 0, "no intent left");
    assert!(
        !s3(&mut app).uploads_in_progress().is_empty(),
        "the abort could not reach the stopped server"
    );
    // S3 back: the abort, retried in the background, removes the multipart upload.
    s3(&mut app).restart().await;
    assert!(
        eventually(30, || async {
            app.s3
                .as_ref()
                .is_some_and(|s| s.uploads_in_progress().is_empty() && s.part_files() == 0)
        })
        .await,
        "multipart upload left: {:?}",
        app.s3.as_ref().map(S3Server::uploads_in_progress)
    );
    assert_eq!(app.get(&t, "/api/list_files").await.1["count"], 0);
    assert!(app.blob_files().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnecting_mid_multipart_upload_leaves_nothing() {
    let app = spawn_s3(|c| c.limits.max_file_size = 1 << 30).await;
    let t = app.token("john1").await;
    // 48 × 256 KiB = 12 MiB sent, then the client drops: two parts were begun.
    let form = crate::helpers::streamed_form(100, 256 * 1024, Duration::from_millis(10), Some(48));
    let r = app.send_upload(&t, form).await;
    assert!(r.is_err() || r.is_ok_and(|r| !r.status().is_success()));
    let s3 = app.s3.as_ref().expect("s3");
    assert!(
        eventually(20, || async {
            app.intents().await == 0 && s3.uploads_in_progress().is_empty() && s3.part_files() == 0
        })
        .await,
        "left: intents {}, uploads {:?}",
        app.intents().await,
        s3.uploads_in_progress()
    );
    assert!(app.blob_files().await.is_empty());
    assert_eq!(app.get(&t, "/api/list_files").await.1["count"], 0);
    assert_eq!(app.state.files.budget.in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_an_unreachable_s3() {
    let mut app = spawn_s3(|_| {}).await;
    let r = app.client.get(app.url("/readyz")).send().await.expect("r");
    assert_eq!(r.status(), 200);
    s3(&mut app).stop();
    let r = app.client.get(app.url("/readyz")).send().await.expect("r");
    assert_eq!(r.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_upload_is_one_put_and_reserves_only_what_can_arrive() {
    let app = spawn_s3(|_| {}).await;
    let t = app.token("john1").await;
    let data = vec![7u8; 10_000];
    let (s, body) = app.upload(&t, "product", "1", "small.txt", &data).await;
    assert_eq!(s, 200, "{body}");
    let budget = &app.state.files.budget;
    // Bounded by the request's Content-Length, not a whole 5 MiB part.
    assert!(budget.high_water() <= 64 * 1024, "{}", budget.high_water());
    assert_eq!(budget.in_use(), 0);
    let s3 = app.s3.as_ref().expect("s3");
    let objects = app.blob_files().await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    let head = s3_client(s3)
        .await
        .head_object()
        .bucket(BUCKET)
        .key(format!("files/{}", objects[0]))
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(10_000));
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    assert!(!etag.contains('-'), "one PutObject, not multipart: {etag}");
    assert!(s3.uploads_in_progress().is_empty());
}
