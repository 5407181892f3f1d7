//! Data safety under races and faults (DESIGN.md §7), on every store pair: a client gone during
//! its commit, gc running during live uploads, an upload stalled past its lease, a stale tus
//! writer waking after another finished, expiries counted from the commit, orphans quarantined
//! before deletion, S3 tail objects swept, a tenant removed during its uploads. Races are forced
//! with the server's pause points ([`mtfu::hooks`]) or held request bodies, never by timing
//! alone. Each test ends with `mtfu fsck --verify-sha256`'s check finding nothing.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mtfu::blob::Piece;
use mtfu::gc::{Settings, sweep, sweep_with};

use crate::helpers::{TestApp, eventually, names, spawn_with};
use crate::tus::{Tus, data, product};

/// fsck finds nothing wrong, and every blob is accounted for.
pub async fn assert_consistent(app: &TestApp) {
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    let r = mtfu::fsck::check(meta, blob, true).await.expect("fsck");
    assert!(r.problems.is_empty(), "fsck: {:#?}", r.problems);
}

/// The first ten files `user` sees, as the store records them (blob keys included).
async fn records(app: &TestApp, user: &str) -> Vec<mtfu::domain::FileRecord> {
    let meta = &app.state.files.meta;
    let (tenant, _) = meta.tenant_by_name(user).await.expect("t").expect("t");
    let now = mtfu::domain::now_micros();
    meta.list_files(&tenant, &Default::default(), now, 0, 10)
        .await
        .expect("list")
}

/// A body that sends `first`, then waits for the returned sender before sending `rest`.
fn held(first: Vec<u8>, rest: Vec<u8>) -> (reqwest::Body, tokio::sync::oneshot::Sender<()>) {
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let s = futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) })
        .chain(futures_util::stream::once(async move {
            let _ = wait.await;
            Ok(Bytes::from(rest))
        }));
    (reqwest::Body::wrap_stream(s), go)
}

fn put_url(app: &TestApp, name: &str, query: &str) -> String {
    put_url_of(app, "1", name, query)
}

fn put_url_of(app: &TestApp, resource_id: &str, name: &str, query: &str) -> String {
    app.url(&format!(
        "/api/v2/files/product/{resource_id}/{name}{query}"
    ))
}

/// The bytes of the tenant's live file `name` of product/1, through its listing.
async fn listed_bytes(app: &TestApp, token: &str, name: &str) -> Option<Vec<u8>> {
    listed_bytes_of(app, token, "1", name).await
}

/// The bytes of the tenant's live file `name` of product/`resource_id`, through its listing.
async fn listed_bytes_of(
    app: &TestApp,
    token: &str,
    resource_id: &str,
    name: &str,
) -> Option<Vec<u8>> {
    let (status, listing) = app
        .get(token, &format!("/api/files/product/{resource_id}"))
        .await;
    assert_eq!(status, 200, "{listing}");
    let file = listing["files"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)?
        .clone();
    let url = file["url"].as_str()?;
    Some(app.download(url).await)
}

pub async fn a_client_gone_during_its_commit_keeps_a_whole_file_or_none() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john1").await;
    let hooks = app.state.files.hooks.clone();
    // Pause right after the metadata commit, before the request learns of it.
    let committed = hooks.arm("committed");
    let discard = hooks.arm("discard");
    let body = data(10 * 1024, 1);
    let upload = {
        let (app_client, url, t, body) = (
            app.client.clone(),
            put_url(&app, "c.bin", ""),
            t.clone(),
            body.clone(),
        );
        tokio::spawn(async move { app_client.put(url).bearer_auth(t).body(body).send().await })
    };
    tokio::time::timeout(Duration::from_secs(20), committed.reached())
        .await
        .expect("the upload reached its commit");
    // The client hangs up while its commit is done but not yet acknowledged.
    upload.abort();
    // The request's clean-up runs (it was dropped armed) ...
    tokio::time::timeout(Duration::from_secs(20), discard.reached())
        .await
        .expect("the dropped request cleaned up");
    hooks.disarm("discard");
    hooks.disarm("committed");
    assert!(eventually(10, || async { mtfu::cleanup::running() == 0 }).await);
    // ... and finds the commit won: the listed file has every byte.
    assert_eq!(
        listed_bytes(&app, &t, "c.bin").await.as_deref(),
        Some(&body[..])
    );
    assert_eq!(app.intents().await, 0);
    assert_consistent(&app).await;
}

