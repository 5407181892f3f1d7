//! A tenant's removal on PostgreSQL, with everything it owns (files and intents to garbage,
//! resumable uploads expired).

use super::Postgres;
use crate::meta::MetaResult;

pub(super) async fn remove_tenant(pg: &Postgres, name: String) -> MetaResult<bool> {
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
