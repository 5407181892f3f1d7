//! The PostgreSQL store's tenants: looked up by name or id, listed, removed with everything
//! they own (files and intents to garbage, resumable uploads expired), their password changed.

use super::{Postgres, tenant_from_row};
use crate::domain::{Tenant, TenantId, TenantName};
use crate::meta::{MetaResult, TenantEntry};

pub(super) async fn tenant_by_name(
    pg: &Postgres,
    name: &str,
) -> MetaResult<Option<(Tenant, String)>> {
    let name = name.to_owned();
    pg.with(move |c| {
        Box::pin(async move {
            let row = c
                .query_opt(
                    "SELECT id, username, password_hash FROM tenants WHERE username = $1",
                    &[&name],
                )
                .await?;
            match row {
                Some(r) => Ok(Some((tenant_from_row(&r)?, r.try_get(2)?))),
                None => Ok(None),
            }
        })
    })
    .await
}

pub(super) async fn tenant_by_id(pg: &Postgres, id: TenantId) -> MetaResult<Option<Tenant>> {
    pg.with(move |c| {
        Box::pin(async move {
            let row = c
                .query_opt("SELECT id, username FROM tenants WHERE id = $1", &[&id.0])
                .await?;
            row.as_ref().map(tenant_from_row).transpose()
        })
    })
    .await
}

pub(super) async fn list_tenants(pg: &Postgres) -> MetaResult<Vec<TenantEntry>> {
    pg.with(|c| {
        Box::pin(async move {
            let rows = c
                .query(
                    "SELECT id, username, created_at, last_login_at FROM tenants
                      ORDER BY username",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(TenantEntry {
                        tenant: tenant_from_row(r)?,
                        created_at: r.try_get(2)?,
                        last_login_at: r.try_get(3)?,
                    })
                })
                .collect()
        })
    })
    .await
}

pub(super) async fn remove_tenant(pg: &Postgres, name: &TenantName) -> MetaResult<bool> {
    let name = name.as_str().to_owned();
    pg.with(move |c| {
        Box::pin(async move {
            let tx = c.transaction().await?;
            // Locking the tenant row makes a concurrent commit of one of its files wait (its
            // foreign key check) and then fail, so no file row is deleted by the cascade
            // without its blob going to garbage.
            let row = tx
                .query_opt(
                    "SELECT id FROM tenants WHERE username = $1 FOR UPDATE",
                    &[&name],
                )
                .await?;
            let Some(row) = row else { return Ok(false) };
            let id: i64 = row.try_get(0)?;
            tx.execute(
                "WITH gone AS (DELETE FROM files WHERE tenant_id = $1 RETURNING blob_key)
                 INSERT INTO garbage (blob_key, added_at) SELECT DISTINCT blob_key, $2::bigint
                 FROM gone g WHERE NOT EXISTS (SELECT 1 FROM files o
                   WHERE o.blob_key = g.blob_key AND o.tenant_id <> $1)
                 ON CONFLICT (blob_key) DO NOTHING",
                &[&id, &crate::domain::now_micros()],
            )
            .await?;
            // Its uploads in flight: their commits fail now (their claim is gone), and the
            // blobs they wrote are garbage; its resumable uploads expire at once, for gc.
            tx.execute(
                "WITH gone AS (DELETE FROM upload_intents WHERE tenant_id = $1
                               RETURNING blob_key)
                 INSERT INTO garbage (blob_key, added_at) SELECT blob_key, $2 FROM gone
                 ON CONFLICT (blob_key) DO NOTHING",
                &[&id, &crate::domain::now_micros()],
            )
            .await?;
            tx.execute(
                "UPDATE tus_uploads SET expires_at = 0, lease_token = NULL, lease_until = NULL
                 WHERE tenant_id = $1",
                &[&id],
            )
            .await?;
            tx.execute("DELETE FROM tenants WHERE id = $1", &[&id])
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    })
    .await
}

pub(super) async fn set_password(
    pg: &Postgres,
    name: &TenantName,
    password_hash: &str,
) -> MetaResult<bool> {
    let (name, hash) = (name.as_str().to_owned(), password_hash.to_owned());
    pg.with(move |c| {
        Box::pin(async move {
            Ok(c.execute(
                "UPDATE tenants SET password_hash = $2, session_epoch = session_epoch + 1 WHERE username = $1",
                &[&name, &hash],
            )
            .await?
                == 1)
        })
    })
    .await
}
