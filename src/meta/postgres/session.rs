//! [`SessionStore`] on PostgreSQL (migration 0007).

use async_trait::async_trait;

use super::{Postgres, tenant_from_row};
use crate::domain::{Micros, Tenant, TenantId};
use crate::meta::MetaResult;
use crate::meta::session::SessionStore;

#[async_trait]
impl SessionStore for Postgres {
    async fn tenant_session(&self, id: TenantId) -> MetaResult<Option<(Tenant, i64)>> {
        self.with(move |c| {
            Box::pin(async move {
                // Every authenticated request asks: prepared once per connection.
                let st = c
                    .prepare_cached("SELECT id, username, session_epoch FROM tenants WHERE id = $1")
                    .await?;
                let row = c.query_opt(&st, &[&id.0]).await?;
                match row {
                    Some(r) => Ok(Some((tenant_from_row(&r)?, r.try_get(2)?))),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn tenant_login(&self, name: &str) -> MetaResult<Option<(Tenant, String, i64)>> {
        let name = name.to_owned();
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT id, username, password_hash, session_epoch FROM tenants
                          WHERE username = $1",
                        &[&name],
                    )
                    .await?;
                match row {
                    Some(r) => Ok(Some((tenant_from_row(&r)?, r.try_get(2)?, r.try_get(3)?))),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn end_sessions(&self, id: TenantId) -> MetaResult<Option<i64>> {
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "UPDATE tenants SET session_epoch = session_epoch + 1 WHERE id = $1
                         RETURNING session_epoch",
                        &[&id.0],
                    )
                    .await?;
                row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
            })
        })
        .await
    }

    async fn record_login(&self, id: TenantId, at: Micros) -> MetaResult<()> {
        self.with(move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE tenants SET last_login_at = $2 WHERE id = $1",
                    &[&id.0, &at],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
