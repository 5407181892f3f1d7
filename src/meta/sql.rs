//! SQL text the two metadata stores share, written once: the file row's columns, the listing's
//! `WHERE` clause (visibility, then filters) and its keyset query. What differs between SQLite
//! and PostgreSQL here is spelling only, and [`Dialect`] holds it: the placeholders (`?1`, `$1`),
//! a boolean column's test, the collation a cursor's values compare in, and how a branch of a
//! `UNION` carries its own `ORDER BY ... LIMIT`.

use crate::domain::{Micros, Tenant};
use crate::meta::ListFilter;

mod exec;
mod fsck;
mod session;
pub(crate) mod tus;

pub(crate) use exec::args;
pub use exec::{Arg, Exec, On, Row, Sql, Val, big, sqlite_text};

/// The columns of a file row, in the order the stores' `file_from_row` read them.
pub(crate) const FILE_COLUMNS: &str = "f.id, f.tenant_id, t.username, f.resource, f.resource_id, \
     f.name, f.blob_key, f.size, f.content_type, f.sha256, f.is_public, f.expire_at, f.created_at";

/// The SQL dialect a statement is spelled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
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
