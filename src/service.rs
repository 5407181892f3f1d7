//! Tenant-scoped use-cases over the two stores: stage an upload, commit it, list, delete, read.
//! No HTTP types here; the HTTP layer turns requests into these calls and errors into responses.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::blob::{Blob, BlobError, ByteStream};
use crate::content_type::{self, SNIFF_BYTES};
use crate::domain::{
    BlobKey, FileId, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId,
    now_micros,
};
use crate::hooks::Hooks;
use crate::meta::page::SeedPage;
use crate::meta::{Claim, ListCursor, ListFilter, Meta, MetaError};
use crate::quota::Reservation;
use crate::upload::{Admit, Budget, Stored, UploadError, stream_to_blob};

/// The first quota reservation of an upload that declares no length.
const QUOTA_FIRST_STEP: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The upload's content type (named) is not in `limits.allowed_content_types`.
    #[error("content type {0} is not allowed")]
    ContentTypeNotAllowed(String),
    /// An absolute expiry that passed while the upload streamed: nothing was committed.
    #[error("the expiry passed before the upload was complete")]
    ExpiredBeforeCommit,
    /// The tenant was removed while its upload streamed: nothing was committed.
    #[error("the tenant no longer exists")]
    TenantGone,
}

/// When a file expires: an instant, or a time after its commit (`expires_in`, the default TTL),
/// resolved when the file is committed so that a slow upload is not born expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    At(Micros),
    /// Microseconds after the commit.
    After(Micros),
}

impl Expiry {
    /// The instant, for a file committed at `now`; an instant at or before `now` fails.
    pub fn resolve(expiry: Option<Expiry>, now: Micros) -> Result<Option<Micros>, ServiceError> {
        match expiry {
            None => Ok(None),
            Some(Expiry::After(d)) => Ok(Some(now.saturating_add(d))),
            Some(Expiry::At(t)) if t > now => Ok(Some(t)),
            Some(Expiry::At(_)) => Err(ServiceError::ExpiredBeforeCommit),
        }
    }
}

/// How [`Files::stage_typed`] decides an upload's content type.
#[derive(Debug, Clone, Copy)]
pub struct TypeRule<'a> {
    /// The type the client gave (multipart part's or request's `Content-Type`), if any.
    pub claimed: Option<&'a str>,
    /// The file's name, for the extension guess.
    pub file_name: &'a str,
    /// `limits.allowed_content_types` (empty: all).
    pub allowed: &'a [String],
}

/// The stores and the budget, shared by all requests.
#[derive(Clone)]
pub struct Files {
    pub meta: Meta,
    pub blob: Blob,
    pub budget: Arc<Budget>,
    /// The configured default quotas (tenants may override them).
    pub quota: crate::meta::quota::Defaults,
    /// How long an upload's intent is leased without bytes arriving (`gc.upload_lease_secs`):
    /// a live upload renews it as bytes flow; gc takes only intents whose lease ran out.
    pub lease: Duration,
    /// Pause points for tests ([`crate::hooks`]).
    pub hooks: Hooks,
}

/// Renews an upload's intent while its bytes flow (every third of a lease), and fails the
/// upload once the intent is gone (gc took it after a stall, or the tenant was removed).
struct LeaseKeeper<'a> {
    files: &'a Files,
    key: &'a BlobKey,
    next: Instant,
    quota: &'a mut Reservation,
}

#[async_trait::async_trait]
impl Admit for LeaseKeeper<'_> {
    async fn admit(&mut self, total: u64) -> Result<(), UploadError> {
        self.quota.admit(total).await?;
        if Instant::now() >= self.next {
            let until = now_micros().saturating_add(micros(self.files.lease));
            if !self.files.meta.renew_intent(self.key, until).await? {
                return Err(UploadError::Meta(MetaError::Gone(self.key.to_string())));
            }
            self.next = Instant::now() + self.files.lease / 3;
        }
        Ok(())
    }
}

fn micros(d: Duration) -> Micros {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A blob key whose intent is recorded but whose file is not committed. Dropped while still
/// armed (an error, a validation failure, or the request future cancelled by a client
/// disconnect, even while its commit runs), it gives the upload up in the background: it takes
/// the intent away and removes the blob only if it did take it, so a commit that got there
/// first keeps its blob (DESIGN.md §7). If the process dies first, `gc` finds the blob through
/// the intent.
struct Pending {
    key: Option<BlobKey>,
    files: Files,
    /// Whether a quota reservation may be held under the key (see [`Reservation::recorded`]):
    /// true until the upload's reservation says otherwise.
    reserved: bool,
}

impl Pending {
    /// The upload is committed (or already cleaned up): nothing to do on drop.
    fn disarm(&mut self) -> Option<BlobKey> {
        self.key.take()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let (files, reserved) = (self.files.clone(), self.reserved);
            let _ = crate::cleanup::spawn(async move { discard(&files, &key, reserved).await });
        }
    }
}

