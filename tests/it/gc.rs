//! The garbage collector, in process: what it removes and what it must keep.

use std::time::Duration;

use mtfu::gc::sweep;

use crate::helpers::{eventually, spawn_with};

pub async fn gc_removes_deleted_expired_and_orphaned_blobs_and_keeps_live_ones() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john1").await;
    assert_eq!(
        app.upload(&t, "keep", "1", "live.txt", b"live").await.0,
        200
    );
    assert_eq!(
        app.upload(&t, "gone", "1", "deleted.txt", b"x").await.0,
        200
    );
    let form = reqwest::multipart::Form::new()
        .text("resource", "soon")
        .text("resource_id", "1")
        .text("expires_in", "1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("e.txt"),
        );
    assert_eq!(app.upload_form(&t, form).await.0, 200);
    assert_eq!(app.delete(&t, "/api/files/gone/1").await.0, 200);
    app.write_orphan("t/1/0123456789abcdef0123456789abcdef", b"orphan")
        .await;
    // With S3 presigned URLs a deleted file's object goes at once (so its URLs die); otherwise
    // its blob waits for gc like the others.
    let blobs = if app.state.cfg.presigns() { 3 } else { 4 };
    assert_eq!(app.blob_files().await.len(), blobs);

    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    // Within the grace period nothing goes.
    let r = sweep(meta, blob, Duration::from_secs(3600), false)
        .await
        .expect("gc");
    assert_eq!(r.blobs_removed(), 0);
    assert_eq!(app.blob_files().await.len(), blobs);

    tokio::time::sleep(Duration::from_millis(1100)).await; // let the expiring file expire
    let dry = sweep(meta, blob, Duration::ZERO, true)
        .await
        .expect("dry run");
    assert_eq!(dry.orphans.len(), 1);
    assert_eq!(
        app.blob_files().await.len(),
        blobs,
        "a dry run changes nothing"
    );

    let r = sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    // The dry run counted exactly what the real one did.
    assert_eq!(dry.files_reaped, r.files_reaped, "{dry:?} vs {r:?}");
    assert_eq!(dry.garbage.len(), r.garbage.len(), "{dry:?} vs {r:?}");
    assert_eq!(dry.blobs_removed(), r.blobs_removed(), "{dry:?} vs {r:?}");
    assert_eq!(r.files_reaped, 2, "{r:?}");
    assert_eq!(r.garbage.len(), 2, "{r:?}");
    assert_eq!(r.orphans.len(), 1, "{r:?}");
    let left = app.blob_files().await;
    assert_eq!(left.len(), 1, "{left:?}");
    let (_, list) = app.get(&t, "/api/list_files").await;
    assert_eq!(crate::helpers::names(&list), ["live.txt"]);
    // The live file's bytes are intact.
    let (_, listing) = app.get(&t, "/api/files/keep/1").await;
    let dl = listing["files"][0]["url"].as_str().expect("url");
    let got = app
        .client
        .get(dl)
        .send()
        .await
        .expect("dl")
        .bytes()
        .await
        .expect("b");
    assert_eq!(&got[..], b"live");
}

pub async fn a_replaced_files_old_blob_never_outlives_a_gc() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john1").await;
    for body in [&b"one"[..], b"two", b"three"] {
        assert_eq!(app.upload(&t, "p", "1", "a.txt", body).await.0, 200);
    }
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert!(eventually(5, || async { app.blob_files().await.len() == 1 }).await);
}

crate::store_matrix!(
    gc_removes_deleted_expired_and_orphaned_blobs_and_keeps_live_ones,
    a_replaced_files_old_blob_never_outlives_a_gc,
);
