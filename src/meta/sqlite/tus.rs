//! Creating a resumable upload on SQLite (the rest of [`TusStore`](crate::meta::tus::TusStore)
//! is `meta::sql::tus`'s): one statement, so the tenant's count and the insert cannot be split
//! by another writer.

use async_trait::async_trait;

use super::Sqlite;
use crate::meta::MetaResult;
use crate::meta::sql::tus::{NewTus, TUS_INSERT_COLUMNS, TusCreate, insert_args};
use crate::meta::sql::{Arg, Exec, On};

#[async_trait]
impl TusCreate for Sqlite {
    async fn tus_insert(&self, new: NewTus) -> MetaResult<bool> {
        let mut args = insert_args(&new)?;
        args.push(Arg::Int(new.max_unfinished));
        let sql = format!(
            "INSERT INTO tus_uploads ({TUS_INSERT_COLUMNS})
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16, $19, $17, $18, $15
             WHERE (SELECT count(*) FROM tus_uploads
                     WHERE tenant_id = $2 AND expires_at > $15) < $20"
        );
        Ok(self.execute(On::Write, sql.into(), args).await? == 1)
    }
}
