//! [`SessionStore`] on either store (migration 0007).

use async_trait::async_trait;

use super::{Exec, On, Row, args};
use crate::domain::{Micros, Tenant, TenantId, TenantName};
use crate::meta::session::SessionStore;
use crate::meta::{MetaError, MetaResult};

/// A tenant from a row's first two columns (`id, username`).
pub fn tenant_from_row(r: &Row) -> MetaResult<Tenant> {
    let name = r.text(1)?;
    let name = TenantName::parse(&name)
        .map_err(|e| MetaError::Internal(format!("stored tenant name {name:?}: {e}")))?;
    Ok(Tenant {
        id: TenantId(r.int(0)?),
        name,
    })
}

#[async_trait]
impl<E: Exec> SessionStore for E {
    async fn tenant_session(&self, id: TenantId) -> MetaResult<Option<(Tenant, i64)>> {
        // Every authenticated request: on a reader (SQLite), never queued behind writes;
        // prepared once per connection (PostgreSQL).
        let sql = "SELECT id, username, session_epoch FROM tenants WHERE id = $1";
        let row = self.query_opt(On::Read, sql.into(), args![id.0]).await?;
        row.map(|r| Ok((tenant_from_row(&r)?, r.int(2)?)))
            .transpose()
    }

    async fn tenant_login(&self, name: &str) -> MetaResult<Option<(Tenant, String, i64)>> {
        let sql = "SELECT id, username, password_hash, session_epoch FROM tenants
                    WHERE username = $1";
        let row = self.query_opt(On::Read, sql.into(), args![name]).await?;
        row.map(|r| Ok((tenant_from_row(&r)?, r.text(2)?, r.int(3)?)))
            .transpose()
    }

    async fn end_sessions(&self, id: TenantId) -> MetaResult<Option<i64>> {
        let sql = "UPDATE tenants SET session_epoch = session_epoch + 1 WHERE id = $1
                   RETURNING session_epoch";
        let row = self.query_opt(On::Write, sql.into(), args![id.0]).await?;
        row.map(|r| r.int(0)).transpose()
    }

    async fn record_login(&self, id: TenantId, at: Micros) -> MetaResult<()> {
        let sql = "UPDATE tenants SET last_login_at = $2 WHERE id = $1";
        self.execute(On::Write, sql.into(), args![id.0, at]).await?;
        Ok(())
    }
}