pub async fn gc_during_live_uploads_takes_nothing_they_need() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john1").await;
    let body = data(300 * 1024, 2);
    let (req, go) = held(body[..100 * 1024].to_vec(), body[100 * 1024..].to_vec());
    let upload = {
        let (c, url, t) = (app.client.clone(), put_url(&app, "live.bin", ""), t.clone());
        tokio::spawn(async move { c.put(url).bearer_auth(t).body(req).send().await })
    };
    assert!(eventually(10, || async { app.intents().await == 1 }).await);
    // An operator's `mtfu gc --grace-secs 0` while the upload streams: its lease runs.
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    let r = sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert!(r.stale_uploads.is_empty() && r.orphans.is_empty(), "{r:?}");
    let _ = go.send(());
    let resp = upload.await.expect("task").expect("PUT");
    assert_eq!(resp.status(), 201);
    sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert_eq!(
        listed_bytes(&app, &t, "live.bin").await.as_deref(),
        Some(&body[..])
    );
    assert_consistent(&app).await;
}

pub async fn an_upload_stalled_past_its_lease_is_given_up_and_never_listed() {
    let app = spawn_with(|c| c.gc.upload_lease_secs = 1).await;
    let t = app.token("john1").await;
    let body = data(200 * 1024, 3);
    let (req, go) = held(body[..64 * 1024].to_vec(), body[64 * 1024..].to_vec());
    let upload = {
        let (c, url, t) = (app.client.clone(), put_url(&app, "slow.bin", ""), t.clone());
        tokio::spawn(async move { c.put(url).bearer_auth(t).body(req).send().await })
    };
    assert!(eventually(10, || async { app.intents().await == 1 }).await);
    // Nothing arrives for longer than the lease: gc may take it, and does.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    let r = sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert_eq!(r.stale_uploads.len(), 1, "{r:?}");
    // The upload wakes: it cannot commit any more, and says so.
    let _ = go.send(());
    let resp = upload.await.expect("task").expect("PUT");
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(v["code"], "upload_abandoned", "{v}");
    assert_eq!(listed_bytes(&app, &t, "slow.bin").await, None);
    assert!(eventually(10, || async { mtfu::cleanup::running() == 0 }).await);
    sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert!(
        app.blob_files().await.is_empty(),
        "{:?}",
        app.blob_files().await
    );
    assert_consistent(&app).await;
}

