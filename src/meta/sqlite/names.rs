//! Creating a tenant under the look-alike rule: no two tenants share a
//! [`TenantName::key`](crate::domain::TenantName::key) (migration 0008's unique `name_key`).
//! Tenants from before that migration get their key here, in the creating transaction.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::domain::{TenantId, text};
use crate::meta::{MetaResult, name_taken as conflict};

/// Insert the tenant `name` (whose key is `key`) unless a tenant of that name or key exists.
pub(super) fn create_tenant(
    c: &mut Connection,
    name: &str,
    key: &str,
    hash: &str,
) -> MetaResult<TenantId> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    backfill_keys(&tx)?;
    let taken: Option<String> = tx
        .query_row(
            "SELECT username FROM tenants WHERE username = ?1 OR name_key = ?2",
            params![name, key],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(other) = taken {
        return Err(conflict(name, &other));
    }
    tx.execute(
        "INSERT INTO tenants (username, name_key, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![name, key, hash, crate::domain::now_micros()],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(TenantId(id))
}

/// Give the tenants without a key (created before migration 0008) theirs, in id order; one
/// whose key an older tenant holds keeps none, and is reported.
fn backfill_keys(tx: &Transaction<'_>) -> MetaResult<()> {
    let rows: Vec<(i64, String)> = {
        let mut st =
            tx.prepare("SELECT id, username FROM tenants WHERE name_key IS NULL ORDER BY id")?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    for (id, username) in rows {
        let key = text::name_key(&username);
        let set = tx.execute(
            "UPDATE tenants SET name_key = ?2 WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM tenants WHERE name_key = ?2)",
            params![id, key],
        )?;
        if set == 0 {
            tracing::warn!(
                tenant = %username,
                "tenant name looks like an older tenant's; both are kept, no new look-alike can be added"
            );
        }
    }
    Ok(())
}
