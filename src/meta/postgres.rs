//! PostgreSQL metadata store (tokio-postgres behind a deadpool pool).
//!
//! The same rows and rules as the SQLite store, so several mtfu nodes can share one database.
//! Every call is bounded in time: getting a connection by `connect_timeout_secs`, each statement
//! by the server's `statement_timeout`, and the whole call by both, on the client's side too, so a
//! database that is down, restarting or silent answers `MetaError::Unavailable` instead of
//! hanging. Pooled connections are checked before reuse, so the pool heals by itself once the
//! database is back, or after its backends were killed.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::IsolationLevel;

use super::{
    Claim, ListCursor, ListFilter, MetaBackend, MetaError, MetaResult, Reaped, TenantEntry,
};
use crate::domain::{
    BlobKey, FileId, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId,
    TenantName,
};

mod commit;
mod conn;
mod listing;
mod migrate;
mod names;
mod quota;
mod seed;
mod shared;
mod sql;
mod tenants;
#[cfg(test)]
mod tests;
mod tus;

pub use conn::{describe, with_dbname};
use sql::{
    FILE_COLUMNS, Param, as_i64, as_u64, file_from_row, is_unique_violation, keys_from_rows,
    keyset_sql, param, params, tenant_from_row, visible_where,
};

/// Commits of one (tenant, resource, resource_id, name) queue on a transaction advisory lock
/// of this class (two-key advisory locks never meet the one-key migration lock), keyed by a hash
/// of the name: each then finds the row the one before it committed, and replaces it. A hash
/// collision only makes two unrelated commits wait for each other.
const COMMIT_LOCK_CLASS: i32 = 0x6d74_6675;

/// A commit that still meets `files_live_key` (it cannot while the lock above holds) is retried
/// this many times in all before the conflict is returned.
const COMMIT_ATTEMPTS: usize = 3;

pub struct Postgres {
    pool: Pool,
    /// Longest wait for a connection (waiting for a free one, then opening a new one).
    get_timeout: Duration,
    /// Longest time one call may use its connection before the connection is dropped.
    call_timeout: Duration,
}

#[async_trait]
impl MetaBackend for Postgres {
    async fn migrate(&self) -> MetaResult<usize> {
        migrate::migrate(self).await
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
        tenants::tenant_by_name(self, name).await
    }

    async fn tenant_by_id(&self, id: TenantId) -> MetaResult<Option<Tenant>> {
        tenants::tenant_by_id(self, id).await
    }

    async fn list_tenants(&self) -> MetaResult<Vec<TenantEntry>> {
        tenants::list_tenants(self).await
    }

    async fn remove_tenant(&self, name: &TenantName) -> MetaResult<bool> {
        tenants::remove_tenant(self, name).await
    }

    async fn set_password(&self, name: &TenantName, password_hash: &str) -> MetaResult<bool> {
        tenants::set_password(self, name, password_hash).await
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
                let record = crate::meta::sql::committed(&tenant, file, id, now);
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
