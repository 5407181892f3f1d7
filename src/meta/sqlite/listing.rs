//! The seed's offset listing (see `meta::page`): the count from `file_counts`, pages through the
//! listing's two branches.

use rusqlite::Connection;

use super::{FILE_COLUMNS, file_from_row, visible_where};
use crate::domain::{FileRecord, Micros, Tenant};
use crate::meta::ListFilter;
use crate::meta::page::Read;
use crate::meta::sql::{Arg, args, big};

/// How many files `viewer` sees through `filter`. Without a resource filter: the counters of
/// `file_counts` (the viewer's live files, every other tenant's live public ones; one row per
/// tenant) less the live files that expired and gc has not reaped (`files_live_expiry`, named:
/// the planner would take `files_expire`, which holds deleted rows too). With one: counted through the branch indexes, as before.
pub(super) fn count(
    c: &Connection,
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> rusqlite::Result<u64> {
    if filter.resource.is_some() || filter.resource_id.is_some() {
        let (cond, args) = visible_where(viewer, filter, now);
        let sql = format!(
            "SELECT COUNT(*) FROM files f JOIN tenants t ON t.id = f.tenant_id WHERE {cond}"
        );
        let n: i64 = c
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
        return Ok(u64::try_from(n).unwrap_or(0));
    }
    let mut args = args![viewer.id.0, now];
    let (on_counts, on_files) = match &filter.tenant_username {
        Some(name) => {
            args.push(Arg::from(name));
            (" WHERE t.username = ?3", " AND t.username = ?3")
        }
        None => ("", ""),
    };
    let sql = format!(
        "SELECT (SELECT coalesce(sum(CASE WHEN c.tenant_id = ?1 THEN c.live ELSE c.public END), 0)
                 FROM file_counts c JOIN tenants t ON t.id = c.tenant_id{on_counts})
              - (SELECT COUNT(*) FROM files f INDEXED BY files_live_expiry
                   JOIN tenants t ON t.id = f.tenant_id
                 WHERE f.deleted_at IS NULL AND f.expire_at IS NOT NULL AND f.expire_at <= ?2
                   AND (f.tenant_id = ?1 OR f.is_public = 1){on_files})"
    );
    let n: i64 = c
        .prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The rows of `read`, in the listing's order. Each branch (own files, public files) yields its
/// first `read.depth()` sort keys from its covering index, in `read`'s direction; SQLite merges
/// them (`UNION` keeps one copy of the viewer's public files), skips and takes, and only the
/// page's rows are read from the table.
pub(super) fn page(
    c: &Connection,
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
    read: Read,
) -> rusqlite::Result<Vec<FileRecord>> {
    let (cond, mut args) = visible_where(viewer, filter, now);
    let n = args.len();
    let d = read.dir();
    let branch = |visible: &str| {
        format!(
            "SELECT * FROM (SELECT f.name AS name, t.username AS username, f.id AS id
               FROM files f JOIN tenants t ON t.id = f.tenant_id WHERE {cond} AND {visible}
               ORDER BY f.name {d}, t.username {d}, f.id {d} LIMIT ?{})",
            n + 1
        )
    };
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM ({} UNION {} ORDER BY 1 {d}, 2 {d}, 3 {d}
           LIMIT ?{} OFFSET ?{}) p
         JOIN files f ON f.id = p.id JOIN tenants t ON t.id = f.tenant_id
         ORDER BY f.name, t.username, f.id",
        branch("f.tenant_id = ?2"),
        branch("f.is_public = 1"),
        n + 2,
        n + 3
    );
    args.extend([big(read.depth()), big(read.take), big(read.skip)]);
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), file_from_row)?;
    rows.collect()
}
