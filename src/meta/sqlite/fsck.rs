//! [`FsckStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::params;

use super::Sqlite;
use crate::domain::{BlobKey, Micros};
use crate::meta::fsck::{FileBlob, FsckStore};
use crate::meta::{MetaResult, Reaped};

#[async_trait]
impl FsckStore for Sqlite {
    async fn file_blobs_after(&self, after: Option<&str>, limit: u64) -> MetaResult<Vec<FileBlob>> {
        let after = after.unwrap_or("").to_owned();
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT id, blob_key, size, sha256, deleted_at IS NULL FROM files
                 WHERE blob_key > ?1 ORDER BY blob_key LIMIT ?2",
            )?;
            let rows = st.query_map(params![after, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, key, size, sha256, live) = row?;
                if let Some(key) = BlobKey::from_stored(&key) {
                    out.push(FileBlob {
                        id,
                        key,
                        size: u64::try_from(size).unwrap_or(0),
                        sha256,
                        live,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn orphaned_reservations(&self, before: Micros) -> MetaResult<Vec<String>> {
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT blob_key FROM quota_reservations WHERE created_at < ?1
                   AND blob_key NOT IN (SELECT blob_key FROM upload_intents)
                   AND blob_key NOT IN (SELECT blob_key FROM tus_uploads)",
            )?;
            let rows = st.query_map([before], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn garbage_keys(&self) -> MetaResult<Vec<String>> {
        self.read(move |c| {
            let mut st = c.prepare("SELECT blob_key FROM garbage")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn reapable(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<(Reaped, Vec<BlobKey>)> {
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT blob_key, deleted_at IS NOT NULL FROM files
                 WHERE (deleted_at IS NOT NULL AND deleted_at < ?1)
                    OR (deleted_at IS NULL AND expire_at IS NOT NULL AND expire_at < ?2)",
            )?;
            let rows = st.query_map(params![deleted_before, expired_before], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
            })?;
            let (mut reaped, mut keys) = (Reaped::default(), Vec::new());
            for row in rows {
                let (key, deleted) = row?;
                if deleted {
                    reaped.deleted += 1;
                } else {
                    reaped.expired += 1;
                }
                keys.extend(BlobKey::from_stored(&key));
            }
            Ok((reaped, keys))
        })
        .await
    }
}
