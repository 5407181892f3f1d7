//! The transport: HTTP/2 and HTTP/1.1 over TLS, the plain listener, and the protections against
//! slow or hostile clients (header timeout, idle timeout, header size, connection cap).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_with;

/// Read what the server sends until it closes or `wait` passes; returns it and whether it closed.
async fn read_until_close(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(wait, s.read_to_end(&mut buf))
        .await
        .is_ok();
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

pub async fn http2_is_negotiated_by_alpn_and_http1_still_works() {
    let app = spawn_with(|_| {}).await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("h2");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let pem = std::fs::read(app.dir.path().join("tls/self-signed.crt")).expect("pem");
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .http1_only()
        .build()
        .expect("client");
    let r = h1.get(app.url("/healthz")).send().await.expect("h1");
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
}

pub async fn the_plain_listener_serves_the_same_api() {
    let app = spawn_with(|c| c.server.plain_listen = Some("127.0.0.1:0".into())).await;
    let plain = app.plain.expect("plain listener");
    let r = reqwest::get(format!("http://{plain}/api/list_files"))
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = reqwest::get(format!("http://{plain}/healthz"))
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

pub async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.header_read_timeout_secs = 1;
    })
    .await;
    let mut s = TcpStream::connect(app.plain.expect("plain"))
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(closed, "still open after the header timeout");
    assert!(!answer.contains("200 OK"), "{answer}");
}

pub async fn an_idle_connection_is_closed() {
    let app = spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.idle_timeout_secs = 2;
        crate::hostile::small_s3_timeouts(c);
    })
    .await;
    let mut s = TcpStream::connect(app.plain.expect("plain"))
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "a kept-alive idle connection was not closed");
}

pub async fn oversized_headers_are_refused() {
    let app = spawn_with(|c| c.server.plain_listen = Some("127.0.0.1:0".into())).await;
    let mut s = TcpStream::connect(app.plain.expect("plain"))
        .await
        .expect("connect");
    let big = "a".repeat(64 * 1024);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await; // The server may close before reading it all.
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(closed);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(!answer.contains("200 OK"));
}

pub async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.max_connections = 1;
    })
    .await;
    let addr = app.plain.expect("plain");
    let mut first = TcpStream::connect(addr).await.expect("first");
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.expect("first answered");
    let mut second = TcpStream::connect(addr).await.expect("second");
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let waited = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the second connection was served beyond the cap"
    );
    drop(first);
    let (answer, _) = read_until_close(&mut second, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

pub async fn readyz_and_metrics_answer() {
    let app = spawn_with(|_| {}).await;
    let r = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    let t = app.token("john1").await;
    assert_eq!(app.upload(&t, "p", "1", "a", b"x").await.0, 200);
    let text = app.metrics_text().await;
    for name in [
        "mtfu_requests_total",
        // A histogram (buckets), not a summary: it aggregates across nodes.
        "mtfu_request_duration_seconds_bucket",
        "mtfu_buffer_bytes_high_water",
        "mtfu_upload_bytes_total",
        "mtfu_request_body_bytes_total{route=\"upload\"}",
        "mtfu_response_body_bytes_total{route=\"upload\"}",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

crate::store_matrix!(
    http2_is_negotiated_by_alpn_and_http1_still_works,
    the_plain_listener_serves_the_same_api,
    a_client_that_never_finishes_its_headers_is_disconnected,
    an_idle_connection_is_closed,
    oversized_headers_are_refused,
    connections_beyond_the_cap_wait_for_a_free_slot,
    readyz_and_metrics_answer,
);
