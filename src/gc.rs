//! The garbage collector: removes the blobs nothing points at any more.
//!
//! One sweep, in order:
//! 1. files deleted or expired more than `grace` ago: their blobs move to the garbage table and
//!    their rows go;
//! 2. the garbage table: each blob is deleted, then its row;
//! 3. upload intents older than `grace` (a crashed or stuck upload): blob deleted, intent dropped;
//! 4. expired resumable (tus) uploads: multipart upload aborted, tail objects and temporary
//!    file removed, their row dropped (they expire `tus.expire_after_secs` after their last
//!    chunk, so no grace period is added);
//! 5. blobs older than `grace` that no file, intent, garbage row or tus upload names (orphans);
//! 6. expired entries of the refresh-token blacklist.
//!
//! The grace period lets a download that has begun finish, and keeps uploads in progress safe.

use std::time::{Duration, SystemTime};

use crate::blob::Blob;
use crate::domain::{BlobKey, now_micros};
use crate::meta::{Meta, MetaError};

/// Garbage rows handled per round trip.
const GARBAGE_BATCH: u64 = 500;
/// How long gc holds an expired tus upload while removing it (a lease, like a `PATCH`'s).
const TUS_CLAIM: Duration = Duration::from_secs(300);

/// What one sweep did (or, with `dry_run`, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub files_reaped: u64,
    pub garbage: Vec<BlobKey>,
    pub stale_uploads: Vec<BlobKey>,
    /// Blob keys of the expired resumable uploads removed.
    pub tus_expired: Vec<BlobKey>,
    pub orphans: Vec<BlobKey>,
    pub failures: u64,
    /// Quota reservations left by crashed uploads, dropped.
    pub reservations_released: u64,
}

impl GcReport {
    pub fn blobs_removed(&self) -> usize {
        self.garbage.len() + self.stale_uploads.len() + self.tus_expired.len() + self.orphans.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] crate::blob::BlobError),
}

/// Run one sweep. With `dry_run` nothing is changed and the report lists what would go (files
/// past their grace are counted in `files_reaped` but their blobs are not listed).
pub async fn sweep(
    meta: &Meta,
    blob: &Blob,
    grace: Duration,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    let mut report = GcReport::default();
    let cutoff = now_micros() - grace.as_micros() as i64;

    if !dry_run {
        let reaped = meta.reap_files(cutoff, cutoff).await?;
        report.files_reaped = reaped.deleted + reaped.expired;
    }

    let mut seen_failures = std::collections::HashSet::new();
    loop {
        let batch = meta.garbage(GARBAGE_BATCH).await?;
        let batch: Vec<_> = batch
            .into_iter()
            .filter(|k| !seen_failures.contains(k) && !report.garbage.contains(k))
            .collect();
        if batch.is_empty() {
            break;
        }
        for key in batch {
            if dry_run {
                report.garbage.push(key);
                continue;
            }
            match blob.delete(&key).await {
                Ok(()) => {
                    meta.forget_garbage(&key).await?;
                    report.garbage.push(key);
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, "gc: could not delete a blob");
                    report.failures += 1;
                    seen_failures.insert(key);
                }
            }
        }
        if dry_run {
            break;
        }
    }

    for key in meta.stale_intents(cutoff).await? {
        if !dry_run {
            if let Err(e) = blob.delete(&key).await {
                tracing::warn!(%key, error = %e, "gc: could not delete an abandoned upload");
                report.failures += 1;
                continue;
            }
            meta.drop_intent(&key).await?;
        }
        report.stale_uploads.push(key);
    }

    let (expired, failures) = crate::tus::reap_expired(meta, blob, TUS_CLAIM, dry_run).await?;
    report.tus_expired = expired;
    report.failures += failures;

    let before = SystemTime::now() - grace;
    for key in blob.list_older_than(before).await? {
        // A tus upload's blob (its temporary file, its multipart upload) lives as long as the
        // upload, which may be longer than the grace period.
        if meta.key_known(&key).await? || meta.tus_key_known(&key).await? {
            continue;
        }
        if !dry_run && let Err(e) = blob.delete(&key).await {
            tracing::warn!(%key, error = %e, "gc: could not delete an orphan");
            report.failures += 1;
            continue;
        }
        report.orphans.push(key);
    }

    if !dry_run {
        meta.purge_blacklist(now_micros()).await?;
        // After the intents: a crashed upload's reservation goes with its intent.
        report.reservations_released = meta.release_orphaned(cutoff).await?;
    }
    Ok(report)
}
