//! One attempt of `commit_file` on PostgreSQL, in as few round trips as the logic allows:
//! statements whose order matters but whose results the next one does not need are pipelined
//! (sent together, run in order, answered together), and every statement is prepared once per
//! connection. BEGIN, the claim with the name's lock and the live row's lookup, the replacement,
//! COMMIT: four round trips where one per statement (and one more per unprepared statement)
//! took about ten.

use deadpool_postgres::Object;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

use super::{COMMIT_LOCK_CLASS, as_i64};
use crate::domain::{Micros, NewFile, Tenant};
use crate::meta::Claim;

/// Take the name's lock, lock the live row of the same name (if any), move its blob to garbage
/// and delete it, insert the new row, consume the claim. `None`: the claim is gone, nothing was
/// committed. Returns the new row's id and the freed blob key.
pub(super) async fn commit_once(
    c: &mut Object,
    tenant: &Tenant,
    file: &NewFile,
    now: Micros,
    claim: &Claim,
) -> Result<Option<(String, Option<String>)>, tokio_postgres::Error> {
    // Read committed: each statement sees what was committed before it began, so the row
    // committed by the lock's previous holder is found.
    let tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    let lock_key = format!(
        "{}/{}/{}/{}",
        tenant.id.0,
        file.resource.as_str(),
        file.resource_id.as_str(),
        file.name.as_str()
    );
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    let live = tx
        .prepare_cached(
            "SELECT id, blob_key FROM files WHERE tenant_id = $1 AND resource = $2
               AND resource_id = $3 AND name = $4 AND deleted_at IS NULL FOR UPDATE",
        )
        .await?;
    let (resource, resource_id, name) = (
        file.resource.as_str(),
        file.resource_id.as_str(),
        file.name.as_str(),
    );
    // The claim first: it row-locks the intent (or resumable upload), so a clean-up that would
    // take it waits for this transaction and then finds it gone. Without it, nothing is
    // committed (dropping `tx` rolls back); the lock and the lookup sent with it are then
    // rolled back too.
    let key = file.blob_key.as_str();
    let (claim_sql, claim_args): (&str, Vec<&(dyn ToSql + Sync)>) = match claim {
        Claim::Intent => ("DELETE FROM upload_intents WHERE blob_key = $1", vec![&key]),
        Claim::Tus { id, token } => (
            "DELETE FROM tus_uploads WHERE id = $1 AND lease_token = $2",
            vec![id, token],
        ),
    };
    let claim_st = tx.prepare_cached(claim_sql).await?;
    let lock_args: [&(dyn ToSql + Sync); 2] = [&COMMIT_LOCK_CLASS, &lock_key];
    let live_args: [&(dyn ToSql + Sync); 4] = [&tenant.id.0, &resource, &resource_id, &name];
    let (claimed, _, old) = tokio::try_join!(
        tx.execute(&claim_st, &claim_args),
        tx.execute(&lock, &lock_args),
        tx.query_opt(&live, &live_args),
    )?;
    if claimed != 1 {
        return Ok(None);
    }
    let old = match old {
        Some(r) => Some((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)),
        None => None,
    };
    let id = crate::domain::new_file_id();
    let insert = tx
        .prepare_cached(
            "INSERT INTO files (id, tenant_id, resource, resource_id, name, blob_key, size,
                content_type, sha256, is_public, expire_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .await?;
    let size = as_i64(file.size);
    let insert_args: [&(dyn ToSql + Sync); 12] = [
        &id,
        &tenant.id.0,
        &resource,
        &resource_id,
        &name,
        &key,
        &size,
        &file.content_type,
        &file.sha256,
        &file.is_public,
        &file.expire_at,
        &now,
    ];
    let insert_fut = tx.execute(&insert, &insert_args);
    let mut freed = None;
    match &old {
        None => {
            insert_fut.await?;
        }
        Some((old_id, old_key)) => {
            let delete = tx.prepare_cached("DELETE FROM files WHERE id = $1").await?;
            // Another row may share the key (imported data): then it stays (DESIGN.md §7).
            let garbage = tx
                .prepare_cached(
                    "INSERT INTO garbage (blob_key, added_at) SELECT $1::text, $2::bigint
                     WHERE NOT EXISTS (SELECT 1 FROM files WHERE blob_key = $1)
                     ON CONFLICT (blob_key) DO NOTHING",
                )
                .await?;
            let delete_args: [&(dyn ToSql + Sync); 1] = [old_id];
            let garbage_args: [&(dyn ToSql + Sync); 2] = [old_key, &now];
            let (_, n, _) = tokio::try_join!(
                tx.execute(&delete, &delete_args),
                tx.execute(&garbage, &garbage_args),
                insert_fut,
            )?;
            freed = (n == 1).then(|| old_key.clone());
        }
    }
    tx.commit().await?;
    Ok(Some((id, freed)))
}
