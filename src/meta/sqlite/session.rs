//! [`SessionStore`] on SQLite (migration 0007).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{Sqlite, tenant_from_row};
use crate::domain::{Micros, Tenant, TenantId};
use crate::meta::MetaResult;
use crate::meta::session::SessionStore;

#[async_trait]
impl SessionStore for Sqlite {
    async fn tenant_session(&self, id: TenantId) -> MetaResult<Option<(Tenant, i64)>> {
        // Every authenticated request: on a reader, never queued behind writes.
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, username, session_epoch FROM tenants WHERE id = ?1",
                params![id.0],
                |r| Ok((tenant_from_row(r)?, r.get(2)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn tenant_login(&self, name: &str) -> MetaResult<Option<(Tenant, String, i64)>> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, username, password_hash, session_epoch FROM tenants
                  WHERE username = ?1",
                params![name],
                |r| Ok((tenant_from_row(r)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn end_sessions(&self, id: TenantId) -> MetaResult<Option<i64>> {
        self.with(move |c| {
            Ok(c.query_row(
                "UPDATE tenants SET session_epoch = session_epoch + 1 WHERE id = ?1
                 RETURNING session_epoch",
                params![id.0],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn record_login(&self, id: TenantId, at: Micros) -> MetaResult<()> {
        self.with(move |c| {
            c.execute(
                "UPDATE tenants SET last_login_at = ?2 WHERE id = ?1",
                params![id.0, at],
            )?;
            Ok(())
        })
        .await
    }
}
