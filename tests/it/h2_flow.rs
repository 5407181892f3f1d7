//! HTTP/2 flow control (`[http2]`): streams whose uploads wait for the buffer budget keep their
//! stream windows full, and the connection window still leaves room for their siblings.

use std::time::Duration;

use bytes::Bytes;

use crate::helpers::spawn_with;
use crate::hostile::h2_connect;

/// A hang guard, not a timing assertion: what it guards must happen, at any speed.
const GUARD: Duration = Duration::from_secs(60);
const WINDOW: u32 = 1024 * 1024;
const STREAMS: u32 = 4;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stalled_on_the_budget_do_not_block_their_siblings_on_the_connection() {
    let app = spawn_with(|c| {
        c.limits.buffer_budget = 1024 * 1024;
        c.http2.stream_window_bytes = WINDOW;
        c.http2.max_concurrent_streams = STREAMS;
    })
    .await;
    let token = app.token("john1").await;
    // Spend the whole budget: every upload now waits before it reads more of its body.
    let budget = app.state.files.budget.clone();
    let held = budget.acquire(budget.capacity() as usize).await;
    let (send, _conn) = h2_connect(&app).await;
    // All streams but one are uploads that fill their whole stream window and then stall. With
    // a connection window no larger than a stream's (hyper's adaptive windows), the second one
    // could not even send its window.
    let mut stalled = Vec::new();
    for i in 0..STREAMS - 1 {
        let mut send = tokio::time::timeout(GUARD, send.clone().ready())
            .await
            .expect("a stream slot")
            .expect("ready");
        let req = http::Request::put(format!("{}/api/v2/files/p/1/stalled{i}.bin", app.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-length", (2 * WINDOW).to_string())
            .header("content-type", "application/octet-stream")
            .body(())
            .expect("request");
        let (resp, mut body) = send.send_request(req, false).expect("send");
        send_within_windows(&mut body, WINDOW as usize, false).await;
        stalled.push((resp, body));
    }
    assert_eq!(
        budget.in_use(),
        budget.capacity(),
        "the uploads are waiting"
    );
    // The sibling: a login, whose body needs connection window too, is answered.
    let mut send = tokio::time::timeout(GUARD, send.clone().ready())
        .await
        .expect("a stream slot")
        .expect("ready");
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
        .expect("the sibling is not blocked by the stalled uploads")
        .expect("response");
    assert_eq!(resp.status(), 200);
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
/// `http2.stream_window_bytes` (16 MiB) before the server reads any of it (a long-distance
/// upload does not wait a round trip every 256 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_may_send_its_whole_configured_window_unread() {
    let app = spawn_with(|c| {
        c.limits.buffer_budget = 1024 * 1024;
        c.limits.max_file_size = 32 * 1024 * 1024;
        c.http2.stream_window_bytes = 16 * 1024 * 1024;
    })
    .await;
    let window = app.state.cfg.http2.stream_window_bytes as usize;
    assert_eq!(window, 16 * 1024 * 1024);
    let token = app.token("john1").await;
    let budget = app.state.files.budget.clone();
    let held = budget.acquire(budget.capacity() as usize).await;
    let (send, _conn) = h2_connect(&app).await;
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
