//! The one upload pipeline: a stream of body chunks → size limit → sha256 → blob writer, and the
//! global buffer budget that bounds the bytes all uploads hold in memory together.
//!
//! The transports (multipart `/api/upload`, later raw `PUT` and tus `PATCH`) differ only in how
//! they produce the chunk stream; they all end in [`stream_to_blob`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::blob::{BlobError, BlobWriter};

/// The budget counts in KiB: one semaphore permit per KiB keeps the permit count far below
/// tokio's limit even for budgets of many GiB.
const UNIT: u64 = 1024;

/// A byte-counting semaphore shared by every upload. The blob writers hold it for what they
/// buffer: the local store a chunk until it is written, the S3 store a whole part from before it
/// fills until S3 has it. When the budget is spent, uploads wait before pulling more, so TCP
/// flow control slows the clients instead of memory growing.
pub struct Budget {
    sem: Arc<Semaphore>,
    units: u64,
    in_use: AtomicU64,
    high_water: AtomicU64,
}

/// Bytes of the budget held; released on drop.
pub struct BudgetPermit {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    budget: Arc<Budget>,
}

impl Budget {
    pub fn new(bytes: u64) -> Arc<Budget> {
        let units = (bytes / UNIT).max(1);
        Arc::new(Budget {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
            in_use: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
        })
    }

    /// Total bytes of the budget.
    pub fn capacity(&self) -> u64 {
        self.units * UNIT
    }

    /// Bytes held for upload buffers right now.
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Most bytes ever held at once for upload buffers.
    pub fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Relaxed)
    }

    /// Wait until `bytes` (rounded up to whole KiB, at most the whole budget) are free.
    pub async fn acquire(self: &Arc<Self>, bytes: usize) -> BudgetPermit {
        let units = (bytes as u64).div_ceil(UNIT).clamp(1, self.units);
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = match self.sem.clone().acquire_many_owned(units as u32).await {
            Ok(p) => p,
            Err(_) => unreachable!("the budget semaphore is never closed"),
        };
        self.held(permit, units)
    }

    fn held(self: &Arc<Self>, permit: OwnedSemaphorePermit, units: u64) -> BudgetPermit {
        let held = units * UNIT;
        let now = self.in_use.fetch_add(held, Ordering::Relaxed) + held;
        self.high_water.fetch_max(now, Ordering::Relaxed);
        metrics::gauge!("mtfu_buffer_bytes_in_use").set(now as f64);
        metrics::gauge!("mtfu_buffer_bytes_high_water").set(self.high_water() as f64);
        BudgetPermit {
            _permit: permit,
            bytes: held,
            budget: self.clone(),
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        let left = self.budget.in_use.fetch_sub(self.bytes, Ordering::Relaxed) - self.bytes;
        metrics::gauge!("mtfu_buffer_bytes_in_use").set(left as f64);
    }
}

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
    let mut hasher = Sha256::new();
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
            hasher.update(&chunk);
            writer.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            writer.finish().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_never_hands_out_more_than_its_capacity() {
        let b = Budget::new(4 * 1024);
        let p1 = b.acquire(3000).await;
        assert_eq!(b.in_use(), 3 * 1024);
        // The remaining KiB is free, a second 2 KiB must wait.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), b.acquire(2048));
        assert!(waiting.await.is_err());
        drop(p1);
        let _p2 = b.acquire(2048).await;
        assert_eq!(b.in_use(), 2 * 1024);
        assert_eq!(b.high_water(), 3 * 1024);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_budget_takes_the_whole_budget() {
        let b = Budget::new(2048);
        let _p = b.acquire(1 << 20).await;
        assert_eq!(b.in_use(), b.capacity());
    }
}
