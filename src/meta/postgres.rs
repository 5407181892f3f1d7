//! PostgreSQL metadata store (tokio-postgres behind a deadpool pool).
//!
//! The same rows and rules as the SQLite store, so several mtfu nodes can share one database.
//! Every call is bounded in time: getting a connection by `connect_timeout_secs`, each statement
//! by the server's `statement_timeout`, and the whole call by both, on the client's side too, so a
//! database that is down, restarting or silent answers `MetaError::Unavailable` instead of
//! hanging. Pooled connections are checked before reuse, so the pool heals by itself once the
//! database is back, or after its backends were killed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::future::BoxFuture;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::{Claim, ListCursor, ListFilter, MetaBackend, MetaError, MetaResult, Reaped};
use crate::config::PostgresConfig;
use crate::domain::{
    BlobKey, FileId, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId,
    TenantName,
};

mod commit;
mod fsck;
mod listing;
mod names;
mod quota;
mod seed;
mod session;
mod shared;
mod tus;

/// The migrations, in order. Each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "0002_public_listing_indexes",
        include_str!("../../migrations/postgres/0002_public_listing_indexes.sql"),
    ),
    (
        3,
        "0003_v2",
        include_str!("../../migrations/postgres/0003_v2.sql"),
    ),
    (
        4,
        "0004_quotas",
        include_str!("../../migrations/postgres/0004_quotas.sql"),
    ),
    (
        5,
        "0005_tus",
        include_str!("../../migrations/postgres/0005_tus.sql"),
    ),
    (
        6,
        "0006_leases",
        include_str!("../../migrations/postgres/0006_leases.sql"),
    ),
    (
        7,
        "0007_session_epoch",
        include_str!("../../migrations/postgres/0007_session_epoch.sql"),
    ),
    (
        8,
        "0008_name_keys",
        include_str!("../../migrations/postgres/0008_name_keys.sql"),
    ),
    (
        9,
        "0009_seed_import",
        include_str!("../../migrations/postgres/0009_seed_import.sql"),
    ),
    (
        10,
        "0010_listing_counts",
        include_str!("../../migrations/postgres/0010_listing_counts.sql"),
    ),
];

/// Key of the advisory lock held while migrating ("mtfu" in ASCII), so that nodes starting at
/// once against one database migrate one after the other. Advisory locks are per database.
const MIGRATION_LOCK: i64 = 0x6d74_6675;

/// Commits of one (tenant, resource, resource_id, name) queue on a transaction advisory lock
/// of this class (two-key advisory locks never meet the one-key migration lock), keyed by a hash
/// of the name: each then finds the row the one before it committed, and replaces it. A hash
/// collision only makes two unrelated commits wait for each other.
const COMMIT_LOCK_CLASS: i32 = 0x6d74_6675;

/// A commit that still meets `files_live_key` (it cannot while the lock above holds) is retried
/// this many times in all before the conflict is returned.
const COMMIT_ATTEMPTS: usize = 3;

/// A parameter of a query built at run time.
type Param = Box<dyn ToSql + Sync + Send>;

pub struct Postgres {
    pool: Pool,
    /// Longest wait for a connection (waiting for a free one, then opening a new one).
    get_timeout: Duration,
    /// Longest time one call may use its connection before the connection is dropped.
    call_timeout: Duration,
}

impl From<tokio_postgres::Error> for MetaError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(code) = e.code().map(|c| c.code()) {
            let text = match e.as_db_error() {
                Some(db) => format!("{} ({code})", db.message()),
                None => format!("{e} ({code})"),
            };
            return match code {
                // unique_violation
                "23505" => MetaError::Conflict(text),
                // connection_exception, admin/crash shutdown, cannot_connect_now,
                // idle_session_timeout, query_canceled (statement_timeout),
                // insufficient_resources (too many connections), serialization failure and
                // deadlock: the server is there but cannot serve this now.
                c if c.starts_with("08")
                    || c.starts_with("57P")
                    || c.starts_with("53")
                    || c == "57014"
                    || c == "40001"
                    || c == "40P01" =>
                {
                    MetaError::Unavailable(text)
                }
                _ => MetaError::Internal(text),
            };
        }
        let text = error_chain(&e);
        // tokio-postgres keeps its error kinds private; these are its wordings for a connection
        // that could not be made, broke, or timed out.
        let transient = e.is_closed()
            || io_cause(&e)
            || [
                "error connecting",
                "error communicating",
                "error performing TLS",
                "timeout",
                "connection closed",
            ]
            .iter()
            .any(|p| text.starts_with(p));
        if transient {
            MetaError::Unavailable(text)
        } else {
            MetaError::Internal(text)
        }
    }
}

