//! Configuration: built-in defaults < TOML file < `MTFU_*` environment variables.
//!
//! Every key is documented once, in `config/mtfu.toml`. Environment variables use `__` between
//! sections: `MTFU_LIMITS__MAX_FILE_SIZE=1048576` sets `limits.max_file_size`. The whole
//! configuration is parsed and validated once at start; a bad value is a one-line error that
//! names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub metadata: MetadataConfig,
    pub blobs: BlobsConfig,
    pub gc: GcConfig,
}

/// Listeners, state directory and protections against slow or hostile clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTPS listener, `host:port`.
    pub listen: String,
    /// Optional plain-HTTP listener for running behind a TLS-terminating proxy. Off by default.
    pub plain_listen: Option<String>,
    /// Where the SQLite database, local blobs, generated secrets and certificates live.
    pub data_dir: PathBuf,
    /// Base URL used for links mtfu builds (signed download URLs), e.g. `https://files.example.com`.
    /// Unset: built from the request's scheme and `Host`.
    pub public_url: Option<String>,
    /// Time allowed to finish the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Time allowed to send a request's headers (HTTP/1).
    pub header_read_timeout_secs: u64,
    /// A connection with no bytes read or written for this long is closed.
    pub idle_timeout_secs: u64,
    /// An upload whose body sends nothing for this long is aborted (a minimum body rate).
    pub body_read_timeout_secs: u64,
    /// Largest request head (request line + headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            plain_listen: None,
            data_dir: PathBuf::from("data"),
            public_url: None,
            tls_handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 30,
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
            shutdown_grace_secs: 30,
        }
    }
}

/// TLS certificate. Without `cert_path`/`key_path` a self-signed certificate is generated on
/// first start and kept in `data_dir/tls/`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the self-signed certificate (besides localhost,
    /// 127.0.0.1 and ::1).
    pub self_signed_names: Vec<String>,
}

/// Tokens and passwords.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret. Unset: generated once and kept in `data_dir/jwt.secret`. Every node sharing a
    /// database must use the same secret.
    pub jwt_secret: Option<String>,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// argon2 hashes computed at once (each takes ~19 MiB of RAM).
    pub max_concurrent_hashes: usize,
    /// Failed logins allowed per username, and per client address, within `login_window_secs`.
    pub max_failed_logins_per_user: u32,
    pub max_failed_logins_per_ip: u32,
    pub login_window_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            access_ttl_secs: 3600,
            refresh_ttl_secs: 86_400,
            max_concurrent_hashes: 2,
            max_failed_logins_per_user: 10,
            max_failed_logins_per_ip: 50,
            login_window_secs: 300,
        }
    }
}

/// Sizes, lifetimes and the memory budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest file accepted, in bytes (the original service: 10485760).
    pub max_file_size: u64,
    /// Files expire this many seconds after upload unless the client says otherwise. Unset: never.
    pub default_ttl_secs: Option<u64>,
    /// `page_size` above this is capped.
    pub max_page_size: u64,
    /// Lifetime of the signed download URLs in listings.
    pub url_ttl_secs: u64,
    /// Bytes of request bodies held in memory by all uploads together.
    pub buffer_budget: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_file_size: 10 * 1024 * 1024,
            default_ttl_secs: None,
            max_page_size: 1000,
            url_ttl_secs: 3600,
            buffer_budget: 64 * 1024 * 1024,
        }
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Database file. Unset: `data_dir/mtfu.sqlite3`.
    pub path: Option<PathBuf>,
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
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            connect_timeout_secs: 5,
            statement_timeout_secs: 10,
            tls: false,
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
            .finish()
    }
}

/// Which blob store, and its settings.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    /// `local` (the default) or `s3`.
    pub backend: BlobBackendKind,
    pub local: LocalBlobConfig,
    pub s3: S3BlobConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackendKind {
    #[default]
    Local,
    S3,
}

