//! Several statements in one transaction on SQLite (for `meta::sql::seed`'s import): one
//! `IMMEDIATE` transaction on the writer.

use async_trait::async_trait;
use rusqlite::TransactionBehavior;

use super::Sqlite;
use crate::meta::MetaResult;
use crate::meta::sql::seed::Chain;
use crate::meta::sql::{Arg, Sql, sqlite_text};

#[async_trait]
impl Chain for Sqlite {
    async fn chain(&self, steps: Vec<(Sql, Vec<Arg>)>) -> MetaResult<Vec<u64>> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut changed = Vec::new();
            for (sql, args) in &steps {
                if changed.last() == Some(&0) {
                    break;
                }
                let mut st = tx.prepare_cached(&sqlite_text(sql))?;
                changed.push(st.execute(rusqlite::params_from_iter(args))? as u64);
            }
            tx.commit()?;
            Ok(changed)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn shared_keys_go_with_the_last_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = super::Sqlite::open(&dir.path().join("m.db"))
            .await
            .expect("open");
        crate::meta::MetaBackend::migrate(&db)
            .await
            .expect("migrate");
        crate::meta::seed::testing::shared_keys_go_with_the_last_row(&db).await;
    }
}
