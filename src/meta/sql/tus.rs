//! [`TusStore`] on either store: the `tus_uploads` table (migration 0005). Leases are
//! conditional `UPDATE`s, atomic under the store's row (or database) locks, so nodes sharing a
//! database never write one upload at once. Creation under the tenant's cap is the one step the
//! stores do their own way ([`TusCreate`]).

use async_trait::async_trait;

use super::{Arg, Exec, On, Row, args, big};
use crate::domain::{BlobKey, Micros, TenantId};
use crate::meta::tus::{Leased, TusProgress, TusStore, TusUpload};
use crate::meta::{MetaError, MetaResult};

/// The columns of an upload's row, in [`upload_from_row`]'s order.
pub const TUS_COLUMNS: &str = "id, tenant_id, blob_key, upload_length, upload_offset, metadata, \
     resource, resource_id, name, content_type, is_public, file_expire_at, hash_state, \
     store_state, created_at, expires_at, file_expires_in";

/// The columns [`insert_args`] fills: [`TUS_COLUMNS`], then the lease and `updated_at`.
pub const TUS_INSERT_COLUMNS: &str = "id, tenant_id, blob_key, upload_length, upload_offset, \
     metadata, resource, resource_id, name, content_type, is_public, file_expire_at, hash_state, \
     store_state, created_at, expires_at, file_expires_in, lease_token, lease_until, updated_at";

/// A new upload and its first lease, for [`TusCreate`].
pub struct NewTus {
    pub up: TusUpload,
    pub token: String,
    pub lease_until: Micros,
    /// The tenant's unfinished uploads allowed.
    pub max_unfinished: i64,
}

/// The parameters `$1`..`$19` of an upload's insert: `$1`..`$16` are the upload's columns of
/// [`TUS_COLUMNS`] but the last, `$17` the lease's token, `$18` its deadline, `$19`
/// `file_expires_in` (values in [`TUS_INSERT_COLUMNS`]' order: `$1..$16, $19, $17, $18, $15`).
pub fn insert_args(n: &NewTus) -> MetaResult<Vec<Arg>> {
    let up = &n.up;
    let size = |v: u64| {
        i64::try_from(v).map_err(|_| MetaError::Internal(format!("{v} does not fit the store")))
    };
    Ok(args![
        &up.id,
        up.tenant_id.0,
        up.blob_key.as_str(),
        size(up.length)?,
        size(up.offset)?,
        &up.metadata,
        &up.resource,
        &up.resource_id,
        &up.name,
        &up.content_type,
        up.is_public,
        up.file_expire_at,
        &up.hash_state,
        &up.store_state,
        up.created_at,
        up.expires_at,
        &n.token,
        n.lease_until,
        up.file_expires_in,
    ])
}

/// How a store creates an upload under the tenant's cap, atomically.
#[async_trait]
pub trait TusCreate {
    /// Insert the upload unless the tenant has `max_unfinished` unexpired ones; true if it did.
    async fn tus_insert(&self, new: NewTus) -> MetaResult<bool>;
}

fn upload_from_row(r: &Row) -> MetaResult<TusUpload> {
    let key = r.text(2)?;
    let blob_key = BlobKey::from_stored(&key)
        .ok_or_else(|| MetaError::Internal(format!("malformed blob key {key:?}")))?;
    Ok(TusUpload {
        id: r.text(0)?,
        tenant_id: TenantId(r.int(1)?),
        blob_key,
        length: r.size(3)?,
        offset: r.size(4)?,
        metadata: r.text(5)?,
        resource: r.text(6)?,
        resource_id: r.text(7)?,
        name: r.text(8)?,
        content_type: r.text(9)?,
        is_public: r.flag(10)?,
        file_expire_at: r.opt_int(11)?,
        hash_state: r.text(12)?,
        store_state: r.text(13)?,
        created_at: r.int(14)?,
        expires_at: r.int(15)?,
        file_expires_in: r.opt_int(16)?,
    })
}

const RECORD: &str = "UPDATE tus_uploads SET upload_offset = $3, hash_state = $4,
        store_state = $5, updated_at = $6, lease_until = $7, expires_at = $8,
        lease_token = CASE WHEN CAST($7 AS BIGINT) IS NULL THEN NULL ELSE lease_token END
     WHERE id = $1 AND lease_token = $2";

const CLAIM_EXPIRED: &str = "UPDATE tus_uploads SET lease_token = $2, lease_until = $4
     WHERE id = $1 AND expires_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)";

