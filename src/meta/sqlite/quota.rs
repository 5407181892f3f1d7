//! [`QuotaStore`] on SQLite (migration 0004). A reservation is one `IMMEDIATE` transaction:
//! SQLite has one writer at a time, so the check and the grant are atomic.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Sqlite;
use crate::domain::{BlobKey, Micros, TenantId, TenantName};
use crate::meta::MetaResult;
use crate::meta::quota::{Defaults, Limit, QuotaStore, Reserved, TenantQuota, Usage, grant};

fn quota_of(c: &Connection, tenant: i64) -> rusqlite::Result<Option<TenantQuota>> {
    c.query_row(
        "SELECT quota_bytes, quota_files FROM tenants WHERE id = ?1",
        params![tenant],
        |r| {
            Ok(TenantQuota {
                bytes: Limit::from_db(r.get(0)?),
                files: Limit::from_db(r.get(1)?),
            })
        },
    )
    .optional()
}

fn usage_of(c: &Connection, tenant: i64, now: Micros) -> rusqlite::Result<Usage> {
    let (files, bytes): (i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM files
          WHERE tenant_id = ?1 AND deleted_at IS NULL AND (expire_at IS NULL OR expire_at > ?2)",
        params![tenant, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (rfiles, rbytes): (i64, i64) = c.query_row(
        "SELECT coalesce(sum(files), 0), coalesce(sum(bytes), 0) FROM quota_reservations
          WHERE tenant_id = ?1",
        params![tenant],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // Unfinished resumable uploads without a reservation (no quota applied when they were
    // created) still hold their declared length.
    let (tfiles, tbytes): (i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(upload_length), 0) FROM tus_uploads
          WHERE tenant_id = ?1 AND expires_at > ?2
            AND blob_key NOT IN (SELECT blob_key FROM quota_reservations)",
        params![tenant, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Usage {
        files: files as u64,
        bytes: bytes as u64,
        reserved_files: (rfiles + tfiles) as u64,
        reserved_bytes: (rbytes + tbytes) as u64,
    })
}

#[async_trait]
impl QuotaStore for Sqlite {
    async fn tenant_quota(&self, name: &TenantName) -> MetaResult<Option<TenantQuota>> {
        let name = name.as_str().to_owned();
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT quota_bytes, quota_files FROM tenants WHERE username = ?1",
                params![name],
                |r| {
                    Ok(TenantQuota {
                        bytes: Limit::from_db(r.get(0)?),
                        files: Limit::from_db(r.get(1)?),
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn set_tenant_quota(
        &self,
        name: &TenantName,
        bytes: Option<Limit>,
        files: Option<Limit>,
    ) -> MetaResult<bool> {
        let name = name.as_str().to_owned();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut found = tx.query_row(
                "SELECT count(*) FROM tenants WHERE username = ?1",
                params![name],
                |r| r.get::<_, i64>(0),
            )? == 1;
            if let Some(b) = bytes {
                found &= tx.execute(
                    "UPDATE tenants SET quota_bytes = ?2 WHERE username = ?1",
                    params![name, b.to_db()],
                )? == 1;
            }
            if let Some(f) = files {
                found &= tx.execute(
                    "UPDATE tenants SET quota_files = ?2 WHERE username = ?1",
                    params![name, f.to_db()],
                )? == 1;
            }
            tx.commit()?;
            Ok(found)
        })
        .await
    }

    async fn usage(&self, tenant: TenantId, now: Micros) -> MetaResult<(Usage, TenantQuota)> {
        self.with(move |c| {
            let q = quota_of(c, tenant.0)?.unwrap_or(TenantQuota {
                bytes: Limit::Default,
                files: Limit::Default,
            });
            Ok((usage_of(c, tenant.0, now)?, q))
        })
        .await
    }

    async fn reserve(
        &self,
        tenant: TenantId,
        key: &BlobKey,
        at_least: u64,
        want: u64,
        defaults: Defaults,
        now: Micros,
    ) -> MetaResult<Reserved> {
        let key = key.as_str().to_owned();
        self.with(move |c| {
            // Most tenants have no limit: tell that from a plain read, without taking SQLite's
            // write lock on every upload. (A limit set meanwhile applies to later uploads.)
            let unlimited = |q: &TenantQuota| {
                q.bytes.resolve(defaults.bytes).is_none()
                    && q.files.resolve(defaults.files).is_none()
            };
            if quota_of(c, tenant.0)?.is_some_and(|q| unlimited(&q)) {
                return Ok(Reserved::Unlimited);
            }
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(q) = quota_of(&tx, tenant.0)? else {
                return Ok(Reserved::Exceeded);
            };
            let (max_bytes, max_files) = (
                q.bytes.resolve(defaults.bytes),
                q.files.resolve(defaults.files),
            );
            if max_bytes.is_none() && max_files.is_none() {
                return Ok(Reserved::Unlimited);
            }
            let held: Option<i64> = tx
                .query_row(
                    "SELECT bytes FROM quota_reservations WHERE blob_key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()?;
            let usage = usage_of(&tx, tenant.0, now)?;
            let Some(more) = grant(&usage, held.is_none(), at_least, want, max_bytes, max_files)
            else {
                return Ok(Reserved::Exceeded);
            };
            let total = held.unwrap_or(0) as u64 + more;
            tx.execute(
                "INSERT INTO quota_reservations (blob_key, tenant_id, bytes, files, created_at)
                 VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (blob_key) DO UPDATE SET bytes = excluded.bytes",
                params![key, tenant.0, total as i64, now],
            )?;
            tx.commit()?;
            Ok(Reserved::Held(total))
        })
        .await
    }

    async fn release(&self, key: &BlobKey) -> MetaResult<()> {
        let key = key.as_str().to_owned();
        self.batched(move |c| {
            c.prepare_cached("DELETE FROM quota_reservations WHERE blob_key = ?1")?
                .execute(params![key])?;
            Ok(())
        })
        .await
    }

    async fn release_orphaned(&self, before: Micros) -> MetaResult<u64> {
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM quota_reservations WHERE created_at < ?1
                   AND blob_key NOT IN (SELECT blob_key FROM upload_intents)
                   AND blob_key NOT IN (SELECT blob_key FROM tus_uploads)",
                params![before],
            )? as u64)
        })
        .await
    }

    async fn oldest_reservation(&self, tenant: TenantId) -> MetaResult<Option<String>> {
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT blob_key FROM quota_reservations WHERE tenant_id = ?1
                 ORDER BY created_at, blob_key LIMIT 1",
                params![tenant.0],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }
}
