//! Group commit (issue 14): uploads ready together share a directory sync and one metadata
//! transaction, and nothing about an answer changes. A batch of concurrent uploads answered 200
//! survives a SIGKILL right after its answers, on both metadata stores; an upload of a batch
//! that fails (its intent taken by gc) fails alone, forced with the pause points and SQLite's
//! write lock, never by timing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::multipart::{Form, Part};

use crate::cli::ChildServer;
use crate::helpers::{eventually, spawn_with};
use crate::store::MetaStore;
use crate::tus::data;

/// Uploads in the batch: as many as a busy server's connections.
const BATCH: usize = 24;

fn form(name: &str, body: Vec<u8>) -> Form {
    Form::new()
        .text("resource", "product")
        .text("resource_id", "1")
        .part("file", Part::bytes(body).file_name(name.to_owned()))
}

/// `mtfu init-data` on `dir` with `env`.
fn init_data(dir: &Path, env: &[(&str, String)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .arg("init-data")
        .env("MTFU_SERVER__DATA_DIR", dir)
        .env("MTFU_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("mtfu init-data");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The settings of a child server on a fresh metadata store of kind `meta`.
async fn store_env(meta: MetaStore) -> Vec<(&'static str, String)> {
    match meta {
        MetaStore::Sqlite => Vec::new(),
        MetaStore::Postgres => {
            let mut cfg = mtfu::config::Config::default();
            crate::pg::configure(&mut cfg).await;
            let url = cfg.metadata.postgres.url.expect("a database url");
            vec![
                ("MTFU_METADATA__BACKEND", "postgres".to_owned()),
                ("MTFU_METADATA__POSTGRES__URL", url),
            ]
        }
    }
}

async fn answered_uploads_survive_a_sigkill(meta: MetaStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = store_env(meta).await;
    init_data(dir.path(), &env);
    let server = ChildServer::start_with(dir.path(), &env);
    let t = server.token("john1").await;
    let bodies: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| data(10 * 1024 + i, i as u64 + 1))
        .collect();
    let answers = join_all(bodies.iter().enumerate().map(|(i, b)| {
        server
            .client
            .post(server.url("/api/upload"))
            .bearer_auth(&t)
            .multipart(form(&format!("f{i}.bin"), b.clone()))
            .send()
    }))
    .await;
    for a in answers {
        assert_eq!(a.expect("upload").status(), 200);
    }
    // Every upload was answered: nothing may be lost from here on.
    server.kill9();
    drop(server);

    let server = ChildServer::start_with(dir.path(), &env);
    let t = server.token("john1").await;
    let r = server
        .client
        .get(server.url("/api/files/product/1?page_size=100"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("listing");
    let listing: serde_json::Value = r.json().await.expect("json");
    let files = listing["files"].as_array().expect("files");
    assert_eq!(files.len(), BATCH, "{listing}");
    for (i, body) in bodies.iter().enumerate() {
        let name = format!("f{i}.bin");
        let f = files
            .iter()
            .find(|f| f["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not listed"));
        let url = f["url"].as_str().expect("url");
        let got = server.client.get(url).send().await.expect("download");
        assert_eq!(got.status(), 200);
        assert_eq!(&got.bytes().await.expect("bytes")[..], &body[..], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_uploads_survive_a_sigkill_on_sqlite() {
    answered_uploads_survive_a_sigkill(MetaStore::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn answered_uploads_survive_a_sigkill_on_postgres() {
    answered_uploads_survive_a_sigkill(MetaStore::Postgres).await;
}

/// SQLite's write lock, held by another connection until released.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(path: &Path) -> WriteLock {
        let c = rusqlite::Connection::open(path).expect("open the database");
        c.execute_batch("BEGIN IMMEDIATE").expect("take the lock");
        WriteLock(c)
    }

    fn release(self) {
        self.0.execute_batch("COMMIT").expect("release the lock");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_intent_is_gone_fails_alone_in_its_batch() {
    let app = spawn_with(|c| {
        c.metadata.sqlite.busy_timeout_secs = 60;
        // Six requests at once on the test client's one HTTP/2 connection (4 by default).
        c.http2.max_concurrent_streams = 8;
    })
    .await;
    let t = app.token("john1").await;
    let (meta, blob) = (app.state.files.meta.clone(), app.state.files.blob.clone());
    let hooks = app.state.files.hooks.clone();
    let staged = hooks.arm("staged");
    let n = 4;
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| data(8 * 1024, 100 + i as u64)).collect();
    let uploads: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let (c, url, t) = (app.client.clone(), app.url("/api/upload"), t.clone());
            let f = form(&format!("g{i}.bin"), b.clone());
            tokio::spawn(async move {
                let r = c.post(url).bearer_auth(t).multipart(f).send().await;
                r.expect("upload").status().as_u16()
            })
        })
        .collect();
    // Every upload is stored, its intent recorded, its commit not asked for yet.
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(30), staged.reached())
            .await
            .expect("an upload reached its commit");
    }
    // gc takes one of them: its lease lapses, and a sweep takes its intent and its blob.
    let keys = meta.stale_intents(i64::MAX).await.expect("intents");
    assert_eq!(keys.len(), n);
    let victim = keys[0].clone();
    assert!(meta.renew_intent(&victim, 0).await.expect("lapse"));
    let swept = mtfu::gc::sweep(&meta, &blob, Duration::ZERO, false)
        .await
        .expect("gc");
    assert_eq!(swept.stale_uploads.len(), 1, "{swept:?}");

    // Hold the committer on a first batch (another upload's intent, waiting for the write lock)
    // while the four commits queue behind it: they make the next batch, together.
    let lock = WriteLock::take(&app.dir.path().join("mtfu.sqlite3"));
    let other = {
        let (c, url, t) = (app.client.clone(), app.url("/api/upload"), t.clone());
        tokio::spawn(async move {
            let r = c
                .post(url)
                .bearer_auth(t)
                .multipart(form("o.bin", data(100, 9)));
            r.send().await.expect("upload").status().as_u16()
        })
    };
    assert!(
        eventually(30, || async { meta.writes_queued() >= 2 }).await,
        "the first batch never waited"
    );
    let before = meta.writes_queued();
    let (_, _, largest0) = meta.group_commits().expect("SQLite batches");
    hooks.disarm("staged");
    assert!(
        eventually(30, || async { meta.writes_queued() >= before + n }).await,
        "the commits never queued"
    );
    lock.release();

    let mut statuses = Vec::new();
    for u in uploads {
        statuses.push(u.await.expect("task"));
    }
    assert_eq!(other.await.expect("task"), 200);
    let (_, _, largest) = meta.group_commits().expect("SQLite batches");
    assert!(
        largest >= n as u64 && largest > largest0,
        "largest batch {largest}"
    );
    // The one whose intent gc took is refused; the others are files, every byte.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        n - 1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        1,
        "{statuses:?}"
    );
    let (_, listing) = app.get(&t, "/api/files/product/1").await;
    let files = listing["files"].as_array().expect("files");
    for (i, body) in bodies.iter().enumerate() {
        let name = format!("g{i}.bin");
        match files.iter().find(|f| f["name"] == name.as_str()) {
            Some(f) => {
                assert_eq!(statuses[i], 200, "{name} listed but refused");
                let got = app.download(f["url"].as_str().expect("url")).await;
                assert_eq!(&got[..], &body[..], "{name}");
            }
            None => assert_eq!(statuses[i], 503, "{name} answered but not listed"),
        }
    }
    assert!(eventually(10, || async { mtfu::cleanup::running() == 0 }).await);
    assert_eq!(app.intents().await, 0);
    crate::faults::assert_consistent(&app).await;
}
