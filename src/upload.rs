//! The one upload pipeline: a stream of body chunks → size limit → sha256 → blob writer, paying
//! for its buffers from the global [`Budget`] (its home is [`crate::budget`]).
//!
//! The transports (multipart `/api/upload`, later raw `PUT` and tus `PATCH`) differ only in how
//! they produce the chunk stream; they all end in [`stream_to_blob`].

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::blob::{BlobError, BlobWriter, SharedHasher};

pub use crate::budget::{Budget, BudgetPermit};

/// Why a body did not make it into the blob store.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// More than `limit` bytes arrived; reading stopped there.
    #[error("file larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's body failed: disconnect, malformed framing, or too slow.
    #[error("request body: {0}")]
    Body(String),
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] BlobError),
    /// The tenant's quota has no room for the bytes that arrived.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The metadata store failed while the upload was being admitted.
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
}

/// Decides, as bytes arrive, whether they may be stored: the tenant's quota reservation grows
/// ahead of them (see [`crate::meta::quota`]).
#[async_trait::async_trait]
pub trait Admit: Send {
    /// `total` bytes of the upload have arrived and are about to be stored.
    async fn admit(&mut self, total: u64) -> Result<(), UploadError>;
}

/// Admits everything (no quota).
pub struct AdmitAll;

#[async_trait::async_trait]
impl Admit for AdmitAll {
    async fn admit(&mut self, _total: u64) -> Result<(), UploadError> {
        Ok(())
    }
}

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: String,
}

/// Pipe `body` into `writer`, enforcing `limit` on the bytes counted so far (not on any
/// declared length), hashing as it goes. The writer holds budget for what it buffers (a chunk
/// until it is on disk, or whole S3 parts until they are uploaded), so `write` waiting for budget
/// stops this loop from pulling more from the client. `admit` sees the running total before each
/// chunk is stored (quota). On success the blob is finished (durable); on any error it is
/// aborted.
pub async fn stream_to_blob<S, E>(
    mut body: S,
    mut writer: Box<dyn BlobWriter>,
    limit: u64,
    admit: &mut dyn Admit,
) -> Result<Stored, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    // The local store hashes on its writing thread, next to the copy into the file, so that one
    // large upload uses a second core; otherwise the hash is taken here, chunk by chunk.
    let along = SharedHasher::default();
    let mut hasher = (!writer.hash_along(&along)).then(Sha256::new);
    let mut size: u64 = 0;
    let outcome: Result<(), UploadError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(UploadError::TooLarge { limit });
            }
            admit.admit(size).await?;
            metrics::counter!("mtfu_upload_bytes_total").increment(chunk.len() as u64);
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            writer.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            writer.finish().await?;
            let hasher = hasher.unwrap_or_else(|| {
                std::mem::take(&mut *along.lock().unwrap_or_else(|e| e.into_inner()))
            });
            Ok(Stored {
                size,
                sha256: hex::encode(hasher.finalize()),
            })
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "aborting a blob write failed; gc will retry");
            }
            Err(e)
        }
    }
}
