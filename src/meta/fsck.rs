//! What `mtfu fsck` reads from the metadata store, beyond what serving needs: every file row's
//! blob (paged by blob key, so memory does not grow with the store), the quota reservations
//! that no upload holds, and what gc would reap. Read only.
//!
//! A separate trait from [`MetaBackend`](super::MetaBackend) (of which it is a supertrait), with
//! written once for both stores in `sql/fsck.rs`.

use async_trait::async_trait;

use super::MetaResult;
use crate::domain::{BlobKey, Micros};

/// A file row's blob, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBlob {
    pub id: String,
    pub key: BlobKey,
    pub size: u64,
    pub sha256: String,
    /// Not deleted (a deleted row keeps its blob until gc reaps it).
    pub live: bool,
}

#[async_trait]
pub trait FsckStore: Send + Sync {
    /// Up to `limit` file rows (live or deleted) in blob key order, after `after`.
    async fn file_blobs_after(&self, after: Option<&str>, limit: u64) -> MetaResult<Vec<FileBlob>>;
    /// Blob keys of quota reservations older than `before` that no intent or resumable upload
    /// holds (left by a crash; gc releases them).
    async fn orphaned_reservations(&self, before: Micros) -> MetaResult<Vec<String>>;
    /// Blob keys in the garbage table.
    async fn garbage_keys(&self) -> MetaResult<Vec<String>>;
    /// What [`reap_files`](super::MetaBackend::reap_files) would do now, changing nothing (gc's
    /// dry run): the rows it would reap, and the blob keys it would send to garbage.
    async fn reapable(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<(super::Reaped, Vec<BlobKey>)>;
}
