//! What `mtfu import-seed` keeps in the metadata store (migration 0009): which row of the
//! original service became which tenant or file of mtfu's. A second import skips what a first
//! one did (also files deleted in mtfu since: an import never resurrects one), and a token the
//! original issued finds its tenant through its `user_id`.
//!
//! A separate trait from [`MetaBackend`](super::MetaBackend) (of which it is a supertrait), with
//! its SQL in `sqlite/seed.rs` and `postgres/seed.rs`.

use async_trait::async_trait;

use super::MetaResult;
use crate::domain::{Micros, NewFile, Tenant, TenantId};

#[async_trait]
pub trait SeedStore {
    /// The tenant the original's user `orig_id` was imported as.
    async fn seed_tenant(&self, orig_id: i64) -> MetaResult<Option<TenantId>>;
    /// Record that the original's user `orig_id` is `tenant` (a no-op when it is known).
    async fn record_seed_tenant(
        &self,
        orig_id: i64,
        tenant: TenantId,
        now: Micros,
    ) -> MetaResult<()>;
    /// Replace an imported tenant's Django hash by mtfu's own, if it still is `old` (a password
    /// changed meanwhile stays). Sessions go on: the session epoch does not change.
    async fn upgrade_password(&self, tenant: TenantId, old: &str, new: &str) -> MetaResult<bool>;
    /// Whether the original's file `orig_id` was imported (and perhaps deleted since).
    async fn seed_file_known(&self, orig_id: &str) -> MetaResult<bool>;
    /// In one transaction: insert the file row (created at `now`) and its mapping from
    /// `orig_id`, and drop the upload intent of its blob key if there is one (a copied
    /// object). `None`: `orig_id` was imported already, nothing changed.
    /// [`MetaError::Conflict`](super::MetaError::Conflict): the tenant has a live file of that
    /// resource, resource id and name.
    async fn import_file(
        &self,
        orig_id: &str,
        tenant: &Tenant,
        file: &NewFile,
        now: Micros,
    ) -> MetaResult<Option<String>>;
}
