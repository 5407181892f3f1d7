//! [`TusStore`] on PostgreSQL: the `tus_uploads` table (migration 0005). Leases are conditional
//! `UPDATE`s, atomic under PostgreSQL's row locks, so nodes sharing the database never write one
//! upload at once.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{Postgres, as_i64};
use crate::domain::{BlobKey, Micros, TenantId};
use crate::meta::tus::{Leased, TusProgress, TusStore, TusUpload};
use crate::meta::{MetaError, MetaResult};

const COLUMNS: &str = "id, tenant_id, blob_key, upload_length, upload_offset, metadata, resource, \
     resource_id, name, content_type, is_public, file_expire_at, hash_state, store_state, \
     created_at, expires_at, file_expires_in";

fn size(r: &Row, i: usize) -> MetaResult<u64> {
    let n: i64 = r.try_get(i)?;
    u64::try_from(n).map_err(|_| MetaError::Internal(format!("negative size {n}")))
}

fn upload_from_row(r: &Row) -> MetaResult<TusUpload> {
    let key: String = r.try_get(2)?;
    let blob_key = BlobKey::from_stored(&key)
        .ok_or_else(|| MetaError::Internal(format!("malformed blob key {key:?}")))?;
    Ok(TusUpload {
        id: r.try_get(0)?,
        tenant_id: TenantId(r.try_get(1)?),
        blob_key,
        length: size(r, 3)?,
        offset: size(r, 4)?,
        metadata: r.try_get(5)?,
        resource: r.try_get(6)?,
        resource_id: r.try_get(7)?,
        name: r.try_get(8)?,
        content_type: r.try_get(9)?,
        is_public: r.try_get(10)?,
        file_expire_at: r.try_get(11)?,
        hash_state: r.try_get(12)?,
        store_state: r.try_get(13)?,
        created_at: r.try_get(14)?,
        expires_at: r.try_get(15)?,
        file_expires_in: r.try_get(16)?,
    })
}

/// Advisory lock class of a tenant's tus creations ("tusc" in ASCII).
const TUS_CREATE_LOCK_CLASS: i32 = 0x7475_7363;