#[async_trait]
impl<E: Exec + TusCreate> TusStore for E {
    async fn tus_create(
        &self,
        up: &TusUpload,
        token: &str,
        lease_until: Micros,
        max_unfinished: u64,
    ) -> MetaResult<bool> {
        self.tus_insert(NewTus {
            up: up.clone(),
            token: token.to_owned(),
            lease_until,
            max_unfinished: i64::try_from(max_unfinished).unwrap_or(i64::MAX),
        })
        .await
    }

    async fn tus_get(&self, tenant: TenantId, id: &str) -> MetaResult<Option<TusUpload>> {
        let sql = format!("SELECT {TUS_COLUMNS} FROM tus_uploads WHERE id = $1 AND tenant_id = $2");
        let row = self.query_opt(On::Write, sql.into(), args![id, tenant.0]);
        row.await?.as_ref().map(upload_from_row).transpose()
    }

    async fn tus_lease(
        &self,
        tenant: TenantId,
        id: &str,
        token: &str,
        now: Micros,
        until: Micros,
    ) -> MetaResult<Leased> {
        let sql = format!(
            "UPDATE tus_uploads SET lease_token = $3, lease_until = $5
             WHERE id = $1 AND tenant_id = $2 AND expires_at > $4
               AND (lease_until IS NULL OR lease_until <= $4)
             RETURNING {TUS_COLUMNS}"
        );
        let args = args![id, tenant.0, token, now, until];
        if let Some(r) = self.query_opt(On::Write, sql.into(), args).await? {
            return Ok(Leased::Upload(Box::new(upload_from_row(&r)?)));
        }
        let sql = "SELECT expires_at FROM tus_uploads WHERE id = $1 AND tenant_id = $2";
        let expires = self.query_opt(On::Write, sql.into(), args![id, tenant.0]);
        Ok(match expires.await? {
            None => Leased::NotFound,
            Some(r) if r.int(0)? <= now => Leased::Expired,
            Some(_) => Leased::Busy,
        })
    }

    async fn tus_record(&self, id: &str, token: &str, p: &TusProgress) -> MetaResult<bool> {
        let offset = i64::try_from(p.offset)
            .map_err(|_| MetaError::Internal(format!("{} does not fit the store", p.offset)))?;
        let args = args![
            id,
            token,
            offset,
            &p.hash_state,
            &p.store_state,
            p.now,
            p.lease_until,
            p.expires_at,
        ];
        Ok(self.execute(On::Write, RECORD.into(), args).await? == 1)
    }

    async fn tus_renew(&self, id: &str, token: &str, until: Micros) -> MetaResult<bool> {
        let sql = "UPDATE tus_uploads SET lease_until = $3 WHERE id = $1 AND lease_token = $2";
        Ok(self
            .execute(On::Write, sql.into(), args![id, token, until])
            .await?
            == 1)
    }

    async fn tus_release(&self, id: &str, token: &str) -> MetaResult<()> {
        let sql = "UPDATE tus_uploads SET lease_token = NULL, lease_until = NULL
                   WHERE id = $1 AND lease_token = $2";
        self.execute(On::Write, sql.into(), args![id, token])
            .await?;
        Ok(())
    }

    async fn tus_delete(&self, id: &str, token: &str) -> MetaResult<bool> {
        let sql = "DELETE FROM tus_uploads WHERE id = $1 AND lease_token = $2";
        Ok(self
            .execute(On::Write, sql.into(), args![id, token])
            .await?
            == 1)
    }

    async fn tus_expired(&self, now: Micros, limit: u64) -> MetaResult<Vec<TusUpload>> {
        let sql = format!(
            "SELECT {TUS_COLUMNS} FROM tus_uploads
             WHERE expires_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
             ORDER BY expires_at LIMIT $2"
        );
        let rows = self.query(On::Write, sql.into(), args![now, big(limit)]);
        rows.await?.iter().map(upload_from_row).collect()
    }

    async fn tus_claim_expired(
        &self,
        id: &str,
        token: &str,
        now: Micros,
        until: Micros,
    ) -> MetaResult<bool> {
        let args = args![id, token, now, until];
        Ok(self.execute(On::Write, CLAIM_EXPIRED.into(), args).await? == 1)
    }

    async fn tus_key_known(&self, key: &BlobKey) -> MetaResult<bool> {
        let sql = "SELECT EXISTS(SELECT 1 FROM tus_uploads WHERE blob_key = $1)";
        self.query_one(On::Write, sql.into(), args![key.as_str()])
            .await?
            .flag(0)
    }
}
