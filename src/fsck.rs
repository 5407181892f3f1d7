//! `mtfu fsck`: a read-only consistency check of the metadata store against the blob store.
//!
//! It holds when: every file row's blob is there with the recorded size (and, with
//! `verify_sha256`, the recorded digest); every blob the store holds belongs to a file, an
//! upload in progress, the garbage table or the quarantine (objects imported in place from the
//! original service, outside mtfu's prefix, are looked up one by one); every upload intent's lease runs
//! (an intent whose lease ran out is an upload gc has yet to remove); every quota reservation
//! belongs to an upload in progress. Nothing is changed.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::blob::{Blob, Piece};
use crate::domain::{BlobKey, now_micros};
use crate::gc::GcError;
use crate::meta::Meta;

/// File rows read per round trip.
const PAGE: u64 = 1000;

/// What the check found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FsckReport {
    /// File rows checked (live and deleted-not-yet-reaped).
    pub files: u64,
    /// Their recorded bytes.
    pub bytes: u64,
    /// Blobs whose SHA-256 was read and compared.
    pub digests_verified: u64,
    /// Pieces the blob store holds (blobs, unfinished writes, tails, quarantined).
    pub blobs_held: u64,
    /// Blobs of uploads in progress.
    pub uploads_in_progress: u64,
    /// Blobs waiting in the garbage table.
    pub garbage: u64,
    /// Quarantined orphans (restorable until gc deletes them).
    pub quarantined: u64,
    /// One line each.
    pub problems: Vec<String>,
}

/// Run the check.
pub async fn check(meta: &Meta, blob: &Blob, verify_sha256: bool) -> Result<FsckReport, GcError> {
    let mut report = FsckReport::default();
    let held = blob.inventory().await?;
    report.blobs_held = held.len() as u64;
    let mut blobs: HashMap<&BlobKey, Option<u64>> = HashMap::new();
    for h in &held {
        if h.piece == Piece::Blob {
            blobs.insert(&h.key, h.size);
        }
    }
    let mut file_keys: HashSet<BlobKey> = HashSet::new();
    let mut missing = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = meta.file_blobs_after(after.as_deref(), PAGE).await?;
        let n = page.len() as u64;
        for f in page {
            after = Some(f.key.as_str().to_owned());
            report.files += 1;
            report.bytes += f.size;
            let state = if f.live { "file" } else { "deleted file" };
            // An imported object (outside mtfu's prefix, so not in the inventory) is asked for.
            let imported: Option<Option<u64>>;
            let found = if f.key.imported_object().is_some() {
                imported = match blob.size_of(&f.key).await {
                    Ok(n) => Some(Some(n)),
                    Err(crate::blob::BlobError::NotFound) => None,
                    Err(e) => return Err(e.into()),
                };
                imported.as_ref()
            } else {
                blobs.get(&f.key)
            };
            match found {
                // A deleted file's blob may be gone before gc reaps its row: on S3 with presigned
                // links a delete removes the object at once, so that the links stop working.
                None if !f.live => {}
                // Perhaps written after the inventory was taken: looked for again below.
                None => missing.push((state, f.id.clone(), f.key.clone())),
                Some(Some(size)) if *size != f.size => report.problems.push(format!(
                    "{state} {}: blob {} has {size} bytes, {} recorded",
                    f.id, f.key, f.size
                )),
                // An empty digest: imported with `--no-digest`, never read.
                Some(_) if verify_sha256 && !f.sha256.is_empty() => match digest(blob, &f.key).await
                {
                    Ok((size, d)) if size == f.size && d == f.sha256 => {
                        report.digests_verified += 1
                    }
                    Ok((size, d)) => report.problems.push(format!(
                        "{state} {}: blob {} reads {size} bytes with SHA-256 {d}, {} bytes with \
                         {} recorded",
                        f.id, f.key, f.size, f.sha256
                    )),
                    Err(e) => report
                        .problems
                        .push(format!("{state} {}: blob {} unreadable: {e}", f.id, f.key)),
                },
                Some(_) => {}
            }
            file_keys.insert(f.key);
        }
        if n < PAGE {
            break;
        }
    }
    if !missing.is_empty() {
        // Files committed while fsck ran have their blob in a fresh listing.
        let now_held: HashSet<BlobKey> = blob
            .inventory()
            .await?
            .into_iter()
            .filter(|h| h.piece == Piece::Blob)
            .map(|h| h.key)
            .collect();
        for (state, id, key) in missing {
            if !now_held.contains(&key) {
                report
                    .problems
                    .push(format!("{state} {id}: blob {key} is missing"));
            }
        }
    }
    let garbage: HashSet<String> = meta.garbage_keys().await?.into_iter().collect();
    report.garbage = garbage.len() as u64;
    let now = now_micros();
    let stale: HashSet<BlobKey> = meta.stale_intents(now).await?.into_iter().collect();
    for key in &stale {
        report.problems.push(format!(
            "upload intent {key}: its lease ran out (an abandoned upload; `mtfu gc` removes it)"
        ));
    }
    let mut seen: HashSet<(&BlobKey, bool)> = HashSet::new();
    for h in &held {
        match &h.piece {
            Piece::Quarantined(_) => report.quarantined += 1,
            Piece::Blob | Piece::Partial => {
                let finished = h.piece == Piece::Blob;
                if !seen.insert((&h.key, finished))
                    || file_keys.contains(&h.key)
                    || garbage.contains(h.key.as_str())
                    || stale.contains(&h.key)
                {
                    continue;
                }
                if meta.tus_key_known(&h.key).await? || meta.key_known(&h.key).await? {
                    report.uploads_in_progress += 1;
                } else {
                    let what = if finished { "blob" } else { "unfinished write" };
                    report.problems.push(format!(
                        "{what} {}: no file, upload or garbage row names it (an orphan; gc \
                         quarantines it)",
                        h.key
                    ));
                }
            }
            Piece::Tail(name) => {
                if !meta.tus_key_known(&h.key).await? {
                    report.problems.push(format!(
                        "tail object {name}: no upload in progress names it (gc deletes it)"
                    ));
                }
            }
        }
    }
    // Reservations a crash left: older than a minute, so an upload starting now is not one.
    let before = now - 60_000_000;
    for key in meta.orphaned_reservations(before).await? {
        report.problems.push(format!(
            "quota reservation {key}: no upload holds it (`mtfu gc` releases it)"
        ));
    }
    Ok(report)
}

/// The blob's size and SHA-256 (hex), streamed.
async fn digest(blob: &Blob, key: &BlobKey) -> Result<(u64, String), String> {
    let mut s = blob.read(key, None).await.map_err(|e| e.to_string())?;
    let (mut h, mut n) = (Sha256::new(), 0u64);
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((n, hex::encode(h.finalize())))
}
