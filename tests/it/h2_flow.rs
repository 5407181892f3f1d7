//! HTTP/2 flow control (`[http2]`): windows are paid for from `http2.window_budget`; a stream
//! whose upload waits for the buffer budget keeps its stream window full, and the connection
//! window still leaves room for its siblings.

use std::time::Duration;

use bytes::Bytes;

use crate::helpers::spawn_with;
use crate::hostile::h2_connect;

/// A hang guard, not a timing assertion: what it guards must happen, at any speed.
const GUARD: Duration = Duration::from_secs(60);
const WINDOW: u32 = 1024 * 1024;
const STREAMS: u32 = 4;
/// What a connection's windows cost: every stream's window and one more.
const PAID: u64 = WINDOW as u64 * (STREAMS as u64 + 1);

/// Send `n` bytes as flow control lets them go; `end` ends the stream with the last.
async fn send_within_windows(body: &mut h2::SendStream<Bytes>, mut n: usize, end: bool) {
    while n > 0 {
        body.reserve_capacity(n);
        let cap = tokio::time::timeout(GUARD, std::future::poll_fn(|cx| body.poll_capacity(cx)))
            .await
            .expect("the server grants window for this stream")
            .expect("stream open")
            .expect("capacity");
        let k = cap.min(n);
        if k == 0 {
            continue;
        }
        body.send_data(Bytes::from(vec![b'x'; k]), end && k == n)
            .expect("send");
        n -= k;
    }
}

/// Open an HTTP/2 connection and wait until the server serves it (its windows are granted when
/// the connection starts): a login on it is answered; its access token. The tests make every
/// request on their own connections: the test client's (reqwest's) would take windows too.
async fn h2_ready(app: &crate::helpers::TestApp) -> H2 {
    let (send, conn) = h2_connect(app).await;
    let mut ready = tokio::time::timeout(GUARD, send.clone().ready())
        .await
        .expect("a stream slot")
        .expect("ready");
    let token = login(&mut ready, app).await;
    (send, conn, token)
}

type H2 = (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
    String,
);

/// Log in on `send` as john1; the access token.
async fn login(send: &mut h2::client::SendRequest<Bytes>, app: &crate::helpers::TestApp) -> String {
    let req = http::Request::post(format!("{}/api/token/", app.base))
        .header("content-type", "application/json")
        .body(())
        .expect("request");
    let (resp, mut body) = send.send_request(req, false).expect("send");
    let login = br#"{"username": "john1", "password": "test"}"#;
    body.send_data(Bytes::from_static(login), true)
        .expect("send");
    let resp = tokio::time::timeout(GUARD, resp)
        .await
        .expect("the login is answered")
        .expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut json = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        json.extend_from_slice(&chunk);
    }
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
    v["access"].as_str().expect("access token").to_owned()
}