/// `e` and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn io_cause(e: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn pool_error(e: PoolError) -> MetaError {
    match e {
        PoolError::Timeout(kind) => MetaError::Unavailable(format!(
            "no database connection in time ({kind:?} timed out)"
        )),
        // Only opening a connection reports here (a failed recycle just drops the connection).
        // Whatever the reason (refused, reset, a database not accepting connections, even bad
        // credentials), the store cannot be reached now.
        PoolError::Backend(e) => {
            let (MetaError::Unavailable(m)
            | MetaError::Conflict(m)
            | MetaError::Internal(m)
            | MetaError::Gone(m)) = MetaError::from(e);
            MetaError::Unavailable(format!("cannot connect: {m}"))
        }
        PoolError::PostCreateHook(e) => MetaError::Unavailable(e.to_string()),
        PoolError::Closed => MetaError::Unavailable("connection pool closed".into()),
        PoolError::NoRuntimeSpecified => MetaError::Internal("pool without a runtime".into()),
    }
}

/// A TLS connector verifying the server against the system's roots and Mozilla's, with the
/// ring provider named here (never a process-wide default).
fn tls_connector() -> MetaResult<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MetaError::Internal(format!("TLS to PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Where `cfg` points, without the password: `user@host:port/dbname`.
pub fn describe(cfg: &PostgresConfig) -> String {
    let Some(Ok(pg)) = cfg.url.as_deref().map(str::parse::<tokio_postgres::Config>) else {
        return "no valid url".into();
    };
    let ports = pg.get_ports();
    let hosts = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let user = pg.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = pg.get_dbname().unwrap_or_default();
    let tls = if cfg.tls { ", tls" } else { "" };
    format!("{user}{hosts}/{db}{tls}")
}

impl Postgres {
    /// Build the pool; no connection is made until the first call.
    pub fn open(cfg: &PostgresConfig) -> MetaResult<Postgres> {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| MetaError::Internal("metadata.postgres.url is not set".into()))?;
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| MetaError::Internal(format!("metadata.postgres.url: {e}")))?;
        let connect_timeout = Duration::from_secs(cfg.connect_timeout_secs.max(1));
        let statement_timeout = Duration::from_secs(cfg.statement_timeout_secs.max(1));
        pg.connect_timeout(connect_timeout);
        // Set at connection start-up, so every connection of the pool has it, and appended so
        // it wins over an `options` of the URL.
        let timeout = format!("-c statement_timeout={}", statement_timeout.as_millis());
        let options = match pg.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} {timeout}"),
            _ => timeout,
        };
        pg.options(options);
        if pg.get_application_name().is_none() {
            pg.application_name("mtfu");
        }
        // `tls` decides, not the URL's `sslmode`: `prefer` would fall back to plain text.
        pg.ssl_mode(if cfg.tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        // Verified: a pooled connection answers a round trip before it is handed out; one the
        // server closed (restart, pg_terminate_backend) is dropped and replaced instead.
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        };
        let manager = if cfg.tls {
            Manager::from_config(pg, tls_connector()?, manager_config)
        } else {
            Manager::from_config(pg, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| MetaError::Internal(format!("PostgreSQL pool: {e}")))?;
        Ok(Postgres {
            pool,
            get_timeout: connect_timeout * 2,
            call_timeout: statement_timeout + connect_timeout,
        })
    }

    /// A pooled connection, within `get_timeout` whatever the pool meets on the way (several
    /// dead connections to recycle, then a slow connect).
    async fn client(&self) -> MetaResult<Object> {
        get_client(&self.pool, self.get_timeout).await
    }

    /// Run `f` on a pooled connection, within `call_timeout`, in a task of its own: like the
    /// SQLite store's blocking threads, a call runs to its end even when the request that made
    /// it is dropped (a client hanging up must not leave an intent its cleanup meant to drop).
    /// A connection whose call timed out is in an unknown state (a statement may still be
    /// running): it is closed, not pooled.
    async fn with<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Object) -> BoxFuture<'c, MetaResult<T>> + Send + 'static,
    {
        let (pool, get_timeout, call_timeout) =
            (self.pool.clone(), self.get_timeout, self.call_timeout);
        tokio::spawn(async move {
            let mut client = get_client(&pool, get_timeout).await?;
            let out = tokio::time::timeout(call_timeout, f(&mut client)).await;
            match out {
                Ok(r) => r,
                Err(_) => {
                    drop(Object::take(client));
                    Err(MetaError::Unavailable(
                        "the database did not answer in time".into(),
                    ))
                }
            }
        })
        .await
        .map_err(|e| MetaError::Internal(format!("metadata task failed: {e}")))?
    }
}

