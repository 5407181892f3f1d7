//! The seed's offset listing (see `meta::page`): the count from `file_counts`, pages through the
//! listing's two branches; and gc's folding of the counters' delta rows.

use deadpool_postgres::GenericClient;

use super::{FILE_COLUMNS, Param, as_i64, as_u64, file_from_row, params, visible_where};
use crate::domain::{FileRecord, Micros, Tenant};
use crate::meta::page::Read;
use crate::meta::{ListFilter, MetaResult};

/// Deeper than this (rows before the page, counted from the nearer end), each branch would
/// yield and sort too many keys (about 2 s at 500,000 on the development machine, against
/// about 1 s for one ordered scan): the page is read with one `OFFSET` over the whole listing,
/// as before the branches. Pages near either end never are.
const BRANCH_DEPTH: u64 = 100_000;

/// How many files `viewer` sees through `filter` (see the SQLite store's `count`): without a
/// resource filter, the sum of `file_counts`' deltas (the viewer's live files, every other
/// tenant's live public ones) less the live files that expired and gc has not reaped.
pub(super) async fn count<C: GenericClient>(
    c: &C,
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> MetaResult<u64> {
    if filter.resource.is_some() || filter.resource_id.is_some() {
        let (cond, args) = visible_where(viewer, filter, now);
        let sql = format!(
            "SELECT COUNT(*) FROM files f JOIN tenants t ON t.id = f.tenant_id WHERE {cond}"
        );
        let st = c.prepare_cached(&sql).await?;
        let n: i64 = c.query_one(&st, &params(&args)).await?.try_get(0)?;
        return Ok(as_u64(n));
    }
    let mut args: Vec<Param> = vec![Box::new(viewer.id.0), Box::new(now)];
    let (on_counts, on_files) = match &filter.tenant_username {
        Some(name) => {
            args.push(Box::new(name.clone()));
            (" WHERE t.username = $3", " AND t.username = $3")
        }
        None => ("", ""),
    };
    let sql = format!(
        "SELECT (SELECT coalesce(sum(CASE WHEN c.tenant_id = $1 THEN c.live ELSE c.public END), 0)
                 FROM file_counts c JOIN tenants t ON t.id = c.tenant_id{on_counts})::bigint
              - (SELECT COUNT(*) FROM files f JOIN tenants t ON t.id = f.tenant_id
                 WHERE f.deleted_at IS NULL AND f.expire_at IS NOT NULL AND f.expire_at <= $2
                   AND (f.tenant_id = $1 OR f.is_public){on_files})"
    );
    let st = c.prepare_cached(&sql).await?;
    let n: i64 = c.query_one(&st, &params(&args)).await?.try_get(0)?;
    Ok(as_u64(n))
}

/// The rows of `read`, in the listing's order: each branch (own files, public files) yields its
/// first `read.depth()` sort keys from its covering index in `read`'s direction (an
/// incremental sort puts owners in order within a name), `UNION` merges them and keeps one copy
/// of the viewer's public files, and only the page's rows are read from the table.
pub(super) async fn page<C: GenericClient>(
    c: &C,
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
    read: Read,
) -> MetaResult<Vec<FileRecord>> {
    let (cond, mut args) = visible_where(viewer, filter, now);
    let n = args.len();
    let sql = if read.depth() > BRANCH_DEPTH {
        args.push(Box::new(as_i64(read.take)));
        args.push(Box::new(as_i64(read.offset)));
        format!(
            "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
             WHERE {cond} ORDER BY f.name, t.username, f.id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        )
    } else {
        let d = read.dir();
        let branch = |visible: &str| {
            format!(
                "(SELECT f.name AS name, t.username AS username, f.id AS id
                  FROM files f JOIN tenants t ON t.id = f.tenant_id WHERE {cond} AND {visible}
                  ORDER BY f.name {d}, t.username {d}, f.id {d} LIMIT ${})",
                n + 1
            )
        };
        args.push(Box::new(as_i64(read.depth())));
        args.push(Box::new(as_i64(read.take)));
        args.push(Box::new(as_i64(read.skip)));
        format!(
            "SELECT {FILE_COLUMNS} FROM ({} UNION {} ORDER BY 1 {d}, 2 {d}, 3 {d}
               LIMIT ${} OFFSET ${}) p
             JOIN files f ON f.id = p.id JOIN tenants t ON t.id = f.tenant_id
             ORDER BY f.name, t.username, f.id",
            branch("f.tenant_id = $2"),
            branch("f.is_public"),
            n + 2,
            n + 3
        )
    };
    let st = c.prepare_cached(&sql).await?;
    let rows = c.query(&st, &params(&args)).await?;
    rows.iter().map(file_from_row).collect()
}

/// Fold each tenant's `file_counts` deltas into one row, and drop those of removed tenants.
/// One statement: a delta appended by a commit this statement's snapshot does not see is not
/// deleted, so it stays counted; two folds at once delete each row once.
pub(super) async fn fold_counts<C: GenericClient>(c: &C) -> MetaResult<()> {
    c.execute(
        "WITH folded AS (
             DELETE FROM file_counts WHERE tenant_id IN
                 (SELECT tenant_id FROM file_counts GROUP BY tenant_id HAVING count(*) > 1)
                 OR NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = file_counts.tenant_id)
             RETURNING tenant_id, live, public)
         INSERT INTO file_counts (tenant_id, live, public)
             SELECT f.tenant_id, sum(f.live), sum(f.public) FROM folded f
             WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = f.tenant_id)
             GROUP BY f.tenant_id",
        &[],
    )
    .await?;
    Ok(())
}
