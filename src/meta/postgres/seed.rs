//! [`SeedStore`] on PostgreSQL (migration 0009).

use async_trait::async_trait;

use super::{Postgres, as_i64};
use crate::domain::{Micros, NewFile, Tenant, TenantId};
use crate::meta::MetaResult;
use crate::meta::seed::SeedStore;

#[async_trait]
impl SeedStore for Postgres {
    async fn seed_tenant(&self, orig_id: i64) -> MetaResult<Option<TenantId>> {
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT tenant_id FROM seed_tenants WHERE orig_id = $1",
                        &[&orig_id],
                    )
                    .await?;
                Ok(match row {
                    Some(r) => Some(TenantId(r.try_get(0)?)),
                    None => None,
                })
            })
        })
        .await
    }

    async fn record_seed_tenant(
        &self,
        orig_id: i64,
        tenant: TenantId,
        now: Micros,
    ) -> MetaResult<()> {
        self.with(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO seed_tenants (orig_id, tenant_id, imported_at)
                     VALUES ($1, $2, $3) ON CONFLICT (orig_id) DO NOTHING",
                    &[&orig_id, &tenant.0, &now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn upgrade_password(&self, tenant: TenantId, old: &str, new: &str) -> MetaResult<bool> {
        let (old, new) = (old.to_owned(), new.to_owned());
        self.with(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE tenants SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                        &[&tenant.0, &old, &new],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    async fn seed_file_known(&self, orig_id: &str) -> MetaResult<bool> {
        let orig_id = orig_id.to_owned();
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "SELECT EXISTS(SELECT 1 FROM seed_files WHERE orig_id = $1)",
                        &[&orig_id],
                    )
                    .await?;
                Ok(row.try_get(0)?)
            })
        })
        .await
    }

    async fn import_file(
        &self,
        orig_id: &str,
        tenant: &Tenant,
        file: &NewFile,
        now: Micros,
    ) -> MetaResult<Option<String>> {
        let (orig_id, tid, file) = (orig_id.to_owned(), tenant.id.0, file.clone());
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let id = crate::domain::new_file_id();
                let fresh = tx
                    .execute(
                        "INSERT INTO seed_files (orig_id, file_id, imported_at)
                         VALUES ($1, $2, $3) ON CONFLICT (orig_id) DO NOTHING",
                        &[&orig_id, &id, &now],
                    )
                    .await?;
                if fresh == 0 {
                    return Ok(None);
                }
                tx.execute(
                    "INSERT INTO files (id, tenant_id, resource, resource_id, name, blob_key,
                        size, content_type, sha256, is_public, expire_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    &[
                        &id,
                        &tid,
                        &file.resource.as_str(),
                        &file.resource_id.as_str(),
                        &file.name.as_str(),
                        &file.blob_key.as_str(),
                        &as_i64(file.size),
                        &file.content_type,
                        &file.sha256,
                        &file.is_public,
                        &file.expire_at,
                        &now,
                    ],
                )
                .await?;
                tx.execute(
                    "DELETE FROM upload_intents WHERE blob_key = $1",
                    &[&file.blob_key.as_str()],
                )
                .await?;
                tx.commit().await?;
                Ok(Some(id))
            })
        })
        .await
    }
}