async fn get_client(pool: &Pool, timeout: Duration) -> MetaResult<Object> {
    match tokio::time::timeout(timeout, pool.get()).await {
        Ok(r) => r.map_err(pool_error),
        Err(_) => Err(MetaError::Unavailable(
            "no database connection in time".into(),
        )),
    }
}

const FILE_COLUMNS: &str = "f.id, f.tenant_id, t.username, f.resource, f.resource_id, f.name, \
     f.blob_key, f.size, f.content_type, f.sha256, f.is_public, f.expire_at, f.created_at";

fn file_from_row(r: &Row) -> MetaResult<FileRecord> {
    let key: String = r.try_get(6)?;
    let blob_key = BlobKey::from_stored(&key)
        .ok_or_else(|| MetaError::Internal(format!("malformed blob key {key:?}")))?;
    let size: i64 = r.try_get(7)?;
    Ok(FileRecord {
        id: r.try_get(0)?,
        tenant_id: TenantId(r.try_get(1)?),
        tenant_username: r.try_get(2)?,
        resource: r.try_get(3)?,
        resource_id: r.try_get(4)?,
        name: r.try_get(5)?,
        blob_key,
        size: u64::try_from(size)
            .map_err(|_| MetaError::Internal(format!("negative file size {size}")))?,
        content_type: r.try_get(8)?,
        sha256: r.try_get(9)?,
        is_public: r.try_get(10)?,
        expire_at: r.try_get(11)?,
        created_at: r.try_get(12)?,
    })
}

fn tenant_from_row(r: &Row) -> MetaResult<Tenant> {
    let name: String = r.try_get(1)?;
    let name = TenantName::parse(&name)
        .map_err(|e| MetaError::Internal(format!("stored tenant name {name:?}: {e}")))?;
    Ok(Tenant {
        id: TenantId(r.try_get(0)?),
        name,
    })
}

fn keys_from_rows(rows: &[Row]) -> MetaResult<Vec<BlobKey>> {
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        let k: String = r.try_get(0)?;
        keys.extend(BlobKey::from_stored(&k));
    }
    Ok(keys)
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The `WHERE` clause of every listing and its parameters: visibility first, then filters.
fn visible_where(viewer: &Tenant, filter: &ListFilter, now: Micros) -> (String, Vec<Param>) {
    let mut sql = String::from(
        "f.deleted_at IS NULL AND (f.expire_at IS NULL OR f.expire_at > $1) \
         AND (f.tenant_id = $2 OR f.is_public)",
    );
    let mut args: Vec<Param> = vec![Box::new(now), Box::new(viewer.id.0)];
    let mut add = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(Box::new(v.clone()));
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
    };
    add("f.resource", &filter.resource);
    add("f.resource_id", &filter.resource_id);
    add("t.username", &filter.tenant_username);
    (sql, args)
}

