//! PostgreSQL for the store matrix: a fresh database per test, so tests run in parallel.
//!
//! Databases are named `mtfu_test_<UUIDv7>`; the UUID carries its creation time, so each test
//! process drops the ones a crashed or interrupted earlier run left behind for more than a day.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mtfu::config::{Config, MetadataBackend, PostgresConfig};
use mtfu::domain::{
    BlobKey, FileName, NewFile, Resource, ResourceId, Tenant, TenantName, now_micros,
};
use mtfu::meta::postgres::Postgres;
use mtfu::meta::{ListFilter, Meta, MetaBackend, MetaError};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

const PREFIX: &str = "mtfu_test_";
/// Leftover test databases older than this are dropped.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Point `cfg` at a new, empty PostgreSQL database.
pub async fn configure(cfg: &mut Config) {
    let admin_url = crate::store::postgres_url().expect("MTFU_TEST_POSTGRES_URL is set");
    let (client, conn) = tokio_postgres::connect(&admin_url, NoTls)
        .await
        .expect("connect to MTFU_TEST_POSTGRES_URL");
    let conn = tokio::spawn(conn);

    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT.get_or_init(|| drop_stale(&client)).await;

    let name = format!("{PREFIX}{}", uuid::Uuid::now_v7().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    drop(client);
    let _ = conn.await;

    cfg.metadata.backend = MetadataBackend::Postgres;
    cfg.metadata.postgres.url = Some(mtfu::meta::postgres::with_dbname(&admin_url, &name));
}

/// Drop test databases left by earlier runs (best effort).
async fn drop_stale(client: &tokio_postgres::Client) {
    let Ok(rows) = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'mtfu\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    for row in rows {
        let name: String = row.get(0);
        let Some(created) = name
            .strip_prefix(PREFIX)
            .and_then(|u| uuid::Uuid::parse_str(u).ok())
            .and_then(|u| u.get_timestamp())
            .map(|t| {
                let (secs, nanos) = t.to_unix();
                Duration::new(secs, nanos)
            })
        else {
            continue;
        };
        if now.saturating_sub(created) > MAX_AGE {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

// The PostgreSQL store's own guarantees, beyond the API suite: concurrency, and a database that
// is unreachable, silent, slow, or kills its connections.

/// The database a store URL names.
fn dbname(url: Option<&str>) -> String {
    url.and_then(|u| u.parse::<tokio_postgres::Config>().ok())
        .and_then(|c| c.get_dbname().map(str::to_owned))
        .expect("dbname")
}

/// An admin connection to `MTFU_TEST_POSTGRES_URL`.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to MTFU_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    client
}

/// A fresh database's store settings, and the database's name.
async fn fresh_db() -> Option<(PostgresConfig, String)> {
    let mut cfg = Config::default();
    configure(&mut cfg).await;
    let pg = cfg.metadata.postgres;
    let name = dbname(pg.url.as_deref());
    Some((pg, name))
}

async fn open(pg: &PostgresConfig) -> Meta {
    let meta = Meta::new(Arc::new(Postgres::open(pg).expect("open")));
    meta.migrate().await.expect("migrate");
    meta
}

async fn tenant(meta: &Meta, name: &str) -> Tenant {
    let name = TenantName::parse(name).expect("name");
    let id = meta.create_tenant(&name, "hash").await.expect("tenant");
    Tenant { id, name }
}

fn new_file(key: &BlobKey) -> NewFile {
    NewFile {
        resource: Resource::parse("product").expect("resource"),
        resource_id: ResourceId::parse("1").expect("resource id"),
        name: FileName::parse("a.txt").expect("name"),
        blob_key: key.clone(),
        size: 1,
        content_type: "text/plain".into(),
        sha256: "00".repeat(32),
        is_public: false,
        expire_at: None,
    }
}

fn assert_unavailable<T: std::fmt::Debug>(r: Result<T, MetaError>) {
    assert!(matches!(r, Err(MetaError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn concurrent_commits_of_one_name_keep_one_row_and_lose_no_blob() {
    let Some((pg, _)) = fresh_db().await else {
        return;
    };
    let meta = open(&pg).await;
    let t = tenant(&meta, "john1").await;
    let mut all = HashSet::new();
    for _round in 0..5 {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (meta, t) = (meta.clone(), t.clone());
            let key = BlobKey::generate(t.id);
            all.insert(key.clone());
            tasks.push(tokio::spawn(async move {
                meta.record_intent(&t, &key, now_micros(), i64::MAX).await?;
                meta.commit_file(&t, new_file(&key), now_micros(), mtfu::meta::Claim::Intent)
                    .await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("commit");
        }
    }
    let live = meta
        .list_files(&t, &ListFilter::default(), now_micros(), 0, 100)
        .await
        .expect("list");
    assert_eq!(live.len(), 1);
    let garbage: HashSet<BlobKey> = meta
        .garbage(1000)
        .await
        .expect("garbage")
        .into_iter()
        .collect();
    assert_eq!(garbage.len(), all.len() - 1);
    assert!(!garbage.contains(&live[0].blob_key));
    let mut known = garbage;
    known.insert(live[0].blob_key.clone());
    assert_eq!(known, all);
    assert!(
        meta.stale_intents(i64::MAX)
            .await
            .expect("intents")
            .is_empty()
    );
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn a_refresh_token_is_accepted_once_under_concurrency() {
    let Some((pg, _)) = fresh_db().await else {
        return;
    };
    let meta = open(&pg).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let meta = meta.clone();
            tokio::spawn(async move { meta.blacklist_refresh("jti-1", i64::MAX).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.expect("task").expect("blacklist"));
    }
    assert_eq!(accepted, 1);
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn nodes_migrating_at_once_apply_each_migration_once() {
    let Some((pg, _)) = fresh_db().await else {
        return;
    };
    let stores: Vec<Postgres> = (0..4).map(|_| Postgres::open(&pg).expect("open")).collect();
    let runs = futures_util::future::join_all(stores.iter().map(|s| s.migrate())).await;
    let ran: usize = runs.into_iter().map(|r| r.expect("migrate")).sum();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations")
        .count();
    assert_eq!(ran, files, "each migration ran once across all nodes");
    assert_eq!(stores[0].migrate().await.expect("again"), 0);
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn killed_backends_are_replaced_by_the_pool() {
    let Some((pg, db)) = fresh_db().await else {
        return;
    };
    let meta = open(&pg).await;
    let t = tenant(&meta, "john1").await;
    let admin = admin(&crate::store::postgres_url().expect("url")).await;
    for _ in 0..3 {
        let killed = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db],
            )
            .await
            .expect("terminate");
        assert!(!killed.is_empty());
        // Pooled connections are verified before use: the dead ones are replaced unseen.
        meta.ping().await.expect("ping after kill");
        meta.count_files(&t, &ListFilter::default(), now_micros())
            .await
            .expect("count after kill");
    }
}

/// A backend stopped with SIGSTOP: its socket stays open and it never answers, so only a round
/// trip tells it from a live one. Continued when dropped.
struct Stopped(i32);

impl Stopped {
    fn signal(pid: i32, sig: &str) -> bool {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn new(pid: i32) -> Stopped {
        assert!(
            Stopped::signal(pid, "-STOP"),
            "could not stop backend {pid} (the test needs to signal PostgreSQL's processes)"
        );
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        Stopped::signal(self.0, "-CONT");
    }
}

/// The newest backend of `db`: the store's one pooled connection (a replaced one may still be
/// on its way out).
async fn backend(admin: &tokio_postgres::Client, db: &str) -> i32 {
    admin
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
             ORDER BY backend_start DESC LIMIT 1",
            &[&db],
        )
        .await
        .expect("the pool's backend")
        .get(0)
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn with_verify_after_idle_only_connections_idle_that_long_are_checked() {
    let Some((mut pg, db)) = fresh_db().await else {
        return;
    };
    pg.pool_size = 1;
    pg.connect_timeout_secs = 2;
    pg.statement_timeout_secs = 1;
    pg.verify_after_idle_ms = 3000;
    let meta = open(&pg).await;
    let t = tenant(&meta, "john1").await;
    let admin = admin(&crate::store::postgres_url().expect("url")).await;
    let count = async || {
        meta.count_files(&t, &ListFilter::default(), now_micros())
            .await
    };

    // Handed out a moment ago: used unchecked (no round trip), it meets the stopped backend,
    // and the call fails; the connection is closed, not pooled.
    let stopped = Stopped::new(backend(&admin, &db).await);
    assert_unavailable(count().await);
    drop(stopped);

    // A new connection, then left idle past the setting: checked before use, the stopped
    // backend does not answer, and the pool opens another; the call succeeds.
    count().await.expect("count on a new connection");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let _stopped = Stopped::new(backend(&admin, &db).await);
    count()
        .await
        .expect("an idle connection is checked and replaced");
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn a_database_refusing_connections_is_unavailable_until_it_is_back() {
    let Some((pg, db)) = fresh_db().await else {
        return;
    };
    let meta = open(&pg).await;
    let admin = admin(&crate::store::postgres_url().expect("url")).await;
    admin
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .await
        .expect("close database");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .expect("terminate");
    let started = Instant::now();
    assert_unavailable(meta.ping().await);
    assert_unavailable(meta.list_tenants().await);
    assert!(started.elapsed() < Duration::from_secs(pg.connect_timeout_secs * 2 + 2));
    admin
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .await
        .expect("reopen database");
    meta.ping().await.expect("ping after recovery");
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn a_silent_server_is_unavailable_within_the_connect_timeout() {
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let pg = PostgresConfig {
        url: Some(format!("postgres://mtfu@127.0.0.1:{port}/mtfu")),
        connect_timeout_secs: 1,
        ..PostgresConfig::default()
    };
    let store = Postgres::open(&pg).expect("open");
    let started = Instant::now();
    assert_unavailable(store.ping().await);
    assert_unavailable(store.migrate().await);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn a_refused_connection_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let pg = PostgresConfig {
        url: Some(format!("postgres://mtfu@127.0.0.1:{port}/mtfu")),
        ..PostgresConfig::default()
    };
    let store = Postgres::open(&pg).expect("open");
    assert_unavailable(store.ping().await);
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn a_statement_past_its_timeout_is_unavailable() {
    let Some((mut pg, db)) = fresh_db().await else {
        return;
    };
    pg.statement_timeout_secs = 1;
    let meta = open(&pg).await;
    let t = tenant(&meta, "john1").await;
    let mut url: tokio_postgres::Config = crate::store::postgres_url()
        .expect("url")
        .parse()
        .expect("url parses");
    url.dbname(&db);
    let (mut locker, conn) = url.connect(NoTls).await.expect("connect");
    tokio::spawn(conn);
    let tx = locker.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE files IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let started = Instant::now();
    assert_unavailable(
        meta.count_files(&t, &ListFilter::default(), now_micros())
            .await,
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    tx.rollback().await.expect("unlock");
    meta.count_files(&t, &ListFilter::default(), now_micros())
        .await
        .expect("count after unlock");
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn the_api_answers_503_while_the_database_is_gone_and_recovers() {
    let admin_url = crate::store::postgres_url().expect("PostgreSQL is required: MTFU_TEST_POSTGRES_URL (the build ignores this test where it finds none)");
    crate::store::META
        .scope(crate::store::MetaStore::Postgres, async {
            let mut url = None;
            let app = crate::helpers::spawn_with(|c| {
                c.metadata.postgres.connect_timeout_secs = 1;
                url = c.metadata.postgres.url.clone();
            })
            .await;
            let db = dbname(url.as_deref());
            let t = app.token("john1").await;
            assert_eq!(app.get(&t, "/api/list_files").await.0, 200);

            let admin = admin(&admin_url).await;
            admin
                .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
                .await
                .expect("close database");
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&db],
                )
                .await
                .expect("terminate");
            let (status, body) = app.get(&t, "/api/list_files").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(
                body,
                serde_json::json!({"detail": "Service unavailable", "code": "metadata_unavailable"})
            );
            let ready = app
                .client
                .get(app.url("/readyz"))
                .send()
                .await
                .expect("readyz");
            assert_eq!(ready.status(), 503);
            let metrics = app.metrics_text().await;
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("mtfu_store_errors_total")
                        && l.contains("store=\"metadata\"")
                        && l.contains("kind=\"unavailable\"")),
                "the outage is counted in /metrics"
            );

            admin
                .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
                .await
                .expect("reopen database");
            assert_eq!(app.get(&t, "/api/list_files").await.0, 200);
            let ready = app
                .client
                .get(app.url("/readyz"))
                .send()
                .await
                .expect("readyz");
            assert_eq!(ready.status(), 200);
        })
        .await
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn two_nodes_on_one_database_share_files_and_the_refresh_blacklist() {
    crate::store::META
        .scope(crate::store::MetaStore::Postgres, async {
            const SECRET: &str = "a shared secret for both nodes, 32+ bytes";
            let mut url = None;
            let a = crate::helpers::spawn_with(|c| {
                c.auth.jwt_secret = Some(SECRET.into());
                url = c.metadata.postgres.url.clone();
            })
            .await;
            let b = crate::helpers::spawn_with(|c| {
                c.auth.jwt_secret = Some(SECRET.into());
                c.metadata.postgres.url = url.clone();
            })
            .await;
            let t = a.token("john1").await;
            assert_eq!(a.upload(&t, "product", "1", "a.txt", b"x").await.0, 200);
            // A token from node A works on node B, which sees A's file.
            let (s, list) = b.get(&t, "/api/files/product/1").await;
            assert_eq!(s, 200);
            assert_eq!(crate::helpers::names(&list), ["a.txt"]);

            let pair: serde_json::Value = a
                .client
                .post(a.url("/api/token/"))
                .json(&serde_json::json!({"username": "john1", "password": "test"}))
                .send()
                .await
                .expect("token")
                .json()
                .await
                .expect("json");
            let refresh = serde_json::json!({"refresh": pair["refresh"]});
            let on = |app: &crate::helpers::TestApp| {
                app.client
                    .post(app.url("/api/token/refresh/"))
                    .json(&refresh)
                    .send()
            };
            assert_eq!(on(&a).await.expect("refresh on A").status(), 200);
            assert_eq!(on(&b).await.expect("reuse on B").status(), 401);
        })
        .await
}
