//! Several statements in one transaction on PostgreSQL (for `meta::sql::seed`'s import).

use async_trait::async_trait;

use super::{Param, Postgres, param, params};
use crate::meta::MetaResult;
use crate::meta::sql::seed::Chain;
use crate::meta::sql::{Arg, Sql};

#[async_trait]
impl Chain for Postgres {
    async fn chain(&self, steps: Vec<(Sql, Vec<Arg>)>) -> MetaResult<Vec<u64>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let mut changed: Vec<u64> = Vec::new();
                for (sql, args) in steps {
                    if changed.last() == Some(&0) {
                        break;
                    }
                    let args: Vec<Param> = args.into_iter().map(param).collect();
                    let st = tx.prepare_cached(&sql).await?;
                    changed.push(tx.execute(&st, &params(&args)).await?);
                }
                tx.commit().await?;
                Ok(changed)
            })
        })
        .await
    }
}
