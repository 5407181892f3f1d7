//! The metadata store: tenants, file rows, upload intents, garbage and the refresh-token
//! blacklist.
//!
//! [`MetaBackend`] is the object-safe trait an implementation provides; [`Meta`] is the cloneable
//! handle the rest of the server holds. Every method that reads or changes files takes the tenant
//! it acts for: visibility (own files plus public ones) is a rule inside the query, never a bypass.

pub mod postgres;
pub mod sqlite;

use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Config, MetadataBackend};
use crate::domain::{
    BlobKey, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId, TenantName,
};

/// What a metadata store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The store cannot be reached or did not answer in time; retrying later may work.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// A unique value (tenant name) is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// Anything else: a bug, a corrupted row, a failed migration.
    #[error("metadata store error: {0}")]
    Internal(String),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// Optional filters of a listing; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub tenant_username: Option<String>,
}

/// What `gc` found and removed from the metadata store in one sweep of file rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub deleted: u64,
    pub expired: u64,
}

#[async_trait]
pub trait MetaBackend: Send + Sync {
    /// Apply the migrations not yet applied, in order; returns how many ran.
    async fn migrate(&self) -> MetaResult<usize>;
    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> MetaResult<()>;

    async fn create_tenant(&self, name: &TenantName, password_hash: &str) -> MetaResult<TenantId>;
    /// The tenant and its password hash.
    async fn tenant_by_name(&self, name: &str) -> MetaResult<Option<(Tenant, String)>>;
    async fn tenant_by_id(&self, id: TenantId) -> MetaResult<Option<Tenant>>;
    async fn list_tenants(&self) -> MetaResult<Vec<Tenant>>;
    /// Remove a tenant; the blobs of its files go to the garbage table. False if there was none.
    async fn remove_tenant(&self, name: &TenantName) -> MetaResult<bool>;
    async fn set_password(&self, name: &TenantName, password_hash: &str) -> MetaResult<bool>;

    /// Record that `key` is about to be written for `tenant` (before its first byte).
    async fn record_intent(&self, tenant: &Tenant, key: &BlobKey, now: Micros) -> MetaResult<()>;
    /// Forget an intent whose blob was removed (abort).
    async fn drop_intent(&self, key: &BlobKey) -> MetaResult<()>;
    /// In one transaction: replace the live file with the same (tenant, resource, resource_id,
    /// name), moving the replaced blob to garbage, insert the new row and drop its intent.
    /// Returns the new record and the replaced blob key, if any.
    async fn commit_file(
        &self,
        tenant: &Tenant,
        file: NewFile,
        now: Micros,
    ) -> MetaResult<(FileRecord, Option<BlobKey>)>;

    /// How many files `viewer` sees through `filter` (own plus public, live, not expired).
    async fn count_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
    ) -> MetaResult<u64>;
    /// One page of those files, ordered by name (then owner, then id).
    async fn list_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        offset: u64,
        limit: u64,
    ) -> MetaResult<Vec<FileRecord>>;
    /// A live file owned by `owner` (signed download links carry the owner, verified by HMAC).
    async fn owned_file(
        &self,
        owner: TenantId,
        id: &str,
        now: Micros,
    ) -> MetaResult<Option<FileRecord>>;
    /// Soft-delete the tenant's own files of one resource; returns how many.
    async fn delete_files(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        now: Micros,
    ) -> MetaResult<u64>;

    /// Record a used refresh token. False when it was already there (reuse).
    async fn blacklist_refresh(&self, jti: &str, expires_at: Micros) -> MetaResult<bool>;

    /// Move the blobs of files deleted before `deleted_before` or expired before
    /// `expired_before` to garbage and remove their rows.
    async fn reap_files(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<Reaped>;
    async fn garbage(&self, limit: u64) -> MetaResult<Vec<BlobKey>>;
    async fn forget_garbage(&self, key: &BlobKey) -> MetaResult<()>;
    async fn stale_intents(&self, started_before: Micros) -> MetaResult<Vec<BlobKey>>;
    /// Whether any file row, intent or garbage row names `key`.
    async fn key_known(&self, key: &BlobKey) -> MetaResult<bool>;
    async fn purge_blacklist(&self, now: Micros) -> MetaResult<u64>;
}

/// Cloneable handle to the configured metadata store.
#[derive(Clone)]
pub struct Meta(Arc<dyn MetaBackend>);

impl Meta {
    pub fn new(backend: Arc<dyn MetaBackend>) -> Self {
        Self(backend)
    }

    /// Open the configured store (creating it if needed). Does not migrate.
    pub async fn open(cfg: &Config) -> MetaResult<Meta> {
        match cfg.metadata.backend {
            MetadataBackend::Sqlite => {
                let db = sqlite::Sqlite::open(&cfg.sqlite_path()).await?;
                Ok(Meta(Arc::new(db)))
            }
            MetadataBackend::Postgres => {
                let db = postgres::Postgres::open(&cfg.metadata.postgres)?;
                Ok(Meta(Arc::new(db)))
            }
        }
    }

    /// A short name for logs and `mtfu serve`'s banner.
    pub fn describe(cfg: &Config) -> String {
        match cfg.metadata.backend {
            MetadataBackend::Sqlite => format!("sqlite ({})", cfg.sqlite_path().display()),
            MetadataBackend::Postgres => {
                format!("postgres ({})", postgres::describe(&cfg.metadata.postgres))
            }
        }
    }
}

impl Deref for Meta {
    type Target = dyn MetaBackend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
