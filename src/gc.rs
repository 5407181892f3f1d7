//! The garbage collector: removes the blobs nothing points at any more.
//!
//! One sweep, in order:
//! 1. files deleted or expired more than `grace` ago: their blobs move to the garbage table and
//!    their rows go;
//! 2. the garbage table: each blob is deleted, then its row;
//! 3. upload intents whose lease ran out (a crashed upload, or one stalled for longer than
//!    `gc.upload_lease_secs`): each intent is deleted in the statement that finds it, and only
//!    then its blob — a live upload renews its lease while bytes flow, and its commit fails if
//!    gc took the intent first (DESIGN.md §7);
//! 4. expired resumable (tus) uploads: multipart upload aborted, tail objects and temporary
//!    file removed, their row dropped (they expire `tus.expire_after_secs` after their last
//!    chunk, so no grace period is added);
//! 5. blobs older than `grace` that no file, intent, garbage row or tus upload names (orphans)
//!    are *quarantined*, not deleted: moved aside, where they stay restorable for
//!    `gc.quarantine_secs` (an orphan may be the file of a database restored from an older
//!    backup); quarantined blobs older than that are deleted; S3 tail objects that no upload in
//!    progress names are deleted;
//! 6. expired entries of the refresh-token blacklist.
//!
//! The grace period lets a download that has begun finish.

use std::time::{Duration, SystemTime};

use crate::blob::{Blob, Piece};
use crate::domain::{BlobKey, now_micros};
use crate::meta::{Meta, MetaError};

/// Garbage rows handled per round trip.
const GARBAGE_BATCH: u64 = 500;
/// How long gc holds an expired tus upload while removing it (a lease, like a `PATCH`'s).
const TUS_CLAIM: Duration = Duration::from_secs(300);
/// `gc.quarantine_secs`'s default: a week to notice a restore went wrong.
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(7 * 86_400);

/// What a sweep may touch.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `gc.grace_secs`: deleted/expired files and orphans younger than this stay.
    pub grace: Duration,
    /// `gc.quarantine_secs`: quarantined orphans younger than this stay.
    pub quarantine: Duration,
    pub dry_run: bool,
}

/// What one sweep did (or, with `dry_run`, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub files_reaped: u64,
    pub garbage: Vec<BlobKey>,
    pub stale_uploads: Vec<BlobKey>,
    /// Blob keys of the expired resumable uploads removed.
    pub tus_expired: Vec<BlobKey>,
    /// Orphans quarantined (moved aside).
    pub orphans: Vec<BlobKey>,
    /// Quarantined orphans deleted after `gc.quarantine_secs`.
    pub quarantine_deleted: u64,
    /// S3 tail objects of no upload in progress, deleted.
    pub tails_deleted: u64,
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

impl Settings {
    /// From `[gc]`, with `grace_secs` overridden by `grace_secs` (`mtfu gc --grace-secs`).
    pub fn from_config(
        gc: &crate::config::GcConfig,
        grace_secs: Option<u64>,
        dry_run: bool,
    ) -> Self {
        Settings {
            grace: Duration::from_secs(grace_secs.unwrap_or(gc.grace_secs)),
            quarantine: Duration::from_secs(gc.quarantine_secs),
            dry_run,
        }
    }
}

/// Run one sweep with the default quarantine. With `dry_run` nothing is changed and the report
/// lists what would go (files past their grace are counted in `files_reaped` but their blobs are
/// not listed).
pub async fn sweep(
    meta: &Meta,
    blob: &Blob,
    grace: Duration,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    let settings = Settings {
        grace,
        quarantine: DEFAULT_QUARANTINE,
        dry_run,
    };
    sweep_with(meta, blob, &settings).await
}

/// Run one sweep.
pub async fn sweep_with(meta: &Meta, blob: &Blob, set: &Settings) -> Result<GcReport, GcError> {
    let (grace, dry_run) = (set.grace, set.dry_run);
    let mut report = GcReport::default();
    let cutoff = now_micros() - grace.as_micros() as i64;

    // A dry run counts exactly what the real run would do: the rows it would reap, and their
    // blobs as garbage.
    let mut would_be_garbage = Vec::new();
    if dry_run {
        let (reaped, keys) = meta.reapable(cutoff, cutoff).await?;
        report.files_reaped = reaped.deleted + reaped.expired;
        would_be_garbage = keys;
    } else {
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
    for key in would_be_garbage {
        if !report.garbage.contains(&key) {
            report.garbage.push(key);
        }
    }

    if dry_run {
        report.stale_uploads = meta.stale_intents(now_micros()).await?;
    } else {
        loop {
            let taken = meta.take_stale_intents(now_micros(), GARBAGE_BATCH).await?;
            let n = taken.len() as u64;
            for key in taken {
                // The intent is gone: no commit can make this blob a file any more.
                if let Err(e) = blob.delete(&key).await {
                    tracing::warn!(%key, error = %e, "gc: could not delete an abandoned upload; the orphan sweep will");
                    report.failures += 1;
                    continue;
                }
                report.stale_uploads.push(key);
            }
            if n < GARBAGE_BATCH {
                break;
            }
        }
    }

    let (expired, failures) = crate::tus::reap_expired(meta, blob, TUS_CLAIM, dry_run).await?;
    report.tus_expired = expired;
    report.failures += failures;

    let now = SystemTime::now();
    let (before, quarantine_before) = (now - grace, now - set.quarantine);
    let held = blob.inventory().await?;
    let mut swept: Vec<BlobKey> = Vec::new();
    for h in held {
        match &h.piece {
            Piece::Blob | Piece::Partial => {
                if h.at >= before || swept.contains(&h.key) {
                    continue;
                }
                // A tus upload's blob (its temporary file, its multipart upload) lives as long
                // as the upload, which may be longer than the grace period.
                if meta.key_known(&h.key).await? || meta.tus_key_known(&h.key).await? {
                    continue;
                }
                swept.push(h.key.clone());
                if !dry_run && let Err(e) = blob.quarantine(&h.key, quarantine_before).await {
                    tracing::warn!(key = %h.key, error = %e, "gc: could not quarantine an orphan");
                    report.failures += 1;
                    continue;
                }
                report.orphans.push(h.key);
            }
            Piece::Tail(_) => {
                if h.at >= before || meta.tus_key_known(&h.key).await? {
                    continue;
                }
                if !dry_run && let Err(e) = blob.delete_piece(&h.piece).await {
                    tracing::warn!(key = %h.key, error = %e, "gc: could not delete a tail object");
                    report.failures += 1;
                    continue;
                }
                report.tails_deleted += 1;
            }
            Piece::Quarantined(_) => {
                if h.at >= quarantine_before {
                    continue;
                }
                if !dry_run && let Err(e) = blob.delete_piece(&h.piece).await {
                    tracing::warn!(key = %h.key, error = %e, "gc: could not delete a quarantined blob");
                    report.failures += 1;
                    continue;
                }
                report.quarantine_deleted += 1;
            }
        }
    }

    if !dry_run {
        meta.purge_blacklist(now_micros()).await?;
        // After the intents: a crashed upload's reservation goes with its intent.
        report.reservations_released = meta.release_orphaned(cutoff).await?;
    }
    Ok(report)
}
