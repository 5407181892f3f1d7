//! [`TusStore`] on SQLite: the `tus_uploads` table (migration 0005).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::Sqlite;
use crate::domain::{BlobKey, Micros, TenantId};
use crate::meta::tus::{Leased, TusProgress, TusStore, TusUpload};
use crate::meta::{MetaError, MetaResult};

const COLUMNS: &str = "id, tenant_id, blob_key, upload_length, upload_offset, metadata, resource, \
     resource_id, name, content_type, is_public, file_expire_at, hash_state, store_state, \
     created_at, expires_at, file_expires_in";

fn upload_from_row(r: &Row<'_>) -> rusqlite::Result<TusUpload> {
    let key: String = r.get(2)?;
    let blob_key = BlobKey::from_stored(&key).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("malformed blob key {key:?}").into(),
        )
    })?;
    Ok(TusUpload {
        id: r.get(0)?,
        tenant_id: TenantId(r.get(1)?),
        blob_key,
        length: r.get::<_, i64>(3)? as u64,
        offset: r.get::<_, i64>(4)? as u64,
        metadata: r.get(5)?,
        resource: r.get(6)?,
        resource_id: r.get(7)?,
        name: r.get(8)?,
        content_type: r.get(9)?,
        is_public: r.get(10)?,
        file_expire_at: r.get(11)?,
        hash_state: r.get(12)?,
        store_state: r.get(13)?,
        created_at: r.get(14)?,
        expires_at: r.get(15)?,
        file_expires_in: r.get(16)?,
    })
}

fn as_i64(n: u64) -> MetaResult<i64> {
    i64::try_from(n).map_err(|_| MetaError::Internal(format!("{n} does not fit the store")))
}

#[async_trait]
impl TusStore for Sqlite {
    async fn tus_create(
        &self,
        up: &TusUpload,
        token: &str,
        lease_until: Micros,
        max_unfinished: u64,
    ) -> MetaResult<bool> {
        let (up, token) = (up.clone(), token.to_owned());
        let (length, offset) = (as_i64(up.length)?, as_i64(up.offset)?);
        let max = i64::try_from(max_unfinished).unwrap_or(i64::MAX);
        self.with(move |c| {
            // One statement: the count and the insert cannot be split by another writer.
            let n = c.execute(
                &format!(
                    "INSERT INTO tus_uploads ({COLUMNS}, lease_token, lease_until, updated_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                            ?16, ?19, ?17, ?18, ?15
                     WHERE (SELECT count(*) FROM tus_uploads
                             WHERE tenant_id = ?2 AND expires_at > ?15) < ?20"
                ),
                params![
                    up.id,
                    up.tenant_id.0,
                    up.blob_key.as_str(),
                    length,
                    offset,
                    up.metadata,
                    up.resource,
                    up.resource_id,
                    up.name,
                    up.content_type,
                    up.is_public,
                    up.file_expire_at,
                    up.hash_state,
                    up.store_state,
                    up.created_at,
                    up.expires_at,
                    token,
                    lease_until,
                    up.file_expires_in,
                    max
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn tus_get(&self, tenant: TenantId, id: &str) -> MetaResult<Option<TusUpload>> {
        let id = id.to_owned();
        self.with(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM tus_uploads WHERE id = ?1 AND tenant_id = ?2"),
                params![id, tenant.0],
                upload_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn tus_lease(
        &self,
        tenant: TenantId,
        id: &str,
        token: &str,
        now: Micros,
        until: Micros,
    ) -> MetaResult<Leased> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            let leased = c
                .query_row(
                    &format!(
                        "UPDATE tus_uploads SET lease_token = ?3, lease_until = ?5
                         WHERE id = ?1 AND tenant_id = ?2 AND expires_at > ?4
                           AND (lease_until IS NULL OR lease_until <= ?4)
                         RETURNING {COLUMNS}"
                    ),
                    params![id, tenant.0, token, now, until],
                    upload_from_row,
                )
                .optional()?;
            if let Some(up) = leased {
                return Ok(Leased::Upload(Box::new(up)));
            }
            let expires: Option<Micros> = c
                .query_row(
                    "SELECT expires_at FROM tus_uploads WHERE id = ?1 AND tenant_id = ?2",
                    params![id, tenant.0],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(match expires {
                None => Leased::NotFound,
                Some(e) if e <= now => Leased::Expired,
                Some(_) => Leased::Busy,
            })
        })
        .await
    }

    async fn tus_record(&self, id: &str, token: &str, p: &TusProgress) -> MetaResult<bool> {
        let (id, token, p) = (id.to_owned(), token.to_owned(), p.clone());
        let offset = as_i64(p.offset)?;
        self.with(move |c| {
            Ok(c.execute(
                "UPDATE tus_uploads SET upload_offset = ?3, hash_state = ?4, store_state = ?5,
                        updated_at = ?6, lease_until = ?7, expires_at = ?8,
                        lease_token = CASE WHEN ?7 IS NULL THEN NULL ELSE lease_token END
                 WHERE id = ?1 AND lease_token = ?2",
                params![
                    id,
                    token,
                    offset,
                    p.hash_state,
                    p.store_state,
                    p.now,
                    p.lease_until,
                    p.expires_at
                ],
            )? == 1)
        })
        .await
    }

    async fn tus_renew(&self, id: &str, token: &str, until: Micros) -> MetaResult<bool> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "UPDATE tus_uploads SET lease_until = ?3 WHERE id = ?1 AND lease_token = ?2",
                params![id, token, until],
            )? == 1)
        })
        .await
    }

    async fn tus_release(&self, id: &str, token: &str) -> MetaResult<()> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            c.execute(
                "UPDATE tus_uploads SET lease_token = NULL, lease_until = NULL
                 WHERE id = ?1 AND lease_token = ?2",
                params![id, token],
            )?;
            Ok(())
        })
        .await
    }

    async fn tus_delete(&self, id: &str, token: &str) -> MetaResult<bool> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM tus_uploads WHERE id = ?1 AND lease_token = ?2",
                params![id, token],
            )? == 1)
        })
        .await
    }

    async fn tus_expired(&self, now: Micros, limit: u64) -> MetaResult<Vec<TusUpload>> {
        let limit = as_i64(limit)?;
        self.with(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tus_uploads
                 WHERE expires_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                 ORDER BY expires_at LIMIT ?2"
            ))?;
            let rows = st.query_map(params![now, limit], upload_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn tus_claim_expired(
        &self,
        id: &str,
        token: &str,
        now: Micros,
        until: Micros,
    ) -> MetaResult<bool> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "UPDATE tus_uploads SET lease_token = ?2, lease_until = ?4
                 WHERE id = ?1 AND expires_at <= ?3
                   AND (lease_until IS NULL OR lease_until <= ?3)",
                params![id, token, now, until],
            )? == 1)
        })
        .await
    }

    async fn tus_key_known(&self, key: &BlobKey) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM tus_uploads WHERE blob_key = ?1)",
                [key],
                |r| r.get(0),
            )?)
        })
        .await
    }
}
