//! Hostile bodies (issue 11): multipart forms whose text fields, parts or part headers pass
//! their caps answer 400 at once (after a bounded number of bytes, with memory bounded), `PUT`
//! honours `server.max_request_body` like the other upload routes, and a download from an S3
//! that does not answer ends with a 503 JSON.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::helpers::{TestApp, spawn_with};
use crate::hostile::{GUARD, plain, small_s3_timeouts, status_line};
use crate::store::{BLOBS, BlobStore};

const BOUNDARY: &str = "HOSTILE";

/// A server that would buffer whole forms of text (the old rule: up to the file size limit)
/// and never times a body out during the test.
async fn form_app() -> TestApp {
    spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.body_read_timeout_secs = 600;
        c.limits.max_file_size = 1 << 30;
    })
    .await
}

/// Send the head of a multipart upload declaring `declared` body bytes, then `sent`, then
/// nothing more; the status line the server answers with.
async fn partial_form(app: &TestApp, declared: u64, sent: &[u8]) -> Option<String> {
    let t = app.token("john1").await;
    let (mut r, mut w) = plain(app).await.into_split();
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n"
    );
    w.write_all(head.as_bytes()).await.expect("head");
    // The server may answer and stop reading before all of it is written.
    let _ = w.write_all(sent).await;
    let line = status_line(&mut r).await;
    drop(w);
    line
}

fn text_part(name: &str, value: &str) -> String {
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
}

#[tokio::test]
async fn text_fields_past_the_cap_answer_400_before_the_form_is_sent() {
    let app = form_app().await;
    // 1 MiB of distinct 16 KiB fields (each under the old 64 KiB per-field cap) out of a form
    // declared as 64 MiB: the answer must come without the rest.
    let value = "v".repeat(16 * 1024);
    let sent: String = (0..64)
        .map(|i| text_part(&format!("f{i}"), &value))
        .collect();
    let line = partial_form(&app, 64 << 20, sent.as_bytes()).await;
    let line = line.expect("no answer while the form was unfinished");
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
}

#[tokio::test]
async fn too_many_parts_answer_400_before_the_form_is_sent() {
    let app = form_app().await;
    let sent: String = (0..100).map(|i| text_part(&format!("f{i}"), "1")).collect();
    let line = partial_form(&app, 64 << 20, sent.as_bytes()).await;
    let line = line.expect("no answer while the form was unfinished");
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
}

#[tokio::test]
async fn a_part_header_that_never_ends_is_refused_after_the_cap() {
    let app = form_app().await;
    // multer re-scans its whole buffer for the end of the headers on every read: 16 MiB of
    // header cost seconds of CPU. Refused within 1 MiB, it costs at most ~cap × chunks.
    let mut sent = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Pad: "
    )
    .into_bytes();
    sent.resize(1 << 20, b'a');
    let line = partial_form(&app, 16 << 20, &sent).await;
    let line = line.expect("no answer after 1 MiB of one part's headers");
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
}

/// Resident memory of this process (the server runs in it), bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_forms_of_text_fields_do_not_grow_memory() {
    let app = form_app().await;
    let t = app.token("john1").await;
    let before = rss();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // 4 forms of 1000 distinct 60 KiB fields (~60 MiB each) and no file, at once: the old
    // server kept every field, 240 MiB in all.
    let sends = (0..4).map(|_| {
        let value = "v".repeat(60 * 1024);
        let parts = futures_util::stream::iter(0..1000).map(move |i| {
            Ok::<_, std::io::Error>(bytes::Bytes::from(text_part(&format!("f{i}"), &value)))
        });
        let end = futures_util::stream::once(async {
            Ok(bytes::Bytes::from(format!("--{BOUNDARY}--\r\n")))
        });
        app.client
            .post(app.url("/api/upload"))
            .bearer_auth(&t)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(reqwest::Body::wrap_stream(parts.chain(end)))
            .send()
    });
    // Answered 400 while sending, or cut off after the drain: never accepted.
    for r in futures_util::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
    {
        assert_eq!(r.status(), 400);
    }
    sampler.abort();
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        grew < 100 << 20,
        "resident memory grew by {} MiB",
        grew >> 20
    );
}

#[tokio::test]
async fn put_honours_max_request_body() {
    let app = spawn_with(|c| c.server.max_request_body = Some(1000)).await;
    let t = app.token("john1").await;
    let put = |name: &str, body: reqwest::Body| {
        app.client
            .put(app.url(&format!("/api/v2/files/p/1/{name}")))
            .bearer_auth(&t)
            .body(body)
            .send()
    };
    let r = put("small.bin", vec![1u8; 1000].into()).await.expect("put");
    assert_eq!(r.status(), 201);
    // Declared by Content-Length: refused before reading.
    let r = put("declared.bin", vec![1u8; 1001].into())
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "request_too_large");
    assert_eq!(v["max_request_body"], 1000);
    // No length declared: refused while streaming, nothing kept.
    let chunks = futures_util::stream::iter(0..4)
        .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![2u8; 500])));
    let r = put("streamed.bin", reqwest::Body::wrap_stream(chunks))
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "request_too_large");
    let (_, list) = app.get(&t, "/api/v2/files").await;
    assert_eq!(list["files"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_from_an_s3_that_does_not_answer_is_a_503_json() {
    let mut app = BLOBS
        .scope(
            BlobStore::S3,
            spawn_with(|c| {
                c.server.idle_timeout_secs = 5;
                small_s3_timeouts(c);
                c.blobs.s3.operation_timeout_secs = 3;
            }),
        )
        .await;
    let t = app.token("john1").await;
    let r = app
        .client
        .put(app.url("/api/v2/files/p/1/a.txt"))
        .bearer_auth(&t)
        .body("hello")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // S3 now accepts connections and never answers.
    let s3 = app.s3.as_mut().expect("S3");
    let addr = s3.addr;
    s3.stop();
    let mut tries = 0;
    let hung = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("rebind {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("rebind {addr}: {e}"),
        }
    };
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = hung.accept().await {
            held.push(sock);
        }
    });
    let r = tokio::time::timeout(
        GUARD,
        app.client
            .get(app.url(&format!("/api/v2/files/{id}/content")))
            .bearer_auth(&t)
            .send(),
    )
    .await
    .expect("no answer at all")
    .expect("the connection ended without an answer");
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.expect("a JSON body");
    assert_eq!(v["code"], "blob_store_unavailable", "{v}");
    holder.abort();
}
