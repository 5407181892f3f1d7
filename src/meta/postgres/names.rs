//! Creating a tenant under the look-alike rule: no two tenants share a
//! [`TenantName::key`](crate::domain::TenantName::key) (migration 0008's unique `name_key`).
//! Tenants from before that migration get their key here, in the creating transaction.

use deadpool_postgres::Object;

use crate::domain::{TenantId, text};
use crate::meta::{MetaResult, name_taken as conflict};

/// Serialises tenant creations across nodes (`pg_advisory_xact_lock`); the unique index on
/// `name_key` is the last word anyway.
const CREATE_LOCK: i64 = 0x6d74_6675_6e61_6d65; // "mtfuname"

/// Insert the tenant `name` (whose key is `key`) unless a tenant of that name or key exists.
pub(super) async fn create_tenant(
    c: &mut Object,
    name: &str,
    key: &str,
    hash: &str,
) -> MetaResult<TenantId> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
        .await?;
    let legacy = tx
        .query(
            "SELECT id, username FROM tenants WHERE name_key IS NULL ORDER BY id",
            &[],
        )
        .await?;
    for row in legacy {
        let (id, username): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        let key = text::name_key(&username);
        let set = tx
            .execute(
                "UPDATE tenants SET name_key = $2 WHERE id = $1
                   AND NOT EXISTS (SELECT 1 FROM tenants WHERE name_key = $2)",
                &[&id, &key],
            )
            .await?;
        if set == 0 {
            tracing::warn!(
                tenant = %username,
                "tenant name looks like an older tenant's; both are kept, no new look-alike can be added"
            );
        }
    }
    let taken = tx
        .query_opt(
            "SELECT username FROM tenants WHERE username = $1 OR name_key = $2",
            &[&name, &key],
        )
        .await?;
    if let Some(row) = taken {
        let other: String = row.try_get(0)?;
        return Err(conflict(name, &other));
    }
    let row = tx
        .query_one(
            "INSERT INTO tenants (username, name_key, password_hash, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[&name, &key, &hash, &crate::domain::now_micros()],
        )
        .await;
    let id = match row {
        Ok(row) => row.try_get(0)?,
        Err(e) if super::is_unique_violation(&e) => {
            return Err(conflict(name, name));
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    Ok(TenantId(id))
}
