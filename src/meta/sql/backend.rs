//! [`MetaBackend`] on either store, written once over [`Exec`]: every method that is one
//! statement. What a store does its own way (its migrations, the transactions of a commit, of a
//! tenant's creation and removal, of gc's sweep, the listing's snapshot) is its [`Native`] impl,
//! each hook taking one request.

use async_trait::async_trait;

use super::{
    Dialect, Exec, FILE_COLUMNS, On, args, big, blob_keys, count_from_rows, count_sql,
    file_from_row, keyset_sql, page_sql, tenant_from_row, visible_where,
};
use crate::domain::{
    BlobKey, FileId, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId,
    TenantName,
};
use crate::meta::page::{Read, SeedPage};
use crate::meta::quota::QuotaStore;
use crate::meta::seed::SeedStore;
use crate::meta::sql::tus::TusCreate;
use crate::meta::{Claim, ListCursor, ListFilter, MetaBackend, MetaResult, Reaped, TenantEntry};

/// A tenant to create: its name, the name's look-alike key, its password hash.
pub struct NewTenant {
    pub name: String,
    pub key: String,
    pub hash: String,
}

/// A file to commit (see [`MetaBackend::commit_file`]).
pub struct Commit {
    pub tenant: Tenant,
    pub file: NewFile,
    pub now: Micros,
    pub claim: Claim,
}

/// A listing's count, and a page of it.
pub type Counted = (u64, Vec<FileRecord>);

/// A listing: who looks, through which filter, when.
pub struct Listing {
    pub viewer: Tenant,
    pub filter: ListFilter,
    pub now: Micros,
}

impl Listing {
    /// The count's statement and parameters.
    pub fn count(&self, d: Dialect) -> (String, Vec<super::Arg>) {
        count_sql(d, &self.viewer, &self.filter, self.now)
    }

    /// The statement and parameters of the page `read`.
    pub fn page(&self, d: Dialect, read: Read) -> (String, Vec<super::Arg>) {
        page_sql(d, &self.viewer, &self.filter, self.now, read)
    }
}

/// What each store does its own way.
#[async_trait]
pub trait Native: Exec {
    /// The store's SQL dialect.
    fn dialect(&self) -> Dialect;
    /// See [`MetaBackend::migrate`].
    async fn run_migrations(&self) -> MetaResult<usize>;
    /// See [`MetaBackend::writes_queued`].
    fn queued_writes(&self) -> usize {
        0
    }
    /// See [`MetaBackend::group_commits`].
    fn commit_stats(&self) -> Option<(u64, u64, u64)> {
        None
    }
    /// See [`MetaBackend::create_tenant`].
    async fn insert_tenant(&self, t: NewTenant) -> MetaResult<TenantId>;
    /// See [`MetaBackend::remove_tenant`].
    async fn delete_tenant(&self, name: String) -> MetaResult<bool>;
    /// See [`MetaBackend::commit_file`].
    async fn commit(&self, c: Commit) -> MetaResult<(FileRecord, Option<BlobKey>)>;
    /// See [`MetaBackend::list_page`]: the count and the page in one snapshot.
    async fn snapshot_page(&self, l: Listing, page: SeedPage) -> MetaResult<Counted>;
    /// See [`MetaBackend::reap_files`]: `(deleted_before, expired_before)`.
    async fn reap(&self, before: (Micros, Micros)) -> MetaResult<Reaped>;
}

const TENANT_BY_NAME: &str = "SELECT id, username, password_hash FROM tenants WHERE username = $1";

const SET_PASSWORD: &str = "UPDATE tenants SET password_hash = $2,
     session_epoch = session_epoch + 1 WHERE username = $1";

const RECORD_INTENT: &str = "INSERT INTO upload_intents (blob_key, tenant_id, started_at,
     lease_until) VALUES ($1, $2, $3, $4)";

const DELETE_FILES: &str = "UPDATE files SET deleted_at = $4 WHERE tenant_id = $1
     AND resource = $2 AND resource_id = $3 AND deleted_at IS NULL";

const DELETE_FILE: &str = "UPDATE files SET deleted_at = $3 WHERE id = $1 AND tenant_id = $2
       AND deleted_at IS NULL AND (expire_at IS NULL OR expire_at > $3)
     RETURNING blob_key";

/// A concurrent insert of the same jti waits for the first one's commit and then does nothing:
/// exactly one caller sees `true`.
const BLACKLIST: &str = "INSERT INTO refresh_blacklist (jti, expires_at) VALUES ($1, $2)
     ON CONFLICT (jti) DO NOTHING";

const KEY_KNOWN: &str = "SELECT EXISTS(SELECT 1 FROM files WHERE blob_key = $1)
     OR EXISTS(SELECT 1 FROM upload_intents WHERE blob_key = $1)
     OR EXISTS(SELECT 1 FROM garbage WHERE blob_key = $1)";

fn owned_sql() -> String {
    format!(
        "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
         WHERE f.id = $1 AND f.tenant_id = $2 AND f.deleted_at IS NULL
           AND (f.expire_at IS NULL OR f.expire_at > $3)"
    )
}