/// The keyset listing's query, for `visible_where`'s `cond` (whose `$2` is the viewer) and its
/// `n` parameters; then come the cursor's three (if `after`) and the limit.
///
/// What the viewer sees is its own files and the public ones: two branches, each read in name order
/// from the cursor through an index of exactly its rows (`files_tenant_name`, `files_live_key`;
/// `files_public_name`, `files_public_resource_name`, `files_public_tenant_name`) and cut at the
/// limit, then merged (`UNION` keeps one copy of the viewer's public files, in both): a page reads
/// about `limit` index entries per branch however deep it is and whatever other tenants store.
/// `f.name >= name` is the row comparison's index-usable part (its other columns come from two
/// tables); files sharing the cursor's name are read again on each page.
/// The cursor's values compare in the "C" collation of the columns, the order of the indexes and
/// of `ORDER BY`.
fn keyset_sql(cond: &str, n: usize, after: bool) -> String {
    let (keyset, lim) = if after {
        (
            format!(
                " AND f.name >= ${a} COLLATE \"C\" AND (f.name, t.username, f.id) > \
                 (${a} COLLATE \"C\", ${b} COLLATE \"C\", ${c} COLLATE \"C\")",
                a = n + 1,
                b = n + 2,
                c = n + 3
            ),
            n + 4,
        )
    } else {
        (String::new(), n + 1)
    };
    let branch = |visible: &str| {
        format!(
            "(SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
              WHERE {cond} AND {visible}{keyset}
              ORDER BY f.name, t.username, f.id LIMIT ${lim})"
        )
    };
    format!(
        "{} UNION {} ORDER BY name, username, id LIMIT ${lim}",
        branch("f.tenant_id = $2"),
        branch("f.is_public"),
    )
}

