//! What the SQLite store's queries share: the file row's mapping to `FileRecord` and `Tenant`,
//! the listing's `WHERE` clause and keyset query (their text is `meta::sql`'s, in the SQLite
//! dialect, with parameters as rusqlite values), blob keys from rows; and how rusqlite's errors
//! become `MetaError`s.

use rusqlite::{Connection, Row};

use crate::domain::{BlobKey, FileRecord, Micros, Tenant, TenantId, TenantName};
use crate::meta::sql::{self, Arg, Dialect, Exec, On, Sql, Val};
use crate::meta::{ListFilter, MetaError, MetaResult};

pub(super) use crate::meta::sql::FILE_COLUMNS;

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

/// The listing's `WHERE` clause and its parameters (see `meta::sql::visible_where`).
pub(super) fn visible_where(
    viewer: &Tenant,
    filter: &ListFilter,
    now: Micros,
) -> (String, Vec<Arg>) {
    sql::visible_where(Dialect::Sqlite, viewer, filter, now)
}

/// The keyset listing's query (see `meta::sql::keyset_sql`).
pub(super) fn keyset_sql(cond: &str, n: usize, after: bool) -> String {
    sql::keyset_sql(Dialect::Sqlite, cond, n, after)
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(match self {
            Arg::Int(n) | Arg::OptInt(Some(n)) => ToSqlOutput::from(*n),
            Arg::Text(s) | Arg::OptText(Some(s)) => ToSqlOutput::from(s.as_str()),
            Arg::Bool(b) => ToSqlOutput::from(*b),
            Arg::OptInt(None) | Arg::OptText(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// Run one shared statement (`meta::sql`'s text, its placeholders rewritten) on `c`.
pub(super) fn run(c: &Connection, sql: &str, args: &[Arg]) -> MetaResult<Vec<sql::Row>> {
    use rusqlite::types::ValueRef;
    let mut st = c.prepare_cached(&sql::sqlite_text(sql))?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(match r.get_ref(i)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(v) => Val::Int(v),
                ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                v => {
                    return Err(MetaError::Internal(format!(
                        "column {i}: unexpected {:?}",
                        v.data_type()
                    )));
                }
            });
        }
        out.push(sql::Row(vals));
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Exec for super::Sqlite {
    async fn query(&self, on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<Vec<sql::Row>> {
        match on {
            On::Read => self.read(move |c| run(c, &sql, &args)).await,
            On::Write => self.with(move |c| run(c, &sql, &args)).await,
            On::Batch => self.batched(move |c| run(c, &sql, &args)).await,
        }
    }

    async fn execute(&self, on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<u64> {
        let exec = move |c: &Connection| -> MetaResult<u64> {
            let mut st = c.prepare_cached(&sql::sqlite_text(&sql))?;
            Ok(st.execute(rusqlite::params_from_iter(&args))? as u64)
        };
        match on {
            On::Read => self.read(move |c| exec(c)).await,
            On::Write => self.with(move |c| exec(c)).await,
            On::Batch => self.batched(exec).await,
        }
    }
}