/// A blob written for a tenant but not yet a file: [`Files::commit`] makes it one, and dropping
/// it removes it.
pub struct Staged {
    pending: Pending,
    pub stored: Stored,
}

impl Staged {
    /// Remove the blob and the intent now.
    pub async fn discard(mut self) {
        if let Some(key) = self.pending.disarm() {
            discard(&self.pending.files, &key, self.pending.reserved).await;
        }
    }
}

/// Give an uncommitted upload up: its intent first, and its blob only if this took the intent
/// (a commit, gc or a tenant removal that took it first owns the blob).
async fn discard(files: &Files, key: &BlobKey, reserved: bool) {
    files.hooks.point("discard").await;
    let took = files.meta.drop_intent(key).await;
    if reserved {
        crate::quota::release(&files.meta, key).await;
    }
    match took {
        Ok(true) => {
            if let Err(e) = files.blob.delete(key).await {
                tracing::warn!(%key, error = %e, "could not remove an abandoned blob; gc's orphan sweep will");
                return;
            }
            tracing::debug!(%key, "abandoned upload removed");
        }
        Ok(false) => tracing::debug!(%key, "upload committed or collected before its clean-up"),
        Err(e) => tracing::warn!(%key, error = %e, "could not drop an upload intent; gc will"),
    }
}

/// Django Paginator's numbers for one page, as the seed service returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    pub count: u64,
    pub num_pages: u64,
    pub number: u64,
}

impl PageInfo {
    /// `Paginator.get_page(page)`: a non-integer page is page 1, one outside 1..=num_pages is the
    /// last page; an empty listing still has one page.
    pub fn new(count: u64, page_size: u64, page: Option<&str>) -> PageInfo {
        let want = SeedPage::parse(page, page_size);
        PageInfo {
            count,
            num_pages: want.num_pages(count),
            number: want.number(count),
        }
    }
}

