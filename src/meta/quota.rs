//! Per-tenant quotas in the metadata store: limits (the config's defaults, overridden per
//! tenant), usage, and *reservations*: bytes and files held by uploads in flight.
//!
//! The invariant: a tenant's live files plus its reservations never exceed its quota, and every
//! byte an upload stores is covered by its reservation before it is stored. A reservation is
//! taken atomically with the check (SQLite: one immediate transaction; PostgreSQL: the tenant's
//! row locked `FOR UPDATE`), so N concurrent uploads cannot together pass the quota. It is
//! released after the upload's file is committed (for a moment both count: a conservative
//! over-count, never an overshoot) or when the upload is given up. Rows left by a crash are
//! removed by gc once neither an upload intent nor a resumable upload names their blob key.
//!
//! A separate trait from [`MetaBackend`](super::MetaBackend) (of which it is a supertrait), with
//! its SQL in `sql/quota.rs` (each store's transaction of a reservation in its own `quota.rs`).

use async_trait::async_trait;

use super::MetaResult;
use crate::domain::{BlobKey, Micros, TenantId, TenantName};

/// One quota setting of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The configured default applies.
    Default,
    /// No limit for this tenant, whatever the default.
    Unlimited,
    /// At most this many.
    Max(u64),
}

impl Limit {
    /// The stored form: NULL, -1, n.
    pub fn to_db(self) -> Option<i64> {
        match self {
            Limit::Default => None,
            Limit::Unlimited => Some(-1),
            Limit::Max(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }

    pub fn from_db(v: Option<i64>) -> Limit {
        match v {
            None => Limit::Default,
            Some(n) if n < 0 => Limit::Unlimited,
            Some(n) => Limit::Max(n as u64),
        }
    }

    /// The limit in force given the configured `default`.
    pub fn resolve(self, default: Option<u64>) -> Option<u64> {
        match self {
            Limit::Default => default,
            Limit::Unlimited => None,
            Limit::Max(n) => Some(n),
        }
    }

    /// `default`, `unlimited` or a number (bytes may carry a K/M/G/T suffix, powers of 1024).
    pub fn parse(s: &str) -> Result<Limit, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => return Ok(Limit::Default),
            "unlimited" | "none" => return Ok(Limit::Unlimited),
            _ => {}
        }
        let t = s.trim();
        let (num, mult) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m: u64 = match c.to_ascii_uppercase() {
                    'K' => 1 << 10,
                    'M' => 1 << 20,
                    'G' => 1 << 30,
                    'T' => 1 << 40,
                    _ => {
                        return Err(format!(
                            "{s:?}: unknown unit {c:?}: use K, M, G or T (powers of 1024; e.g. \
                             500M, 1.5G)"
                        ));
                    }
                };
                (&t[..i], m)
            }
            _ => (t, 1),
        };
        let expected = || {
            format!(
                "{s:?}: expected a number of bytes with an optional K, M, G or T suffix (powers \
                 of 1024; e.g. 500M, 1.5G, 2T), `unlimited` or `default`"
            )
        };
        let num = num.trim();
        if num.contains('.') && mult > 1 {
            // A fraction of a unit (`1.5G`): whole bytes, rounded down.
            let x: f64 = num.parse().map_err(|_| expected())?;
            if !x.is_finite() || x < 0.0 || x * mult as f64 >= 2f64.powi(62) {
                return Err(expected());
            }
            return Ok(Limit::Max((x * mult as f64) as u64));
        }
        let n: u64 = num.parse().map_err(|_| expected())?;
        n.checked_mul(mult)
            .map(Limit::Max)
            .ok_or_else(|| format!("{s:?}: too large"))
    }
}

/// A tenant's quota settings as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantQuota {
    pub bytes: Limit,
    pub files: Limit,
}

/// What a tenant stores now, and what its uploads in flight hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live files (not deleted, not expired).
    pub files: u64,
    pub bytes: u64,
    pub reserved_files: u64,
    pub reserved_bytes: u64,
}

/// The configured defaults, passed to [`QuotaStore::reserve`] so that it resolves the
/// tenant's limits under the same lock as the check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defaults {
    pub bytes: Option<u64>,
    pub files: Option<u64>,
}

/// The answer to a reservation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// The tenant has no limit at all: nothing was recorded, and nothing need be.
    Unlimited,
    /// This many bytes are now held for the key (in total, with earlier grants).
    Held(u64),
    /// Not even the minimum asked for fits.
    Exceeded,
}

