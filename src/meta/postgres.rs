//! PostgreSQL metadata store (tokio-postgres behind a deadpool pool).
//!
//! The same rows and rules as the SQLite store, so several mtfu nodes can share one database.
//! Every call is bounded in time: getting a connection by `connect_timeout_secs`, each statement
//! by the server's `statement_timeout`, and the whole call by both, on the client's side too, so a
//! database that is down, restarting or silent answers `MetaError::Unavailable` instead of
//! hanging. Pooled connections are checked before reuse, so the pool heals by itself once the
//! database is back, or after its backends were killed.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::page::SeedPage;
use super::sql::{Commit, Counted, Dialect, Listing, Native, NewTenant};
use super::{MetaError, MetaResult, Reaped};
use crate::domain::{BlobKey, FileRecord, Micros, TenantId};

mod commit;
mod conn;
mod listing;
mod migrate;
mod names;
mod quota;
mod seed;
mod shared;
mod sql;
mod tenants;
#[cfg(test)]
mod tests;
mod tus;

pub use conn::{describe, with_dbname};
use sql::{Param, as_i64, as_u64, is_unique_violation, param, params};

/// Commits of one (tenant, resource, resource_id, name) queue on a transaction advisory lock
/// of this class (two-key advisory locks never meet the one-key migration lock), keyed by a hash
/// of the name: each then finds the row the one before it committed, and replaces it. A hash
/// collision only makes two unrelated commits wait for each other.
const COMMIT_LOCK_CLASS: i32 = 0x6d74_6675;

/// A commit that still meets `files_live_key` (it cannot while the lock above holds) is retried
/// this many times in all before the conflict is returned.
const COMMIT_ATTEMPTS: usize = 3;

pub struct Postgres {
    pool: Pool,
    /// Longest wait for a connection (waiting for a free one, then opening a new one).
    get_timeout: Duration,
    /// Longest time one call may use its connection before the connection is dropped.
    call_timeout: Duration,
}

#[async_trait]
impl Native for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn run_migrations(&self) -> MetaResult<usize> {
        migrate::migrate(self).await
    }

    async fn insert_tenant(&self, t: NewTenant) -> MetaResult<TenantId> {
        self.with(move |c| {
            Box::pin(async move { names::create_tenant(c, &t.name, &t.key, &t.hash).await })
        })
        .await
    }

    async fn delete_tenant(&self, name: String) -> MetaResult<bool> {
        tenants::remove_tenant(self, name).await
    }

    async fn commit(&self, c: Commit) -> MetaResult<(FileRecord, Option<BlobKey>)> {
        let Commit {
            tenant,
            file,
            now,
            claim,
        } = c;
        self.with(move |c| {
            Box::pin(async move {
                let mut attempt = 1;
                let (id, old_key) = loop {
                    match commit::commit_once(c, &tenant, &file, now, &claim).await {
                        Ok(Some(done)) => break done,
                        Ok(None) => return Err(MetaError::Gone(file.blob_key.as_str().to_owned())),
                        // Both saw no live row; the other one is committed now, so the next
                        // attempt finds and replaces it. (The name's lock prevents this; kept
                        // as a safety net.)
                        Err(e) if is_unique_violation(&e) && attempt < COMMIT_ATTEMPTS => {
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                let record = crate::meta::sql::committed(&tenant, file, id, now);
                Ok((record, old_key.and_then(|k| BlobKey::from_stored(&k))))
            })
        })
        .await
    }

    async fn snapshot_page(&self, l: Listing, page: SeedPage) -> MetaResult<Counted> {
        self.with(move |c| Box::pin(async move { listing::snapshot_page(c, &l, page).await }))
            .await
    }

    async fn reap(&self, before: (Micros, Micros)) -> MetaResult<Reaped> {
        self.with(move |c| {
            Box::pin(async move {
                let reaped = shared::reap(c, before.0, before.1).await?;
                listing::fold_counts(&*c).await?;
                Ok(reaped)
            })
        })
        .await
    }
}
