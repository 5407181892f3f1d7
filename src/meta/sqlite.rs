//! SQLite metadata store (rusqlite, bundled SQLite, WAL).
//!
//! Writes run on writer connections and take `BEGIN IMMEDIATE`, so they queue on SQLite's
//! lock (with a busy timeout) instead of failing on a lock upgrade; reads run on read-only
//! connections of their own and never wait for a write (see `pool`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{
    Claim, ListCursor, ListFilter, MetaBackend, MetaError, MetaResult, Reaped, TenantEntry,
};
use crate::domain::{
    BlobKey, FileId, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId,
    TenantName,
};

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

use sql::{FILE_COLUMNS, blob_keys, file_from_row, keyset_sql, tenant_from_row, visible_where};

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
impl MetaBackend for Sqlite {
    async fn migrate(&self) -> MetaResult<usize> {
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

    fn writes_queued(&self) -> usize {
        Sqlite::writes_queued(self)
    }

    fn group_commits(&self) -> Option<(u64, u64, u64)> {
        Some(self.batch.stats())
    }

    async fn ping(&self) -> MetaResult<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn create_tenant(&self, name: &TenantName, password_hash: &str) -> MetaResult<TenantId> {
        let (name, key, hash) = (name.to_string(), name.key(), password_hash.to_owned());
        self.with(move |c| names::create_tenant(c, &name, &key, &hash))
            .await
    }

    async fn tenant_by_name(&self, name: &str) -> MetaResult<Option<(Tenant, String)>> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, username, password_hash FROM tenants WHERE username = ?1",
                [name],
                |r| Ok((tenant_from_row(r)?, r.get(2)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn tenant_by_id(&self, id: TenantId) -> MetaResult<Option<Tenant>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, username FROM tenants WHERE id = ?1",
                [id.0],
                tenant_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_tenants(&self) -> MetaResult<Vec<TenantEntry>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, username, created_at, last_login_at FROM tenants ORDER BY username",
            )?;
            let rows = st.query_map([], |r| {
                Ok(TenantEntry {
                    tenant: tenant_from_row(r)?,
                    created_at: r.get(2)?,
                    last_login_at: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn remove_tenant(&self, name: &TenantName) -> MetaResult<bool> {
        let name = name.as_str().to_owned();
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

    async fn set_password(&self, name: &TenantName, password_hash: &str) -> MetaResult<bool> {
        let (name, hash) = (name.as_str().to_owned(), password_hash.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "UPDATE tenants SET password_hash = ?2, session_epoch = session_epoch + 1 WHERE username = ?1",
                params![name, hash],
            )? == 1)
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
        self.batched(move |c| commit::record_intent(c, tid, &key, now, lease_until))
            .await
    }

    async fn renew_intent(&self, key: &BlobKey, until: Micros) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.batched(move |c| {
            Ok(
                c.prepare_cached("UPDATE upload_intents SET lease_until = ?2 WHERE blob_key = ?1")?
                    .execute(params![key, until])?
                    == 1,
            )
        })
        .await
    }

    async fn drop_intent(&self, key: &BlobKey) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.batched(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM upload_intents WHERE blob_key = ?1")?
                    .execute([key])?
                    == 1,
            )
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
        self.batched(move |c| commit::commit_file(c, &tenant, file, now, &claim))
            .await
    }

    async fn count_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
    ) -> MetaResult<u64> {
        let (viewer, filter) = (viewer.clone(), filter.clone());
        self.read(move |c| Ok(listing::count(c, &viewer, &filter, now)?))
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
        self.read(move |c| Ok(listing::page(c, &viewer, &filter, now, read)?))
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
        self.read(move |c| {
            // One read transaction: the count and the page come from one snapshot.
            let tx = c.transaction()?;
            let count = listing::count(&tx, &viewer, &filter, now)?;
            let files = match page.plan(count) {
                Some(read) => listing::page(&tx, &viewer, &filter, now, read)?,
                None => Vec::new(),
            };
            Ok((count, files))
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
            args.extend(crate::meta::sql::args![&c.name, &c.tenant_username, &c.id]);
        }
        args.push(crate::meta::sql::big(limit));
        self.read(move |c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), file_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
        self.read(move |c| {
            let sql = format!(
                "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
                 WHERE f.id = ?1 AND f.tenant_id = ?2 AND f.deleted_at IS NULL
                   AND (f.expire_at IS NULL OR f.expire_at > ?3)"
            );
            Ok(c.query_row(&sql, params![id, owner.0, now], file_from_row)
                .optional()?)
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
            Ok(c.execute(
                "UPDATE files SET deleted_at = ?4 WHERE tenant_id = ?1 AND resource = ?2
                   AND resource_id = ?3 AND deleted_at IS NULL",
                params![tid, r, rid, now],
            )? as u64)
        })
        .await
    }

    async fn blacklist_refresh(&self, jti: &str, expires_at: Micros) -> MetaResult<bool> {
        let jti = jti.to_owned();
        self.with(move |c| {
            Ok(c.execute(
                "INSERT OR IGNORE INTO refresh_blacklist (jti, expires_at) VALUES (?1, ?2)",
                params![jti, expires_at],
            )? == 1)
        })
        .await
    }

    async fn reap_files(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<Reaped> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = crate::domain::now_micros();
            let reaped = shared::reap(&tx, deleted_before, expired_before, now)?;
            tx.commit()?;
            Ok(reaped)
        })
        .await
    }

    async fn garbage(&self, limit: u64) -> MetaResult<Vec<BlobKey>> {
        self.with(move |c| {
            let mut st = c.prepare("SELECT blob_key FROM garbage ORDER BY added_at LIMIT ?1")?;
            let rows = st.query_map([limit as i64], |r| r.get::<_, String>(0))?;
            let keys = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(keys
                .iter()
                .filter_map(|k| BlobKey::from_stored(k))
                .collect())
        })
        .await
    }

    async fn forget_garbage(&self, key: &BlobKey) -> MetaResult<()> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM garbage WHERE blob_key = ?1", [key])?;
            Ok(())
        })
        .await
    }

    async fn stale_intents(&self, now: Micros) -> MetaResult<Vec<BlobKey>> {
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT blob_key FROM upload_intents WHERE lease_until < ?1 ORDER BY lease_until",
            )?;
            Ok(blob_keys(st.query_map([now], |r| r.get::<_, String>(0))?)?)
        })
        .await
    }

    async fn take_stale_intents(&self, now: Micros, limit: u64) -> MetaResult<Vec<BlobKey>> {
        self.with(move |c| {
            let mut st = c.prepare(
                "DELETE FROM upload_intents WHERE blob_key IN (
                     SELECT blob_key FROM upload_intents WHERE lease_until < ?1
                     ORDER BY lease_until LIMIT ?2)
                 RETURNING blob_key",
            )?;
            Ok(blob_keys(
                st.query_map(params![now, limit as i64], |r| r.get::<_, String>(0))?,
            )?)
        })
        .await
    }

    async fn key_known(&self, key: &BlobKey) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM files WHERE blob_key = ?1)
                     OR EXISTS(SELECT 1 FROM upload_intents WHERE blob_key = ?1)
                     OR EXISTS(SELECT 1 FROM garbage WHERE blob_key = ?1)",
                [key],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn purge_blacklist(&self, now: Micros) -> MetaResult<u64> {
        self.with(move |c| {
            Ok(c.execute("DELETE FROM refresh_blacklist WHERE expires_at < ?1", [now])? as u64)
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
        self.read(move |c| {
            let sql = format!(
                "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
                 WHERE f.id = ?1 AND f.deleted_at IS NULL
                   AND (f.expire_at IS NULL OR f.expire_at > ?3)
                   AND (f.tenant_id = ?2 OR f.is_public = 1)"
            );
            let mut st = c.prepare_cached(&sql)?;
            Ok(st
                .query_row(params![id, viewer, now], file_from_row)
                .optional()?)
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
            let key: Option<String> = c
                .query_row(
                    "UPDATE files SET deleted_at = ?3 WHERE id = ?1 AND tenant_id = ?2
                       AND deleted_at IS NULL AND (expire_at IS NULL OR expire_at > ?3)
                     RETURNING blob_key",
                    params![id, tid, now],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(key.and_then(|k| BlobKey::from_stored(&k)))
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
            let mut st = c.prepare(
                "UPDATE files SET deleted_at = ?4 WHERE tenant_id = ?1 AND resource = ?2
                   AND resource_id = ?3 AND deleted_at IS NULL
                 RETURNING blob_key",
            )?;
            let rows = st.query_map(params![tid, r, rid, now], |r| r.get::<_, String>(0))?;
            let keys = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(keys
                .iter()
                .filter_map(|k| BlobKey::from_stored(k))
                .collect())
        })
        .await
    }

    async fn revoke_urls(&self, tenant: TenantId, at: Micros) -> MetaResult<Option<Micros>> {
        self.with(move |c| {
            Ok(c.query_row(
                "UPDATE tenants SET urls_revoked_before = MAX(urls_revoked_before, ?2)
                 WHERE id = ?1 RETURNING urls_revoked_before",
                params![tenant.0, at],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn urls_revoked_before(&self, tenant: TenantId) -> MetaResult<Option<Micros>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT urls_revoked_before FROM tenants WHERE id = ?1",
                [tenant.0],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }
}
