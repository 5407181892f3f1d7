//! A quota reservation on SQLite (the rest of [`QuotaStore`](crate::meta::quota::QuotaStore)
//! is `meta::sql::quota`'s): one `IMMEDIATE` transaction; SQLite has one writer at a time, so
//! the check and the grant are atomic.

use async_trait::async_trait;
use rusqlite::TransactionBehavior;

use super::Sqlite;
use super::sql::run;
use crate::meta::MetaResult;
use crate::meta::quota::Reserved;
use crate::meta::sql::quota::{HOLD, QuotaHold, Reserve, STATE};

#[async_trait]
impl QuotaHold for Sqlite {
    async fn hold(&self, r: Reserve) -> MetaResult<Reserved> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (out, hold) = r.decide(&run(&tx, STATE, &r.state_args())?)?;
            if let Some(args) = hold {
                run(&tx, HOLD, &args)?;
                tx.commit()?;
            }
            Ok(out)
        })
        .await
    }
}
