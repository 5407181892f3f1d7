//! [`FsckStore`] on PostgreSQL.

use async_trait::async_trait;

use super::Postgres;
use crate::domain::{BlobKey, Micros};
use crate::meta::fsck::{FileBlob, FsckStore};
use crate::meta::{MetaResult, Reaped};

#[async_trait]
impl FsckStore for Postgres {
    async fn file_blobs_after(&self, after: Option<&str>, limit: u64) -> MetaResult<Vec<FileBlob>> {
        let after = after.unwrap_or("").to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT id, blob_key, size, sha256, deleted_at IS NULL FROM files
                         WHERE blob_key > $1 ORDER BY blob_key LIMIT $2",
                        &[&after, &limit],
                    )
                    .await?;
                let mut out = Vec::new();
                for r in rows {
                    let key: String = r.try_get(1)?;
                    if let Some(key) = BlobKey::from_stored(&key) {
                        out.push(FileBlob {
                            id: r.try_get(0)?,
                            key,
                            size: u64::try_from(r.try_get::<_, i64>(2)?).unwrap_or(0),
                            sha256: r.try_get(3)?,
                            live: r.try_get(4)?,
                        });
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn orphaned_reservations(&self, before: Micros) -> MetaResult<Vec<String>> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT blob_key FROM quota_reservations WHERE created_at < $1
                           AND blob_key NOT IN (SELECT blob_key FROM upload_intents)
                           AND blob_key NOT IN (SELECT blob_key FROM tus_uploads)",
                        &[&before],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<Vec<String>, _>>()?)
            })
        })
        .await
    }

    async fn garbage_keys(&self) -> MetaResult<Vec<String>> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = c.query("SELECT blob_key FROM garbage", &[]).await?;
                Ok(rows
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<Vec<String>, _>>()?)
            })
        })
        .await
    }

    async fn reapable(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<(Reaped, Vec<BlobKey>)> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT blob_key, deleted_at IS NOT NULL FROM files
                         WHERE (deleted_at IS NOT NULL AND deleted_at < $1)
                            OR (deleted_at IS NULL AND expire_at IS NOT NULL AND expire_at < $2)",
                        &[&deleted_before, &expired_before],
                    )
                    .await?;
                let (mut reaped, mut keys) = (Reaped::default(), Vec::new());
                for r in rows {
                    if r.try_get::<_, bool>(1)? {
                        reaped.deleted += 1;
                    } else {
                        reaped.expired += 1;
                    }
                    keys.extend(BlobKey::from_stored(&r.try_get::<_, String>(0)?));
                }
                Ok((reaped, keys))
            })
        })
        .await
    }
}
