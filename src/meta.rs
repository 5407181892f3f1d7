//! The metadata store: tenants, file rows, upload intents, garbage and the refresh-token
//! blacklist.
//!
//! [`MetaBackend`] is the object-safe trait an implementation provides; [`Meta`] is the cloneable
//! handle the rest of the server holds. Every method that reads or changes files takes the tenant
//! it acts for: visibility (own files plus public ones) is a rule inside the query, never a bypass.

pub mod fsck;
pub mod page;
pub mod postgres;
pub mod quota;
pub mod seed;
pub mod session;
pub(crate) mod sql;
pub mod sqlite;
pub mod tus;

use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Config, MetadataBackend};
use crate::domain::{
    BlobKey, FileId, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantId,
    TenantName,
};

/// What a metadata store can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    /// The store cannot be reached or did not answer in time; retrying later may work.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// A unique value (tenant name) is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// Anything else: a bug, a corrupted row, a failed migration.
    #[error("metadata store error: {0}")]
    Internal(String),
    /// The upload a commit would make a file was given up first (its intent or resumable upload
    /// was taken by a clean-up, gc or its tenant's removal): nothing was committed.
    #[error("the upload was given up before its commit: {0}")]
    Gone(String),
}

/// What a commit consumes in its transaction, and fails without: the proof that nobody gave the
/// upload up meanwhile (DESIGN.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The upload intent of the file's blob key.
    Intent,
    /// The resumable upload `id`, still leased to `token`.
    Tus { id: String, token: String },
}

pub type MetaResult<T> = Result<T, MetaError>;

/// The refusal of `name` because `other` exists: the same name, or one that looks like it.
pub(crate) fn name_taken(name: &str, other: &str) -> MetaError {
    if name == other {
        MetaError::Conflict(format!("tenant {name}"))
    } else {
        MetaError::Conflict(format!("tenant {name} looks like tenant {other}, which"))
    }
}

/// A database migrated by a newer mtfu (a rolled-back binary) is refused rather than used: this
/// binary cannot know what the newer migrations changed.
fn refuse_newer_schema(newest: Option<i64>, known: &[(i64, &str, &str)]) -> MetaResult<()> {
    let ours = known.iter().map(|m| m.0).max().unwrap_or(0);
    match newest {
        Some(v) if v > ours => Err(MetaError::Internal(format!(
            "the database schema is at migration {v}, newer than this mtfu knows (up to {ours}); \
             run the newer mtfu, or restore the backup taken before the upgrade"
        ))),
        _ => Ok(()),
    }
}

/// Optional filters of a listing; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub tenant_username: Option<String>,
}

impl ListFilter {
    /// The filters of a listing's query (`get` answers a parameter, absent or empty being no
    /// filter), or `None` when one of them can match no file: a value that no resource,
    /// resource id or tenant name can be (a control character, a NUL that PostgreSQL cannot
    /// even compare, a `/`, too long). Such a listing is empty, and no store is asked.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Option<ListFilter> {
        use crate::domain::{Resource, ResourceId, TenantName};
        fn check<T, E>(
            v: Option<String>,
            parse: impl Fn(&str) -> Result<T, E>,
        ) -> Option<Option<String>> {
            match v {
                Some(v) => parse(&v).ok().map(|_| Some(v)),
                None => Some(None),
            }
        }
        Some(ListFilter {
            resource: check(get("resource"), Resource::parse)?,
            resource_id: check(get("resource_id"), ResourceId::parse)?,
            tenant_username: check(get("tenant_username"), TenantName::parse)?,
        })
    }
}

/// Where a keyset listing stopped: the sort key `(name, tenant username, id)` of the last file
/// of a page. Clients see it only as the opaque string of [`encode`](ListCursor::encode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub name: String,
    pub tenant_username: String,
    pub id: String,
}

/// Longest encoded cursor accepted: far above any real one (names and ids are bounded), so a
/// client cannot make the server decode megabytes.
const MAX_CURSOR_LEN: usize = 4096;

