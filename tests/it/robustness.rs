//! Bad clients and crashes: disconnects, silence, SIGKILL mid-upload, and a 1 GiB upload with
//! bounded buffering.

use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::cli::ChildServer;
use crate::helpers::{eventually, spawn_with};

pub async fn a_client_that_disconnects_mid_upload_leaves_nothing_behind() {
    let app = spawn_with(|c| c.limits.max_file_size = 1 << 30).await;
    let t = app.token("john1").await;
    let form = crate::helpers::streamed_form(64, 256 * 1024, Duration::from_millis(20), Some(20));
    let r = app.send_upload(&t, form).await;
    assert!(r.is_err() || r.is_ok_and(|r| !r.status().is_success()));
    assert!(
        eventually(10, || async { app.intents().await == 0 }).await,
        "intent left"
    );
    assert!(
        app.blob_files().await.is_empty(),
        "{:?}",
        app.blob_files().await
    );
    assert_eq!(app.get(&t, "/api/list_files").await.1["count"], 0);
}

pub async fn a_silent_client_is_cut_off_and_leaves_nothing() {
    let app = spawn_with(|c| {
        c.server.body_read_timeout_secs = 1;
        c.limits.max_file_size = 1 << 30;
    })
    .await;
    let t = app.token("john1").await;
    let form = crate::helpers::streamed_form(4, 64 * 1024, Duration::from_secs(4), None);
    let r = app.send_upload(&t, form).await;
    match r {
        Ok(r) => {
            assert_eq!(r.status(), 408);
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["code"], "body_timeout");
        }
        Err(e) => panic!("expected a 408 answer, got {e}"),
    }
    assert!(eventually(10, || async { app.intents().await == 0 }).await);
    assert!(app.blob_files().await.is_empty());
}

pub async fn a_one_gib_upload_completes_with_buffered_bytes_bounded() {
    // S3 buffers whole parts (5 MiB in tests): the budget holds the parts in flight + 1.
    let budget_bytes = match crate::store::current_blobs() {
        crate::store::BlobStore::Local => 4 * 1024 * 1024,
        crate::store::BlobStore::S3 => 16 * 1024 * 1024,
    };
    let app = spawn_with(|c| {
        c.limits.max_file_size = 2 << 30;
        c.limits.buffer_budget = budget_bytes;
    })
    .await;
    let t = app.token("john1").await;
    let chunks = 4096;
    let chunk = 256 * 1024; // 4096 × 256 KiB = 1 GiB
    let mut want = Sha256::new();
    for i in 0..chunks {
        want.update(vec![(i % 251) as u8; chunk]);
    }
    let want = hex::encode(want.finalize());
    let (s, body) = app
        .upload_form(
            &t,
            crate::helpers::streamed_form(chunks, chunk, Duration::ZERO, None),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["file"]["size"], 1u64 << 30);
    assert_eq!(body["file"]["sha256"], want);
    let budget = &app.state.files.budget;
    assert!(budget.high_water() > 0);
    assert!(
        budget.high_water() <= budget_bytes,
        "buffered {} bytes with a budget of {budget_bytes}",
        budget.high_water()
    );
    assert_eq!(budget.in_use(), 0);
    // What is stored is what was sent.
    let url = body["file"]["url"].as_str().expect("url");
    let mut got = Sha256::new();
    let mut stream = app.client.get(url).send().await.expect("dl").bytes_stream();
    while let Some(b) = stream.next().await {
        got.update(b.expect("chunk"));
    }
    assert_eq!(hex::encode(got.finalize()), want);
}

/// The local store gathers chunks into 1 MiB runs before writing them, holding budget for each:
/// an upload that finds the budget spent writes out its partial run before it waits, so uploads
/// holding partial runs can never hold the whole budget between them and wait forever. Here all
/// but 128 KiB of the budget is held (as other uploads would), for the whole upload: it must
/// still finish, 128 KiB at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_upload_finishes_with_less_budget_free_than_one_run() {
    let app = spawn_with(|c| c.limits.buffer_budget = 1024 * 1024).await;
    let t = app.token("john1").await;
    let budget = app.state.files.budget.clone();
    let _others = budget
        .acquire((budget.capacity() - 128 * 1024) as usize)
        .await;
    let (chunks, chunk) = (48, 64 * 1024); // 3 MiB: three runs
    let form = crate::helpers::streamed_form(chunks, chunk, Duration::ZERO, None);
    let (s, body) = tokio::time::timeout(Duration::from_secs(120), app.upload_form(&t, form))
        .await
        .expect("the upload finishes (no upload waits for budget while holding some)");
    assert_eq!(s, 200, "{body}");
    let mut want = Sha256::new();
    for i in 0..chunks {
        want.update(vec![(i % 251) as u8; chunk]);
    }
    assert_eq!(body["file"]["sha256"], hex::encode(want.finalize()));
    assert_eq!(budget.in_use(), budget.capacity() - 128 * 1024);
}

#[tokio::test]
async fn a_server_killed_mid_upload_restarts_clean_and_gc_removes_the_leftovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::cli::mtfu(dir.path(), &["init-data"], None);
    // A short upload lease: gc may take a dead upload's intent once it lapses.
    let lease = [("MTFU_GC__UPLOAD_LEASE_SECS", "1".to_owned())];
    let server = ChildServer::start_with(dir.path(), &lease);
    let t = server.token("john1").await;
    let form = crate::helpers::streamed_form(100, 1024 * 1024, Duration::from_millis(100), None);
    let req = server
        .client
        .post(server.url("/api/upload"))
        .bearer_auth(&t)
        .multipart(form)
        .send();
    let upload = tokio::spawn(req);
    let tmp = dir.path().join("blobs/tmp");
    assert!(
        eventually(20, || async {
            crate::helpers::files_under(&tmp)
                .iter()
                .any(|p| p.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false))
        })
        .await,
        "the upload never reached the store"
    );
    server.kill9();
    let _ = upload.await;
    assert_eq!(
        crate::helpers::files_under(&tmp).len(),
        1,
        "a partial blob is left"
    );
    // Its lease lapses: nothing renews it any more.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Restarted: no trace of the upload is visible.
    let server = ChildServer::start(dir.path());
    let t = server.token("john1").await;
    let r = server
        .client
        .get(server.url("/api/list_files"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("list");
    let list: serde_json::Value = r.json().await.expect("json");
    assert_eq!(list["count"], 0);
    drop(server);

    // gc finds the leftover through its intent and removes it.
    let dry = crate::cli::mtfu(dir.path(), &["gc", "--dry-run", "--grace-secs", "0"], None);
    assert!(dry.contains("would remove abandoned upload t/"), "{dry}");
    assert_eq!(
        crate::helpers::files_under(&tmp).len(),
        1,
        "dry run removed nothing"
    );
    let out = crate::cli::mtfu(dir.path(), &["gc", "--grace-secs", "0"], None);
    assert!(out.contains("removed abandoned upload t/"), "{out}");
    assert!(crate::helpers::files_under(&tmp).is_empty());
    let again = crate::cli::mtfu(dir.path(), &["gc", "--grace-secs", "0"], None);
    assert!(again.contains("removed 0 blob(s)"), "{again}");
}

crate::store_matrix!(
    a_client_that_disconnects_mid_upload_leaves_nothing_behind,
    a_silent_client_is_cut_off_and_leaves_nothing,
    a_one_gib_upload_completes_with_buffered_bytes_bounded,
);
