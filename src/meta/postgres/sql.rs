//! What the PostgreSQL store's queries share: the file row's columns and their mapping to
//! `FileRecord` and `Tenant`, the listing's `WHERE` clause and keyset query, parameters built
//! at run time, and the unique violation a commit may retry on.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::domain::{BlobKey, FileRecord, Micros, Tenant, TenantId, TenantName};
use crate::meta::{ListFilter, MetaError, MetaResult};

/// A parameter of a query built at run time.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

pub(super) const FILE_COLUMNS: &str = "f.id, f.tenant_id, t.username, f.resource, f.resource_id, f.name, \
     f.blob_key, f.size, f.content_type, f.sha256, f.is_public, f.expire_at, f.created_at";

pub(super) fn file_from_row(r: &Row) -> MetaResult<FileRecord> {
    let key: String = r.try_get(6)?;
    let blob_key = BlobKey::from_stored(&key)
        .ok_or_else(|| MetaError::Internal(format!("malformed blob key {key:?}")))?;
    let size: i64 = r.try_get(7)?;
    Ok(FileRecord {
        id: r.try_get(0)?,
        tenant_id: TenantId(r.try_get(1)?),
        tenant_username: r.try_get(2)?,
        resource: r.try_get(3)?,
        resource_id: r.try_get(4)?,
        name: r.try_get(5)?,
        blob_key,
        size: u64::try_from(size)
            .map_err(|_| MetaError::Internal(format!("negative file size {size}")))?,
        content_type: r.try_get(8)?,
        sha256: r.try_get(9)?,
        is_public: r.try_get(10)?,
        expire_at: r.try_get(11)?,
        created_at: r.try_get(12)?,
    })
}

pub(super) fn tenant_from_row(r: &Row) -> MetaResult<Tenant> {
    let name: String = r.try_get(1)?;
    let name = TenantName::parse(&name)
        .map_err(|e| MetaError::Internal(format!("stored tenant name {name:?}: {e}")))?;
    Ok(Tenant {
        id: TenantId(r.try_get(0)?),
        name,
    })
}

pub(super) fn keys_from_rows(rows: &[Row]) -> MetaResult<Vec<BlobKey>> {
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        let k: String = r.try_get(0)?;
        keys.extend(BlobKey::from_stored(&k));
    }
    Ok(keys)
}

pub(super) fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The `WHERE` clause of every listing and its parameters: visibility first, then filters.
pub(super) fn visible_where(
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> (String, Vec<Param>) {
    let mut sql = String::from(
        "f.deleted_at IS NULL AND (f.expire_at IS NULL OR f.expire_at > $1) \
         AND (f.tenant_id = $2 OR f.is_public)",
    );
    let mut args: Vec<Param> = vec![Box::new(now), Box::new(viewer.id.0)];
    let mut add = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(Box::new(v.clone()));
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
    };
    add("f.resource", &filter.resource);
    add("f.resource_id", &filter.resource_id);
    add("t.username", &filter.tenant_username);
    (sql, args)
}

/// The keyset listing's query, for `visible_where`'s `cond` (whose `$2` is the viewer) and its
/// `n` parameters; then come the cursor's three (if `after`) and the limit.
///
/// What the viewer sees is its own files and the public ones: two branches, each read in name order
/// from the cursor through an index of exactly its rows (`files_tenant_name`, `files_live_key`;
/// `files_public_name`, `files_public_resource_name`, `files_public_tenant_name`) and cut at the
/// limit, then merged (`UNION` keeps one copy of the viewer's public files, in both): a page reads
/// about `limit` index entries per branch however deep it is and whatever other tenants store.
/// `f.name >= name` is the row comparison's index-usable part (its other columns come from two
/// tables); files sharing the cursor's name are read again on each page.
/// The cursor's values compare in the "C" collation of the columns, the order of the indexes and
/// of `ORDER BY`.
pub(super) fn keyset_sql(cond: &str, n: usize, after: bool) -> String {
    let (keyset, lim) = if after {
        (
            format!(
                " AND f.name >= ${a} COLLATE \"C\" AND (f.name, t.username, f.id) > \
                 (${a} COLLATE \"C\", ${b} COLLATE \"C\", ${c} COLLATE \"C\")",
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
            "(SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
              WHERE {cond} AND {visible}{keyset}
              ORDER BY f.name, t.username, f.id LIMIT ${lim})"
        )
    };
    format!(
        "{} UNION {} ORDER BY name, username, id LIMIT ${lim}",
        branch("f.tenant_id = $2"),
        branch("f.is_public"),
    )
}

pub(super) fn params(args: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

