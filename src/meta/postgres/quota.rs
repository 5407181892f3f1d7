//! [`QuotaStore`] on PostgreSQL (migration 0004). A reservation locks the tenant's row
//! (`FOR UPDATE`) for the check and the grant, so nodes sharing the database serialise their
//! reservations per tenant.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::{Postgres, as_i64, as_u64};
use crate::domain::{BlobKey, Micros, TenantId, TenantName};
use crate::meta::MetaResult;
use crate::meta::quota::{Defaults, Limit, QuotaStore, Reserved, TenantQuota, Usage, grant};

async fn usage_of<C: GenericClient>(c: &C, tenant: i64, now: Micros) -> MetaResult<Usage> {
    let files = c
        .query_one(
            "SELECT count(*), coalesce(sum(size), 0)::BIGINT FROM files
              WHERE tenant_id = $1 AND deleted_at IS NULL
                AND (expire_at IS NULL OR expire_at > $2)",
            &[&tenant, &now],
        )
        .await?;
    let reserved = c
        .query_one(
            "SELECT coalesce(sum(files), 0)::BIGINT, coalesce(sum(bytes), 0)::BIGINT
               FROM quota_reservations WHERE tenant_id = $1",
            &[&tenant],
        )
        .await?;
    // Unfinished resumable uploads without a reservation (no quota applied when they were
    // created) still hold their declared length.
    let tus = c
        .query_one(
            "SELECT count(*), coalesce(sum(upload_length), 0)::BIGINT FROM tus_uploads
              WHERE tenant_id = $1 AND expires_at > $2
                AND blob_key NOT IN (SELECT blob_key FROM quota_reservations)",
            &[&tenant, &now],
        )
        .await?;
    let add = |a: i64, b: i64| as_u64(a.saturating_add(b));
    Ok(Usage {
        files: as_u64(files.try_get(0)?),
        bytes: as_u64(files.try_get(1)?),
        reserved_files: add(reserved.try_get(0)?, tus.try_get(0)?),
        reserved_bytes: add(reserved.try_get(1)?, tus.try_get(1)?),
    })
}

fn quota_from(r: &tokio_postgres::Row) -> MetaResult<TenantQuota> {
    Ok(TenantQuota {
        bytes: Limit::from_db(r.try_get(0)?),
        files: Limit::from_db(r.try_get(1)?),
    })
}

#[async_trait]
impl QuotaStore for Postgres {
    async fn tenant_quota(&self, name: &TenantName) -> MetaResult<Option<TenantQuota>> {
        let name = name.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT quota_bytes, quota_files FROM tenants WHERE username = $1",
                    &[&name],
                )
                .await?
                .as_ref()
                .map(quota_from)
                .transpose()
            })
        })
        .await
    }

    async fn set_tenant_quota(
        &self,
        name: &TenantName,
        bytes: Option<Limit>,
        files: Option<Limit>,
    ) -> MetaResult<bool> {
        let name = name.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                // COALESCE keeps a setting not given; the flags tell "not given" from "default".
                let n = c
                    .execute(
                        "UPDATE tenants SET
                           quota_bytes = CASE WHEN $2 THEN $3 ELSE quota_bytes END,
                           quota_files = CASE WHEN $4 THEN $5 ELSE quota_files END
                         WHERE username = $1",
                        &[
                            &name,
                            &bytes.is_some(),
                            &bytes.and_then(Limit::to_db),
                            &files.is_some(),
                            &files.and_then(Limit::to_db),
                        ],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    async fn usage(&self, tenant: TenantId, now: Micros) -> MetaResult<(Usage, TenantQuota)> {
        self.with(move |c| {
            Box::pin(async move {
                let q = c
                    .query_opt(
                        "SELECT quota_bytes, quota_files FROM tenants WHERE id = $1",
                        &[&tenant.0],
                    )
                    .await?
                    .as_ref()
                    .map(quota_from)
                    .transpose()?
                    .unwrap_or(TenantQuota {
                        bytes: Limit::Default,
                        files: Limit::Default,
                    });
                Ok((usage_of(&*c, tenant.0, now).await?, q))
            })
        })
        .await
    }

    async fn reserve(
        &self,
        tenant: TenantId,
        key: &BlobKey,
        at_least: u64,
        want: u64,
        defaults: Defaults,
        now: Micros,
    ) -> MetaResult<Reserved> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                // Most tenants have no limit: tell that from a plain read, without a
                // transaction and a row lock on every upload. (A limit set meanwhile applies to
                // later uploads.)
                let unlimited = |q: &TenantQuota| {
                    q.bytes.resolve(defaults.bytes).is_none()
                        && q.files.resolve(defaults.files).is_none()
                };
                let st = c
                    .prepare_cached("SELECT quota_bytes, quota_files FROM tenants WHERE id = $1")
                    .await?;
                let plain = c.query_opt(&st, &[&tenant.0]).await?;
                if let Some(row) = plain
                    && unlimited(&quota_from(&row)?)
                {
                    return Ok(Reserved::Unlimited);
                }
                let tx = c.transaction().await?;
                let Some(row) = tx
                    .query_opt(
                        "SELECT quota_bytes, quota_files FROM tenants WHERE id = $1 FOR UPDATE",
                        &[&tenant.0],
                    )
                    .await?
                else {
                    return Ok(Reserved::Exceeded);
                };
                let q = quota_from(&row)?;
                let (max_bytes, max_files) = (
                    q.bytes.resolve(defaults.bytes),
                    q.files.resolve(defaults.files),
                );
                if max_bytes.is_none() && max_files.is_none() {
                    return Ok(Reserved::Unlimited);
                }
                let held: Option<i64> = tx
                    .query_opt(
                        "SELECT bytes FROM quota_reservations WHERE blob_key = $1",
                        &[&key],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                let usage = usage_of(&tx, tenant.0, now).await?;
                let Some(more) =
                    grant(&usage, held.is_none(), at_least, want, max_bytes, max_files)
                else {
                    return Ok(Reserved::Exceeded);
                };
                let total = as_u64(held.unwrap_or(0)) + more;
                tx.execute(
                    "INSERT INTO quota_reservations (blob_key, tenant_id, bytes, files, created_at)
                     VALUES ($1, $2, $3, 1, $4)
                     ON CONFLICT (blob_key) DO UPDATE SET bytes = excluded.bytes",
                    &[&key, &tenant.0, &as_i64(total), &now],
                )
                .await?;
                tx.commit().await?;
                Ok(Reserved::Held(total))
            })
        })
        .await
    }

    async fn release(&self, key: &BlobKey) -> MetaResult<()> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM quota_reservations WHERE blob_key = $1",
                    &[&key],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn release_orphaned(&self, before: Micros) -> MetaResult<u64> {
        self.with(move |c| {
            Box::pin(async move {
                Ok(c.execute(
                    "DELETE FROM quota_reservations r WHERE r.created_at < $1
                       AND NOT EXISTS (SELECT 1 FROM upload_intents i WHERE i.blob_key = r.blob_key)
                       AND NOT EXISTS (SELECT 1 FROM tus_uploads u WHERE u.blob_key = r.blob_key)",
                    &[&before],
                )
                .await?)
            })
        })
        .await
    }

    async fn oldest_reservation(&self, tenant: TenantId) -> MetaResult<Option<String>> {
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT blob_key FROM quota_reservations WHERE tenant_id = $1
                         ORDER BY created_at, blob_key LIMIT 1",
                        &[&tenant.0],
                    )
                    .await?;
                Ok(match row {
                    Some(r) => Some(r.try_get(0)?),
                    None => None,
                })
            })
        })
        .await
    }
}
