//! [`QuotaStore`] on either store (migration 0004). A reservation's check and grant are one
//! transaction, which each store takes its own way ([`QuotaHold`]: SQLite one `IMMEDIATE`
//! transaction, PostgreSQL the tenant's row locked `FOR UPDATE`); what it reads and decides is
//! written here once ([`Reserve`]).

use async_trait::async_trait;

use super::{Arg, Exec, On, Row, args, big};
use crate::domain::{BlobKey, Micros, TenantId, TenantName};
use crate::meta::quota::{Defaults, Limit, QuotaStore, Reserved, TenantQuota, Usage, grant};
use crate::meta::{MetaError, MetaResult};

const QUOTA_BY_NAME: &str = "SELECT quota_bytes, quota_files FROM tenants WHERE username = $1";

const QUOTA_BY_ID: &str = "SELECT quota_bytes, quota_files FROM tenants WHERE id = $1";

/// The flags `$2`, `$4` tell a setting not given (kept) from `default` (NULL).
const SET_QUOTA: &str = "UPDATE tenants SET
       quota_bytes = CASE WHEN $2 THEN $3 ELSE quota_bytes END,
       quota_files = CASE WHEN $4 THEN $5 ELSE quota_files END
     WHERE username = $1";

/// In one statement (one snapshot), for tenant `$1` at `$2`: whether it exists, its quota, its
/// live files, its reservations, its unfinished resumable uploads without a reservation (no
/// quota applied when they were created; they still hold their declared length), and the bytes
/// the reservation of key `$3` holds (NULL: none).
pub const STATE: &str = "SELECT t.id IS NOT NULL, t.quota_bytes, t.quota_files,
       f.n, f.bytes, r.files, r.bytes, u.n, u.bytes,
       (SELECT bytes FROM quota_reservations WHERE blob_key = $3)
     FROM (SELECT count(*) AS n, CAST(coalesce(sum(size), 0) AS BIGINT) AS bytes FROM files
            WHERE tenant_id = $1 AND deleted_at IS NULL
              AND (expire_at IS NULL OR expire_at > $2)) f
     CROSS JOIN (SELECT CAST(coalesce(sum(files), 0) AS BIGINT) AS files,
                        CAST(coalesce(sum(bytes), 0) AS BIGINT) AS bytes
                   FROM quota_reservations WHERE tenant_id = $1) r
     CROSS JOIN (SELECT count(*) AS n, CAST(coalesce(sum(upload_length), 0) AS BIGINT) AS bytes
                   FROM tus_uploads WHERE tenant_id = $1 AND expires_at > $2
                    AND blob_key NOT IN (SELECT blob_key FROM quota_reservations)) u
     LEFT JOIN tenants t ON t.id = $1";

/// A reservation's row: `$1` the key, `$2` the tenant, `$3` the bytes it holds, `$4` the time.
pub const HOLD: &str = "INSERT INTO quota_reservations (blob_key, tenant_id, bytes, files,
       created_at) VALUES ($1, $2, $3, 1, $4)
     ON CONFLICT (blob_key) DO UPDATE SET bytes = excluded.bytes";

const RELEASE_ORPHANED: &str = "DELETE FROM quota_reservations WHERE created_at < $1
       AND NOT EXISTS (SELECT 1 FROM upload_intents i
                        WHERE i.blob_key = quota_reservations.blob_key)
       AND NOT EXISTS (SELECT 1 FROM tus_uploads u WHERE u.blob_key = quota_reservations.blob_key)";

fn quota_at(r: &Row, i: usize) -> MetaResult<TenantQuota> {
    Ok(TenantQuota {
        bytes: Limit::from_db(r.opt_int(i)?),
        files: Limit::from_db(r.opt_int(i + 1)?),
    })
}

fn state_row(rows: &[Row]) -> MetaResult<&Row> {
    rows.first()
        .ok_or_else(|| MetaError::Internal("a tenant's usage returned no row".into()))
}

/// The usage in a row of [`STATE`].
fn usage_of(r: &Row) -> MetaResult<Usage> {
    let n = |i| r.int(i).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(Usage {
        files: n(3)?,
        bytes: n(4)?,
        reserved_files: n(5)?.saturating_add(n(7)?),
        reserved_bytes: n(6)?.saturating_add(n(8)?),
    })
}

/// A reservation asked for (see [`QuotaStore::reserve`]).
pub struct Reserve {
    pub tenant: i64,
    pub key: String,
    pub at_least: u64,
    pub want: u64,
    pub defaults: Defaults,
    pub now: Micros,
}

