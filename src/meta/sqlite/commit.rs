//! An upload's commit on SQLite, which consumes the intent (or a resumable upload's row) and
//! makes the file visible. It runs in a group commit ([`super::batch`]): inside a transaction
//! shared with other writes, under a savepoint of its own, so a failure here rolls back this
//! write alone.

use rusqlite::{Connection, OptionalExtension, params};

use super::shared;
use crate::domain::{BlobKey, FileRecord, Micros, NewFile, Tenant};
use crate::meta::{Claim, MetaError, MetaResult};

/// Consume `claim` (or fail with [`MetaError::Gone`], changing nothing), replace the tenant's
/// live file of the same resource, resource id and name (its key goes to garbage unless another
/// row names it), insert the new row. The caller's transaction makes it atomic.
pub(super) fn commit_file(
    c: &Connection,
    tenant: &Tenant,
    file: NewFile,
    now: Micros,
    claim: &Claim,
) -> MetaResult<(FileRecord, Option<BlobKey>)> {
    // The claim first: without it, nothing is done.
    let claimed = match claim {
        Claim::Intent => c
            .prepare_cached("DELETE FROM upload_intents WHERE blob_key = ?1")?
            .execute([file.blob_key.as_str()])?,
        Claim::Tus { id, token } => c
            .prepare_cached("DELETE FROM tus_uploads WHERE id = ?1 AND lease_token = ?2")?
            .execute(params![id, token])?,
    };
    if claimed != 1 {
        return Err(MetaError::Gone(file.blob_key.as_str().to_owned()));
    }
    let old: Option<(String, String)> = c
        .prepare_cached(
            "SELECT id, blob_key FROM files WHERE tenant_id = ?1 AND resource = ?2
               AND resource_id = ?3 AND name = ?4 AND deleted_at IS NULL",
        )?
        .query_row(
            params![
                tenant.id.0,
                file.resource.as_str(),
                file.resource_id.as_str(),
                file.name.as_str()
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let mut freed = None;
    if let Some((old_id, old_key)) = &old {
        c.execute("DELETE FROM files WHERE id = ?1", [old_id])?;
        // Another row may share the key (imported data): then it stays.
        freed = shared::release(c, old_key, now)?.then(|| old_key.clone());
    }
    let id = crate::domain::new_file_id();
    c.prepare_cached(
        "INSERT INTO files (id, tenant_id, resource, resource_id, name, blob_key, size,
            content_type, sha256, is_public, expire_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        id,
        tenant.id.0,
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
    ])?;
    let record = crate::meta::sql::committed(tenant, file, id, now);
    Ok((record, freed.and_then(|k| BlobKey::from_stored(&k))))
}
