//! [`SeedStore`] on either store (migration 0009). A file's import is three statements in one
//! transaction, which each store runs its own way ([`Chain`]).

use async_trait::async_trait;

use super::{Exec, On, args, big};
use crate::domain::{Micros, NewFile, Tenant, TenantId};
use crate::meta::MetaResult;
use crate::meta::seed::SeedStore;

/// The mapping from the original's file, first: when it is known, nothing else runs.
const SEED_FILE: &str = "INSERT INTO seed_files (orig_id, file_id, imported_at)
     VALUES ($1, $2, $3) ON CONFLICT (orig_id) DO NOTHING";

const FILE: &str = "INSERT INTO files (id, tenant_id, resource, resource_id, name, blob_key,
       size, content_type, sha256, is_public, expire_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

const UPGRADE_PASSWORD: &str =
    "UPDATE tenants SET password_hash = $3 WHERE id = $1 AND password_hash = $2";

#[async_trait]
impl<E: Exec + Chain> SeedStore for E {
    async fn seed_tenant(&self, orig_id: i64) -> MetaResult<Option<TenantId>> {
        let sql = "SELECT tenant_id FROM seed_tenants WHERE orig_id = $1";
        let row = self.query_opt(On::Read, sql.into(), args![orig_id]).await?;
        row.map(|r| r.int(0).map(TenantId)).transpose()
    }

    async fn record_seed_tenant(
        &self,
        orig_id: i64,
        tenant: TenantId,
        now: Micros,
    ) -> MetaResult<()> {
        let sql = "INSERT INTO seed_tenants (orig_id, tenant_id, imported_at)
                   VALUES ($1, $2, $3) ON CONFLICT (orig_id) DO NOTHING";
        let args = args![orig_id, tenant.0, now];
        self.execute(On::Write, sql.into(), args).await?;
        Ok(())
    }

    async fn upgrade_password(&self, tenant: TenantId, old: &str, new: &str) -> MetaResult<bool> {
        let args = args![tenant.0, old, new];
        Ok(self
            .execute(On::Write, UPGRADE_PASSWORD.into(), args)
            .await?
            == 1)
    }

    async fn seed_file_known(&self, orig_id: &str) -> MetaResult<bool> {
        let sql = "SELECT EXISTS(SELECT 1 FROM seed_files WHERE orig_id = $1)";
        let row = self.query_one(On::Read, sql.into(), args![orig_id]);
        row.await?.flag(0)
    }

    async fn import_file(
        &self,
        orig_id: &str,
        tenant: &Tenant,
        file: &NewFile,
        now: Micros,
    ) -> MetaResult<Option<String>> {
        let id = crate::domain::new_file_id();
        let row = args![
            &id,
            tenant.id.0,
            file.resource.as_str(),
            file.resource_id.as_str(),
            file.name.as_str(),
            file.blob_key.as_str(),
            big(file.size),
            &file.content_type,
            &file.sha256,
            file.is_public,
            file.expire_at,
            now,
        ];
        let steps = vec![
            (SEED_FILE.into(), args![orig_id, &id, now]),
            (FILE.into(), row),
            (
                "DELETE FROM upload_intents WHERE blob_key = $1".into(),
                args![file.blob_key.as_str()],
            ),
        ];
        let changed = self.chain(steps).await?;
        Ok(changed.first().is_some_and(|&n| n > 0).then_some(id))
    }
}

/// A store that runs several statements in one transaction.
#[async_trait]
pub trait Chain {
    /// Run `steps` in order in one write transaction, each only when the one before it changed
    /// a row, and commit; how many rows each step that ran changed.
    async fn chain(&self, steps: Vec<(super::Sql, Vec<super::Arg>)>) -> MetaResult<Vec<u64>>;
}
