//! Tenant-scoped use-cases over the two stores: stage an upload, commit it, list, delete, read.
//! No HTTP types here; the HTTP layer turns requests into these calls and errors into responses.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use crate::blob::{Blob, BlobError, ByteStream};
use crate::domain::{
    BlobKey, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId, now_micros,
};
use crate::meta::{ListFilter, Meta, MetaError};
use crate::upload::{Budget, Stored, UploadError, stream_to_blob};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Upload(#[from] UploadError),
}

/// The stores and the budget, shared by all requests.
#[derive(Clone)]
pub struct Files {
    pub meta: Meta,
    pub blob: Blob,
    pub budget: Arc<Budget>,
}

/// A blob key whose intent is recorded but whose file is not committed. Dropped while still
/// armed (an error, a validation failure, or the request future cancelled by a client
/// disconnect), it removes the blob and the intent in the background; if the process dies
/// first, `gc` finds them through the intent.
struct Pending {
    key: Option<BlobKey>,
    files: Files,
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
            let files = self.files.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { discard(&files, &key).await });
            }
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
            discard(&self.pending.files, &key).await;
        }
    }
}

async fn discard(files: &Files, key: &BlobKey) {
    if let Err(e) = files.blob.delete(key).await {
        tracing::warn!(%key, error = %e, "could not remove an abandoned blob; gc will");
        return;
    }
    if let Err(e) = files.meta.drop_intent(key).await {
        tracing::warn!(%key, error = %e, "could not drop an upload intent; gc will");
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
        let num_pages = count.div_ceil(page_size).max(1);
        let number = match page.unwrap_or("1").trim().parse::<i64>() {
            Err(_) => 1,
            Ok(n) if n < 1 || n as u64 > num_pages => num_pages,
            Ok(n) => n as u64,
        };
        PageInfo {
            count,
            num_pages,
            number,
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
        self.meta.record_intent(tenant, &key, now_micros()).await?;
        let mut pending = Pending {
            key: Some(key.clone()),
            files: self.clone(),
        };
        metrics::gauge!("mtfu_uploads_in_flight").increment(1.0);
        let result = async {
            let max_size = declared.map_or(limit, |d| d.min(limit));
            let writer = self.blob.create(&key, max_size).await?;
            Ok::<_, ServiceError>(stream_to_blob(body, writer, limit).await?)
        }
        .await;
        metrics::gauge!("mtfu_uploads_in_flight").decrement(1.0);
        match result {
            Ok(stored) => Ok(Staged { pending, stored }),
            Err(e) => {
                // The writer was aborted; only the intent is left.
                pending.disarm();
                if let Err(m) = self.meta.drop_intent(&key).await {
                    tracing::warn!(%key, error = %m, "could not drop an upload intent; gc will");
                }
                Err(e)
            }
        }
    }

    /// Make a staged blob a visible file, atomically replacing the tenant's file of the same
    /// resource, resource id and name.
    #[allow(clippy::too_many_arguments)] // reason: the fields of one file, named at the call
    pub async fn commit(
        &self,
        tenant: &Tenant,
        mut staged: Staged,
        resource: Resource,
        resource_id: ResourceId,
        name: crate::domain::FileName,
        content_type: String,
        is_public: bool,
        expire_at: Option<Micros>,
    ) -> Result<FileRecord, ServiceError> {
        let Some(key) = staged.pending.key.clone() else {
            return Err(MetaError::Internal("staged upload committed twice".into()).into());
        };
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
        let committed = self.meta.commit_file(tenant, new, now_micros()).await;
        // Committed or not, the blob stays: a commit whose answer was lost may have happened,
        // and then the blob is a live file's. If it did not happen, the intent is still there
        // and gc removes the blob after its grace period.
        staged.pending.disarm();
        let (record, replaced) = committed?;
        if let Some(old) = replaced {
            // Best effort: the key is in the garbage table until this succeeds.
            if self.blob.delete(&old).await.is_ok() {
                let _ = self.meta.forget_garbage(&old).await;
            }
        }
        Ok(record)
    }

    /// One page of what `viewer` sees through `filter`.
    pub async fn page(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        page: Option<&str>,
        page_size: u64,
    ) -> Result<(PageInfo, Vec<FileRecord>), ServiceError> {
        let now = now_micros();
        let count = self.meta.count_files(viewer, filter, now).await?;
        let info = PageInfo::new(count, page_size, page);
        let files = if count == 0 {
            Vec::new()
        } else {
            let offset = (info.number - 1) * page_size;
            self.meta
                .list_files(viewer, filter, now, offset, page_size)
                .await?
        };
        Ok((info, files))
    }

    pub async fn delete_resource(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
    ) -> Result<u64, ServiceError> {
        Ok(self
            .meta
            .delete_files(tenant, resource, resource_id, now_micros())
            .await?)
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
