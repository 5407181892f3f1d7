//! SQLite's write lock held by another process (a backup, a maintenance script): reads are
//! answered while it is held, whatever writes are waiting for it; writes wait for it, and past
//! `metadata.sqlite.busy_timeout_secs` fail with 503, never 500.

use crate::helpers::{eventually, spawn_with};

/// Another connection holding SQLite's write lock (`BEGIN IMMEDIATE`) until dropped.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(path: &std::path::Path) -> WriteLock {
        let c = rusqlite::Connection::open(path).expect("open the database");
        c.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        WriteLock(c)
    }

    fn release(self) {
        self.0.execute_batch("COMMIT").expect("release the lock");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_answered_while_writes_wait_for_a_held_write_lock() {
    let app = spawn_with(|c| {
        c.metadata.sqlite.busy_timeout_secs = 120;
        // Six writes and the reads at once on the test client's one HTTP/2 connection (4
        // streams by default).
        c.http2.max_concurrent_streams = 8;
    })
    .await;
    let t = app.token("john1").await;
    let (s, v) = app.upload(&t, "product", "1", "a.txt", b"hello").await;
    assert_eq!(s, 200, "{v}");
    let id = v["file"]["id"].as_str().expect("id").to_owned();

    let lock = WriteLock::take(&app.dir.path().join("mtfu.sqlite3"));
    // More writes than the old shared pool had connections, all waiting for the lock.
    let writers = 6;
    let mut pending = Vec::new();
    for i in 0..writers {
        let (client, url, t) = (
            app.client.clone(),
            app.url("/api/v2/files/product/2/w"),
            t.clone(),
        );
        pending.push(tokio::spawn(async move {
            client
                .put(format!("{url}{i}.txt"))
                .bearer_auth(t)
                .body("w")
                .send()
                .await
                .expect("put")
                .status()
                .as_u16()
        }));
    }
    let meta = app.state.files.meta.clone();
    assert!(
        eventually(60, || {
            let meta = meta.clone();
            async move { meta.writes_queued() >= writers }
        })
        .await,
        "the writes did not reach the store"
    );

    // Listings, metadata, content and a login: all answered while every write still waits.
    let (s, v) = app.get(&t, "/api/list_files").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["count"], 1);
    let (s, v) = app.get(&t, "/api/v2/files").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = app.get(&t, &format!("/api/v2/files/{id}")).await;
    assert_eq!(s, 200, "{v}");
    let r = app
        .client
        .get(app.url(&format!("/api/v2/files/{id}/content")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("content");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"hello");
    app.token("john2").await;
    assert!(
        pending.iter().all(|p| !p.is_finished()),
        "a write finished while the lock was held"
    );
    assert!(meta.writes_queued() >= writers);

    // Released: every waiting write goes through.
    lock.release();
    for p in pending {
        assert_eq!(p.await.expect("writer"), 201);
    }
    let (_, v) = app.get(&t, "/api/files/product/2").await;
    assert_eq!(v["count"], writers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_past_the_busy_timeout_is_a_503_and_reads_still_work() {
    let app = spawn_with(|c| c.metadata.sqlite.busy_timeout_secs = 1).await;
    let t = app.token("john1").await;
    let lock = WriteLock::take(&app.dir.path().join("mtfu.sqlite3"));
    let (s, v) = app.upload(&t, "product", "1", "a.txt", b"hello").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["code"], "metadata_unavailable", "{v}");
    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/b.txt"))
        .bearer_auth(&t)
        .body("b")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 503);
    let (s, v) = app.get(&t, "/api/list_files").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["count"], 0);
    lock.release();
    let (s, v) = app.upload(&t, "product", "1", "a.txt", b"hello").await;
    assert_eq!(s, 200, "{v}");
}
