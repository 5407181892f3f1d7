//! The PostgreSQL store's unit tests: migrations, `describe`, the listing's placeholders, and
//! the stores' shared checks (`meta::testing`, `meta::page::testing`) on a fresh database when
//! one is configured.

use super::migrate::MIGRATIONS;
use super::*;
use crate::config::PostgresConfig;
use crate::domain::{Tenant, TenantId, TenantName};
use crate::meta::sql::Dialect;
use crate::meta::{ListFilter, MetaBackend};
use tokio_postgres::NoTls;

#[test]
fn every_migration_file_is_embedded_in_order() {
    crate::meta::testing::migrations_match_files("postgres", MIGRATIONS);
}

#[test]
fn describe_never_shows_the_password() {
    let cfg = PostgresConfig {
        url: Some("postgres://mtfu:hunter2@db.internal:6432/files".into()),
        ..PostgresConfig::default()
    };
    let d = describe(&cfg);
    assert_eq!(d, "mtfu@db.internal:6432/files");
    assert!(!d.contains("hunter2"));
}

#[test]
fn listing_filters_become_numbered_placeholders() {
    let viewer = Tenant {
        id: TenantId(7),
        name: TenantName::parse("john1").expect("name"),
    };
    let filter = ListFilter {
        resource: Some("r".into()),
        resource_id: None,
        tenant_username: Some("john2".into()),
    };
    let (sql, args) = crate::meta::sql::visible_where(Dialect::Postgres, &viewer, &filter, 0);
    assert!(
        sql.ends_with("AND f.resource = $3 AND t.username = $4"),
        "{sql}"
    );
    assert_eq!(args.len(), 4);
}

/// A migrated store on a fresh database of `MTFU_TEST_POSTGRES_URL` (named like the
/// integration tests' ones, so their sweep drops it if this test dies), the admin client and
/// the database's name.
async fn fresh_store() -> (Postgres, tokio_postgres::Client, String) {
    let Some(admin_url) = std::env::var("MTFU_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            // The PostgreSQL the build found on 127.0.0.1:5432 (tests/support/detect.rs).
            (!cfg!(mtfu_no_pg)).then(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
        })
    else {
        // Only where the build found PostgreSQL: the test is ignored elsewhere.
        panic!("PostgreSQL is required: MTFU_TEST_POSTGRES_URL");
    };
    let (admin, conn) = tokio_postgres::connect(&admin_url, NoTls)
        .await
        .expect("connect to MTFU_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    let name = format!("mtfu_test_{}", uuid::Uuid::now_v7().simple());
    // A default collation that sorts unlike bytes ("B" < "a" in C, not in English), where
    // the server has ICU, so that a comparison or sort missing the columns' "C" collation
    // shows.
    let icu = admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' \
             LOCALE 'C.UTF-8'"
        ))
        .await;
    if icu.is_err() {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
    }
    let cfg = PostgresConfig {
        url: Some(with_dbname(&admin_url, &name)),
        ..PostgresConfig::default()
    };
    let db = Postgres::open(&cfg).expect("open");
    db.migrate().await.expect("migrate");
    (db, admin, name)
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn keyset_pages_follow_offset_order() {
    let (db, admin, name) = fresh_store().await;
    crate::meta::testing::keyset_pages_follow_offset_order(&db).await;
    crate::meta::testing::commit_and_clean_up_race_through_the_intent(&db).await;
    crate::meta::seed::testing::shared_keys_go_with_the_last_row(&db).await;
    drop(db);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
}

#[tokio::test]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn seed_listing_counts_stay_exact() {
    let (db, admin, name) = fresh_store().await;
    crate::meta::page::testing::counts_stay_exact(&db).await;
    drop(db);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
}
