//! SQLite metadata store (rusqlite, bundled SQLite, WAL).
//!
//! Writes run on writer connections and take `BEGIN IMMEDIATE`, so they queue on SQLite's
//! lock (with a busy timeout) instead of failing on a lock upgrade; reads run on read-only
//! connections of their own and never wait for a write (see `pool`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::page::SeedPage;
use super::sql::{Commit, Counted, Dialect, Listing, Native, NewTenant};
use super::{MetaError, MetaResult, Reaped};
use crate::domain::{BlobKey, FileRecord, Micros, TenantId};

mod batch;
mod commit;
mod listing;
mod names;
mod pool;
mod quota;
mod seed;
mod shared;
mod sql;
#[cfg(test)]
mod tests;
mod tus;

/// The migrations, in order. Each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "0002_public_listing_indexes",
        include_str!("../../migrations/sqlite/0002_public_listing_indexes.sql"),
    ),
    (
        3,
        "0003_v2",
        include_str!("../../migrations/sqlite/0003_v2.sql"),
    ),
    (
        4,
        "0004_quotas",
        include_str!("../../migrations/sqlite/0004_quotas.sql"),
    ),
    (
        5,
        "0005_tus",
        include_str!("../../migrations/sqlite/0005_tus.sql"),
    ),
    (
        6,
        "0006_leases",
        include_str!("../../migrations/sqlite/0006_leases.sql"),
    ),
    (
        7,
        "0007_session_epoch",
        include_str!("../../migrations/sqlite/0007_session_epoch.sql"),
    ),
    (
        8,
        "0008_name_keys",
        include_str!("../../migrations/sqlite/0008_name_keys.sql"),
    ),
    (
        9,
        "0009_seed_import",
        include_str!("../../migrations/sqlite/0009_seed_import.sql"),
    ),
    (
        10,
        "0010_listing_counts",
        include_str!("../../migrations/sqlite/0010_listing_counts.sql"),
    ),
    (
        11,
        "0011_last_login",
        include_str!("../../migrations/sqlite/0011_last_login.sql"),
    ),
];

pub struct Sqlite {
    pool: std::sync::Arc<pool::Pool>,
    batch: batch::Batcher,
}

#[async_trait]
impl Native for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn run_migrations(&self) -> MetaResult<usize> {
        self.with(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            )?;
            let newest: Option<i64> =
                c.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0))?;
            super::refuse_newer_schema(newest, MIGRATIONS)?;
            let mut ran = 0;
            for (version, name, sql) in MIGRATIONS {
                let tx = c.transaction_with_behavior(TransactionBehavior::Exclusive)?;
                let done: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
                    [version],
                    |r| r.get(0),
                )?;
                if !done {
                    tx.execute_batch(sql).map_err(|e| {
                        MetaError::Internal(format!("migration {name} failed: {e}"))
                    })?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                        params![version, name, crate::domain::now_micros()],
                    )?;
                    ran += 1;
                }
                tx.commit()?;
            }
            Ok(ran)
        })
        .await
    }

    fn queued_writes(&self) -> usize {
        Sqlite::writes_queued(self)
    }

    fn commit_stats(&self) -> Option<(u64, u64, u64)> {
        Some(self.batch.stats())
    }

    async fn insert_tenant(&self, t: NewTenant) -> MetaResult<TenantId> {
        self.with(move |c| names::create_tenant(c, &t.name, &t.key, &t.hash))
            .await
    }

    async fn delete_tenant(&self, name: String) -> MetaResult<bool> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id: Option<i64> = tx
                .query_row("SELECT id FROM tenants WHERE username = ?1", [&name], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(id) = id else { return Ok(false) };
            let now = crate::domain::now_micros();
            tx.execute(
                "INSERT OR IGNORE INTO garbage (blob_key, added_at) SELECT blob_key, ?2 FROM files f
                 WHERE tenant_id = ?1 AND NOT EXISTS (SELECT 1 FROM files o
                   WHERE o.blob_key = f.blob_key AND o.tenant_id <> ?1)",
                params![id, now],
            )?;
            tx.execute("DELETE FROM files WHERE tenant_id = ?1", [id])?;
            // Its uploads in flight: their commits fail now (their claim is gone), and the
            // blobs they wrote are garbage; its resumable uploads expire at once, for gc.
            tx.execute(
                "INSERT OR IGNORE INTO garbage (blob_key, added_at)
                 SELECT blob_key, ?2 FROM upload_intents WHERE tenant_id = ?1",
                params![id, now],
            )?;
            tx.execute("DELETE FROM upload_intents WHERE tenant_id = ?1", [id])?;
            tx.execute(
                "UPDATE tus_uploads SET expires_at = 0, lease_token = NULL, lease_until = NULL
                 WHERE tenant_id = ?1",
                [id],
            )?;
            tx.execute("DELETE FROM tenants WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn commit(&self, c: Commit) -> MetaResult<(FileRecord, Option<BlobKey>)> {
        self.batched(move |conn| commit::commit_file(conn, &c.tenant, c.file, c.now, &c.claim))
            .await
    }

    async fn snapshot_page(&self, l: Listing, page: SeedPage) -> MetaResult<Counted> {
        self.read(move |c| listing::snapshot_page(c, &l, page))
            .await
    }

    async fn reap(&self, before: (Micros, Micros)) -> MetaResult<Reaped> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = crate::domain::now_micros();
            let reaped = shared::reap(&tx, before.0, before.1, now)?;
            tx.commit()?;
            Ok(reaped)
        })
        .await
    }
}
