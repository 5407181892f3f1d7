//! A resumable upload's life: termination, expiry and gc, a server restart in the middle, two
//! `PATCH`es at once, and a `PATCH` that stalls past its lease.

use super::*;

store_matrix!(
    termination_removes_the_upload_and_its_data,
    expired_uploads_are_gone_and_gc_removes_them,
    an_upload_resumes_after_a_server_restart,
    a_second_patch_while_one_runs_is_refused_and_nothing_mixes,
    a_patch_that_stalls_past_its_lease_loses_the_upload,
);

pub async fn termination_removes_the_upload_and_its_data() {
    let app = spawn_with(|c| c.limits.max_file_size = 32 << 20).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(5 * MIB + 3 + 10, 7);
    let url = t.start(20 << 20, &product("gone.bin")).await;
    // A whole part and a tail on S3; a temporary file on disk.
    t.send(&url, &d, 0, &[5 * MIB + 3, 10]).await;
    assert!(!leftovers(app.dir.path(), app.s3.as_ref()).is_empty());
    let r = t
        .req(reqwest::Method::DELETE, &url)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
    assert_eq!(t.head(&url).await.status(), 404);
    assert_eq!(t.patch(&url, d.len() as u64, b"x").await.status(), 404);
    assert_eq!(
        t.req(reqwest::Method::DELETE, &url)
            .send()
            .await
            .expect("DELETE")
            .status(),
        404
    );
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    assert_eq!(app.blob_files().await, Vec::<String>::new());
    let (_, list) = t.get("/api/files/product/1").await;
    assert_eq!(list["count"], 0);
}

pub async fn expired_uploads_are_gone_and_gc_removes_them() {
    let app = spawn_with(|c| {
        c.limits.max_file_size = 32 << 20;
        c.tus.expire_after_secs = 1;
    })
    .await;
    let t = Tus::of(&app, "john1").await;
    let d = data(5 * MIB + 3 + 10, 8);
    let url = t.start(20 << 20, &product("late.bin")).await;
    t.send(&url, &d, 0, &[5 * MIB + 3, 10]).await;
    let idle = t.start(100, &product("idle.bin")).await;
    for u in [&url, &idle] {
        assert!(eventually(10, || async { t.head(u).await.status() == 410 }).await);
    }
    let r = t.patch(&url, d.len() as u64, b"x").await;
    assert_eq!(r.status(), 410);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "upload_expired");

    let report = mtfu::gc::sweep(
        &app.state.files.meta,
        &app.state.files.blob,
        Duration::from_secs(3600),
        false,
    )
    .await
    .expect("gc");
    assert_eq!(report.tus_expired.len(), 2, "{report:?}");
    assert_eq!(t.head(&url).await.status(), 404);
    assert_eq!(t.head(&idle).await.status(), 404);
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    assert_eq!(app.blob_files().await, Vec::<String>::new());
}

pub async fn an_upload_resumes_after_a_server_restart() {
    let (cfg, dir, s3) = fresh_config(|c| c.limits.max_file_size = 64 << 20).await;
    let d = data(12 * MIB + 77, 11);
    let a = Node::start(cfg.clone()).await;
    let t = a.tus("john1").await;
    let url = t.start(d.len() as u64, &product("restart.bin")).await;
    // A part and a tail on S3, then more tails.
    let at = 5 * MIB + 3 + 1 + 100 * 1024;
    t.send(&url, &d[..at], 0, &[5 * MIB + 3, 1, 100 * 1024])
        .await;
    a.stop().await;

    let b = Node::start(cfg).await;
    let t = b.tus("john1").await;
    let url = t.here(&url);
    assert_eq!(t.offset(&url).await, at as u64);
    t.send(&url, &d, at, &[3 * MIB, 1, 5 * MIB]).await;
    t.assert_file("restart.bin", &d).await;
    assert_eq!(leftovers(dir.path(), s3.as_ref()), Vec::<String>::new());
}

/// A request body that sends `d[..at]` at once and the rest when the sender is used (or dropped).
fn held_body(d: &[u8], at: usize) -> (reqwest::Body, tokio::sync::oneshot::Sender<()>) {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (first, second) = (
        Bytes::copy_from_slice(&d[..at]),
        Bytes::copy_from_slice(&d[at..]),
    );
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            let _ = go_rx.await;
            Ok(second)
        }),
    );
    (reqwest::Body::wrap_stream(body), go_tx)
}

pub async fn a_second_patch_while_one_runs_is_refused_and_nothing_mixes() {
    let app = spawn_with(|c| c.limits.max_file_size = 32 << 20).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(2 * MIB, 12);
    let url = t.start(d.len() as u64, &product("race.bin")).await;
    let id = url.rsplit('/').next().expect("id").to_owned();

    // A PATCH whose body waits half-way for a signal.
    let (body, go_tx) = held_body(&d, MIB);
    let slow = {
        let t = t.clone();
        let url = url.clone();
        tokio::spawn(async move { t.patch_with(&url, 0, body, None).await.status() })
    };
    assert!(
        leased(&app.state, "john1", &id).await,
        "the first PATCH took the lease"
    );
    let r = t.patch(&url, 0, &d).await;
    assert_eq!(r.status(), 423);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "upload_busy");
    let r = t
        .req(reqwest::Method::DELETE, &url)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 423);
    let _ = go_tx.send(());
    assert_eq!(slow.await.expect("task"), 204);
    t.assert_file("race.bin", &d).await;
}

pub async fn a_patch_that_stalls_past_its_lease_loses_the_upload() {
    let app = spawn_with(|c| c.tus.lease_secs = 1).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(2 * MIB, 16);
    let url = t.start(d.len() as u64, &product("stalled.bin")).await;
    let id = url.rsplit('/').next().expect("id").to_owned();
    let (body, go_tx) = held_body(&d, MIB);
    let slow = {
        let (t, url) = (t.clone(), url.clone());
        tokio::spawn(async move { t.patch_with(&url, 0, body, None).await.status() })
    };
    assert!(leased(&app.state, "john1", &id).await);
    // Another writer takes the upload once the stalled one's lease has lapsed.
    let meta = app.state.files.meta.clone();
    let (tenant, _) = meta
        .tenant_by_name("john1")
        .await
        .expect("tenant")
        .expect("john1");
    let taken = eventually(10, || async {
        let now = mtfu::domain::now_micros();
        matches!(
            meta.tus_lease(tenant.id, &id, "other", now, now + 60_000_000)
                .await,
            Ok(mtfu::meta::tus::Leased::Upload(_))
        )
    })
    .await;
    assert!(taken);
    meta.tus_release(&id, "other").await.expect("release");
    // The stalled PATCH finds its lease gone before it writes again, and keeps nothing.
    let _ = go_tx.send(());
    assert_eq!(slow.await.expect("task"), 423);
    assert_eq!(t.offset(&url).await, 0);
    t.send(&url, &d, 0, &[2 * MIB]).await;
    t.assert_file("stalled.bin", &d).await;
}
