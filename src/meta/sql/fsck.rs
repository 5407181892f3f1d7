//! [`FsckStore`] on either store: read-only statements over [`Exec`].

use async_trait::async_trait;

use super::{Exec, On, args, big};
use crate::domain::{BlobKey, Micros};
use crate::meta::fsck::{FileBlob, FsckStore};
use crate::meta::{MetaResult, Reaped};

const FILE_BLOBS_AFTER: &str = "SELECT id, blob_key, size, sha256, deleted_at IS NULL FROM files
     WHERE blob_key > $1 ORDER BY blob_key LIMIT $2";

const ORPHANED_RESERVATIONS: &str = "SELECT blob_key FROM quota_reservations WHERE created_at < $1
       AND blob_key NOT IN (SELECT blob_key FROM upload_intents)
       AND blob_key NOT IN (SELECT blob_key FROM tus_uploads)";

const REAPABLE: &str = "SELECT blob_key, deleted_at IS NOT NULL FROM files
     WHERE (deleted_at IS NOT NULL AND deleted_at < $1)
        OR (deleted_at IS NULL AND expire_at IS NOT NULL AND expire_at < $2)";

#[async_trait]
impl<E: Exec> FsckStore for E {
    async fn file_blobs_after(&self, after: Option<&str>, limit: u64) -> MetaResult<Vec<FileBlob>> {
        let args = args![after.unwrap_or(""), big(limit)];
        let rows = self.query(On::Read, FILE_BLOBS_AFTER.into(), args).await?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(key) = BlobKey::from_stored(&r.text(1)?) {
                out.push(FileBlob {
                    id: r.text(0)?,
                    key,
                    size: u64::try_from(r.int(2)?).unwrap_or(0),
                    sha256: r.text(3)?,
                    live: r.flag(4)?,
                });
            }
        }
        Ok(out)
    }

    async fn orphaned_reservations(&self, before: Micros) -> MetaResult<Vec<String>> {
        let sql = ORPHANED_RESERVATIONS.into();
        let rows = self.query(On::Read, sql, args![before]).await?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    async fn garbage_keys(&self) -> MetaResult<Vec<String>> {
        let sql = "SELECT blob_key FROM garbage".into();
        let rows = self.query(On::Read, sql, args![]).await?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    async fn reapable(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<(Reaped, Vec<BlobKey>)> {
        let args = args![deleted_before, expired_before];
        let rows = self.query(On::Read, REAPABLE.into(), args).await?;
        let (mut reaped, mut keys) = (Reaped::default(), Vec::new());
        for r in rows {
            if r.flag(1)? {
                reaped.deleted += 1;
            } else {
                reaped.expired += 1;
            }
            keys.extend(BlobKey::from_stored(&r.text(0)?));
        }
        Ok((reaped, keys))
    }
}