#[async_trait]
impl TusStore for Postgres {
    async fn tus_create(
        &self,
        up: &TusUpload,
        token: &str,
        lease_until: Micros,
        max_unfinished: u64,
    ) -> MetaResult<bool> {
        let (up, token) = (up.clone(), token.to_owned());
        let max = i64::try_from(max_unfinished).unwrap_or(i64::MAX);
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                // The tenant's creations one at a time, so the count holds until the insert.
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, $2::INT)",
                    &[&TUS_CREATE_LOCK_CLASS, &(up.tenant_id.0 as i32)],
                )
                .await?;
                let n: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM tus_uploads WHERE tenant_id = $1 AND expires_at > $2",
                        &[&up.tenant_id.0, &up.created_at],
                    )
                    .await?
                    .try_get(0)?;
                if n >= max {
                    return Ok(false);
                }
                tx.execute(
                    &format!(
                        "INSERT INTO tus_uploads ({COLUMNS}, lease_token, lease_until, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                                 $15, $16, $19, $17, $18, $15)"
                    ),
                    &[
                        &up.id,
                        &up.tenant_id.0,
                        &up.blob_key.as_str(),
                        &as_i64(up.length),
                        &as_i64(up.offset),
                        &up.metadata,
                        &up.resource,
                        &up.resource_id,
                        &up.name,
                        &up.content_type,
                        &up.is_public,
                        &up.file_expire_at,
                        &up.hash_state,
                        &up.store_state,
                        &up.created_at,
                        &up.expires_at,
                        &token,
                        &lease_until,
                        &up.file_expires_in,
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    async fn tus_get(&self, tenant: TenantId, id: &str) -> MetaResult<Option<TusUpload>> {
        let id = id.to_owned();
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        &format!(
                            "SELECT {COLUMNS} FROM tus_uploads WHERE id = $1 AND tenant_id = $2"
                        ),
                        &[&id, &tenant.0],
                    )
                    .await?;
                row.as_ref().map(upload_from_row).transpose()
            })
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
            Box::pin(async move {
                let row = c
                    .query_opt(
                        &format!(
                            "UPDATE tus_uploads SET lease_token = $3, lease_until = $5
                             WHERE id = $1 AND tenant_id = $2 AND expires_at > $4
                               AND (lease_until IS NULL OR lease_until <= $4)
                             RETURNING {COLUMNS}"
                        ),
                        &[&id, &tenant.0, &token, &now, &until],
                    )
                    .await?;
                if let Some(r) = row {
                    return Ok(Leased::Upload(Box::new(upload_from_row(&r)?)));
                }
                let expires = c
                    .query_opt(
                        "SELECT expires_at FROM tus_uploads WHERE id = $1 AND tenant_id = $2",
                        &[&id, &tenant.0],
                    )
                    .await?;
                Ok(match expires {
                    None => Leased::NotFound,
                    Some(r) if r.try_get::<_, i64>(0)? <= now => Leased::Expired,
                    Some(_) => Leased::Busy,
                })
            })
        })
        .await
    }

    async fn tus_record(&self, id: &str, token: &str, p: &TusProgress) -> MetaResult<bool> {
        let (id, token, p) = (id.to_owned(), token.to_owned(), p.clone());
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "UPDATE tus_uploads SET upload_offset = $3, hash_state = $4,
                            store_state = $5, updated_at = $6, lease_until = $7, expires_at = $8,
                            lease_token = CASE WHEN $7::BIGINT IS NULL THEN NULL
                                               ELSE lease_token END
                     WHERE id = $1 AND lease_token = $2",
                    &[
                        &id,
                        &token,
                        &as_i64(p.offset),
                        &p.hash_state,
                        &p.store_state,
                        &p.now,
                        &p.lease_until,
                        &p.expires_at,
                    ],
                )
                .await?
                    == 1)
            })
        })
        .await
    }

    async fn tus_renew(&self, id: &str, token: &str, until: Micros) -> MetaResult<bool> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "UPDATE tus_uploads SET lease_until = $3 WHERE id = $1 AND lease_token = $2",
                    &[&id, &token, &until],
                )
                .await?
                    == 1)
            })
        })
        .await
    }

    async fn tus_release(&self, id: &str, token: &str) -> MetaResult<()> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE tus_uploads SET lease_token = NULL, lease_until = NULL
                     WHERE id = $1 AND lease_token = $2",
                    &[&id, &token],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn tus_delete(&self, id: &str, token: &str) -> MetaResult<bool> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "DELETE FROM tus_uploads WHERE id = $1 AND lease_token = $2",
                    &[&id, &token],
                )
                .await?
                    == 1)
            })
        })
        .await
    }

    async fn tus_expired(&self, now: Micros, limit: u64) -> MetaResult<Vec<TusUpload>> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM tus_uploads
                             WHERE expires_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                             ORDER BY expires_at LIMIT $2"
                        ),
                        &[&now, &as_i64(limit)],
                    )
                    .await?;
                rows.iter().map(upload_from_row).collect()
            })
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
            Box::pin(async move {
                Ok(c.execute(
                    "UPDATE tus_uploads SET lease_token = $2, lease_until = $4
                     WHERE id = $1 AND expires_at <= $3
                       AND (lease_until IS NULL OR lease_until <= $3)",
                    &[&id, &token, &now, &until],
                )
                .await?
                    == 1)
            })
        })
        .await
    }

    async fn tus_key_known(&self, key: &BlobKey) -> MetaResult<bool> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.query_one(
                    "SELECT EXISTS(SELECT 1 FROM tus_uploads WHERE blob_key = $1)",
                    &[&key],
                )
                .await?
                .try_get(0)?)
            })
        })
        .await
    }
}