fn visible_sql(d: Dialect) -> String {
    format!(
        "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
         WHERE f.id = $1 AND f.deleted_at IS NULL
           AND (f.expire_at IS NULL OR f.expire_at > $3)
           AND (f.tenant_id = $2 OR {})",
        d.public()
    )
}

/// The parameters of a resource's files: `$1` the tenant, `$2` the resource, `$3` its id, `$4`
/// the time.
fn resource_args(t: &Tenant, r: &Resource, rid: &ResourceId, now: Micros) -> Vec<super::Arg> {
    args![t.id.0, r.as_str(), rid.as_str(), now]
}

#[async_trait]
impl<E: Native + TusCreate + QuotaStore + SeedStore> MetaBackend for E {
    async fn migrate(&self) -> MetaResult<usize> {
        self.run_migrations().await
    }

    async fn ping(&self) -> MetaResult<()> {
        self.query(On::Read, "SELECT 1".into(), args![]).await?;
        Ok(())
    }

    fn writes_queued(&self) -> usize {
        self.queued_writes()
    }

    fn group_commits(&self) -> Option<(u64, u64, u64)> {
        self.commit_stats()
    }

    async fn create_tenant(&self, name: &TenantName, password_hash: &str) -> MetaResult<TenantId> {
        let (key, hash) = (name.key(), password_hash.to_owned());
        let name = name.to_string();
        self.insert_tenant(NewTenant { name, key, hash }).await
    }

    async fn tenant_by_name(&self, name: &str) -> MetaResult<Option<(Tenant, String)>> {
        let row = self.query_opt(On::Read, TENANT_BY_NAME.into(), args![name]);
        row.await?
            .map(|r| Ok((tenant_from_row(&r)?, r.text(2)?)))
            .transpose()
    }