#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// `None` if there is no such tenant.
    async fn tenant_quota(&self, name: &TenantName) -> MetaResult<Option<TenantQuota>>;
    /// Change the given settings; false if there is no such tenant.
    async fn set_tenant_quota(
        &self,
        name: &TenantName,
        bytes: Option<Limit>,
        files: Option<Limit>,
    ) -> MetaResult<bool>;
    /// The tenant's usage, its settings included.
    async fn usage(&self, tenant: TenantId, now: Micros) -> MetaResult<(Usage, TenantQuota)>;
    /// Hold more bytes for the upload `key` (the first call for a key also holds one file):
    /// up to `want` more bytes, at least `at_least`, if the tenant's live files plus every
    /// reservation stay within its limits. Atomic with the check.
    #[allow(clippy::too_many_arguments)] // reason: one request, named at the call
    async fn reserve(
        &self,
        tenant: TenantId,
        key: &BlobKey,
        at_least: u64,
        want: u64,
        defaults: Defaults,
        now: Micros,
    ) -> MetaResult<Reserved>;
    /// Drop the reservation of `key` (no-op if there is none).
    async fn release(&self, key: &BlobKey) -> MetaResult<()>;
    /// Drop reservations older than `before` that no upload intent or resumable upload names
    /// (left by a crash); returns how many.
    async fn release_orphaned(&self, before: Micros) -> MetaResult<u64>;
    /// The blob key of the tenant's oldest reservation, if any.
    async fn oldest_reservation(&self, tenant: TenantId) -> MetaResult<Option<String>>;
}

/// Whether `usage` plus `bytes` more bytes and `files` more files fits the limits.
pub fn fits(
    usage: &Usage,
    bytes: u64,
    files: u64,
    max_bytes: Option<u64>,
    max_files: Option<u64>,
) -> bool {
    let b = usage
        .bytes
        .saturating_add(usage.reserved_bytes)
        .saturating_add(bytes);
    let f = usage
        .files
        .saturating_add(usage.reserved_files)
        .saturating_add(files);
    max_bytes.is_none_or(|m| b <= m) && max_files.is_none_or(|m| f <= m)
}

/// The grant for a reservation request: the most of `want` (at least `at_least`) that fits.
pub fn grant(
    usage: &Usage,
    new_file: bool,
    at_least: u64,
    want: u64,
    max_bytes: Option<u64>,
    max_files: Option<u64>,
) -> Option<u64> {
    let files = u64::from(new_file);
    if !fits(usage, at_least, files, max_bytes, max_files) {
        return None;
    }
    let room = match max_bytes {
        None => want,
        Some(m) => m.saturating_sub(usage.bytes.saturating_add(usage.reserved_bytes)),
    };
    Some(want.min(room).max(at_least))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_units_and_words() {
        assert_eq!(Limit::parse("10G"), Ok(Limit::Max(10 << 30)));
        assert_eq!(Limit::parse("512"), Ok(Limit::Max(512)));
        assert_eq!(Limit::parse("unlimited"), Ok(Limit::Unlimited));
        assert_eq!(Limit::parse("default"), Ok(Limit::Default));
        assert!(Limit::parse("10X").is_err());
        assert!(Limit::parse("-3").is_err());
        assert_eq!(Limit::parse("1.5G"), Ok(Limit::Max(3 << 29)));
        assert_eq!(Limit::parse("0.5k"), Ok(Limit::Max(512)));
        let e = Limit::parse("1.5").expect_err("a fraction of a byte");
        assert!(e.contains("K, M, G or T") && e.contains("1.5G"), "{e}");
        assert!(Limit::parse("-1.5G").is_err());
        for l in [Limit::Default, Limit::Unlimited, Limit::Max(7)] {
            assert_eq!(Limit::from_db(l.to_db()), l);
        }
        assert_eq!(Limit::Default.resolve(Some(5)), Some(5));
        assert_eq!(Limit::Unlimited.resolve(Some(5)), None);
    }

    #[test]
    fn grants_never_pass_the_limit() {
        let u = Usage {
            files: 1,
            bytes: 60,
            reserved_files: 1,
            reserved_bytes: 30,
        };
        assert_eq!(grant(&u, true, 0, 100, Some(100), None), Some(10));
        assert_eq!(grant(&u, false, 10, 100, Some(100), None), Some(10));
        assert_eq!(grant(&u, false, 11, 100, Some(100), None), None);
        assert_eq!(
            grant(&u, true, 0, 5, Some(100), Some(2)),
            None,
            "file count"
        );
        assert_eq!(grant(&u, false, 0, 5, Some(100), Some(2)), Some(5));
        assert_eq!(grant(&u, true, 3, 50, None, None), Some(50));
    }
}
