//! Configuration: built-in defaults < TOML file < `MTFU_*` environment variables.
//!
//! Every key is documented once, in `config/mtfu.toml`. Environment variables use `__` between
//! sections: `MTFU_LIMITS__MAX_FILE_SIZE=1048576` sets `limits.max_file_size`. The whole
//! configuration is parsed and validated once at start; a bad value is a one-line error that
//! names the key.
//!
//! This module loads the configuration (figment) and holds the top-level [`Config`]; each
//! section's struct, defaults and checks live in its own module below (`server`, `tls`, `auth`,
//! `limits`, `metadata`, `blobs`, `gc`, `tus`, `cors`, `http2`), re-exported here.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub mod auth;
pub mod blobs;
pub mod cors;
pub mod gc;
pub mod http2;
pub mod limits;
pub mod metadata;
pub mod server;
pub mod tls;
pub mod tus;

pub use auth::AuthConfig;
pub use blobs::{BlobBackendKind, BlobsConfig, LocalBlobConfig, S3_MIN_PART_SIZE, S3BlobConfig};
pub use gc::GcConfig;
pub use limits::LimitsConfig;
pub use metadata::{MetadataBackend, MetadataConfig, PostgresConfig, SqliteConfig};
pub use server::{ServerConfig, TrustedProxy, metrics_off, parse_addr};
pub use tls::{AcmeChallenge, AcmeConfig, LETS_ENCRYPT_DIRECTORY, TlsConfig};
pub use tus::TusConfig;

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
    pub tus: TusConfig,
    pub cors: cors::CorsConfig,
    pub http2: http2::Http2Config,
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
        // MTFU_TEST_* belong to the test suite, MTFU_CONFIG, MTFU_LOG and MTFU_LOG_FORMAT to
        // the CLI.
        fig = fig.merge(
            Env::prefixed("MTFU_")
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    !k.starts_with("test_")
                        && !matches!(k.as_str(), "config" | "log" | "log_format")
                })
                .split("__"),
        );
        let cfg: Config = fig.extract()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that serde cannot express, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |(key, message)| ConfigError::Invalid { key, message };
        self.server.validate().map_err(invalid)?;
        self.tls
            .validate(self.server.plain_listen.is_some())
            .map_err(invalid)?;
        self.auth.validate().map_err(invalid)?;
        self.limits.validate().map_err(invalid)?;
        self.metadata.validate().map_err(invalid)?;
        self.blobs
            .validate(&self.limits, self.server.idle_timeout_secs)
            .map_err(invalid)?;
        self.gc.validate().map_err(invalid)?;
        self.tus.validate().map_err(invalid)?;
        self.cors.validate().map_err(invalid)?;
        self.http2.validate().map_err(invalid)?;
        Ok(())
    }
    /// Whether download links are S3 presigned URLs (else mtfu's `/dl/...` links).
    pub fn presigns(&self) -> bool {
        self.blobs.backend == BlobBackendKind::S3 && self.blobs.s3.presigned_urls
    }

    /// Lifetime of the download links in listings.
    pub fn link_ttl_secs(&self) -> u64 {
        match self.blobs.backend {
            BlobBackendKind::S3 if self.blobs.s3.presigned_urls => self
                .blobs
                .s3
                .presign_ttl_secs
                .unwrap_or(self.limits.url_ttl_secs),
            BlobBackendKind::S3 | BlobBackendKind::Local => self.limits.url_ttl_secs,
        }
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
}