impl ListCursor {
    /// The cursor just after `file`.
    pub fn of(file: &FileRecord) -> ListCursor {
        ListCursor {
            name: file.name.clone(),
            tenant_username: file.tenant_username.clone(),
            id: file.id.clone(),
        }
    }

    /// URL-safe base64 (no padding) of the JSON array `[name, tenant_username, id]`.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let json = serde_json::json!([self.name, self.tenant_username, self.id]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    /// The cursor `s` encodes; `None` for anything [`encode`](ListCursor::encode) cannot have
    /// produced.
    pub fn decode(s: &str) -> Option<ListCursor> {
        use base64::Engine;
        if s.len() > MAX_CURSOR_LEN {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let (name, tenant_username, id) =
            serde_json::from_slice::<(String, String, String)>(&bytes).ok()?;
        // No name, tenant name or id holds a control character; a NUL would fail PostgreSQL.
        if [&name, &tenant_username, &id]
            .iter()
            .any(|s| s.chars().any(char::is_control))
        {
            return None;
        }
        Some(ListCursor {
            name,
            tenant_username,
            id,
        })
    }
}

/// A tenant as `mtfu tenant list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    pub tenant: Tenant,
    pub created_at: Micros,
    /// The last successful password login; `None` before the first.
    pub last_login_at: Option<Micros>,
}

/// What `gc` found and removed from the metadata store in one sweep of file rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub deleted: u64,
    pub expired: u64,
}