impl Reserve {
    /// The parameters of [`STATE`].
    pub fn state_args(&self) -> Vec<Arg> {
        args![self.tenant, self.now, &self.key]
    }

    /// The outcome, from the rows of [`STATE`] read in the reservation's transaction, and the
    /// parameters of [`HOLD`] when a reservation is to be written.
    pub fn decide(&self, state: &[Row]) -> MetaResult<(Reserved, Option<Vec<Arg>>)> {
        let r = state_row(state)?;
        if !r.flag(0)? {
            return Ok((Reserved::Exceeded, None));
        }
        let q = quota_at(r, 1)?;
        let (max_bytes, max_files) = (
            q.bytes.resolve(self.defaults.bytes),
            q.files.resolve(self.defaults.files),
        );
        if max_bytes.is_none() && max_files.is_none() {
            return Ok((Reserved::Unlimited, None));
        }
        let held = r.opt_int(9)?;
        let usage = usage_of(r)?;
        let new_file = held.is_none();
        let Some(more) = grant(
            &usage,
            new_file,
            self.at_least,
            self.want,
            max_bytes,
            max_files,
        ) else {
            return Ok((Reserved::Exceeded, None));
        };
        let total = u64::try_from(held.unwrap_or(0)).unwrap_or(0) + more;
        let hold = args![&self.key, self.tenant, big(total), self.now];
        Ok((Reserved::Held(total), Some(hold)))
    }
}

/// How a store takes a reservation atomically: in one transaction, [`STATE`], then
/// [`Reserve::decide`], then [`HOLD`] if it says so.
#[async_trait]
pub trait QuotaHold {
    async fn hold(&self, r: Reserve) -> MetaResult<Reserved>;
}

#[async_trait]
impl<E: Exec + QuotaHold> QuotaStore for E {
    async fn tenant_quota(&self, name: &TenantName) -> MetaResult<Option<TenantQuota>> {
        let row = self.query_opt(On::Write, QUOTA_BY_NAME.into(), args![name.as_str()]);
        row.await?.map(|r| quota_at(&r, 0)).transpose()
    }

    async fn set_tenant_quota(
        &self,
        name: &TenantName,
        bytes: Option<Limit>,
        files: Option<Limit>,
    ) -> MetaResult<bool> {
        let args = args![
            name.as_str(),
            bytes.is_some(),
            bytes.and_then(Limit::to_db),
            files.is_some(),
            files.and_then(Limit::to_db),
        ];
        Ok(self.execute(On::Write, SET_QUOTA.into(), args).await? == 1)
    }

    async fn usage(&self, tenant: TenantId, now: Micros) -> MetaResult<(Usage, TenantQuota)> {
        let args = args![tenant.0, now, ""];
        let rows = self.query(On::Write, STATE.into(), args).await?;
        let r = state_row(&rows)?;
        // No such tenant: no usage, the default quota.
        Ok((usage_of(r)?, quota_at(r, 1)?))
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
        // Most tenants have no limit: tell that from a plain read, without a transaction (and
        // SQLite's write lock, or a row lock) on every upload. (A limit set meanwhile applies
        // to later uploads.)
        let plain = self.query_opt(On::Write, QUOTA_BY_ID.into(), args![tenant.0]);
        if let Some(r) = plain.await? {
            let q = quota_at(&r, 0)?;
            if q.bytes.resolve(defaults.bytes).is_none()
                && q.files.resolve(defaults.files).is_none()
            {
                return Ok(Reserved::Unlimited);
            }
        }
        self.hold(Reserve {
            tenant: tenant.0,
            key: key.as_str().to_owned(),
            at_least,
            want,
            defaults,
            now,
        })
        .await
    }

    async fn release(&self, key: &BlobKey) -> MetaResult<()> {
        let sql = "DELETE FROM quota_reservations WHERE blob_key = $1";
        self.execute(On::Batch, sql.into(), args![key.as_str()])
            .await?;
        Ok(())
    }

    async fn release_orphaned(&self, before: Micros) -> MetaResult<u64> {
        let sql = RELEASE_ORPHANED.into();
        self.execute(On::Write, sql, args![before]).await
    }

    async fn oldest_reservation(&self, tenant: TenantId) -> MetaResult<Option<String>> {
        let sql = "SELECT blob_key FROM quota_reservations WHERE tenant_id = $1
                   ORDER BY created_at, blob_key LIMIT 1";
        let row = self.query_opt(On::Write, sql.into(), args![tenant.0]);
        row.await?.map(|r| r.text(0)).transpose()
    }
}