/// S3's smallest part of a multipart upload (all but the last part).
pub const S3_MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The S3 (or S3-compatible) blob store.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3BlobConfig {
    /// Bucket of the blobs (must exist).
    pub bucket: String,
    /// Region of the bucket, e.g. `eu-west-1`.
    pub region: String,
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`. Unset: AWS's endpoint.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub force_path_style: bool,
    /// Static credentials; both or neither. Unset: the standard AWS chain (environment,
    /// profile, web identity, ECS/EC2 instance role).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Prepended to every object key, e.g. `mtfu/`.
    pub key_prefix: String,
    /// Bytes of one multipart part (at least 5 MiB); bodies up to this size go in one PutObject.
    pub part_size: u64,
    /// Parts of one upload sent to S3 at once (one more part is filled meanwhile).
    pub parts_in_flight: usize,
    /// Lifetime of the presigned download URLs in listings. Unset: `limits.url_ttl_secs`.
    pub presign_ttl_secs: Option<u64>,
}

impl Default for S3BlobConfig {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint_url: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            key_prefix: String::new(),
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 2,
            presign_ttl_secs: None,
        }
    }
}

impl std::fmt::Debug for S3BlobConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobConfig")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("key_prefix", &self.key_prefix)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("presign_ttl_secs", &self.presign_ttl_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LocalBlobConfig {
    /// Directory of the blobs. Unset: `data_dir/blobs`.
    pub path: Option<PathBuf>,
}

/// The garbage collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// `serve` runs the collector this often. 0 turns the periodic run off.
    pub interval_secs: u64,
    /// Deleted or expired files, and abandoned uploads, are kept this long before their blobs
    /// are removed (a download that has begun may still be reading).
    pub grace_secs: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval_secs: 600,
            grace_secs: 3600,
        }
    }
}

/// A configuration that could not be loaded, with the key at fault when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        // figment's Display lists every error; the first names its key and is what to fix.
        let first = e.into_iter().next();
        let text = match first {
            Some(err) => {
                let key = err.path.join(".");
                let mut kind = err.kind.to_string();
                if !key.is_empty() {
                    kind = format!("key `{key}`: {kind}");
                }
                match err.metadata.as_ref() {
                    Some(md) => format!("{kind} (from {})", md.name),
                    None => kind,
                }
            }
            None => "unknown error".into(),
        };
        ConfigError::Load(text)
    }
}

impl Config {
    /// Load defaults, then `path` (if given; a missing file is an error), then `MTFU_*`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            fig = fig.merge(Toml::file(p));
        }
        // MTFU_TEST_* belong to the test suite, MTFU_CONFIG and MTFU_LOG to the CLI.
        fig = fig.merge(
            Env::prefixed("MTFU_")
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    !k.starts_with("test_") && k != "config" && k != "log"
                })
                .split("__"),
        );
        let cfg: Config = fig.extract()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                message: message.into(),
            }
        }
        parse_addr(&self.server.listen).map_err(|m| invalid("server.listen", m))?;
        if let Some(p) = &self.server.plain_listen {
            parse_addr(p).map_err(|m| invalid("server.plain_listen", m))?;
        }
        if let Some(u) = &self.server.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(invalid(
                "server.public_url",
                "must start with https:// or http://",
            ));
        }
        if self.tls.cert_path.is_some() != self.tls.key_path.is_some() {
            return Err(invalid(
                "tls.cert_path",
                "tls.cert_path and tls.key_path must be set together",
            ));
        }
        if self.limits.max_file_size == 0 {
            return Err(invalid("limits.max_file_size", "must be at least 1"));
        }
        if self.limits.max_page_size == 0 {
            return Err(invalid("limits.max_page_size", "must be at least 1"));
        }
        if self.limits.buffer_budget < 1024 * 1024 {
            return Err(invalid("limits.buffer_budget", "must be at least 1048576"));
        }
        if self.auth.max_concurrent_hashes == 0 {
            return Err(invalid("auth.max_concurrent_hashes", "must be at least 1"));
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(invalid("server.max_header_bytes", "must be at least 8192"));
        }
        if let Some(s) = &self.auth.jwt_secret
            && s.len() < 32
        {
            return Err(invalid("auth.jwt_secret", "must be at least 32 bytes"));
        }
        if self.metadata.backend == MetadataBackend::Postgres {
            self.validate_postgres()?;
        }
        if self.blobs.backend == BlobBackendKind::S3 {
            self.validate_s3()?;
        }
        Ok(())
    }

    fn validate_s3(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                message: message.into(),
            }
        }
        let s3 = &self.blobs.s3;
        if s3.bucket.is_empty() {
            return Err(invalid(
                "blobs.s3.bucket",
                "must be set when blobs.backend is \"s3\"",
            ));
        }
        if s3.region.is_empty() {
            return Err(invalid("blobs.s3.region", "must not be empty"));
        }
        if let Some(u) = &s3.endpoint_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(invalid(
                "blobs.s3.endpoint_url",
                "must start with https:// or http://",
            ));
        }
        if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
            return Err(invalid(
                "blobs.s3.access_key_id",
                "blobs.s3.access_key_id and blobs.s3.secret_access_key must be set together",
            ));
        }
        if s3.part_size < S3_MIN_PART_SIZE {
            return Err(invalid(
                "blobs.s3.part_size",
                format!("must be at least {S3_MIN_PART_SIZE} (S3's minimum part size)"),
            ));
        }
        if s3.part_size > 5 * 1024 * 1024 * 1024 {
            return Err(invalid(
                "blobs.s3.part_size",
                "must be at most 5368709120 (S3's maximum part size)",
            ));
        }
        if s3.parts_in_flight == 0 {
            return Err(invalid("blobs.s3.parts_in_flight", "must be at least 1"));
        }
        if self.limits.buffer_budget < s3.part_size {
            return Err(invalid(
                "limits.buffer_budget",
                "must be at least blobs.s3.part_size (an S3 upload buffers whole parts)",
            ));
        }
        if s3.presign_ttl_secs.is_some_and(|t| t == 0 || t > 604_800) {
            return Err(invalid(
                "blobs.s3.presign_ttl_secs",
                "must be between 1 and 604800 (7 days, SigV4's maximum)",
            ));
        }
        // 10,000 parts at most: a file at the size limit must fit.
        if self.limits.max_file_size.div_ceil(s3.part_size) > 10_000 {
            return Err(invalid(
                "blobs.s3.part_size",
                "too small for limits.max_file_size: S3 allows 10000 parts per object",
            ));
        }
        Ok(())
    }

    /// Lifetime of the download links in listings.
    pub fn link_ttl_secs(&self) -> u64 {
        match self.blobs.backend {
            BlobBackendKind::S3 => self
                .blobs
                .s3
                .presign_ttl_secs
                .unwrap_or(self.limits.url_ttl_secs),
            BlobBackendKind::Local => self.limits.url_ttl_secs,
        }
    }

    fn validate_postgres(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                message: message.into(),
            }
        }
        let pg = &self.metadata.postgres;
        let Some(url) = &pg.url else {
            return Err(invalid(
                "metadata.postgres.url",
                "must be set when metadata.backend is \"postgres\"",
            ));
        };
        // The parser's message never repeats the URL, so a password cannot leak through it.
        let parsed: tokio_postgres::Config = url.parse().map_err(|e| {
            invalid(
                "metadata.postgres.url",
                format!("not a PostgreSQL URL: {e}"),
            )
        })?;
        if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require && !pg.tls {
            return Err(invalid(
                "metadata.postgres.tls",
                "must be true when metadata.postgres.url says sslmode=require",
            ));
        }
        if pg.pool_size == 0 {
            return Err(invalid("metadata.postgres.pool_size", "must be at least 1"));
        }
        if pg.connect_timeout_secs == 0 {
            return Err(invalid(
                "metadata.postgres.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        if pg.statement_timeout_secs == 0 {
            return Err(invalid(
                "metadata.postgres.statement_timeout_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.metadata
            .sqlite
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("mtfu.sqlite3"))
    }

    pub fn local_blob_path(&self) -> PathBuf {
        self.blobs
            .local
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("blobs"))
    }
}

/// `host:port` with a literal address (`0.0.0.0:443`, `[::]:443`) or `localhost:port`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("bad port in {s:?}"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not host:port with a literal IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[limits]\nmax_file_size = \"lots\"\n").expect("write");
        let err = Config::load(Some(&p)).expect_err("must fail").to_string();
        assert!(err.contains("limits.max_file_size"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[server]\nlisten_on = \"x\"\n").expect("write");
        let err = Config::load(Some(&p)).expect_err("must fail").to_string();
        assert!(err.contains("listen_on"), "{err}");
    }

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

    #[test]
    fn the_s3_backend_checks_its_keys() {
        let mut c = Config::default();
        c.blobs.backend = BlobBackendKind::S3;
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("blobs.s3.bucket"), "{err}");
        c.blobs.s3.bucket = "b".into();
        c.validate().expect("valid");
        c.blobs.s3.part_size = 1024 * 1024;
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("blobs.s3.part_size"), "{err}");
        c.blobs.s3.part_size = 128 * 1024 * 1024;
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("limits.buffer_budget"), "{err}");
        c.blobs.s3.part_size = 8 * 1024 * 1024;
        c.blobs.s3.access_key_id = Some("k".into());
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("blobs.s3.access_key_id"), "{err}");
        c.blobs.s3.secret_access_key = Some("hunter2".into());
        c.validate().expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn a_bad_listen_address_names_its_key() {
        let mut c = Config::default();
        c.server.listen = "nowhere".into();
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("server.listen"), "{err}");
    }
}