#[async_trait]
pub trait MetaBackend:
    tus::TusStore
    + quota::QuotaStore
    + fsck::FsckStore
    + session::SessionStore
    + seed::SeedStore
    + Send
    + Sync
{
    /// Apply the migrations not yet applied, in order; returns how many ran.
    async fn migrate(&self) -> MetaResult<usize>;
    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> MetaResult<()>;
    /// Writes waiting for the store's single write connection or running on it (SQLite);
    /// 0 for a store without such a queue. For tests and diagnostics.
    fn writes_queued(&self) -> usize {
        0
    }
    /// Group commits so far (batches, the writes in them, the largest batch), for tests and
    /// diagnostics; `None` for a store that commits each write on its own.
    fn group_commits(&self) -> Option<(u64, u64, u64)> {
        None
    }

    async fn create_tenant(&self, name: &TenantName, password_hash: &str) -> MetaResult<TenantId>;
    /// The tenant and its password hash.
    async fn tenant_by_name(&self, name: &str) -> MetaResult<Option<(Tenant, String)>>;
    async fn tenant_by_id(&self, id: TenantId) -> MetaResult<Option<Tenant>>;
    /// Every tenant, by name, with when it was created and last logged in.
    async fn list_tenants(&self) -> MetaResult<Vec<TenantEntry>>;
    /// Remove a tenant; the blobs of its files go to the garbage table. False if there was none.
    async fn remove_tenant(&self, name: &TenantName) -> MetaResult<bool>;
    /// Set the password and end every session issued until now (the session epoch rises).
    async fn set_password(&self, name: &TenantName, password_hash: &str) -> MetaResult<bool>;

    /// Record that `key` is about to be written for `tenant` (before its first byte), leased
    /// until `lease_until`.
    async fn record_intent(
        &self,
        tenant: &Tenant,
        key: &BlobKey,
        now: Micros,
        lease_until: Micros,
    ) -> MetaResult<()>;
    /// Extend the lease of the intent of `key` to `until`. False: the intent is gone (gc, or
    /// the tenant's removal, took it), and the upload must stop.
    async fn renew_intent(&self, key: &BlobKey, until: Micros) -> MetaResult<bool>;
    /// Take the intent of `key` away. True when this call removed it: then, and only then, the
    /// caller owns the blob and may delete it (false: a commit or gc took it first).
    async fn drop_intent(&self, key: &BlobKey) -> MetaResult<bool>;
    /// In one transaction: consume `claim` (failing with [`MetaError::Gone`] and committing
    /// nothing when it is gone), replace the live file with the same (tenant, resource,
    /// resource_id, name), moving the replaced blob to garbage, and insert the new row.
    /// Returns the new record and the replaced blob key, if any.
    async fn commit_file(
        &self,
        tenant: &Tenant,
        file: NewFile,
        now: Micros,
        claim: Claim,
    ) -> MetaResult<(FileRecord, Option<BlobKey>)>;

    /// How many files `viewer` sees through `filter` (own plus public, live, not expired).
    async fn count_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
    ) -> MetaResult<u64>;
    /// One page of those files, ordered by name (then owner, then id).
    async fn list_files(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        offset: u64,
        limit: u64,
    ) -> MetaResult<Vec<FileRecord>>;
    /// The seed's page format in one snapshot: how many files `viewer` sees through `filter`,
    /// and the page `page` picks among them (Django's rules, [`page::SeedPage`]).
    async fn list_page(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        page: page::SeedPage,
    ) -> MetaResult<(u64, Vec<FileRecord>)>;
    /// The next `limit` files `viewer` sees through `filter`, strictly after `after` (from the
    /// first when `None`), in the order of [`list_files`](MetaBackend::list_files): keyset
    /// pagination, whose cost does not grow with the depth of the page.
    async fn list_files_after(
        &self,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
        after: Option<&ListCursor>,
        limit: u64,
    ) -> MetaResult<Vec<FileRecord>>;
    /// A live file owned by `owner` (signed download links carry the owner, verified by HMAC).
    async fn owned_file(
        &self,
        owner: TenantId,
        id: &str,
        now: Micros,
    ) -> MetaResult<Option<FileRecord>>;
    /// Soft-delete the tenant's own files of one resource; returns how many.
    async fn delete_files(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        now: Micros,
    ) -> MetaResult<u64>;

    /// Record a used refresh token. False when it was already there (reuse).
    async fn blacklist_refresh(&self, jti: &str, expires_at: Micros) -> MetaResult<bool>;

    /// Move the blobs of files deleted before `deleted_before` or expired before
    /// `expired_before` to garbage and remove their rows.
    async fn reap_files(
        &self,
        deleted_before: Micros,
        expired_before: Micros,
    ) -> MetaResult<Reaped>;
    async fn garbage(&self, limit: u64) -> MetaResult<Vec<BlobKey>>;
    async fn forget_garbage(&self, key: &BlobKey) -> MetaResult<()>;
    /// Intents whose lease ran out before `now` (read only: a dry run, fsck).
    async fn stale_intents(&self, now: Micros) -> MetaResult<Vec<BlobKey>>;
    /// Remove up to `limit` intents whose lease ran out before `now`, in the statement that
    /// selects them, and return their keys: the caller owns those blobs now.
    async fn take_stale_intents(&self, now: Micros, limit: u64) -> MetaResult<Vec<BlobKey>>;
    /// Whether any file row, intent or garbage row names `key`.
    async fn key_known(&self, key: &BlobKey) -> MetaResult<bool>;
    async fn purge_blacklist(&self, now: Micros) -> MetaResult<u64>;

    // The v2 file routes and signed-link revocation.

    /// A live (not deleted, not expired) file `viewer` may see by id: its own, or any tenant's
    /// public one. Another tenant's private file is `None`, exactly like a missing one.
    async fn visible_file(
        &self,
        viewer: &Tenant,
        id: &FileId,
        now: Micros,
    ) -> MetaResult<Option<FileRecord>>;
    /// Soft-delete one live file of `tenant`'s own; its blob key, or `None` when the tenant has
    /// no such live file (another tenant's, public or not, included).
    async fn delete_file(
        &self,
        tenant: &Tenant,
        id: &FileId,
        now: Micros,
    ) -> MetaResult<Option<BlobKey>>;
    /// [`delete_files`](MetaBackend::delete_files), returning the blob keys of the files it
    /// soft-deleted.
    async fn delete_files_returning(
        &self,
        tenant: &Tenant,
        resource: &Resource,
        resource_id: &ResourceId,
        now: Micros,
    ) -> MetaResult<Vec<BlobKey>>;
    /// Revoke every signed `/dl/...` link of `tenant` issued before `at` (microseconds). The
    /// revocation point never moves back; returns the one now in force, or `None` when there is
    /// no such tenant.
    async fn revoke_urls(&self, tenant: TenantId, at: Micros) -> MetaResult<Option<Micros>>;
    /// The tenant's revocation point (0 when it never revoked), `None` when there is no such
    /// tenant.
    async fn urls_revoked_before(&self, tenant: TenantId) -> MetaResult<Option<Micros>>;
}

