//! One statement on either store: its text (written once, with PostgreSQL's `$N` placeholders;
//! SQLite's store rewrites them, see [`sqlite_text`]), its parameters as [`Arg`]s and its rows
//! as [`Row`]s of plain values. The stores implement [`Exec`] (which connection a statement
//! runs on, how parameters and columns convert, how errors map); what a statement means and
//! how its rows become records is written once, over `Exec`.

use std::borrow::Cow;

use async_trait::async_trait;

use crate::meta::{MetaError, MetaResult};

/// A statement's parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(i64),
    Text(String),
    Bool(bool),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// A text or NULL.
    OptText(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(v.to_owned())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(v)
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(v.clone())
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::OptInt(v)
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::OptText(v)
    }
}

/// A count or size as a parameter: stores hold `BIGINT`s; a larger value saturates.
pub fn big(n: u64) -> Arg {
    Arg::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The parameters of a statement, in order: `args![a, b]` is `vec![Arg::from(a), Arg::from(b)]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::meta::sql::Arg::from($a)),*] };
}
pub(crate) use args;

/// A column's value in a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

/// A result row: its columns' values, in the statement's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Val>);

impl Row {
    fn val(&self, i: usize) -> MetaResult<&Val> {
        self.0
            .get(i)
            .ok_or_else(|| MetaError::Internal(format!("no column {i} in a result row")))
    }

    fn wrong(&self, i: usize, want: &str) -> MetaError {
        MetaError::Internal(format!("column {i} is not {want}: {:?}", self.0.get(i)))
    }

    pub fn opt_int(&self, i: usize) -> MetaResult<Option<i64>> {
        match self.val(i)? {
            Val::Null => Ok(None),
            Val::Int(n) => Ok(Some(*n)),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    pub fn int(&self, i: usize) -> MetaResult<i64> {
        self.opt_int(i)?.ok_or_else(|| self.wrong(i, "an integer"))
    }

    /// A count or size: a negative one is an error.
    pub fn size(&self, i: usize) -> MetaResult<u64> {
        let n = self.int(i)?;
        u64::try_from(n).map_err(|_| MetaError::Internal(format!("negative size {n}")))
    }

    pub fn opt_text(&self, i: usize) -> MetaResult<Option<String>> {
        match self.val(i)? {
            Val::Null => Ok(None),
            Val::Text(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong(i, "a text")),
        }
    }

    pub fn text(&self, i: usize) -> MetaResult<String> {
        self.opt_text(i)?.ok_or_else(|| self.wrong(i, "a text"))
    }

    /// A boolean (an integer in SQLite).
    pub fn flag(&self, i: usize) -> MetaResult<bool> {
        match self.val(i)? {
            Val::Bool(b) => Ok(*b),
            Val::Int(n) => Ok(*n != 0),
            _ => Err(self.wrong(i, "a boolean")),
        }
    }
}

/// Which connection a statement runs on. SQLite: a read-only reader, the writer, or the next
/// group commit; PostgreSQL: any pooled connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    Read,
    Write,
    Batch,
}

/// Statement text: a `const` or one built at run time.
pub type Sql = Cow<'static, str>;

/// A store that runs one statement at a time, each in its own implicit transaction.
#[async_trait]
pub trait Exec: Send + Sync {
    /// Run `sql` and return its rows (a `SELECT`, or a change with `RETURNING`).
    async fn query(&self, on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<Vec<Row>>;

    /// Run `sql` and return how many rows it changed.
    async fn execute(&self, on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<u64>;

    /// The first row, if any.
    async fn query_opt(&self, on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<Option<Row>> {
        Ok(self.query(on, sql, args).await?.into_iter().next())
    }

    /// The one row of a statement that always yields one.
    async fn query_one(&self, on: On, sql: Sql, args: Vec<Arg>) -> MetaResult<Row> {
        self.query_opt(on, sql, args)
            .await?
            .ok_or_else(|| MetaError::Internal("a statement returned no row".into()))
    }
}

/// `sql` with SQLite's placeholders: `$N` becomes `?N`. (SQLite would read `$N` as a *named*
/// parameter, numbered by first appearance, which is wrong when numbers appear out of order.)
/// Statements carry no `$` in literals.
pub fn sqlite_text(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_text_numbers_the_placeholders_as_written() {
        assert_eq!(
            sqlite_text("UPDATE t SET a = $2 WHERE b = $1 AND c = $12"),
            "UPDATE t SET a = ?2 WHERE b = ?1 AND c = ?12"
        );
        assert!(matches!(sqlite_text("SELECT 1"), Cow::Borrowed(_)));
    }
}
