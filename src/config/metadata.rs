//! `[metadata]`: which metadata store holds tenants, files and uploads (SQLite or PostgreSQL),
//! and each store's connection settings. The stores themselves are in [`crate::meta`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which metadata store, and its settings.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub backend: MetadataBackend,
    pub sqlite: SqliteConfig,
    pub postgres: PostgresConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetadataBackend {
    /// One SQLite file in `data_dir`: a single node.
    #[default]
    Sqlite,
    /// A PostgreSQL database, which several mtfu nodes may share.
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Database file. Unset: `data_dir/mtfu.sqlite3`.
    pub path: Option<PathBuf>,
    /// Connections kept open for reads (listings, downloads, logins), apart from the 4
    /// connections that write: a read never waits for a write (WAL). 0 is taken as 1.
    pub read_connections: usize,
    /// How long a write waits for SQLite's write lock (held by another process, e.g. a backup)
    /// before its request fails with 503 `metadata_unavailable`.
    pub busy_timeout_secs: u64,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: None,
            read_connections: 4,
            busy_timeout_secs: 10,
        }
    }
}

/// PostgreSQL metadata store (`metadata.backend = "postgres"`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL, e.g. `postgres://mtfu:secret@db.internal:5432/mtfu`, or a key=value
    /// string (`host=... user=... dbname=...`). Required with the postgres backend. Its
    /// `sslmode` must not say `require` unless `tls` is on.
    pub url: Option<String>,
    /// Connections kept open at most.
    pub pool_size: usize,
    /// Longest wait for a pooled connection, and for opening a new one; past it the request
    /// fails with 503 `metadata_unavailable`.
    pub connect_timeout_secs: u64,
    /// Server-side `statement_timeout` of every connection; a request whose query runs longer
    /// fails with 503 `metadata_unavailable`.
    pub statement_timeout_secs: u64,
    /// Require TLS to the database, verifying its certificate against the system's trusted
    /// roots (and the Mozilla roots) and its host name. Off: plain TCP (or a Unix socket).
    pub tls: bool,
    /// A pooled connection is checked with a round trip (an empty query) before it is handed
    /// out only if it was last handed out at least this long ago (ms); 0: before every use. The
    /// check replaces a connection the server closed (a restart, `pg_terminate_backend`) before
    /// a request sees it. Under load it is four of an upload's eleven round trips; with a
    /// setting such as 1000, busy connections skip it, and a connection killed within that time
    /// of its last use fails the one request that finds it dead (503).
    pub verify_after_idle_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            connect_timeout_secs: 5,
            statement_timeout_secs: 10,
            tls: false,
            verify_after_idle_ms: 0,
        }
    }
}

/// By hand, so that a password in `url` never reaches a log.
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("statement_timeout_secs", &self.statement_timeout_secs)
            .field("tls", &self.tls)
            .field("verify_after_idle_ms", &self.verify_after_idle_ms)
            .finish()
    }
}

impl MetadataConfig {
    /// The chosen store's settings are usable (only the chosen store's are checked).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.backend {
            MetadataBackend::Sqlite => Ok(()),
            MetadataBackend::Postgres => self.postgres.validate(),
        }
    }
}

impl PostgresConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let Some(url) = &self.url else {
            return Err((
                "metadata.postgres.url",
                "must be set when metadata.backend is \"postgres\"".into(),
            ));
        };
        // The parser's message never repeats the URL, so a password cannot leak through it.
        let parsed: tokio_postgres::Config = url.parse().map_err(|e| {
            (
                "metadata.postgres.url",
                format!("not a PostgreSQL URL: {e}"),
            )
        })?;
        if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require && !self.tls {
            return Err((
                "metadata.postgres.tls",
                "must be true when metadata.postgres.url says sslmode=require".into(),
            ));
        }
        if self.pool_size == 0 {
            return Err(("metadata.postgres.pool_size", "must be at least 1".into()));
        }
        if self.connect_timeout_secs == 0 {
            return Err((
                "metadata.postgres.connect_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if self.statement_timeout_secs == 0 {
            return Err((
                "metadata.postgres.statement_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_postgres_backend_without_a_url_names_the_key() {
        let mut c = Config::default();
        c.metadata.backend = MetadataBackend::Postgres;
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("metadata.postgres.url"), "{err}");
        c.metadata.postgres.url = Some("postgres://mtfu@localhost/mtfu".into());
        c.validate().expect("valid");
    }

    #[test]
    fn the_postgres_url_password_is_not_in_debug_output() {
        let mut c = Config::default();
        c.metadata.postgres.url = Some("postgres://mtfu:hunter2@localhost/mtfu".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
