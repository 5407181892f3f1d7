//! How the SQLite store runs `meta::sql`'s statements ([`Exec`], and [`run`] on a connection a
//! transaction holds), with parameters as rusqlite values; and how rusqlite's errors become
//! `MetaError`s.

use rusqlite::Connection;

use crate::meta::sql::{self, Arg, Exec, On, Sql, Val};
use crate::meta::{MetaError, MetaResult};

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
