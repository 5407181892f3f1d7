//! A gateway's cap on request bodies (`server.max_request_body`): larger bodies answer 413 and
//! leave nothing behind, a chunked body is stopped while it streams, and a smaller file limit
//! keeps the seed's 400.

use super::*;

crate::store_matrix!(
    #[cfg_attr(
        mtfu_no_nginx,
        ignore = "nginx is not installed (apt install nginx-light)"
    )]
    the_gateway_cap_refuses_larger_bodies_with_413_and_keeps_nothing,
    a_chunked_body_over_the_cap_is_stopped_while_streaming,
    a_smaller_file_limit_keeps_the_seeds_400,
);

/// A multipart form whose file part is `len` bytes, streamed with no length (chunked), so only
/// counting can find it too large.
fn chunked_form(len: usize) -> Form {
    let chunk = 256 * 1024;
    let s = futures_util::stream::iter((0..len.div_ceil(chunk)).map(move |i| {
        let n = chunk.min(len - i * chunk);
        Ok::<_, std::io::Error>(Bytes::from(vec![7u8; n]))
    }));
    Form::new()
        .text("resource", "product")
        .text("resource_id", "1")
        .part(
            "file",
            Part::stream(reqwest::Body::wrap_stream(s)).file_name("big.bin"),
        )
}

async fn assert_nothing_kept(app: &TestApp, token: &str) {
    assert!(
        eventually(10, || async { app.intents().await == 0 }).await,
        "intent left"
    );
    assert!(
        app.blob_files().await.is_empty(),
        "{:?}",
        app.blob_files().await
    );
    assert_eq!(app.get(token, "/prod/api/list_files").await.1["count"], 0);
}

fn assert_gateway_413(s: u16, body: &Value) {
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["code"], "request_too_large");
    assert_eq!(body["max_request_body"], GATEWAY_CAP);
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("10485760"), "{detail}");
    assert!(detail.contains("/prod/api/v2/uploads"), "{detail}");
}

pub async fn the_gateway_cap_refuses_larger_bodies_with_413_and_keeps_nothing() {
    let (app, nginx) = app_behind_nginx(|c| {
        c.server.max_request_body = Some(GATEWAY_CAP);
        // A regression that waited for the stalled body below would answer 408, soon.
        c.server.body_read_timeout_secs = 3;
    })
    .await;
    let c = client_from("127.0.0.3");
    let token = token_via(&nginx, &c).await;
    let upload_url = nginx.xff_url("/prod/api/upload");

    // 12 MB with a Content-Length: refused before it is read.
    let (s, body) = upload(
        &c,
        &upload_url,
        &token,
        file_form("big.bin", vec![1; 12_000_000]),
        &[],
    )
    .await;
    assert_gateway_413(s, &body);
    assert_nothing_kept(&app, &token).await;

    // The Content-Length alone decides: a client that declares 12 MB, sends one byte and then
    // nothing still gets the 413 (not a 408 for its silence).
    let stalled = futures_util::StreamExt::chain(
        futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"x")) }),
        futures_util::stream::pending(),
    );
    let form = Form::new().text("resource", "product").part(
        "file",
        Part::stream_with_length(reqwest::Body::wrap_stream(stalled), 12_000_000)
            .file_name("big.bin"),
    );
    let (s, body) = upload(&c, &upload_url, &token, form, &[]).await;
    assert_gateway_413(s, &body);
    assert_nothing_kept(&app, &token).await;

    // 9 MB passes.
    let (s, body) = upload(
        &c,
        &upload_url,
        &token,
        file_form("ok.bin", vec![2; 9_000_000]),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["file"]["size"], 9_000_000);
}

pub async fn a_chunked_body_over_the_cap_is_stopped_while_streaming() {
    // The file-size limit far above the cap: only the counted request body can stop this one.
    let (app, nginx) = app_behind_nginx(|c| {
        c.server.max_request_body = Some(GATEWAY_CAP);
        c.limits.max_file_size = 64 * 1024 * 1024;
    })
    .await;
    let c = client_from("127.0.0.3");
    let token = token_via(&nginx, &c).await;
    let upload_url = nginx.xff_url("/prod/api/upload");
    let (s, body) = upload(&c, &upload_url, &token, chunked_form(12_000_000), &[]).await;
    assert_gateway_413(s, &body);
    assert_nothing_kept(&app, &token).await;
    let (s, body) = upload(&c, &upload_url, &token, chunked_form(9_000_000), &[]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["file"]["size"], 9_000_000);
}

pub async fn a_smaller_file_limit_keeps_the_seeds_400() {
    let (app, nginx) = app_behind_nginx(|c| {
        c.server.max_request_body = Some(GATEWAY_CAP);
        c.limits.max_file_size = 1024 * 1024;
    })
    .await;
    let c = client_from("127.0.0.3");
    let token = token_via(&nginx, &c).await;
    let upload_url = nginx.xff_url("/prod/api/upload");
    for form in [
        file_form("big.bin", vec![1; 12_000_000]),
        chunked_form(2_000_000),
    ] {
        let (s, body) = upload(&c, &upload_url, &token, form, &[]).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(
            body,
            json!({"file": ["File size exceeds the maximum allowed size of 1048576 bytes"]})
        );
    }
    assert_nothing_kept(&app, &token).await;
}
