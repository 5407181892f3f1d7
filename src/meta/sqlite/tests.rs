//! The SQLite store's unit tests: its migrations, and the stores' shared checks (`meta::testing`,
//! `meta::page::testing`) run on a fresh database.

use super::MIGRATIONS;

#[test]
fn every_migration_file_is_embedded_in_order() {
    crate::meta::testing::migrations_match_files("sqlite", MIGRATIONS);
}

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time() {
    use crate::meta::MetaBackend;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = super::Sqlite::open(&dir.path().join("m.db"))
        .await
        .expect("open");
    assert_eq!(db.migrate().await.expect("first"), MIGRATIONS.len());
    assert_eq!(db.migrate().await.expect("second"), 0);
}

#[tokio::test]
async fn a_schema_from_a_newer_mtfu_is_refused() {
    use crate::meta::MetaBackend;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = super::Sqlite::open(&dir.path().join("m.db"))
        .await
        .expect("open");
    db.migrate().await.expect("migrate");
    db.with(|c| {
        c.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'x', 0)",
            [],
        )?;
        Ok(())
    })
    .await
    .expect("insert");
    let err = db.migrate().await.expect_err("refused").to_string();
    assert!(err.contains("migration 999, newer than this mtfu"), "{err}");
}

#[tokio::test]
async fn keyset_pages_follow_offset_order() {
    use crate::meta::MetaBackend;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = super::Sqlite::open(&dir.path().join("m.db"))
        .await
        .expect("open");
    db.migrate().await.expect("migrate");
    crate::meta::testing::keyset_pages_follow_offset_order(&db).await;
    crate::meta::testing::commit_and_clean_up_race_through_the_intent(&db).await;
}

#[tokio::test]
async fn seed_listing_counts_stay_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = super::Sqlite::open(&dir.path().join("m.db"))
        .await
        .expect("open");
    crate::meta::MetaBackend::migrate(&db)
        .await
        .expect("migrate");
    crate::meta::page::testing::counts_stay_exact(&db).await;
}
