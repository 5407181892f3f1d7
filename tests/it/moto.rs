//! The S3 blob store against a second S3 implementation: moto's server (PyPI `moto[server]`,
//! `python3 -m moto.server`) as a child process, beside the in-process s3s-fs the rest of the
//! suite uses. moto answers some operations unlike S3 and s3s-fs (its
//! `CompleteMultipartUpload` answer's root element is `CompleteMultipartUploadResponse`, which
//! the SDK cannot read), so what mtfu does with a store that speaks S3 loosely is shown here:
//! uploads of several parts, resumable uploads, downloads and deletes, each checked on the
//! bytes moto holds, and fsck and gc over its listings. Skipped when moto is not installed, unless
//! `MTFU_TEST_REQUIRE_TOOLS=1`.
//! Also here: a store refusing mtfu's credentials answers 503, not 500.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mtfu::config::Config;

use crate::helpers::spawn_with;
use crate::s3::{BUCKET, PART, S3Server, client_at, configure_at};
use crate::tus::{Tus, data, metadata, sha256_hex};

/// moto's S3 server on a free loopback port; killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = moto.client();
        for _ in 0..100 {
            if client.create_bucket().bucket(BUCKET).send().await.is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto's server did not answer on port {port}");
    }

    fn client(&self) -> aws_sdk_s3::Client {
        client_at(&self.endpoint, "moto", "moto")
    }

    fn configure(&self, cfg: &mut Config) {
        configure_at(cfg, &self.endpoint, "moto", "moto");
        cfg.limits.max_file_size = 64 * 1024 * 1024;
    }

    /// The SHA-256 of every object in the bucket, sorted.
    async fn digests(&self) -> Vec<String> {
        let c = self.client();
        let listed = c
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
        let mut out = Vec::new();
        for o in listed.contents() {
            let key = o.key().expect("key");
            let body = c.get_object().bucket(BUCKET).key(key).send().await;
            let bytes = body.expect("get").body.collect().await.expect("body");
            out.push(sha256_hex(&bytes.into_bytes()));
        }
        out.sort();
        out
    }
}

/// The SHA-256 of each of `blobs`, sorted.
fn digests_of(blobs: &[&[u8]]) -> Vec<String> {
    let mut out: Vec<String> = blobs.iter().map(|b| sha256_hex(b)).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_moto,
    ignore = "moto is not installed (pip install 'moto[server]')"
)]
async fn moto_holds_multipart_and_resumable_uploads_byte_exact() {
    let moto = Moto::start().await;
    let app = spawn_with(|cfg| moto.configure(cfg)).await;
    let token = app.token("john1").await;

    // Three parts and a bit, through the seed's form upload: CompleteMultipartUpload.
    let big = data(3 * PART as usize + 1234, 7);
    let (status, body) = app.upload(&token, "moto", "1", "big.bin", &big).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["file"]["sha256"], sha256_hex(&big), "{body}");
    // One part: a PutObject.
    let small = data(10_000, 8);
    let (status, body) = app.upload(&token, "moto", "1", "small.bin", &small).await;
    assert_eq!(status, 200, "{body}");

    // A resumable upload over part boundaries: chunks of 4 MiB and the rest.
    let tus = Tus::of(&app, "john1").await;
    let resumable = data(2 * PART as usize + 999, 9);
    let meta = metadata(&[
        ("filename", "tus.bin"),
        ("resource", "moto"),
        ("resource_id", "2"),
    ]);
    let created = tus.create(resumable.len() as u64, &meta).await;
    assert_eq!(created.status(), 201);
    let url = tus.here(
        created
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("Location"),
    );
    let mut offset = 0;
    for chunk in resumable.chunks(4 * 1024 * 1024) {
        let r = tus.patch(&url, offset, chunk).await;
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
        offset += chunk.len() as u64;
    }

    // moto holds exactly these three objects, byte-exact, and mtfu serves them back.
    assert_eq!(
        moto.digests().await,
        digests_of(&[&big, &small, &resumable]),
        "the objects in moto's bucket"
    );
    let (status, listing) = app.get(&token, "/api/v2/files?resource=moto").await;
    assert_eq!(status, 200, "{listing}");
    let files = listing["files"].as_array().expect("files").clone();
    assert_eq!(files.len(), 3, "{listing}");
    for f in &files {
        let id = f["id"].as_str().expect("id");
        let got = app
            .client
            .get(app.url(&format!("/api/v2/files/{id}/content")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("download");
        assert_eq!(got.status(), 200);
        let bytes = got.bytes().await.expect("bytes");
        assert_eq!(Some(sha256_hex(&bytes).as_str()), f["sha256"].as_str());
    }

    // Deleting the large one leaves the other two in the bucket.
    let id = files
        .iter()
        .find(|f| f["name"] == "big.bin")
        .and_then(|f| f["id"].as_str())
        .expect("big.bin");
    let (status, body) = app.delete(&token, &format!("/api/v2/files/{id}")).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        moto.digests().await,
        digests_of(&[&small, &resumable]),
        "the deleted blob is gone"
    );
    // ... which fsck does not count against the deleted row gc has yet to reap.
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    let checked = mtfu::fsck::check(meta, blob, true).await.expect("fsck");
    assert!(checked.problems.is_empty(), "{:#?}", checked.problems);
    assert_eq!(checked.digests_verified, 2, "{checked:?}");

    // gc over moto's listings (it implements ListMultipartUploads, which s3s-fs does not): a
    // multipart upload nobody finished goes, the live objects stay whole.
    let c = moto.client();
    let stale = "files/t/1/0123456789abcdef0123456789abcdef";
    c.create_multipart_upload()
        .bucket(BUCKET)
        .key(stale)
        .send()
        .await
        .expect("create a multipart upload");
    let r = mtfu::gc::sweep(meta, blob, Duration::ZERO, false)
        .await
        .expect("gc");
    assert_eq!(r.failures, 0, "{r:?}");
    let uploads = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    assert!(uploads.uploads().is_empty(), "{r:?} left {uploads:?}");
    assert_eq!(
        moto.digests().await,
        digests_of(&[&small, &resumable]),
        "gc kept the live objects whole"
    );
}

/// A store that refuses mtfu's credentials is a failing store: 503 JSON, nothing kept.
#[tokio::test]
async fn a_store_refusing_the_credentials_answers_503() {
    let s3 = S3Server::start().await;
    let app = spawn_with(|cfg| {
        s3.configure(cfg);
        cfg.blobs.s3.secret_access_key = Some("not-the-secret".into());
    })
    .await;
    let token = app.token("john1").await;
    let (status, body) = app
        .upload(&token, "refused", "1", "a.bin", &data(1000, 3))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "blob_store_unavailable", "{body}");
    let (_, listing) = app.get(&token, "/api/files/refused/1").await;
    assert_eq!(listing["count"], 0, "{listing}");
}