pub async fn a_stale_tus_writer_never_touches_the_winners_file() {
    let app = spawn_with(|c| c.tus.lease_secs = 1).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(256 * 1024, 4);
    let url = t.start(d.len() as u64, &product("stale.bin")).await;
    // PATCH A sends a part, then stalls past its lease.
    let (body, go) = held(d[..100 * 1024].to_vec(), d[100 * 1024..].to_vec());
    let a = {
        let (t, url) = (t.clone(), url.clone());
        tokio::spawn(async move { t.patch_with(&url, 0, body, None).await.status() })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The client retries on another connection: PATCH B takes the upload over and finishes it.
    let offset = t.offset(&url).await;
    let b = t.patch(&url, offset, &d[offset as usize..]).await;
    assert_eq!(b.status(), 204);
    // A wakes: it lost its lease and must leave the (now finished) blob alone.
    let _ = go.send(());
    let a = a.await.expect("task");
    assert_ne!(a.as_u16(), 204, "the stale writer must not succeed");
    assert!(eventually(10, || async { mtfu::cleanup::running() == 0 }).await);
    t.assert_file("stale.bin", &d).await;
    assert_consistent(&app).await;
}

pub async fn relative_expiries_count_from_the_commit() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john1").await;
    let body = data(1024, 5);
    // A PUT whose body takes longer than its expires_in.
    let slow = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Ok::<_, std::io::Error>(Bytes::new())
    });
    let first = futures_util::stream::once({
        let b = body.clone();
        async move { Ok::<_, std::io::Error>(Bytes::from(b)) }
    });
    let r = app
        .client
        .put(put_url(&app, "put.bin", "?expires_in=2"))
        .bearer_auth(&t)
        .body(reqwest::Body::wrap_stream(first.chain(slow)))
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), 201);
    assert_eq!(
        listed_bytes(&app, &t, "put.bin").await.as_deref(),
        Some(&body[..])
    );

    // A tus upload whose bytes come after its expires_in.
    let tus = Tus::of(&app, "john1").await;
    let meta = format!(
        "{},{}",
        product("tus.bin"),
        crate::tus::metadata(&[("expires_in", "2")])
    );
    let url = tus.start(body.len() as u64, &meta).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(tus.patch(&url, 0, &body).await.status(), 204);
    assert_eq!(
        listed_bytes(&app, &t, "tus.bin").await.as_deref(),
        Some(&body[..])
    );

    // An absolute expiry that passes while the body streams: 400, nothing stored.
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let query = format!(
        "?expire_at={}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let (req, go) = held(body.clone(), Vec::new());
    let upload = {
        let (c, url, t) = (
            app.client.clone(),
            put_url(&app, "late.bin", &query),
            t.clone(),
        );
        tokio::spawn(async move { c.put(url).bearer_auth(t).body(req).send().await })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = go.send(());
    let r = upload.await.expect("task").expect("PUT");
    assert_eq!(r.status(), 400);
    assert_eq!(listed_bytes(&app, &t, "late.bin").await, None);
    assert!(eventually(10, || async { mtfu::cleanup::running() == 0 }).await);
    assert_consistent(&app).await;
}

pub async fn orphans_are_quarantined_before_they_are_deleted() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john1").await;
    assert_eq!(
        app.upload(&t, "product", "1", "keep.txt", b"keep").await.0,
        200
    );
    // A blob no row names: a file written after the backup a database was restored from.
    let key = "t/1/0123456789abcdef0123456789abcdef";
    app.write_orphan(key, b"restore me").await;
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    let r = sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert_eq!(r.orphans.len(), 1, "{r:?}");
    assert_eq!(r.quarantine_deleted, 0);
    let quarantined = |held: &[mtfu::blob::Held]| {
        held.iter()
            .filter(|h| matches!(h.piece, Piece::Quarantined(_)) && h.key.as_str() == key)
            .count()
    };
    let held = blob.inventory().await.expect("inventory");
    assert_eq!(quarantined(&held), 1, "{held:?}");
    // Still there after another sweep within the quarantine period ...
    sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert_eq!(quarantined(&blob.inventory().await.expect("inventory")), 1);
    assert_consistent(&app).await;
    // ... and deleted once it is over.
    let set = Settings {
        grace: Duration::ZERO,
        quarantine: Duration::ZERO,
        dry_run: false,
    };
    let r = sweep_with(meta, blob, &set).await.expect("gc");
    assert_eq!(r.quarantine_deleted, 1, "{r:?}");
    assert_eq!(quarantined(&blob.inventory().await.expect("inventory")), 0);
    assert_eq!(
        listed_bytes(&app, &t, "keep.txt").await.as_deref(),
        Some(&b"keep"[..])
    );
    assert_consistent(&app).await;
}

