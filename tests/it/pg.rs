//! PostgreSQL for the store matrix: a fresh database per test, so tests run in parallel.

use mtfu::config::Config;

/// Point `cfg` at a new, empty PostgreSQL database.
pub async fn configure(_cfg: &mut Config) {
    panic!("the PostgreSQL metadata store is not implemented yet");
}
