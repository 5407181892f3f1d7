//! The PostgreSQL store's schema: the migrations embedded in order, applied once each under an
//! advisory lock so that nodes starting together migrate one after the other.

use super::Postgres;
use crate::meta::{MetaError, MetaResult};

/// The migrations, in order. Each runs once, recorded in `schema_migrations`.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "0002_public_listing_indexes",
        include_str!("../../../migrations/postgres/0002_public_listing_indexes.sql"),
    ),
    (
        3,
        "0003_v2",
        include_str!("../../../migrations/postgres/0003_v2.sql"),
    ),
    (
        4,
        "0004_quotas",
        include_str!("../../../migrations/postgres/0004_quotas.sql"),
    ),
    (
        5,
        "0005_tus",
        include_str!("../../../migrations/postgres/0005_tus.sql"),
    ),
    (
        6,
        "0006_leases",
        include_str!("../../../migrations/postgres/0006_leases.sql"),
    ),
    (
        7,
        "0007_session_epoch",
        include_str!("../../../migrations/postgres/0007_session_epoch.sql"),
    ),
    (
        8,
        "0008_name_keys",
        include_str!("../../../migrations/postgres/0008_name_keys.sql"),
    ),
    (
        9,
        "0009_seed_import",
        include_str!("../../../migrations/postgres/0009_seed_import.sql"),
    ),
    (
        10,
        "0010_listing_counts",
        include_str!("../../../migrations/postgres/0010_listing_counts.sql"),
    ),
    (
        11,
        "0011_last_login",
        include_str!("../../../migrations/postgres/0011_last_login.sql"),
    ),
];

/// Key of the advisory lock held while migrating ("mtfu" in ASCII), so that nodes starting at
/// once against one database migrate one after the other. Advisory locks are per database.
const MIGRATION_LOCK: i64 = 0x6d74_6675;

pub(super) async fn migrate(pg: &Postgres) -> MetaResult<usize> {
    // Not bounded by `call_timeout`: a migration may rebuild a large table, and a node that
    // starts while another migrates waits for its lock.
    let mut c = pg.client().await?;
    let tx = c.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let newest: Option<i64> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .try_get(0)?;
    crate::meta::refuse_newer_schema(newest, MIGRATIONS)?;
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        let done: bool = tx
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = $1)",
                &[version],
            )
            .await?
            .try_get(0)?;
        if done {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| match MetaError::from(e) {
                MetaError::Internal(m) | MetaError::Conflict(m) => {
                    MetaError::Internal(format!("migration {name} failed: {m}"))
                }
                unavailable => unavailable,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &crate::domain::now_micros()],
        )
        .await?;
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}
