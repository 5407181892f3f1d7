//! What the SQLite store's queries share: the file row's columns and their mapping to
//! `FileRecord` and `Tenant`, the listing's `WHERE` clause and keyset query, blob keys from
//! rows; and how rusqlite's errors become `MetaError`s.

use rusqlite::Row;

use crate::domain::{BlobKey, FileRecord, Micros, Tenant, TenantId, TenantName};
use crate::meta::{ListFilter, MetaError};

pub(super) const FILE_COLUMNS: &str = "f.id, f.tenant_id, t.username, f.resource, f.resource_id, f.name, \
     f.blob_key, f.size, f.content_type, f.sha256, f.is_public, f.expire_at, f.created_at";

pub(super) fn file_from_row(r: &Row<'_>) -> rusqlite::Result<FileRecord> {
    let key: String = r.get(6)?;
    let blob_key = BlobKey::from_stored(&key).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            6,
            rusqlite::types::Type::Text,
            format!("malformed blob key {key:?}").into(),
        )
    })?;
    Ok(FileRecord {
        id: r.get(0)?,
        tenant_id: TenantId(r.get(1)?),
        tenant_username: r.get(2)?,
        resource: r.get(3)?,
        resource_id: r.get(4)?,
        name: r.get(5)?,
        blob_key,
        size: r.get::<_, i64>(7)? as u64,
        content_type: r.get(8)?,
        sha256: r.get(9)?,
        is_public: r.get(10)?,
        expire_at: r.get(11)?,
        created_at: r.get(12)?,
    })
}

pub(super) fn tenant_from_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    let name: String = r.get(1)?;
    let name = TenantName::parse(&name).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(Tenant {
        id: TenantId(r.get(0)?),
        name,
    })
}

/// The `WHERE` clause of every listing and its parameters: visibility first, then filters.
pub(super) fn visible_where(
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut sql = String::from(
        "f.deleted_at IS NULL AND (f.expire_at IS NULL OR f.expire_at > ?1) \
         AND (f.tenant_id = ?2 OR f.is_public = 1)",
    );
    let mut args = vec![Value::Integer(now), Value::Integer(viewer.id.0)];
    let mut add = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(Value::Text(v.clone()));
            sql.push_str(&format!(" AND {col} = ?{}", args.len()));
        }
    };
    add("f.resource", &filter.resource);
    add("f.resource_id", &filter.resource_id);
    add("t.username", &filter.tenant_username);
    (sql, args)
}

/// The keyset listing's query, for `visible_where`'s `cond` (whose `?2` is the viewer) and its
/// `n` parameters; then come the cursor's three (if `after`) and the limit.
///
/// What the viewer sees is its own files and the public ones: two branches, each read in name order
/// from the cursor through an index of exactly its rows (`files_tenant_name`, `files_live_key`;
/// `files_public_name`, `files_public_resource_name`, `files_public_tenant_name`) and cut at the
/// limit, then merged (`UNION` keeps one copy of the viewer's public files, in both): a page reads
/// about `limit` index entries per branch however deep it is and whatever other tenants store.
/// `f.name >= name` is the row comparison's index-usable part (its other columns come from two
/// tables); files sharing the cursor's name are read again on each page.
pub(super) fn keyset_sql(cond: &str, n: usize, after: bool) -> String {
    let (keyset, lim) = if after {
        (
            format!(
                " AND f.name >= ?{a} AND (f.name, t.username, f.id) > (?{a}, ?{b}, ?{c})",
                a = n + 1,
                b = n + 2,
                c = n + 3
            ),
            n + 4,
        )
    } else {
        (String::new(), n + 1)
    };
    let branch = |visible: &str| {
        format!(
            "SELECT * FROM (SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
             WHERE {cond} AND {visible}{keyset}
             ORDER BY f.name, t.username, f.id LIMIT ?{lim})"
        )
    };
    format!(
        "{} UNION {} ORDER BY name, username, id LIMIT ?{lim}",
        branch("f.tenant_id = ?2"),
        branch("f.is_public = 1"),
    )
}

/// The well-formed blob keys among a query's rows.
pub(super) fn blob_keys(
    rows: impl Iterator<Item = rusqlite::Result<String>>,
) -> rusqlite::Result<Vec<BlobKey>> {
    let mut keys = Vec::new();
    for k in rows {
        keys.extend(BlobKey::from_stored(&k?));
    }
    Ok(keys)
}

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                MetaError::Unavailable(e.to_string())
            }
            Some(rusqlite::ErrorCode::ConstraintViolation) => MetaError::Conflict(e.to_string()),
            _ => MetaError::Internal(e.to_string()),
        }
    }
}