impl Files {
    /// Record an intent, then stream `body` into a new blob for `tenant`. More than `limit` bytes
    /// fail the upload; `declared` is an upper bound the transport enforces (the request's
    /// `Content-Length`), if any.
    pub async fn stage<S, E>(
        &self,
        tenant: &Tenant,
        body: S,
        limit: u64,
        declared: Option<u64>,
    ) -> Result<Staged, ServiceError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let key = BlobKey::generate(tenant.id);
        let now = now_micros();
        self.meta
            .record_intent(tenant, &key, now, now.saturating_add(micros(self.lease)))
            .await?;
        let mut pending = Pending {
            key: Some(key.clone()),
            files: self.clone(),
            reserved: true,
        };
        metrics::gauge!("mtfu_uploads_in_flight").increment(1.0);
        let result = async {
            let max_size = declared.map_or(limit, |d| d.min(limit));
            // Reserve what the request declares (or a first step) before the first byte.
            let mut quota = Reservation::begin(
                &self.meta,
                tenant.id,
                &key,
                self.quota,
                0,
                declared.map_or(QUOTA_FIRST_STEP, |d| d.min(limit)),
            )
            .await?;
            pending.reserved = quota.recorded();
            let writer = self.blob.create(&key, max_size).await?;
            let mut keeper = LeaseKeeper {
                files: self,
                key: &key,
                next: Instant::now() + self.lease / 3,
                quota: &mut quota,
            };
            let stored = stream_to_blob(body, writer, limit, &mut keeper).await?;
            self.hooks.point("staged").await;
            Ok::<_, ServiceError>(stored)
        }
        .await;
        metrics::gauge!("mtfu_uploads_in_flight").decrement(1.0);
        match result {
            Ok(stored) => Ok(Staged { pending, stored }),
            Err(e) => {
                // The writer was aborted (or a finished blob is left, when the lease was lost
                // after the last byte); the reservation and the intent are left. They go in a
                // tracked task, awaited here: cancelling this request (a shutdown's grace
                // period ending) must not cut that short.
                pending.disarm();
                let (files, reserved) = (self.clone(), pending.reserved);
                let task = crate::cleanup::spawn(async move {
                    discard(&files, &key, reserved).await;
                });
                if let Some(task) = task {
                    let _ = task.await;
                }
                Err(e)
            }
        }
    }

    /// [`stage`](Files::stage), deciding the content type first ([`crate::content_type`]):
    /// when the client's type is missing or an allow-list is set, the first
    /// [`SNIFF_BYTES`] of `body` are read (and then written like the rest), and an upload whose
    /// type is not allowed fails before anything is recorded or written. Returns the staged
    /// blob and the type to store.
    pub async fn stage_typed<S, E>(
        &self,
        tenant: &Tenant,
        mut body: S,
        limit: u64,
        declared: Option<u64>,
        rule: TypeRule<'_>,
    ) -> Result<(Staged, String), ServiceError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut head: Vec<u8> = Vec::new();
        if content_type::needs_head(rule.claimed, rule.allowed) {
            while head.len() < SNIFF_BYTES {
                let Some(chunk) = body.next().await else {
                    break;
                };
                let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
                let take = chunk.len().min(SNIFF_BYTES - head.len());
                head.extend_from_slice(&chunk[..take]);
                chunks.push(chunk);
            }
        }
        let decision = content_type::decide(rule.claimed, &head, rule.file_name);
        content_type::check(rule.allowed, &decision)
            .map_err(ServiceError::ContentTypeNotAllowed)?;
        let replay = futures_util::stream::iter(chunks.into_iter().map(Ok::<Bytes, E>));
        let staged = self
            .stage(tenant, replay.chain(body), limit, declared)
            .await?;
        Ok((staged, decision.stored))
    }

    /// Make a staged blob a visible file, atomically replacing the tenant's file of the same
    /// resource, resource id and name.
    #[allow(clippy::too_many_arguments)] // reason: the fields of one file, named at the call
    pub async fn commit(
        &self,
        tenant: &Tenant,
        staged: Staged,
        resource: Resource,
        resource_id: ResourceId,
        name: crate::domain::FileName,
        content_type: String,
        is_public: bool,
        expire_at: Option<Expiry>,
    ) -> Result<FileRecord, ServiceError> {
        let (record, _) = self
            .commit_replacing(
                tenant,
                staged,
                resource,
                resource_id,
                name,
                content_type,
                is_public,
                expire_at,
            )
            .await?;
        Ok(record)
    }

    /// [`commit`](Files::commit), also telling whether a file was replaced.
    #[allow(clippy::too_many_arguments)] // reason: the fields of one file, named at the call
    pub async fn commit_replacing(
        &self,
        tenant: &Tenant,
        mut staged: Staged,
        resource: Resource,
        resource_id: ResourceId,
        name: crate::domain::FileName,
        content_type: String,
        is_public: bool,
        expire_at: Option<Expiry>,
    ) -> Result<(FileRecord, bool), ServiceError> {
        let Some(key) = staged.pending.key.clone() else {
            return Err(MetaError::Internal("staged upload committed twice".into()).into());
        };
        let now = now_micros();
        // An instant that passed while the body streamed: `staged` goes, and its blob with it.
        let expire_at = Expiry::resolve(expire_at, now)?;
        let new = NewFile {
            resource,
            resource_id,
            name,
            blob_key: key,
            size: staged.stored.size,
            content_type,
            sha256: staged.stored.sha256.clone(),
            is_public,
            expire_at,
        };
        // The commit consumes the intent or fails. If this request is dropped while it runs
        // (the client hung up), `staged` is dropped armed and its clean-up takes the intent
        // only if the commit did not: whichever comes first wins, in the store.
        let committed = self.meta.commit_file(tenant, new, now, Claim::Intent).await;
        self.hooks.point("committed").await;
        let (record, replaced) = match committed {
            Ok(done) => {
                staged.pending.disarm();
                done
            }
            Err(MetaError::Gone(_))
                if matches!(self.meta.tenant_by_id(tenant.id).await, Ok(None)) =>
            {
                staged.pending.disarm();
                return Err(ServiceError::TenantGone);
            }
            Err(e) => {
                // Whether it committed or not, `staged`'s clean-up decides through the intent.
                staged.discard().await;
                return Err(e.into());
            }
        };
        // The file counts now; its reservation is no longer needed.
        if staged.pending.reserved {
            crate::quota::release(&self.meta, &record.blob_key).await;
        }
        let was_replaced = replaced.is_some();
        if let Some(old) = replaced {
            // Best effort: the key is in the garbage table until this succeeds.
            if self.blob.delete(&old).await.is_ok() {
                let _ = self.meta.forget_garbage(&old).await;
            }
        }
        Ok((record, was_replaced))
    }

    /// One page of what `viewer` sees through `filter`.
    pub async fn page(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        page: Option<&str>,
        page_size: u64,
    ) -> Result<(PageInfo, Vec<FileRecord>), ServiceError> {
        let want = SeedPage::parse(page, page_size);
        let (count, files) = self
            .meta
            .list_page(viewer, filter, now_micros(), want)
            .await?;
        Ok((PageInfo::new(count, page_size, page), files))
    }

    /// Soft-delete the tenant's files of one resource; how many. With `remove_blobs_now`
    /// (download links that bypass mtfu, S3 presigned URLs, are out) their blobs are removed
    /// right after the commit, so those links die at once; otherwise, and when that fails, gc
    /// removes them after its grace period.
    pub async fn delete_resource(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        remove_blobs_now: bool,
    ) -> Result<u64, ServiceError> {
        let keys = self
            .meta
            .delete_files_returning(tenant, resource, resource_id, now_micros())
            .await?;
        if remove_blobs_now {
            for key in &keys {
                self.remove_deleted_blob(key).await;
            }
        }
        Ok(keys.len() as u64)
    }

    /// Soft-delete one of the tenant's own live files: false when it has no such file. Blobs
    /// as in [`delete_resource`](Files::delete_resource).
    pub async fn delete_file(
        &self,
        tenant: &Tenant,
        id: &FileId,
        remove_blob_now: bool,
    ) -> Result<bool, ServiceError> {
        let Some(key) = self.meta.delete_file(tenant, id, now_micros()).await? else {
            return Ok(false);
        };
        if remove_blob_now {
            self.remove_deleted_blob(&key).await;
        }
        Ok(true)
    }

    /// Best effort: gc reaps the row later and finds the blob gone, which is fine.
    async fn remove_deleted_blob(&self, key: &BlobKey) {
        if key.imported_object().is_some() {
            // An object imported in place may be shared by another file row: only gc, when it
            // reaps the last row naming it, removes it (DESIGN.md §7).
            return;
        }
        if let Err(e) = self.blob.delete(key).await {
            tracing::warn!(%key, error = %e, "could not remove a deleted file's blob now; gc will");
        }
    }

    /// A live file `viewer` may see by id (own or public), `None` otherwise.
    pub async fn visible(
        &self,
        viewer: &Tenant,
        id: &FileId,
    ) -> Result<Option<FileRecord>, ServiceError> {
        Ok(self.meta.visible_file(viewer, id, now_micros()).await?)
    }

    /// Up to `limit` files `viewer` sees through `filter`, after `after`, and the cursor of the
    /// next page when there is one (one more row is read to know).
    pub async fn list_after(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        after: Option<&ListCursor>,
        limit: u64,
    ) -> Result<(Vec<FileRecord>, Option<ListCursor>), ServiceError> {
        let mut files = self
            .meta
            .list_files_after(viewer, filter, now_micros(), after, limit.saturating_add(1))
            .await?;
        let next = if files.len() as u64 > limit {
            files.truncate(limit as usize);
            files.last().map(ListCursor::of)
        } else {
            None
        };
        Ok((files, next))
    }

    /// Revoke every signed link of `tenant` issued until now; the revocation point in force.
    pub async fn revoke_urls(&self, tenant: TenantId) -> Result<Option<Micros>, ServiceError> {
        Ok(self.meta.revoke_urls(tenant, now_micros()).await?)
    }

    /// Whether a link of `owner` issued at `issued` (microseconds) has been revoked.
    pub async fn link_revoked(
        &self,
        owner: TenantId,
        issued: Micros,
    ) -> Result<bool, ServiceError> {
        let point = self.meta.urls_revoked_before(owner).await?;
        Ok(point.is_some_and(|p| issued < p))
    }

    /// A live file of `owner` and its bytes (whole or `range`). `None` if there is no such file.
    pub async fn open_owned(
        &self,
        owner: TenantId,
        file_id: &str,
    ) -> Result<Option<FileRecord>, ServiceError> {
        Ok(self.meta.owned_file(owner, file_id, now_micros()).await?)
    }

    pub async fn read(
        &self,
        file: &FileRecord,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, ServiceError> {
        Ok(self.blob.read(&file.blob_key, range).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::PageInfo;

    #[test]
    fn pagination_follows_djangos_get_page() {
        assert_eq!(PageInfo::new(0, 10, None).num_pages, 1);
        assert_eq!(PageInfo::new(0, 10, Some("5")).number, 1);
        assert_eq!(PageInfo::new(11, 5, Some("x")).number, 1);
        assert_eq!(PageInfo::new(11, 5, Some("9")).number, 3);
        assert_eq!(PageInfo::new(11, 5, Some("0")).number, 3);
        assert_eq!(PageInfo::new(11, 5, Some("2")).number, 2);
        assert_eq!(PageInfo::new(11, 5, Some("2.0")).number, 1);
    }
}
