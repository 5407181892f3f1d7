//! Hostile clients against the transport (issue 11): an HTTP/2 connection that sends nothing
//! is closed although our keep-alive PINGs are answered, while a busy one is not; bodies
//! trickled just under the idle timeout end by the minimum rate (uploads) or the whole-body
//! deadline (token routes); `/metrics` only on its own listener. Raw clients, so that what is
//! asserted is what the server does, not what a well-behaved client library would do.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mtfu::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_with};

/// How long a test waits for the server to do what it must before calling it a failure (far
/// beyond the small timeouts configured; an unfixed server never does it).
pub const GUARD: Duration = Duration::from_secs(30);

/// S3 timeouts small enough for a test's small idle timeout (they must stay below it).
pub fn small_s3_timeouts(c: &mut Config) {
    c.blobs.s3.connect_timeout_secs = 1;
    c.blobs.s3.read_timeout_secs = 1;
    c.blobs.s3.operation_timeout_secs = 1;
}

/// An HTTP/2 connection over TLS (ALPN h2) to the test server, driven in a task; the task
/// ends when the server closes the connection.
pub(crate) async fn h2_connect(
    app: &TestApp,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let pem = std::fs::read(app.dir.path().join("tls/self-signed.crt")).expect("certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let port = app.base.rsplit(':').next().expect("port");
    let tcp = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("TLS");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = h2::client::handshake(stream).await.expect("h2 handshake");
    (send, tokio::spawn(conn))
}

#[tokio::test]
async fn an_http2_connection_that_sends_nothing_is_closed() {
    // Keep-alive PINGs go out every idle/2 and the h2 client acknowledges each one.
    let app = spawn_with(|c| c.server.idle_timeout_secs = 2).await;
    let (_send, conn) = h2_connect(&app).await;
    let ended = tokio::time::timeout(GUARD, conn).await;
    assert!(
        ended.is_ok(),
        "an HTTP/2 connection with no request stayed open"
    );
}

#[tokio::test]
async fn a_busy_http2_connection_is_not_cut() {
    let app = spawn_with(|c| c.server.idle_timeout_secs = 2).await;
    let t = app.token("john1").await;
    let (send, conn) = h2_connect(&app).await;
    let mut send = send.ready().await.expect("ready");
    // One upload whose handling spans three idle timeouts (a chunk every second: the body is
    // never silent for body_read_timeout_secs), then requests one after another.
    let req = http::Request::put(format!("{}/api/v2/files/p/1/slow.txt", app.base))
        .header("authorization", format!("Bearer {t}"))
        .header("content-length", "6")
        .body(())
        .expect("request");
    let (resp, mut body) = send.send_request(req, false).expect("send");
    for i in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        body.send_data(Bytes::from_static(b"x"), i == 5)
            .expect("the connection is still open");
    }
    let resp = resp.await.expect("response");
    assert_eq!(resp.status(), 201);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut ready = send.clone().ready().await.expect("still open");
        let req = http::Request::get(format!("{}/healthz", app.base))
            .body(())
            .expect("request");
        let (resp, _) = ready.send_request(req, true).expect("send");
        assert_eq!(resp.await.expect("response").status(), 200);
    }
    assert!(!conn.is_finished(), "the busy connection was closed");
}

/// A raw HTTP/1.1 connection to the plain listener.
pub async fn plain(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.plain.expect("plain listener"))
        .await
        .expect("connect")
}

/// The status line of the server's answer, or what it sent before closing ("" for nothing),
/// waiting at most [`GUARD`]; `None` if it neither answered nor closed.
pub async fn status_line(r: &mut (impl AsyncReadExt + Unpin)) -> Option<String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(GUARD, read).await.ok()?;
    let text = String::from_utf8_lossy(&got).into_owned();
    Some(text.lines().next().unwrap_or("").to_owned())
}

/// Send `head`, then `body` one byte every `every` (until the server answers); the status
/// line the server answered with (see [`status_line`]).
async fn trickle(
    app: &TestApp,
    head: String,
    body: &'static [u8],
    every: Duration,
) -> Option<String> {
    let (mut r, mut w) = plain(app).await.into_split();
    w.write_all(head.as_bytes()).await.expect("head");
    let writer = tokio::spawn(async move {
        for b in body {
            tokio::time::sleep(every).await;
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
        }
        // Keep the connection open: the server, not the client, must end the exchange.
        tokio::time::sleep(GUARD * 2).await;
    });
    let line = status_line(&mut r).await;
    writer.abort();
    line
}

#[tokio::test]
async fn an_upload_trickled_under_the_idle_timeout_is_ended_by_the_minimum_rate() {
    let app = spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.body_read_timeout_secs = 2;
        c.server.body_min_rate_bytes_per_sec = 100;
    })
    .await;
    let t = app.token("john1").await;
    let body: &'static [u8] = &[b'x'; 1000];
    let head = format!(
        "PUT /api/v2/files/p/1/slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    // One byte every 1.5 s never leaves the body silent for 2 s, but averages < 1 byte/s.
    let line = trickle(&app, head, body, Duration::from_millis(1500)).await;
    let line = line.expect("the trickled upload was neither answered nor closed");
    assert!(
        line.is_empty() || line.starts_with("HTTP/1.1 408"),
        "{line}"
    );
    assert_eq!(app.intents().await, 0, "the refused upload left an intent");
}

#[tokio::test]
async fn a_token_request_trickled_under_the_idle_timeout_is_ended_by_the_deadline() {
    let app = spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.body_read_timeout_secs = 2;
        c.server.body_min_rate_bytes_per_sec = 0; // only the deadline
        c.server.unauthenticated_body_deadline_secs = 3;
    })
    .await;
    let body: &'static [u8] =
        br#"{"username": "john1", "password": "test", "pad": "xxxxxxxxxxxxxxxxxxxx"}"#;
    let head = format!(
        "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let line = trickle(&app, head, body, Duration::from_millis(1000)).await;
    let line = line.expect("the trickled token request was neither answered nor closed");
    assert!(
        line.is_empty() || line.starts_with("HTTP/1.1 408"),
        "{line}"
    );
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = spawn_with(|c| c.server.plain_listen = Some("127.0.0.1:0".into())).await;
    let r = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("service port");
    assert_eq!(r.status(), 404, "/metrics on the HTTPS service port");
    let plain = app.plain.expect("plain");
    let r = reqwest::get(format!("http://{plain}/metrics"))
        .await
        .expect("plain port");
    assert_eq!(r.status(), 404, "/metrics on the plain service port");
    let text = app.metrics_text().await;
    assert!(text.contains("mtfu_requests_total"), "{text}");
    let metrics = app.metrics.expect("metrics listener");
    let r = reqwest::get(format!("http://{metrics}/api/list_files"))
        .await
        .expect("metrics port");
    assert_eq!(r.status(), 404, "the metrics listener serves only /metrics");
}

#[tokio::test]
async fn the_metrics_listener_can_be_turned_off() {
    let app = spawn_with(|c| c.server.metrics_listen = "off".into()).await;
    assert!(app.metrics.is_none());
}
