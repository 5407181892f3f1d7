//! Resumable (tus) upload state in the metadata store: one row per upload in progress.
//!
//! The row is written before the upload's first byte and names everything it holds in the blob
//! store (its blob key, and the store's own progress in `store_state`), so a crash at any instant
//! leaves only what gc finds through it. Its offset is the truth: bytes the blob store holds past
//! it were never acknowledged and are dropped by the next `PATCH`.
//!
//! Writers take a *lease*: a token and a deadline on the row, set by a conditional update, so two
//! `PATCH`es of one upload (on one node or two) never write at once; the loser is told the upload
//! is busy. Every progress record is conditional on the token, so a writer whose lease was lost
//! cannot overwrite its successor's progress. A lease left by a dead node lapses at its deadline.
//!
//! A separate trait from [`MetaBackend`](super::MetaBackend) (of which it is a supertrait), with
//! its SQL written once in `sql/tus.rs` (creation: each store its own way, in `sqlite/tus.rs` and
//! `postgres/tus.rs`).

use async_trait::async_trait;

use super::MetaResult;
use crate::domain::{BlobKey, Micros, TenantId};

/// One resumable upload, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusUpload {
    /// Opaque, unguessable id (the last segment of its URL).
    pub id: String,
    pub tenant_id: TenantId,
    /// The blob the upload becomes, unique per upload like any blob key.
    pub blob_key: BlobKey,
    /// `Upload-Length`.
    pub length: u64,
    /// Bytes durable and acknowledged.
    pub offset: u64,
    /// `Upload-Metadata` as the client sent it (echoed by `HEAD`).
    pub metadata: String,
    /// The file the upload becomes, parsed from the metadata at creation.
    pub resource: String,
    pub resource_id: String,
    pub name: String,
    pub content_type: String,
    pub is_public: bool,
    /// The file's expiry: an instant, or (`file_expires_in`) a time after the commit.
    pub file_expire_at: Option<Micros>,
    pub file_expires_in: Option<Micros>,
    /// The SHA-256 midstate of the first `offset` bytes.
    pub hash_state: String,
    /// The blob store's resumable state ([`crate::blob::ResumeState`]).
    pub store_state: String,
    pub created_at: Micros,
    /// After this, the upload cannot be continued and gc removes it. Moves on with each record
    /// of progress.
    pub expires_at: Micros,
}

/// The answer to a lease request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// Leased: the row as it was when the lease was taken.
    Upload(Box<TusUpload>),
    /// No such upload (of this tenant).
    NotFound,
    /// Past its expiry (gc has not removed it yet).
    Expired,
    /// Another writer's lease runs.
    Busy,
}

/// Progress to record under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusProgress {
    pub offset: u64,
    pub hash_state: String,
    pub store_state: String,
    pub now: Micros,
    /// The lease's new deadline; `None` gives the lease up with this record (the request is
    /// done with the upload).
    pub lease_until: Option<Micros>,
    pub expires_at: Micros,
}

#[async_trait]
pub trait TusStore: Send + Sync {
    /// Record a new upload, leased to `token` until `lease_until` (its creator writes it next),
    /// unless its tenant has `max_unfinished` unexpired uploads already: then false, and
    /// nothing is recorded (the count and the insert are atomic).
    async fn tus_create(
        &self,
        up: &TusUpload,
        token: &str,
        lease_until: Micros,
        max_unfinished: u64,
    ) -> MetaResult<bool>;
    /// The upload `id` of `tenant`, whatever its state; another tenant's is `None`.
    async fn tus_get(&self, tenant: TenantId, id: &str) -> MetaResult<Option<TusUpload>>;
    /// Lease `id` of `tenant` to `token` until `until`, if it has not expired at `now` and no
    /// other lease on it runs past `now`.
    async fn tus_lease(
        &self,
        tenant: TenantId,
        id: &str,
        token: &str,
        now: Micros,
        until: Micros,
    ) -> MetaResult<Leased>;
    /// Record progress under the lease `token` (which it extends, or gives up). False: the lease
    /// was lost.
    async fn tus_record(&self, id: &str, token: &str, p: &TusProgress) -> MetaResult<bool>;
    /// Extend the lease `token` to `until`. False: the lease was lost.
    async fn tus_renew(&self, id: &str, token: &str, until: Micros) -> MetaResult<bool>;
    /// Give the lease `token` up.
    async fn tus_release(&self, id: &str, token: &str) -> MetaResult<()>;
    /// Remove the upload leased to `token`. False: the lease was lost.
    async fn tus_delete(&self, id: &str, token: &str) -> MetaResult<bool>;
    /// Up to `limit` uploads of any tenant expired before `now` and not leased past it: gc's.
    async fn tus_expired(&self, now: Micros, limit: u64) -> MetaResult<Vec<TusUpload>>;
    /// Lease an expired upload of any tenant to `token` (gc). False if it is not expired, is
    /// leased, or is gone.
    async fn tus_claim_expired(
        &self,
        id: &str,
        token: &str,
        now: Micros,
        until: Micros,
    ) -> MetaResult<bool>;
    /// Whether an upload in progress names `key` (gc must not take its blob for an orphan).
    async fn tus_key_known(&self, key: &BlobKey) -> MetaResult<bool>;
}
