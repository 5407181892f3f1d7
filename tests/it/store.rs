//! The store matrix: every API test runs once per metadata store. A test is a plain
//! `pub async fn`; `store_matrix!` instantiates it as `sqlite::name` and `postgres::name`, and
//! `spawn_with` points the server at a fresh store of the kind the running instance names.
//!
//! PostgreSQL tests read `MTFU_TEST_POSTGRES_URL`; when it is unset they say they are skipped
//! and pass (CI always sets it).

use mtfu::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStore {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    pub static META: MetaStore;
}

/// The metadata store of the running test instance (SQLite outside the matrix).
pub fn current() -> MetaStore {
    META.try_with(|m| *m).unwrap_or(MetaStore::Sqlite)
}

pub fn postgres_url() -> Option<String> {
    std::env::var("MTFU_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Point `cfg` at a fresh, empty store of the current kind.
pub async fn configure(cfg: &mut Config) {
    match current() {
        MetaStore::Sqlite => {} // The data directory is fresh already.
        MetaStore::Postgres => crate::pg::configure(cfg).await,
    }
}

#[macro_export]
macro_rules! store_matrix {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::store::META
                        .scope($crate::store::MetaStore::Sqlite, super::$name())
                        .await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if $crate::store::postgres_url().is_none() {
                        eprintln!("skipped: MTFU_TEST_POSTGRES_URL is not set");
                        return;
                    }
                    $crate::store::META
                        .scope($crate::store::MetaStore::Postgres, super::$name())
                        .await
                }
            )*
        }
    };
}
