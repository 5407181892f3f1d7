//! Blob keys several file rows may name (objects imported in place by `mtfu import-seed`, see
//! DESIGN.md §7), on PostgreSQL: gc's sweep of file rows queues a key for deletion only when no
//! row outside the ones it removes still names it, in the statement that removes them. (Two
//! concurrent transactions each removing one of two rows sharing a key can each see the other's
//! row: then neither queues it and the object is kept, the safe side; it is never deleted while
//! a row names it.)

use deadpool_postgres::Object;

use super::as_u64;
use crate::domain::Micros;
use crate::meta::{MetaResult, Reaped};

/// Remove the rows deleted before `deleted_before` or expired before `expired_before` and queue
/// their keys that no remaining row names, in one statement.
pub(super) async fn reap(
    c: &mut Object,
    deleted_before: Micros,
    expired_before: Micros,
) -> MetaResult<Reaped> {
    let row = c
        .query_one(
            "WITH gone AS (
                 DELETE FROM files
                 WHERE (deleted_at IS NOT NULL AND deleted_at < $1)
                    OR (deleted_at IS NULL AND expire_at IS NOT NULL AND expire_at < $2)
                 RETURNING id, blob_key, deleted_at IS NOT NULL AS was_deleted
             ), kept AS (
                 INSERT INTO garbage (blob_key, added_at)
                 SELECT DISTINCT blob_key, $3::bigint FROM gone g
                 WHERE NOT EXISTS (SELECT 1 FROM files o WHERE o.blob_key = g.blob_key
                     AND o.id NOT IN (SELECT id FROM gone))
                 ON CONFLICT (blob_key) DO NOTHING
             )
             SELECT COUNT(*) FILTER (WHERE was_deleted), COUNT(*) FILTER (WHERE NOT was_deleted)
             FROM gone",
            &[
                &deleted_before,
                &expired_before,
                &crate::domain::now_micros(),
            ],
        )
        .await?;
    Ok(Reaped {
        deleted: as_u64(row.try_get(0)?),
        expired: as_u64(row.try_get(1)?),
    })
}
