//! What gc's orphan sweep and `mtfu fsck` see of the bucket: every object mtfu writes under its
//! key prefix — finished blobs (`t/{tenant}/{uuid}`), resumable uploads' tail objects
//! (`t/{tenant}/{uuid}.tail/{uuid}`), multipart uploads in progress, and quarantined orphans
//! (`quarantine/t/{tenant}/{uuid}`) — and nothing outside it (objects another service, or the
//! service mtfu replaced, keeps in the same bucket are never listed, so never touched).

use std::time::SystemTime;

use super::{Shared, classify};
use crate::blob::{BlobError, BlobResult, Held, Piece};
use crate::domain::BlobKey;

/// Where orphans go, under the key prefix.
const QUARANTINE: &str = "quarantine/";

impl Shared {
    /// Every object under `prefix`: (key, last modified, size).
    async fn objects_under(&self, prefix: &str) -> BlobResult<Vec<(String, SystemTime, u64)>> {
        let mut out = Vec::new();
        let mut token = None::<String>;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", e))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    let at = o
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    let size = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                    out.push((k.to_owned(), at, size));
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if page.is_truncated() != Some(true) || token.is_none() {
                return Ok(out);
            }
        }
    }

    pub(super) async fn inventory(&self) -> BlobResult<Vec<Held>> {
        let blobs = format!("{}t/", self.prefix);
        let mut held = Vec::new();
        for (k, at, size) in self.objects_under(&blobs).await? {
            let (piece, key) = match k.split_once(".tail/") {
                Some((object, _)) => (Piece::Tail(k.clone()), self.blob_key(object)),
                None => (Piece::Blob, self.blob_key(&k)),
            };
            if let Some(key) = key {
                held.push(Held {
                    key,
                    piece,
                    at,
                    size: Some(size),
                });
            }
        }
        let quarantine = format!("{}{QUARANTINE}", self.prefix);
        for (k, at, size) in self.objects_under(&quarantine).await? {
            if let Some(key) = k
                .strip_prefix(&quarantine)
                .and_then(BlobKey::from_generated)
            {
                held.push(Held {
                    key,
                    piece: Piece::Quarantined(k),
                    at,
                    size: Some(size),
                });
            }
        }
        for (k, _, at) in self.multipart_uploads(&blobs).await? {
            if let Some(key) = self.blob_key(&k) {
                held.push(Held {
                    key,
                    piece: Piece::Partial,
                    at: at.unwrap_or(SystemTime::UNIX_EPOCH),
                    size: None,
                });
            }
        }
        Ok(held)
    }

    /// Copy the object aside, then delete it; multipart uploads of the key older than
    /// `partial_before` are aborted (they cannot be moved).
    pub(super) async fn quarantine(
        &self,
        key: &BlobKey,
        partial_before: SystemTime,
    ) -> BlobResult<()> {
        let object = self.object_key(key);
        let dest = format!("{}{QUARANTINE}{}", self.prefix, key.as_str());
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{object}", self.bucket))
            .key(&dest)
            .send()
            .await;
        match copied.map_err(|e| classify("CopyObject", e)) {
            Ok(_) => self.delete_quietly(&object).await?,
            Err(BlobError::NotFound) => {}
            Err(e) => return Err(e),
        }
        for (k, id, at) in self.multipart_uploads(&object).await? {
            if k == object && at.is_some_and(|t| t < partial_before) {
                self.abort_once(&k, &id).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn delete_piece(&self, piece: &Piece) -> BlobResult<()> {
        let ours = |k: &str| {
            let quarantined = k.starts_with(&format!("{}{QUARANTINE}t/", self.prefix));
            let tail = k.starts_with(&format!("{}t/", self.prefix)) && k.contains(".tail/");
            quarantined || tail
        };
        match piece {
            Piece::Tail(k) | Piece::Quarantined(k) if ours(k) => self.delete_quietly(k).await,
            _ => Ok(()),
        }
    }
}
