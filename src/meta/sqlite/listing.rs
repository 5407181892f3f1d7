//! The seed's offset listing (see `meta::page`) on SQLite: the count and the page (their SQL is
//! `meta::sql`'s) in one read transaction, so both come from one snapshot.

use rusqlite::Connection;

use super::sql::run;
use crate::domain::FileRecord;
use crate::meta::MetaResult;
use crate::meta::page::SeedPage;
use crate::meta::sql::{Dialect, Listing, count_from_rows, file_from_row};

pub(super) fn snapshot_page(
    c: &mut Connection,
    l: &Listing,
    page: SeedPage,
) -> MetaResult<(u64, Vec<FileRecord>)> {
    let tx = c.transaction()?;
    let (sql, args) = l.count(Dialect::Sqlite);
    let count = count_from_rows(&run(&tx, &sql, &args)?)?;
    let files = match page.plan(count) {
        Some(read) => {
            let (sql, args) = l.page(Dialect::Sqlite, read);
            let rows = run(&tx, &sql, &args)?;
            rows.iter().map(file_from_row).collect::<MetaResult<_>>()?
        }
        None => Vec::new(),
    };
    Ok((count, files))
}
