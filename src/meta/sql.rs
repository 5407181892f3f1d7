//! SQL the two metadata stores share, written once: the file row's columns and how a row becomes
//! a record, the listing's `WHERE` clause (visibility, then filters), its keyset query, its count
//! and offset pages; and in the submodules the stores' traits over [`Exec`]. What differs between
//! SQLite and PostgreSQL here is spelling only, and [`Dialect`] holds it: the placeholders (`?1`,
//! `$1`), a boolean column's test, the collation a cursor's values compare in, how a branch of a
//! `UNION` carries its own `ORDER BY ... LIMIT`, an index hint, PostgreSQL's deep offset pages.

use crate::domain::{BlobKey, FileRecord, Micros, Tenant, TenantId};
use crate::meta::page::Read;
use crate::meta::{ListFilter, MetaError, MetaResult};

mod backend;
mod exec;
mod fsck;
pub(crate) mod quota;
pub(crate) mod seed;
mod session;
pub(crate) mod tus;

pub(crate) use backend::{Commit, Counted, Listing, Native, NewTenant};
pub(crate) use exec::args;
pub use exec::{Arg, Exec, On, Row, Sql, Val, big, sqlite_text};
pub(crate) use session::tenant_from_row;

/// The columns of a file row, in the order [`file_from_row`] reads them.
pub(crate) const FILE_COLUMNS: &str = "f.id, f.tenant_id, t.username, f.resource, f.resource_id, \
     f.name, f.blob_key, f.size, f.content_type, f.sha256, f.is_public, f.expire_at, f.created_at";

/// The SQL dialect a statement is spelled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The `n`th (1-based) positional parameter.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// True for a public file (an integer column in SQLite, a boolean in PostgreSQL).
    fn public(self) -> &'static str {
        match self {
            Dialect::Sqlite => "f.is_public = 1",
            Dialect::Postgres => "f.is_public",
        }
    }

    /// The collation a cursor's values compare in: the one of the indexes and of `ORDER BY`
    /// ("C" in PostgreSQL, whose default collation may differ; SQLite's columns are `BINARY`).
    fn collate(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " COLLATE \"C\"",
        }
    }

    /// A `UNION`'s branch with its own `ORDER BY ... LIMIT` (SQLite takes it only in a subquery).
    fn branch(self, select: &str) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT * FROM ({select})"),
            Dialect::Postgres => format!("({select})"),
        }
    }

    /// The index the count's expired files are read through: SQLite's planner would take
    /// `files_expire`, which holds deleted rows too, so it is named.
    fn expiry_index(self) -> &'static str {
        match self {
            Dialect::Sqlite => " INDEXED BY files_live_expiry",
            Dialect::Postgres => "",
        }
    }

    /// Deeper than this (rows before the page, counted from the nearer end), each branch of an
    /// offset page would yield and sort too many keys on PostgreSQL (about 2 s at 500,000 on the
    /// development machine, against about 1 s for one ordered scan): the page is read with one
    /// `OFFSET` over the whole listing, as before the branches. Pages near either end never are.
    fn branch_depth(self) -> Option<u64> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(100_000),
        }
    }

    /// The larger of two values (SQLite's `MAX` of two arguments).
    pub(crate) fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MAX",
            Dialect::Postgres => "GREATEST",
        }
    }

    /// What a `SELECT ... FOR UPDATE` of rows another node may take at once adds: PostgreSQL's
    /// `SKIP LOCKED` (SQLite has one writer; the rows are never locked).
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A file from a row of [`FILE_COLUMNS`].
pub(crate) fn file_from_row(r: &Row) -> MetaResult<FileRecord> {
    let key = r.text(6)?;
    let blob_key = BlobKey::from_stored(&key)
        .ok_or_else(|| MetaError::Internal(format!("malformed blob key {key:?}")))?;
    Ok(FileRecord {
        id: r.text(0)?,
        tenant_id: TenantId(r.int(1)?),
        tenant_username: r.text(2)?,
        resource: r.text(3)?,
        resource_id: r.text(4)?,
        name: r.text(5)?,
        blob_key,
        size: r.size(7)?,
        content_type: r.text(8)?,
        sha256: r.text(9)?,
        is_public: r.flag(10)?,
        expire_at: r.opt_int(11)?,
        created_at: r.int(12)?,
    })
}

