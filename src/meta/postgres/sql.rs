//! How the PostgreSQL store runs `meta::sql`'s statements ([`Exec`], and [`run`] on a connection
//! or transaction), parameters built at run time, and the unique violation a commit may retry
//! on.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::meta::sql::{self, Arg, Exec, On, Sql, Val};
use crate::meta::{MetaError, MetaResult};

/// A parameter of a query built at run time.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

pub(super) fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
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

/// Run one shared statement on `c` (a pooled connection or a transaction), prepared once per
/// connection.
pub(super) async fn run<C: GenericClient>(
    c: &C,
    sql: &str,
    args: Vec<Arg>,
) -> MetaResult<Vec<sql::Row>> {
    let args: Vec<Param> = args.into_iter().map(param).collect();
    let st = c.prepare_cached(sql).await?;
    let rows = c.query(&st, &params(&args)).await?;
    rows.iter().map(row_values).collect()
}

/// Every statement is prepared once per connection.
#[async_trait::async_trait]
impl Exec for super::Postgres {
    async fn query(&self, _on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<Vec<sql::Row>> {
        self.with(move |c| Box::pin(async move { run(&*c, &sql, args).await }))
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