    async fn tenant_by_id(&self, id: TenantId) -> MetaResult<Option<Tenant>> {
        let sql = "SELECT id, username FROM tenants WHERE id = $1";
        let row = self.query_opt(On::Read, sql.into(), args![id.0]).await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn list_tenants(&self) -> MetaResult<Vec<TenantEntry>> {
        let sql = "SELECT id, username, created_at, last_login_at FROM tenants ORDER BY username";
        let rows = self.query(On::Read, sql.into(), args![]).await?;
        let entry = |r: &super::Row| {
            Ok(TenantEntry {
                tenant: tenant_from_row(r)?,
                created_at: r.int(2)?,
                last_login_at: r.opt_int(3)?,
            })
        };
        rows.iter().map(entry).collect()
    }

    async fn remove_tenant(&self, name: &TenantName) -> MetaResult<bool> {
        self.delete_tenant(name.as_str().to_owned()).await
    }

    async fn set_password(&self, name: &TenantName, password_hash: &str) -> MetaResult<bool> {
        let args = args![name.as_str(), password_hash];
        Ok(self.execute(On::Write, SET_PASSWORD.into(), args).await? == 1)
    }

    async fn record_intent(
        &self,
        tenant: &Tenant,
        key: &BlobKey,
        now: Micros,
        lease_until: Micros,
    ) -> MetaResult<()> {
        let args = args![key.as_str(), tenant.id.0, now, lease_until];
        self.execute(On::Batch, RECORD_INTENT.into(), args).await?;
        Ok(())
    }

    async fn renew_intent(&self, key: &BlobKey, until: Micros) -> MetaResult<bool> {
        let sql = "UPDATE upload_intents SET lease_until = $2 WHERE blob_key = $1";
        let n = self.execute(On::Batch, sql.into(), args![key.as_str(), until]);
        Ok(n.await? == 1)
    }

    async fn drop_intent(&self, key: &BlobKey) -> MetaResult<bool> {
        let sql = "DELETE FROM upload_intents WHERE blob_key = $1";
        let n = self.execute(On::Batch, sql.into(), args![key.as_str()]);
        Ok(n.await? == 1)
    }

    async fn commit_file(
        &self,
        tenant: &Tenant,
        file: NewFile,
        now: Micros,
        claim: Claim,
    ) -> MetaResult<(FileRecord, Option<BlobKey>)> {
        let tenant = tenant.clone();
        self.commit(Commit {
            tenant,
            file,
            now,
            claim,
        })
        .await
    }

    async fn count_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
    ) -> MetaResult<u64> {
        let (sql, args) = count_sql(self.dialect(), viewer, filter, now);
        count_from_rows(&self.query(On::Read, sql.into(), args).await?)
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
        let read = Read::forward(offset, limit);
        let (sql, args) = page_sql(self.dialect(), viewer, filter, now, read);
        let rows = self.query(On::Read, sql.into(), args).await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn list_page(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        page: SeedPage,
    ) -> MetaResult<(u64, Vec<FileRecord>)> {
        let (viewer, filter) = (viewer.clone(), filter.clone());
        let listing = Listing {
            viewer,
            filter,
            now,
        };
        self.snapshot_page(listing, page).await
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
        let d = self.dialect();
        let (cond, mut args) = visible_where(d, viewer, filter, now);
        let sql = keyset_sql(d, &cond, args.len(), after.is_some());
        if let Some(c) = after {
            args.extend(args![&c.name, &c.tenant_username, &c.id]);
        }
        args.push(big(limit));
        let rows = self.query(On::Read, sql.into(), args).await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn owned_file(
        &self,
        owner: TenantId,
        id: &str,
        now: Micros,
    ) -> MetaResult<Option<FileRecord>> {
        let row = self.query_opt(On::Read, owned_sql().into(), args![id, owner.0, now]);
        row.await?.as_ref().map(file_from_row).transpose()
    }

    async fn delete_files(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        now: Micros,
    ) -> MetaResult<u64> {
        let args = resource_args(tenant, resource, resource_id, now);
        self.execute(On::Write, DELETE_FILES.into(), args).await
    }

    async fn blacklist_refresh(&self, jti: &str, expires_at: Micros) -> MetaResult<bool> {
        let n = self.execute(On::Write, BLACKLIST.into(), args![jti, expires_at]);
        Ok(n.await? == 1)
    }

    async fn reap_files(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<Reaped> {
        self.reap((deleted_before, expired_before)).await
    }

    async fn garbage(&self, limit: u64) -> MetaResult<Vec<BlobKey>> {
        let sql = "SELECT blob_key FROM garbage ORDER BY added_at LIMIT $1";
        blob_keys(&self.query(On::Write, sql.into(), args![big(limit)]).await?)
    }

    async fn forget_garbage(&self, key: &BlobKey) -> MetaResult<()> {
        let sql = "DELETE FROM garbage WHERE blob_key = $1";
        self.execute(On::Write, sql.into(), args![key.as_str()])
            .await?;
        Ok(())
    }

    async fn stale_intents(&self, now: Micros) -> MetaResult<Vec<BlobKey>> {
        let sql = "SELECT blob_key FROM upload_intents WHERE lease_until < $1
                   ORDER BY lease_until";
        blob_keys(&self.query(On::Write, sql.into(), args![now]).await?)
    }

    async fn take_stale_intents(&self, now: Micros, limit: u64) -> MetaResult<Vec<BlobKey>> {
        // SKIP LOCKED (PostgreSQL): an intent a commit holds (row-locked) is not stale for long.
        let sql = format!(
            "DELETE FROM upload_intents WHERE blob_key IN (
                 SELECT blob_key FROM upload_intents WHERE lease_until < $1
                 ORDER BY lease_until LIMIT $2{})
             RETURNING blob_key",
            self.dialect().skip_locked()
        );
        let rows = self.query(On::Write, sql.into(), args![now, big(limit)]);
        blob_keys(&rows.await?)
    }

    async fn key_known(&self, key: &BlobKey) -> MetaResult<bool> {
        let row = self.query_one(On::Write, KEY_KNOWN.into(), args![key.as_str()]);
        row.await?.flag(0)
    }

    async fn purge_blacklist(&self, now: Micros) -> MetaResult<u64> {
        let sql = "DELETE FROM refresh_blacklist WHERE expires_at < $1";
        self.execute(On::Write, sql.into(), args![now]).await
    }

    // The v2 file routes and signed-link revocation.

    async fn visible_file(
        &self,
        viewer: &Tenant,
        id: &FileId,
        now: Micros,
    ) -> MetaResult<Option<FileRecord>> {
        let sql = visible_sql(self.dialect());
        let row = self.query_opt(On::Read, sql.into(), args![id.as_str(), viewer.id.0, now]);
        row.await?.as_ref().map(file_from_row).transpose()
    }

    async fn delete_file(
        &self,
        tenant: &Tenant,
        id: &FileId,
        now: Micros,
    ) -> MetaResult<Option<BlobKey>> {
        let args = args![id.as_str(), tenant.id.0, now];
        let row = self.query_opt(On::Write, DELETE_FILE.into(), args).await?;
        Ok(row
            .map(|r| r.text(0))
            .transpose()?
            .and_then(|k| BlobKey::from_stored(&k)))
    }

    async fn delete_files_returning(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        now: Micros,
    ) -> MetaResult<Vec<BlobKey>> {
        let sql = format!("{DELETE_FILES} RETURNING blob_key");
        let args = resource_args(tenant, resource, resource_id, now);
        blob_keys(&self.query(On::Write, sql.into(), args).await?)
    }

    async fn revoke_urls(&self, tenant: TenantId, at: Micros) -> MetaResult<Option<Micros>> {
        let sql = format!(
            "UPDATE tenants SET urls_revoked_before = {}(urls_revoked_before, $2)
             WHERE id = $1 RETURNING urls_revoked_before",
            self.dialect().greatest()
        );
        let row = self.query_opt(On::Write, sql.into(), args![tenant.0, at]);
        row.await?.map(|r| r.int(0)).transpose()
    }

    async fn urls_revoked_before(&self, tenant: TenantId) -> MetaResult<Option<Micros>> {
        let sql = "SELECT urls_revoked_before FROM tenants WHERE id = $1";
        let row = self
            .query_opt(On::Read, sql.into(), args![tenant.0])
            .await?;
        row.map(|r| r.int(0)).transpose()
    }
}