/// The well-formed blob keys in the first column of `rows`.
pub(crate) fn blob_keys(rows: &[Row]) -> MetaResult<Vec<BlobKey>> {
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        keys.extend(BlobKey::from_stored(&r.text(0)?));
    }
    Ok(keys)
}

/// The `WHERE` clause of every listing and its parameters: visibility first (`now` is the first
/// parameter, the viewer the second), then filters.
pub(crate) fn visible_where(
    d: Dialect,
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> (String, Vec<Arg>) {
    let mut sql = format!(
        "f.deleted_at IS NULL AND (f.expire_at IS NULL OR f.expire_at > {}) \
         AND (f.tenant_id = {} OR {})",
        d.param(1),
        d.param(2),
        d.public()
    );
    let mut args = vec![Arg::Int(now), Arg::Int(viewer.id.0)];
    let mut add = |col: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(Arg::Text(v.clone()));
            sql.push_str(&format!(" AND {col} = {}", d.param(args.len())));
        }
    };
    add("f.resource", &filter.resource);
    add("f.resource_id", &filter.resource_id);
    add("t.username", &filter.tenant_username);
    (sql, args)
}

/// The keyset listing's query, for `visible_where`'s `cond` (whose second parameter is the
/// viewer) and its `n` parameters; then come the cursor's three (if `after`) and the limit.
///
/// What the viewer sees is its own files and the public ones: two branches, each read in name
/// order from the cursor through an index of exactly its rows (`files_tenant_name`,
/// `files_live_key`; `files_public_name`, `files_public_resource_name`,
/// `files_public_tenant_name`) and cut at the limit, then merged (`UNION` keeps one copy of the
/// viewer's public files, in both): a page reads about `limit` index entries per branch however
/// deep it is and whatever other tenants store. `f.name >= name` is the row comparison's
/// index-usable part (its other columns come from two tables); files sharing the cursor's name
/// are read again on each page. The cursor's values compare in the collation of the indexes and
/// of `ORDER BY`.
pub(crate) fn keyset_sql(d: Dialect, cond: &str, n: usize, after: bool) -> String {
    let (keyset, lim) = if after {
        let (a, b, c) = (d.param(n + 1), d.param(n + 2), d.param(n + 3));
        let co = d.collate();
        (
            format!(
                " AND f.name >= {a}{co} AND (f.name, t.username, f.id) > \
                 ({a}{co}, {b}{co}, {c}{co})"
            ),
            d.param(n + 4),
        )
    } else {
        (String::new(), d.param(n + 1))
    };
    let branch = |visible: &str| {
        d.branch(&format!(
            "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id \
             WHERE {cond} AND {visible}{keyset} ORDER BY f.name, t.username, f.id LIMIT {lim}"
        ))
    };
    format!(
        "{} UNION {} ORDER BY name, username, id LIMIT {lim}",
        branch(&format!("f.tenant_id = {}", d.param(2))),
        branch(d.public()),
    )
}

/// The row a commit of `file` as `id` wrote, as a record.
pub(crate) fn committed(
    tenant: &Tenant,
    file: crate::domain::NewFile,
    id: String,
    now: Micros,
) -> crate::domain::FileRecord {
    crate::domain::FileRecord {
        id,
        tenant_id: tenant.id,
        tenant_username: tenant.name.as_str().to_owned(),
        resource: file.resource.as_str().to_owned(),
        resource_id: file.resource_id.as_str().to_owned(),
        name: file.name.as_str().to_owned(),
        blob_key: file.blob_key,
        size: file.size,
        content_type: file.content_type,
        sha256: file.sha256,
        is_public: file.is_public,
        expire_at: file.expire_at,
        created_at: now,
    }
}