fn params(args: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

#[async_trait]
impl MetaBackend for Postgres {
    async fn migrate(&self) -> MetaResult<usize> {
        // Not bounded by `call_timeout`: a migration may rebuild a large table, and a node that
        // starts while another migrates waits for its lock.
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let newest: Option<i64> = tx
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await?
            .try_get(0)?;
        super::refuse_newer_schema(newest, MIGRATIONS)?;
        let mut ran = 0;
        for (version, name, sql) in MIGRATIONS {
            let done: bool = tx
                .query_one(
                    "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = $1)",
                    &[version],
                )
                .await?
                .try_get(0)?;
            if done {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(|e| match MetaError::from(e) {
                    MetaError::Internal(m) | MetaError::Conflict(m) => {
                        MetaError::Internal(format!("migration {name} failed: {m}"))
                    }
                    unavailable => unavailable,
                })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[version, name, &crate::domain::now_micros()],
            )
            .await?;
            ran += 1;
        }
        tx.commit().await?;
        Ok(ran)
    }

    async fn ping(&self) -> MetaResult<()> {
        self.with(|c| {
            Box::pin(async move {
                c.simple_query("SELECT 1").await?;
                Ok(())
            })
        })
        .await
    }

    async fn create_tenant(&self, name: &TenantName, password_hash: &str) -> MetaResult<TenantId> {
        let (name, key, hash) = (name.to_string(), name.key(), password_hash.to_owned());
        self.with(move |c| {
            Box::pin(async move { names::create_tenant(c, &name, &key, &hash).await })
        })
        .await
    }

    async fn tenant_by_name(&self, name: &str) -> MetaResult<Option<(Tenant, String)>> {
        let name = name.to_owned();
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT id, username, password_hash FROM tenants WHERE username = $1",
                        &[&name],
                    )
                    .await?;
                match row {
                    Some(r) => Ok(Some((tenant_from_row(&r)?, r.try_get(2)?))),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn tenant_by_id(&self, id: TenantId) -> MetaResult<Option<Tenant>> {
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT id, username FROM tenants WHERE id = $1", &[&id.0])
                    .await?;
                row.as_ref().map(tenant_from_row).transpose()
            })
        })
        .await
    }

    async fn list_tenants(&self) -> MetaResult<Vec<Tenant>> {
        self.with(|c| {
            Box::pin(async move {
                let rows = c
                    .query("SELECT id, username FROM tenants ORDER BY username", &[])
                    .await?;
                rows.iter().map(tenant_from_row).collect()
            })
        })
        .await
    }

    async fn remove_tenant(&self, name: &TenantName) -> MetaResult<bool> {
        let name = name.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                // Locking the tenant row makes a concurrent commit of one of its files wait (its
                // foreign key check) and then fail, so no file row is deleted by the cascade
                // without its blob going to garbage.
                let row = tx
                    .query_opt(
                        "SELECT id FROM tenants WHERE username = $1 FOR UPDATE",
                        &[&name],
                    )
                    .await?;
                let Some(row) = row else { return Ok(false) };
                let id: i64 = row.try_get(0)?;
                tx.execute(
                    "WITH gone AS (DELETE FROM files WHERE tenant_id = $1 RETURNING blob_key)
                     INSERT INTO garbage (blob_key, added_at) SELECT DISTINCT blob_key, $2::bigint
                     FROM gone g WHERE NOT EXISTS (SELECT 1 FROM files o
                       WHERE o.blob_key = g.blob_key AND o.tenant_id <> $1)
                     ON CONFLICT (blob_key) DO NOTHING",
                    &[&id, &crate::domain::now_micros()],
                )
                .await?;
                // Its uploads in flight: their commits fail now (their claim is gone), and the
                // blobs they wrote are garbage; its resumable uploads expire at once, for gc.
                tx.execute(
                    "WITH gone AS (DELETE FROM upload_intents WHERE tenant_id = $1
                                   RETURNING blob_key)
                     INSERT INTO garbage (blob_key, added_at) SELECT blob_key, $2 FROM gone
                     ON CONFLICT (blob_key) DO NOTHING",
                    &[&id, &crate::domain::now_micros()],
                )
                .await?;
                tx.execute(
                    "UPDATE tus_uploads SET expires_at = 0, lease_token = NULL, lease_until = NULL
                     WHERE tenant_id = $1",
                    &[&id],
                )
                .await?;
                tx.execute("DELETE FROM tenants WHERE id = $1", &[&id])
                    .await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    async fn set_password(&self, name: &TenantName, password_hash: &str) -> MetaResult<bool> {
        let (name, hash) = (name.as_str().to_owned(), password_hash.to_owned());
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "UPDATE tenants SET password_hash = $2, session_epoch = session_epoch + 1 WHERE username = $1",
                    &[&name, &hash],
                )
                .await?
                    == 1)
            })
        })
        .await
    }

    async fn record_intent(
        &self,
        tenant: &Tenant,
        key: &BlobKey,
        now: Micros,
        lease_until: Micros,
    ) -> MetaResult<()> {
        let (tid, key) = (tenant.id.0, key.as_str().to_owned());
        self.with(move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO upload_intents (blob_key, tenant_id, started_at, lease_until)
                         VALUES ($1, $2, $3, $4)",
                    )
                    .await?;
                c.execute(&st, &[&key, &tid, &now, &lease_until]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn renew_intent(&self, key: &BlobKey, until: Micros) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "UPDATE upload_intents SET lease_until = $2 WHERE blob_key = $1",
                    )
                    .await?;
                Ok(c.execute(&st, &[&key, &until]).await? == 1)
            })
        })
        .await
    }

    async fn drop_intent(&self, key: &BlobKey) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                Ok(
                    c.execute("DELETE FROM upload_intents WHERE blob_key = $1", &[&key])
                        .await?
                        == 1,
                )
            })
        })
        .await
    }

    async fn commit_file(
        &self,
        tenant: &Tenant,
        file: NewFile,
        now: Micros,
        claim: Claim,
    ) -> MetaResult<(FileRecord, Option<BlobKey>)> {
        let tenant = tenant.clone();
        self.with(move |c| {
            Box::pin(async move {
                let mut attempt = 1;
                let (id, old_key) = loop {
                    match commit::commit_once(c, &tenant, &file, now, &claim).await {
                        Ok(Some(done)) => break done,
                        Ok(None) => return Err(MetaError::Gone(file.blob_key.as_str().to_owned())),
                        // Both saw no live row; the other one is committed now, so the next
                        // attempt finds and replaces it. (The name's lock prevents this; kept
                        // as a safety net.)
                        Err(e) if is_unique_violation(&e) && attempt < COMMIT_ATTEMPTS => {
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                let record = FileRecord {
                    id,
                    tenant_id: tenant.id,
                    tenant_username: tenant.name.as_str().to_owned(),
                    resource: file.resource.as_str().to_owned(),
                    resource_id: file.resource_id.as_str().to_owned(),
                    name: file.name.as_str().to_owned(),
                    blob_key: file.blob_key,
                    size: file.size,
                    content_type: file.content_type,
                    sha256: file.sha256,
                    is_public: file.is_public,
                    expire_at: file.expire_at,
                    created_at: now,
                };
                Ok((record, old_key.and_then(|k| BlobKey::from_stored(&k))))
            })
        })
        .await
    }

    async fn count_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
    ) -> MetaResult<u64> {
        let (viewer, filter) = (viewer.clone(), filter.clone());
        self.with(move |c| {
            Box::pin(async move { listing::count(&*c, &viewer, &filter, now).await })
        })
        .await
    }

    async fn list_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        offset: u64,
        limit: u64,
    ) -> MetaResult<Vec<FileRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (viewer, filter) = (viewer.clone(), filter.clone());
        let read = super::page::Read::forward(offset, limit);
        self.with(move |c| {
            Box::pin(async move { listing::page(&*c, &viewer, &filter, now, read).await })
        })
        .await
    }

    async fn list_page(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        page: super::page::SeedPage,
    ) -> MetaResult<(u64, Vec<FileRecord>)> {
        let (viewer, filter) = (viewer.clone(), filter.clone());
        self.with(move |c| {
            Box::pin(async move {
                // One snapshot for the count and the page.
                let tx = c
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let count = listing::count(&tx, &viewer, &filter, now).await?;
                let files = match page.plan(count) {
                    Some(read) => listing::page(&tx, &viewer, &filter, now, read).await?,
                    None => Vec::new(),
                };
                tx.commit().await?;
                Ok((count, files))
            })
        })
        .await
    }

    async fn list_files_after(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        after: Option<&ListCursor>,
        limit: u64,
    ) -> MetaResult<Vec<FileRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (cond, mut args) = visible_where(viewer, filter, now);
        let sql = keyset_sql(&cond, args.len(), after.is_some());
        if let Some(c) = after {
            args.push(Box::new(c.name.clone()));
            args.push(Box::new(c.tenant_username.clone()));
            args.push(Box::new(c.id.clone()));
        }
        args.push(Box::new(as_i64(limit)));
        self.with(move |c| {
            Box::pin(async move {
                let st = c.prepare_cached(&sql).await?;
                let rows = c.query(&st, &params(&args)).await?;
                rows.iter().map(file_from_row).collect()
            })
        })
        .await
    }

    async fn owned_file(
        &self,
        owner: TenantId,
        id: &str,
        now: Micros,
    ) -> MetaResult<Option<FileRecord>> {
        let id = id.to_owned();
        self.with(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
                     WHERE f.id = $1 AND f.tenant_id = $2 AND f.deleted_at IS NULL
                       AND (f.expire_at IS NULL OR f.expire_at > $3)"
                );
                let st = c.prepare_cached(&sql).await?;
                let row = c.query_opt(&st, &[&id, &owner.0, &now]).await?;
                row.as_ref().map(file_from_row).transpose()
            })
        })
        .await
    }

    async fn delete_files(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        now: Micros,
    ) -> MetaResult<u64> {
        let (tid, r, rid) = (
            tenant.id.0,
            resource.as_str().to_owned(),
            resource_id.as_str().to_owned(),
        );
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "UPDATE files SET deleted_at = $4 WHERE tenant_id = $1 AND resource = $2
                       AND resource_id = $3 AND deleted_at IS NULL",
                    &[&tid, &r, &rid, &now],
                )
                .await?)
            })
        })
        .await
    }

    async fn blacklist_refresh(&self, jti: &str, expires_at: Micros) -> MetaResult<bool> {
        let jti = jti.to_owned();
        self.with(move |c| {
            Box::pin(async move {
                // A concurrent insert of the same jti waits for the first one's commit and then
                // does nothing: exactly one caller sees `true`.
                Ok(c.execute(
                    "INSERT INTO refresh_blacklist (jti, expires_at) VALUES ($1, $2)
                     ON CONFLICT (jti) DO NOTHING",
                    &[&jti, &expires_at],
                )
                .await?
                    == 1)
            })
        })
        .await
    }

    async fn reap_files(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<Reaped> {
        self.with(move |c| {
            Box::pin(async move {
                let reaped = shared::reap(c, deleted_before, expired_before).await?;
                listing::fold_counts(&*c).await?;
                Ok(reaped)
            })
        })
        .await
    }

    async fn garbage(&self, limit: u64) -> MetaResult<Vec<BlobKey>> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT blob_key FROM garbage ORDER BY added_at LIMIT $1",
                        &[&as_i64(limit)],
                    )
                    .await?;
                keys_from_rows(&rows)
            })
        })
        .await
    }

    async fn forget_garbage(&self, key: &BlobKey) -> MetaResult<()> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                c.execute("DELETE FROM garbage WHERE blob_key = $1", &[&key])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn stale_intents(&self, now: Micros) -> MetaResult<Vec<BlobKey>> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT blob_key FROM upload_intents WHERE lease_until < $1
                         ORDER BY lease_until",
                        &[&now],
                    )
                    .await?;
                keys_from_rows(&rows)
            })
        })
        .await
    }

    async fn take_stale_intents(&self, now: Micros, limit: u64) -> MetaResult<Vec<BlobKey>> {
        self.with(move |c| {
            Box::pin(async move {
                // SKIP LOCKED: an intent a commit holds (row-locked) is not stale for long.
                let rows = c
                    .query(
                        "DELETE FROM upload_intents WHERE blob_key IN (
                             SELECT blob_key FROM upload_intents WHERE lease_until < $1
                             ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED)
                         RETURNING blob_key",
                        &[&now, &as_i64(limit)],
                    )
                    .await?;
                keys_from_rows(&rows)
            })
        })
        .await
    }

    async fn key_known(&self, key: &BlobKey) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.query_one(
                    "SELECT EXISTS(SELECT 1 FROM files WHERE blob_key = $1)
                         OR EXISTS(SELECT 1 FROM upload_intents WHERE blob_key = $1)
                         OR EXISTS(SELECT 1 FROM garbage WHERE blob_key = $1)",
                    &[&key],
                )
                .await?
                .try_get(0)?)
            })
        })
        .await
    }

    async fn purge_blacklist(&self, now: Micros) -> MetaResult<u64> {
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "DELETE FROM refresh_blacklist WHERE expires_at < $1",
                    &[&now],
                )
                .await?)
            })
        })
        .await
    }

    // The v2 file routes and signed-link revocation.

    async fn visible_file(
        &self,
        viewer: &Tenant,
        id: &FileId,
        now: Micros,
    ) -> MetaResult<Option<FileRecord>> {
        let (id, viewer) = (id.as_str().to_owned(), viewer.id.0);
        self.with(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
                     WHERE f.id = $1 AND f.deleted_at IS NULL
                       AND (f.expire_at IS NULL OR f.expire_at > $3)
                       AND (f.tenant_id = $2 OR f.is_public)"
                );
                let st = c.prepare_cached(&sql).await?;
                let row = c.query_opt(&st, &[&id, &viewer, &now]).await?;
                row.as_ref().map(file_from_row).transpose()
            })
        })
        .await
    }

    async fn delete_file(
        &self,
        tenant: &Tenant,
        id: &FileId,
        now: Micros,
    ) -> MetaResult<Option<BlobKey>> {
        let (id, tid) = (id.as_str().to_owned(), tenant.id.0);
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "UPDATE files SET deleted_at = $3 WHERE id = $1 AND tenant_id = $2
                           AND deleted_at IS NULL AND (expire_at IS NULL OR expire_at > $3)
                         RETURNING blob_key",
                        &[&id, &tid, &now],
                    )
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let key: String = row.try_get(0)?;
                Ok(BlobKey::from_stored(&key))
            })
        })
        .await
    }

    async fn delete_files_returning(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        now: Micros,
    ) -> MetaResult<Vec<BlobKey>> {
        let (tid, r, rid) = (
            tenant.id.0,
            resource.as_str().to_owned(),
            resource_id.as_str().to_owned(),
        );
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "UPDATE files SET deleted_at = $4 WHERE tenant_id = $1 AND resource = $2
                           AND resource_id = $3 AND deleted_at IS NULL
                         RETURNING blob_key",
                        &[&tid, &r, &rid, &now],
                    )
                    .await?;
                keys_from_rows(&rows)
            })
        })
        .await
    }

    async fn revoke_urls(&self, tenant: TenantId, at: Micros) -> MetaResult<Option<Micros>> {
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "UPDATE tenants SET urls_revoked_before = GREATEST(urls_revoked_before, $2)
                         WHERE id = $1 RETURNING urls_revoked_before",
                        &[&tenant.0, &at],
                    )
                    .await?;
                row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
            })
        })
        .await
    }

    async fn urls_revoked_before(&self, tenant: TenantId) -> MetaResult<Option<Micros>> {
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT urls_revoked_before FROM tenants WHERE id = $1",
                        &[&tenant.0],
                    )
                    .await?;
                row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
            })
        })
        .await
    }
}

