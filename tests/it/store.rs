//! The store matrix: every API test runs once per metadata store × blob store. A test is a plain
//! `pub async fn`; `store_matrix!` instantiates it as `sqlite_local::name`, `postgres_local::name`,
//! `sqlite_s3::name` and `postgres_s3::name`, and `spawn_with` points the server at fresh stores
//! of the kinds the running instance names.
//!
//! PostgreSQL tests read `MTFU_TEST_POSTGRES_URL` (else a PostgreSQL on 127.0.0.1:5432); where
//! neither is, the build marks them ignored (tests/support/detect.rs), so `cargo test` reports
//! them as such; CI sets the URL and requires them. S3 tests run an in-process `s3s-fs` server on loopback
//! ([`crate::s3::S3Server`]), one per test.

use mtfu::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStore {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStore {
    Local,
    S3,
}

tokio::task_local! {
    pub static META: MetaStore;
    pub static BLOBS: BlobStore;
}

/// The metadata store of the running test instance (SQLite outside the matrix).
pub fn current() -> MetaStore {
    META.try_with(|m| *m).unwrap_or(MetaStore::Sqlite)
}

/// The blob store of the running test instance (local disk outside the matrix).
pub fn current_blobs() -> BlobStore {
    BLOBS.try_with(|b| *b).unwrap_or(BlobStore::Local)
}

/// `MTFU_TEST_POSTGRES_URL`, else the PostgreSQL the build found on 127.0.0.1:5432 (see
/// tests/support/detect.rs), else none (the PostgreSQL tests are then ignored).
pub fn postgres_url() -> Option<String> {
    std::env::var("MTFU_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            (!cfg!(mtfu_no_pg)).then(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
        })
}

/// Point `cfg` at fresh, empty stores of the current kinds. The S3 server, if any, lives as long
/// as the returned value.
pub async fn configure(cfg: &mut Config) -> Option<crate::s3::S3Server> {
    match current() {
        MetaStore::Sqlite => {} // The data directory is fresh already.
        MetaStore::Postgres => crate::pg::configure(cfg).await,
    }
    match current_blobs() {
        BlobStore::Local => None,
        BlobStore::S3 => {
            let s3 = crate::s3::S3Server::start().await;
            s3.configure(cfg);
            Some(s3)
        }
    }
}

#[macro_export]
macro_rules! store_matrix {
    (@meta $module:ident, $meta:ident, $blobs:ident, $attrs:tt; $($name:ident),*) => {
        mod $module {
            $( $crate::store_matrix!(@one $meta, $blobs, $attrs; $name); )*
        }
    };
    (@one $meta:ident, $blobs:ident, [$(#[$attr:meta])*]; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            $crate::store::run(
                $crate::store::MetaStore::$meta,
                $crate::store::BlobStore::$blobs,
                super::$name(),
            )
            .await
        }
    };
    // Attributes before the names (a `cfg_attr(..., ignore)` for a peer the tests need) go on
    // every instance.
    ($(#[$attr:meta])* $($name:ident),* $(,)?) => {
        $crate::store_matrix!(@meta sqlite_local, Sqlite, Local, [$(#[$attr])*]; $($name),*);
        $crate::store_matrix!(@meta sqlite_s3, Sqlite, S3, [$(#[$attr])*]; $($name),*);
        $crate::store_matrix!(@meta postgres_local, Postgres, Local, [$(#[$attr])*
            #[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]];
            $($name),*);
        $crate::store_matrix!(@meta postgres_s3, Postgres, S3, [$(#[$attr])*
            #[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]];
            $($name),*);
    };
}

/// Run one matrix test with the stores of its instance.
pub async fn run(meta: MetaStore, blobs: BlobStore, test: impl std::future::Future<Output = ()>) {
    assert!(
        meta != MetaStore::Postgres || postgres_url().is_some(),
        "PostgreSQL is required (MTFU_TEST_POSTGRES_URL)"
    );
    META.scope(meta, BLOBS.scope(blobs, test)).await
}