/// Start an upload of `2 * WINDOW` bytes on `send` and send its first `WINDOW`.
async fn upload_one_window(
    send: &h2::client::SendRequest<Bytes>,
    app: &crate::helpers::TestApp,
    token: &str,
    name: &str,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut send = tokio::time::timeout(GUARD, send.clone().ready())
        .await
        .expect("a stream slot")
        .expect("ready");
    let req = http::Request::put(format!("{}/api/v2/files/p/1/{name}", app.base))
        .header("authorization", format!("Bearer {token}"))
        .header("content-length", (2 * WINDOW).to_string())
        .header("content-type", "application/octet-stream")
        .body(())
        .expect("request");
    let (resp, mut body) = send.send_request(req, false).expect("send");
    send_within_windows(&mut body, WINDOW as usize, false).await;
    (resp, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stalled_on_the_budget_do_not_block_their_siblings_on_the_connection() {
    let app = spawn_with(|c| {
        c.http2.window_budget = PAID;
        c.http2.stream_window_bytes = WINDOW;
        c.http2.max_concurrent_streams = STREAMS;
    })
    .await;
    let (send, _conn, token) = h2_ready(&app).await;
    let budget = app.state.files.budget.clone();
    // The connection's windows are paid for from the window budget.
    assert_eq!(app.state.windows.held(), PAID);
    // Spend the buffer budget: every upload now waits before it reads more of its body.
    let held = budget.acquire(budget.capacity() as usize).await;
    // All streams but one are uploads that fill their whole stream window and then stall. With
    // a connection window no larger than a stream's (hyper's adaptive windows), the second one
    // could not even send its window; with one of two, the third.
    let mut stalled = Vec::new();
    for i in 0..STREAMS - 1 {
        stalled.push(upload_one_window(&send, &app, &token, &format!("stalled{i}.bin")).await);
    }
    assert_eq!(
        budget.in_use(),
        budget.capacity(),
        "the uploads are waiting"
    );
    // The sibling: a login, whose body needs connection window too, is answered.
    let mut ready = tokio::time::timeout(GUARD, send.clone().ready())
        .await
        .expect("a stream slot")
        .expect("ready");
    login(&mut ready, &app).await;
    // Budget back: the stalled uploads go on and finish.
    drop(held);
    for (resp, mut body) in stalled {
        send_within_windows(&mut body, WINDOW as usize, true).await;
        let resp = tokio::time::timeout(GUARD, resp)
            .await
            .expect("the upload finishes")
            .expect("response");
        assert_eq!(resp.status(), 201);
    }
}

/// The windows a client is granted are the configured ones: one stream may send a whole
/// `http2.stream_window_bytes` (32 MiB, the default) before the server reads any of it (a
/// long-distance upload does not wait a round trip every 64 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_may_send_its_whole_configured_window_unread() {
    // The default window budget pays for the default windows (32 MiB × 5) of one connection.
    let app = spawn_with(|c| {
        c.limits.max_file_size = 64 * 1024 * 1024;
    })
    .await;
    let window = app.state.cfg.http2.stream_window_bytes as usize;
    assert_eq!(window, 32 * 1024 * 1024);
    let (send, _conn, token) = h2_ready(&app).await;
    assert_eq!(
        app.state.windows.held(),
        5 * window as u64,
        "the windows are paid for"
    );
    let budget = app.state.files.budget.clone();
    let held = budget.acquire(budget.capacity() as usize).await;
    let mut send = send.ready().await.expect("ready");
    let req = http::Request::put(format!("{}/api/v2/files/p/1/big.bin", app.base))
        .header("authorization", format!("Bearer {token}"))
        .header("content-length", window.to_string())
        .header("content-type", "application/octet-stream")
        .body(())
        .expect("request");
    let (resp, mut body) = send.send_request(req, false).expect("send");
    // Nothing of it can be written while the budget is held: all of it sits in the window.
    send_within_windows(&mut body, window, true).await;
    drop(held);
    let resp = tokio::time::timeout(GUARD, resp)
        .await
        .expect("finishes")
        .expect("response");
    assert_eq!(resp.status(), 201);
}

/// What a stream may send before the server reads anything: its window, up to what h2's client
/// buffers (400 KiB).
async fn stream_window(
    send: &h2::client::SendRequest<Bytes>,
    app: &crate::helpers::TestApp,
    token: &str,
) -> usize {
    let mut send = tokio::time::timeout(GUARD, send.clone().ready())
        .await
        .expect("a stream slot")
        .expect("ready");
    // A real upload, so that the server waits for its body instead of answering at once.
    let req = http::Request::put(format!("{}/api/v2/files/p/1/probe.bin", app.base))
        .header("authorization", format!("Bearer {token}"))
        .header("content-length", "1000000")
        .body(())
        .expect("request");
    let (_resp, mut body) = send.send_request(req, false).expect("send");
    body.reserve_capacity(64 * 1024 * 1024);
    let cap = tokio::time::timeout(GUARD, std::future::poll_fn(|cx| body.poll_capacity(cx)))
        .await
        .expect("capacity")
        .expect("stream open")
        .expect("capacity");
    body.send_reset(h2::Reason::CANCEL);
    cap
}

/// Windows never take more than `http2.window_budget`: past that, a connection gets HTTP/2's
/// initial windows; a connection's windows come back to the budget when it closes. Upload
/// buffers take nothing from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_paid_from_their_budget_and_given_back() {
    let app = spawn_with(|c| {
        c.http2.window_budget = PAID;
        c.http2.stream_window_bytes = WINDOW;
        c.http2.max_concurrent_streams = STREAMS;
    })
    .await;
    let budget = app.state.windows.clone();
    // The whole buffer budget held by uploads does not shrink the windows.
    let buffers = app.state.files.budget.clone();
    let _uploads = buffers.acquire(buffers.capacity() as usize).await;
    let first = h2_ready(&app).await;
    let token = first.2.clone();
    assert_eq!(budget.held(), PAID);
    // (h2's client sends at most 400 KiB ahead: more than the initial window is the check.)
    assert!(stream_window(&first.0, &app, &token).await > 65_535);
    // The window budget is spent: the next connection is not paid for.
    let second = h2_ready(&app).await;
    assert_eq!(budget.held(), PAID);
    assert_eq!(stream_window(&second.0, &app, &token).await, 65_535);
    // The first connection closes: its windows go back to the window budget.
    drop(first.0);
    first.1.abort();
    tokio::time::timeout(GUARD, async {
        while budget.held() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the closed connection's windows are given back");
    // And a new connection gets the whole window again.
    let third = h2_ready(&app).await;
    assert!(stream_window(&third.0, &app, &token).await > 65_535);
    assert_eq!(budget.held(), PAID);
    drop(second);
}

/// Past the full windows, a connection gets a share: the largest half, quarter, ... of the
/// windows costing at most an eighth of the window budget left, so that one full connection
/// and the next few do not leave every later one HTTP/2's initial 64 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_full_windows_later_connections_get_a_share_of_the_rest() {
    const MIB: u64 = 1024 * 1024;
    const FULL: u64 = 8 * MIB * (STREAMS as u64 + 1);
    // One full connection (8 MiB streams: 40 MiB), and 19 MiB beside it.
    let app = spawn_with(|c| {
        c.http2.window_budget = FULL + 19 * MIB;
        c.http2.stream_window_bytes = 8 * MIB as u32;
        c.http2.max_concurrent_streams = STREAMS;
    })
    .await;
    let budget = app.state.windows.clone();
    let first = h2_ready(&app).await;
    let token = first.2.clone();
    assert_eq!(budget.held(), FULL);
    // Greedy, the next would take 2 MiB windows (10 MiB of the 19). A share is at most an
    // eighth of the 19: 256 KiB windows (1.25 MiB), under what h2's client buffers, so the
    // whole window is seen.
    let second = h2_ready(&app).await;
    assert_eq!(budget.held(), FULL + 5 * MIB / 4);
    assert_eq!(stream_window(&second.0, &app, &token).await, 256 * 1024);
    // The one after gets a share of what is left then.
    let third = h2_ready(&app).await;
    assert_eq!(budget.held(), FULL + 10 * MIB / 4);
    assert_eq!(stream_window(&third.0, &app, &token).await, 256 * 1024);
    drop((first, second, third));
}
