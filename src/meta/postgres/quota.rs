//! A quota reservation on PostgreSQL (the rest of
//! [`QuotaStore`](crate::meta::quota::QuotaStore) is `meta::sql::quota`'s): the tenant's row
//! locked (`FOR UPDATE`) for the check and the grant, so nodes sharing the database serialise
//! their reservations per tenant.

use async_trait::async_trait;

use super::Postgres;
use super::sql::run;
use crate::meta::MetaResult;
use crate::meta::quota::Reserved;
use crate::meta::sql::args;
use crate::meta::sql::quota::{HOLD, QuotaHold, Reserve, STATE};

#[async_trait]
impl QuotaHold for Postgres {
    async fn hold(&self, r: Reserve) -> MetaResult<Reserved> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let lock = "SELECT id FROM tenants WHERE id = $1 FOR UPDATE";
                run(&tx, lock, args![r.tenant]).await?;
                let (out, hold) = r.decide(&run(&tx, STATE, r.state_args()).await?)?;
                if let Some(args) = hold {
                    run(&tx, HOLD, args).await?;
                    tx.commit().await?;
                }
                Ok(out)
            })
        })
        .await
    }
}