pub async fn removing_a_tenant_ends_its_uploads_without_a_500() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john2").await;
    // An unfinished tus upload with some bytes.
    let tus = Tus::of(&app, "john2").await;
    let d = data(64 * 1024, 6);
    let url = tus.start(d.len() as u64, &product("half.bin")).await;
    tus.send(&url, &d[..32 * 1024], 0, &[32 * 1024]).await;
    // A plain upload streaming while the tenant is removed.
    let (req, go) = held(d[..16 * 1024].to_vec(), d[16 * 1024..].to_vec());
    let upload = {
        let (c, url, t) = (
            app.client.clone(),
            put_url(&app, "during.bin", ""),
            t.clone(),
        );
        tokio::spawn(async move { c.put(url).bearer_auth(t).body(req).send().await })
    };
    assert!(eventually(10, || async { app.intents().await == 1 }).await);
    let name = mtfu::domain::TenantName::parse("john2").expect("name");
    assert!(
        app.state
            .files
            .meta
            .remove_tenant(&name)
            .await
            .expect("remove")
    );
    let _ = go.send(());
    let r = upload.await.expect("task").expect("PUT");
    assert!(matches!(r.status().as_u16(), 401 | 404), "{}", r.status());
    // gc removes what the tenant's uploads held at once, without waiting for their expiry.
    assert!(eventually(10, || async { mtfu::cleanup::running() == 0 }).await);
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    let r = sweep(meta, blob, Duration::from_secs(3600), false)
        .await
        .expect("gc");
    assert_eq!(r.tus_expired.len(), 1, "{r:?}");
    assert!(
        app.blob_files().await.is_empty(),
        "{:?}",
        app.blob_files().await
    );
    assert_consistent(&app).await;
}

pub async fn fsck_finds_a_missing_or_corrupted_blob() {
    let app = spawn_with(|_| {}).await;
    let t = app.token("john1").await;
    assert_eq!(
        app.upload(&t, "product", "1", "a.txt", b"aaaa").await.0,
        200
    );
    assert_eq!(
        app.upload(&t, "product", "1", "b.txt", b"bbbb").await.0,
        200
    );
    assert_consistent(&app).await;
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    let (_, listing) = app.get(&t, "/api/files/product/1").await;
    let files = listing["files"].as_array().expect("files").clone();
    assert_eq!(files.len(), 2);
    let all = records(&app, "john1").await;
    let rec = |name: &str| all.iter().find(|f| f.name == name).expect("file").clone();
    // Behind mtfu's back: one blob removed, the other replaced by other bytes of its size.
    let (a, b) = (rec("a.txt"), rec("b.txt"));
    blob.delete(&a.blob_key).await.expect("delete");
    blob.delete(&b.blob_key).await.expect("delete");
    app.write_orphan(b.blob_key.as_str(), b"BBBB").await;
    let r = mtfu::fsck::check(meta, blob, false).await.expect("fsck");
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
    assert!(r.problems[0].contains("missing"), "{:?}", r.problems);
    let r = mtfu::fsck::check(meta, blob, true).await.expect("fsck");
    assert_eq!(r.problems.len(), 2, "{:#?}", r.problems);
    assert!(
        r.problems.iter().any(|p| p.contains("SHA-256")),
        "{:?}",
        r.problems
    );
}