/// How many files `viewer` sees through `filter`: the statement and its parameters; its one row
/// holds the count (a negative one is 0). Without a resource filter: the counters of
/// `file_counts` (the viewer's live files, every other tenant's live public ones; SQLite keeps
/// one row per tenant, PostgreSQL deltas gc folds) less the live files that expired and gc has
/// not reaped. With one: counted through the branch indexes.
pub(crate) fn count_sql(
    d: Dialect,
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> (String, Vec<Arg>) {
    if filter.resource.is_some() || filter.resource_id.is_some() {
        let (cond, args) = visible_where(d, viewer, filter, now);
        let sql = format!(
            "SELECT COUNT(*) FROM files f JOIN tenants t ON t.id = f.tenant_id WHERE {cond}"
        );
        return (sql, args);
    }
    let mut args = args![viewer.id.0, now];
    let (on_counts, on_files) = match &filter.tenant_username {
        Some(name) => {
            args.push(Arg::from(name));
            let p = d.param(3);
            (
                format!(" WHERE t.username = {p}"),
                format!(" AND t.username = {p}"),
            )
        }
        None => (String::new(), String::new()),
    };
    let (p1, p2) = (d.param(1), d.param(2));
    let sql = format!(
        "SELECT CAST((SELECT coalesce(sum(CASE WHEN c.tenant_id = {p1} THEN c.live
                                                ELSE c.public END), 0)
                 FROM file_counts c JOIN tenants t ON t.id = c.tenant_id{on_counts}) AS BIGINT)
              - (SELECT COUNT(*) FROM files f{} JOIN tenants t ON t.id = f.tenant_id
                 WHERE f.deleted_at IS NULL AND f.expire_at IS NOT NULL AND f.expire_at <= {p2}
                   AND (f.tenant_id = {p1} OR {}){on_files})",
        d.expiry_index(),
        d.public()
    );
    (sql, args)
}

/// The count of [`count_sql`]'s row.
pub(crate) fn count_from_rows(rows: &[Row]) -> MetaResult<u64> {
    let r = rows
        .first()
        .ok_or_else(|| MetaError::Internal("a count returned no row".into()))?;
    Ok(u64::try_from(r.int(0)?).unwrap_or(0))
}

/// The rows of `read` (a page of the offset listing, see `meta::page`), in the listing's order:
/// the statement and its parameters. Each branch (own files, public files) yields its first
/// `read.depth()` sort keys from its covering index, in `read`'s direction; `UNION` merges them
/// (keeping one copy of the viewer's public files), skips and takes, and only the page's rows are
/// read from the table. On PostgreSQL a page deeper than [`Dialect::branch_depth`] is one
/// `OFFSET` over the whole listing.
pub(crate) fn page_sql(
    d: Dialect,
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
    read: Read,
) -> (String, Vec<Arg>) {
    let (cond, mut args) = visible_where(d, viewer, filter, now);
    let n = args.len();
    if d.branch_depth().is_some_and(|deep| read.depth() > deep) {
        args.extend([big(read.take), big(read.offset)]);
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f JOIN tenants t ON t.id = f.tenant_id
             WHERE {cond} ORDER BY f.name, t.username, f.id LIMIT {} OFFSET {}",
            d.param(n + 1),
            d.param(n + 2)
        );
        return (sql, args);
    }
    let dir = read.dir();
    let branch = |visible: &str| {
        d.branch(&format!(
            "SELECT f.name AS name, t.username AS username, f.id AS id
               FROM files f JOIN tenants t ON t.id = f.tenant_id WHERE {cond} AND {visible}
               ORDER BY f.name {dir}, t.username {dir}, f.id {dir} LIMIT {}",
            d.param(n + 1)
        ))
    };
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM ({} UNION {} ORDER BY 1 {dir}, 2 {dir}, 3 {dir}
           LIMIT {} OFFSET {}) p
         JOIN files f ON f.id = p.id JOIN tenants t ON t.id = f.tenant_id
         ORDER BY f.name, t.username, f.id",
        branch(&format!("f.tenant_id = {}", d.param(2))),
        branch(d.public()),
        d.param(n + 2),
        d.param(n + 3)
    );
    args.extend([big(read.depth()), big(read.take), big(read.skip)]);
    (sql, args)
}
