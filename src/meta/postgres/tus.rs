//! Creating a resumable upload on PostgreSQL (the rest of
//! [`TusStore`](crate::meta::tus::TusStore) is `meta::sql::tus`'s): the tenant's creations one
//! at a time, under an advisory lock, so the count holds until the insert.

use async_trait::async_trait;

use super::{Param, Postgres, param, params};
use crate::meta::MetaResult;
use crate::meta::sql::tus::{NewTus, TUS_INSERT_COLUMNS, TusCreate, insert_args};

/// Advisory lock class of a tenant's tus creations ("tusc" in ASCII).
const TUS_CREATE_LOCK_CLASS: i32 = 0x7475_7363;

#[async_trait]
impl TusCreate for Postgres {
    async fn tus_insert(&self, new: NewTus) -> MetaResult<bool> {
        let args: Vec<Param> = insert_args(&new)?.into_iter().map(param).collect();
        let (tenant, created, max) = (new.up.tenant_id.0, new.up.created_at, new.max_unfinished);
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, $2::INT)",
                    &[&TUS_CREATE_LOCK_CLASS, &(tenant as i32)],
                )
                .await?;
                let n: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM tus_uploads WHERE tenant_id = $1 AND expires_at > $2",
                        &[&tenant, &created],
                    )
                    .await?
                    .try_get(0)?;
                if n >= max {
                    return Ok(false);
                }
                let sql = format!(
                    "INSERT INTO tus_uploads ({TUS_INSERT_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                             $15, $16, $19, $17, $18, $15)"
                );
                tx.execute(sql.as_str(), &params(&args)).await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }
}