/// Many clients upload at once; a third of them hang up at a seeded random point (mid-body,
/// right after the body, during the commit), while gc sweeps with no grace in a loop. Every
/// acknowledged upload downloads byte-exact, nothing else is listed, and fsck finds nothing.
pub async fn concurrent_uploads_with_hang_ups_and_gc_in_a_loop_lose_nothing() {
    let app = std::sync::Arc::new(spawn_with(|_| {}).await);
    let t = app.token("john1").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sweeps = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
                sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
                sweeps += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sweeps
        })
    };
    let mut seed: u64 = 0x5eed;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tasks = Vec::new();
    for i in 0..48u64 {
        let (app, t) = (app.clone(), t.clone());
        let body = data(8 * 1024 + (rand() % 4096) as usize, 100 + i);
        let hang_up_after = match rand() % 3 {
            0 => Some(Duration::from_millis(rand() % 30)),
            _ => None,
        };
        tasks.push(tokio::spawn(async move {
            let name = format!("f{i}.bin");
            let url = put_url_of(&app, &i.to_string(), &name, "");
            let req = app.client.put(url).bearer_auth(&t).body(body.clone());
            let status = match hang_up_after {
                None => Some(req.send().await.expect("PUT").status().as_u16()),
                Some(after) => tokio::time::timeout(after, req.send())
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .map(|r| r.status().as_u16()),
            };
            (i, name, body, status)
        }));
    }
    let (mut acknowledged, mut hung_up) = (Vec::new(), Vec::new());
    for task in tasks {
        let (i, name, body, status) = task.await.expect("task");
        match status {
            Some(s) => {
                assert!(matches!(s, 201 | 200), "{name}: {s}");
                acknowledged.push((i, name, body));
            }
            None => hung_up.push((i, name)),
        }
    }
    assert!(eventually(15, || async { mtfu::cleanup::running() == 0 }).await);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(gc.await.expect("gc") > 0);
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
    assert!(acknowledged.len() >= 24, "{}", acknowledged.len());
    for (i, name, body) in &acknowledged {
        let got = listed_bytes_of(&app, &t, &i.to_string(), name).await;
        assert_eq!(got.as_deref(), Some(&body[..]), "{name}");
    }
    // A hung-up upload is listed whole (its download works) or not at all.
    for (i, name) in &hung_up {
        let (_, listing) = app.get(&t, &format!("/api/files/product/{i}")).await;
        if names(&listing).contains(name) {
            assert!(
                listed_bytes_of(&app, &t, &i.to_string(), name)
                    .await
                    .is_some()
            );
        }
    }
    assert_consistent(&app).await;
}

crate::store_matrix!(
    a_client_gone_during_its_commit_keeps_a_whole_file_or_none,
    gc_during_live_uploads_takes_nothing_they_need,
    an_upload_stalled_past_its_lease_is_given_up_and_never_listed,
    a_stale_tus_writer_never_touches_the_winners_file,
    relative_expiries_count_from_the_commit,
    orphans_are_quarantined_before_they_are_deleted,
    removing_a_tenant_ends_its_uploads_without_a_500,
    fsck_finds_a_missing_or_corrupted_blob,
    concurrent_uploads_with_hang_ups_and_gc_in_a_loop_lose_nothing,
);

/// S3 tail objects that outlive their upload (their deletion failed once, e.g. a SlowDown during
/// the last PATCH) are found by fsck and deleted by gc, whether their blob is a file now or
/// nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_s3_tail_objects_are_found_and_swept() {
    use crate::store::{BLOBS, BlobStore};
    BLOBS
        .scope(BlobStore::S3, async {
            let app = spawn_with(|_| {}).await;
            let s3 = app.s3.as_ref().expect("S3");
            let t = Tus::of(&app, "john1").await;
            let d = data(300 * 1024, 7);
            let url = t.start(d.len() as u64, &product("tails.bin")).await;
            t.send(&url, &d, 0, &[100 * 1024]).await;
            t.assert_file("tails.bin", &d).await;
            let meta = &app.state.files.meta;
            let file = records(&app, "john1").await.remove(0);
            for object in [
                format!(
                    "files/{}.tail/0123456789abcdef0123456789abcdef",
                    file.blob_key
                ),
                "files/t/1/00000000000000000000000000000001.tail/0123456789abcdef".to_owned(),
            ] {
                let p = s3.object_path(&object);
                std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
                std::fs::write(&p, b"tail").expect("write tail");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let blob = &app.state.files.blob;
            let r = mtfu::fsck::check(meta, blob, true).await.expect("fsck");
            let tails = r
                .problems
                .iter()
                .filter(|p| p.contains("tail object"))
                .count();
            assert_eq!(tails, 2, "{:#?}", r.problems);
            let r = sweep(meta, blob, Duration::ZERO, false).await.expect("gc");
            assert_eq!(r.tails_deleted, 2, "{r:?}");
            t.assert_file("tails.bin", &d).await;
            assert_consistent(&app).await;
        })
        .await
}
