//! [`SeedStore`] on SQLite (migration 0009).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::Sqlite;
use crate::domain::{Micros, NewFile, Tenant, TenantId};
use crate::meta::MetaResult;
use crate::meta::seed::SeedStore;

#[async_trait]
impl SeedStore for Sqlite {
    async fn seed_tenant(&self, orig_id: i64) -> MetaResult<Option<TenantId>> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT tenant_id FROM seed_tenants WHERE orig_id = ?1",
                [orig_id],
                |r| r.get(0).map(TenantId),
            )
            .optional()?)
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
            c.execute(
                "INSERT OR IGNORE INTO seed_tenants (orig_id, tenant_id, imported_at)
                 VALUES (?1, ?2, ?3)",
                params![orig_id, tenant.0, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn upgrade_password(&self, tenant: TenantId, old: &str, new: &str) -> MetaResult<bool> {
        let (old, new) = (old.to_owned(), new.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "UPDATE tenants SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
                params![tenant.0, old, new],
            )? == 1)
        })
        .await
    }

    async fn seed_file_known(&self, orig_id: &str) -> MetaResult<bool> {
        let orig_id = orig_id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM seed_files WHERE orig_id = ?1)",
                [orig_id],
                |r| r.get(0),
            )?)
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
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = crate::domain::new_file_id();
            let fresh = tx.execute(
                "INSERT OR IGNORE INTO seed_files (orig_id, file_id, imported_at)
                 VALUES (?1, ?2, ?3)",
                params![orig_id, id, now],
            )?;
            if fresh == 0 {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO files (id, tenant_id, resource, resource_id, name, blob_key, size,
                    content_type, sha256, is_public, expire_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    id,
                    tid,
                    file.resource.as_str(),
                    file.resource_id.as_str(),
                    file.name.as_str(),
                    file.blob_key.as_str(),
                    file.size as i64,
                    file.content_type,
                    file.sha256,
                    file.is_public,
                    file.expire_at,
                    now
                ],
            )?;
            tx.execute(
                "DELETE FROM upload_intents WHERE blob_key = ?1",
                [file.blob_key.as_str()],
            )?;
            tx.commit()?;
            Ok(Some(id))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn shared_keys_go_with_the_last_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = super::Sqlite::open(&dir.path().join("m.db"))
            .await
            .expect("open");
        crate::meta::MetaBackend::migrate(&db)
            .await
            .expect("migrate");
        crate::meta::seed::testing::shared_keys_go_with_the_last_row(&db).await;
    }
}