/// Cloneable handle to the configured metadata store.
#[derive(Clone)]
pub struct Meta(Arc<dyn MetaBackend>);

impl Meta {
    pub fn new(backend: Arc<dyn MetaBackend>) -> Self {
        Self(backend)
    }

    /// Open the configured store (creating it if needed). Does not migrate.
    pub async fn open(cfg: &Config) -> MetaResult<Meta> {
        match cfg.metadata.backend {
            MetadataBackend::Sqlite => {
                let db =
                    sqlite::Sqlite::open_with(&cfg.sqlite_path(), &cfg.metadata.sqlite).await?;
                Ok(Meta(Arc::new(db)))
            }
            MetadataBackend::Postgres => {
                let db = postgres::Postgres::open(&cfg.metadata.postgres)?;
                Ok(Meta(Arc::new(db)))
            }
        }
    }

    /// A short name for logs and `mtfu serve`'s banner.
    pub fn describe(cfg: &Config) -> String {
        match cfg.metadata.backend {
            MetadataBackend::Sqlite => format!("sqlite ({})", cfg.sqlite_path().display()),
            MetadataBackend::Postgres => {
                format!("postgres ({})", postgres::describe(&cfg.metadata.postgres))
            }
        }
    }
}

impl Deref for Meta {
    type Target = dyn MetaBackend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

#[cfg(test)]
mod tests {
    use super::ListCursor;

    #[test]
    fn cursor_round_trips_through_its_encoding() {
        let c = ListCursor {
            name: "r\u{e9}sum\u{e9} \"final\"/v2+.pdf".into(),
            tenant_username: "john1".into(),
            id: "0190a6b1c2d37e8f9a0b1c2d3e4f5a6b".into(),
        };
        let s = c.encode();
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{s}"
        );
        assert_eq!(ListCursor::decode(&s), Some(c));
    }

    #[test]
    fn filters_no_stored_value_can_equal_match_nothing() {
        use super::ListFilter;
        let q =
            |k: &'static str, v: &'static str| move |key: &str| (key == k).then(|| v.to_owned());
        for (k, v) in [
            ("resource", "a\u{0}"),
            ("resource_id", "a/b"),
            ("tenant_username", "john\u{0}1"),
            ("tenant_username", "john 1"),
        ] {
            assert!(ListFilter::from_query(q(k, v)).is_none(), "{k}={v:?}");
        }
        let f = ListFilter::from_query(q("tenant_username", "john1")).expect("a filter");
        assert_eq!(f.tenant_username.as_deref(), Some("john1"));
        assert_eq!(f.resource, None);
    }

    #[test]
    fn garbage_cursors_decode_to_none() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for bad in [
            String::new(),
            "not a cursor!".into(),
            "%%%".into(),
            b64("hello"),
            b64("[\"a\",\"b\"]"),
            b64("[\"a\",\"b\",\"c\",\"d\"]"),
            b64("[1,2,3]"),
            b64("{\"name\":\"a\"}"),
            b64("[\"a\\u0000\",\"b\",\"c\"]"),
            b64("[\"a\",\"b\\u0000\",\"c\"]"),
            b64("[\"a\",\"b\",\"\\u0000\"]"),
            "A".repeat(10_000),
        ] {
            assert_eq!(ListCursor::decode(&bad), None, "{bad:?}");
        }
    }
}

/// Checks shared by the stores' unit tests.
#[cfg(test)]
pub(crate) mod testing;