/// `url` with its database replaced by `dbname`, for both URL and `key=value` forms (tests and
/// benchmarks create a database per run).
pub fn with_dbname(url: &str, dbname: &str) -> String {
    let Some((scheme, rest)) = url
        .split_once("://")
        .filter(|(s, _)| *s == "postgres" || *s == "postgresql")
    else {
        return format!("{url} dbname={dbname}");
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(a, _)| a);
    match query {
        Some(q) => format!("{scheme}://{authority}/{dbname}?{q}"),
        None => format!("{scheme}://{authority}/{dbname}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS.iter().map(|(_, n, _)| n.to_string()).collect();
        assert_eq!(files, embedded);
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn describe_never_shows_the_password() {
        let cfg = PostgresConfig {
            url: Some("postgres://mtfu:hunter2@db.internal:6432/files".into()),
            ..PostgresConfig::default()
        };
        let d = describe(&cfg);
        assert_eq!(d, "mtfu@db.internal:6432/files");
        assert!(!d.contains("hunter2"));
    }

    #[test]
    fn listing_filters_become_numbered_placeholders() {
        let viewer = Tenant {
            id: TenantId(7),
            name: TenantName::parse("john1").expect("name"),
        };
        let filter = ListFilter {
            resource: Some("r".into()),
            resource_id: None,
            tenant_username: Some("john2".into()),
        };
        let (sql, args) = visible_where(&viewer, &filter, 0);
        assert!(
            sql.ends_with("AND f.resource = $3 AND t.username = $4"),
            "{sql}"
        );
        assert_eq!(args.len(), 4);
    }

    /// A migrated store on a fresh database of `MTFU_TEST_POSTGRES_URL` (named like the
    /// integration tests' ones, so their sweep drops it if this test dies), the admin client and
    /// the database's name.
    async fn fresh_store() -> Option<(Postgres, tokio_postgres::Client, String)> {
        let Some(admin_url) = std::env::var("MTFU_TEST_POSTGRES_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                // The PostgreSQL the build found on 127.0.0.1:5432 (tests/support/detect.rs).
                (!cfg!(mtfu_no_pg))
                    .then(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
            })
        else {
            // Only where the build found PostgreSQL: the test is ignored elsewhere.
            panic!("PostgreSQL is required: MTFU_TEST_POSTGRES_URL");
        };
        let (admin, conn) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .expect("connect to MTFU_TEST_POSTGRES_URL");
        tokio::spawn(conn);
        let name = format!("mtfu_test_{}", uuid::Uuid::now_v7().simple());
        // A default collation that sorts unlike bytes ("B" < "a" in C, not in English), where
        // the server has ICU, so that a comparison or sort missing the columns' "C" collation
        // shows.
        let icu = admin
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' \
                 LOCALE 'C.UTF-8'"
            ))
            .await;
        if icu.is_err() {
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
        }
        let cfg = PostgresConfig {
            url: Some(with_dbname(&admin_url, &name)),
            ..PostgresConfig::default()
        };
        let db = Postgres::open(&cfg).expect("open");
        db.migrate().await.expect("migrate");
        Some((db, admin, name))
    }

    #[tokio::test]
    #[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
    async fn keyset_pages_follow_offset_order() {
        let Some((db, admin, name)) = fresh_store().await else {
            return;
        };
        crate::meta::testing::keyset_pages_follow_offset_order(&db).await;
        crate::meta::testing::commit_and_clean_up_race_through_the_intent(&db).await;
        crate::meta::seed::testing::shared_keys_go_with_the_last_row(&db).await;
        drop(db);
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .expect("drop test database");
    }

    #[tokio::test]
    #[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
    async fn seed_listing_counts_stay_exact() {
        let Some((db, admin, name)) = fresh_store().await else {
            return;
        };
        crate::meta::page::testing::counts_stay_exact(&db).await;
        drop(db);
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .expect("drop test database");
    }
}
