//! The seed's offset listing (see `meta::page`) on PostgreSQL, the count and the page from one
//! snapshot; and gc's folding of the counters' delta rows.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::IsolationLevel;

use super::sql::run;
use crate::domain::FileRecord;
use crate::meta::MetaResult;
use crate::meta::page::SeedPage;
use crate::meta::sql::{Dialect, Listing, count_from_rows, file_from_row};

/// The count and the page (their SQL is `meta::sql`'s) in one read-only snapshot.
pub(super) async fn snapshot_page(
    c: &mut Object,
    l: &Listing,
    page: SeedPage,
) -> MetaResult<(u64, Vec<FileRecord>)> {
    let tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let (sql, args) = l.count(Dialect::Postgres);
    let count = count_from_rows(&run(&tx, &sql, args).await?)?;
    let files = match page.plan(count) {
        Some(read) => {
            let (sql, args) = l.page(Dialect::Postgres, read);
            let rows = run(&tx, &sql, args).await?;
            rows.iter().map(file_from_row).collect::<MetaResult<_>>()?
        }
        None => Vec::new(),
    };
    tx.commit().await?;
    Ok((count, files))
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
