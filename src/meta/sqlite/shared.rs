//! Blob keys several file rows may name (objects imported in place by `mtfu import-seed`, see
//! DESIGN.md §7): a key goes to the garbage table, or back to a caller that deletes its blob,
//! only when no other row still names it, decided in the transaction that removes the row.

use rusqlite::{Connection, params};

use crate::domain::Micros;
use crate::meta::Reaped;

/// After the rows naming `key` that are going away were deleted (in the same transaction):
/// queue it for gc unless a row still names it. True when it was queued (the caller may delete
/// the blob).
pub(super) fn release(c: &Connection, key: &str, now: Micros) -> rusqlite::Result<bool> {
    let named: bool = c.query_row(
        "SELECT EXISTS(SELECT 1 FROM files WHERE blob_key = ?1)",
        [key],
        |r| r.get(0),
    )?;
    if !named {
        c.execute(
            "INSERT OR IGNORE INTO garbage (blob_key, added_at) VALUES (?1, ?2)",
            params![key, now],
        )?;
    }
    Ok(!named)
}

/// gc's sweep of file rows: remove the rows deleted before `deleted_before` or expired before
/// `expired_before`, then queue each of their keys that no remaining row names.
pub(super) fn reap(
    c: &Connection,
    deleted_before: Micros,
    expired_before: Micros,
    now: Micros,
) -> rusqlite::Result<Reaped> {
    let mut keys = Vec::new();
    let mut take = |sql: &str, at: Micros| -> rusqlite::Result<u64> {
        let mut st = c.prepare(sql)?;
        let got = st
            .query_map([at], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let n = got.len() as u64;
        keys.extend(got);
        Ok(n)
    };
    let deleted = take(
        "DELETE FROM files WHERE deleted_at IS NOT NULL AND deleted_at < ?1 RETURNING blob_key",
        deleted_before,
    )?;
    let expired = take(
        "DELETE FROM files WHERE deleted_at IS NULL AND expire_at IS NOT NULL AND expire_at < ?1
         RETURNING blob_key",
        expired_before,
    )?;
    keys.sort();
    keys.dedup();
    for k in &keys {
        release(c, k, now)?;
    }
    Ok(Reaped { deleted, expired })
}
