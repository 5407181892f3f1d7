//! What the PostgreSQL store's queries share: the file row's mapping to `FileRecord` and
//! `Tenant`, the listing's `WHERE` clause and keyset query (their text is `meta::sql`'s, in the
//! PostgreSQL dialect), parameters built at run time, and the unique violation a commit may
//! retry on.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::domain::{BlobKey, FileRecord, Micros, Tenant, TenantId, TenantName};
use crate::meta::sql::{self, Arg, Dialect, Exec, On, Sql, Val};
use crate::meta::{ListFilter, MetaError, MetaResult};

/// A parameter of a query built at run time.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

pub(super) use crate::meta::sql::FILE_COLUMNS;

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

/// The listing's `WHERE` clause and its parameters (see `meta::sql::visible_where`).
pub(super) fn visible_where(
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> (String, Vec<Param>) {
    let (sql, args) = sql::visible_where(Dialect::Postgres, viewer, filter, now);
    (sql, args.into_iter().map(param).collect())
}

/// The keyset listing's query (see `meta::sql::keyset_sql`).
pub(super) fn keyset_sql(cond: &str, n: usize, after: bool) -> String {
    sql::keyset_sql(Dialect::Postgres, cond, n, after)
}

pub(super) fn params(args: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A shared statement's parameter, as tokio-postgres takes it.
pub(super) fn param(a: Arg) -> Param {
    match a {
        Arg::Int(n) => Box::new(n),
        Arg::Text(s) => Box::new(s),
        Arg::Bool(b) => Box::new(b),
        Arg::OptInt(n) => Box::new(n),
        Arg::OptText(s) => Box::new(s),
    }
}

/// A result row as plain values, by each column's type.
fn row_values(r: &Row) -> MetaResult<sql::Row> {
    use tokio_postgres::types::Type;
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Val::Int)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(|n| Val::Int(n.into()))
        } else if *t == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?.map(Val::Bool)
        } else if *t == Type::TEXT || *t == Type::VARCHAR {
            r.try_get::<_, Option<String>>(i)?.map(Val::Text)
        } else {
            return Err(MetaError::Internal(format!(
                "column {i}: unexpected type {t}"
            )));
        };
        vals.push(v.unwrap_or(Val::Null));
    }
    Ok(sql::Row(vals))
}

/// Every statement is prepared once per connection.
#[async_trait::async_trait]
impl Exec for super::Postgres {
    async fn query(&self, _on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<Vec<sql::Row>> {
        let args: Vec<Param> = args.into_iter().map(param).collect();
        self.with(move |c| {
            Box::pin(async move {
                let st = c.prepare_cached(&sql).await?;
                let rows = c.query(&st, &params(&args)).await?;
                rows.iter().map(row_values).collect()
            })
        })
        .await
    }

    async fn execute(&self, _on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<u64> {
        let args: Vec<Param> = args.into_iter().map(param).collect();
        self.with(move |c| {
            Box::pin(async move {
                let st = c.prepare_cached(&sql).await?;
                Ok(c.execute(&st, &params(&args)).await?)
            })
        })
        .await
    }
}
