//! Configuration: built-in defaults < TOML file < `MTFU_*` environment variables.
//!
//! Every key is documented once, in `config/mtfu.toml`. Environment variables use `__` between
//! sections: `MTFU_LIMITS__MAX_FILE_SIZE=1048576` sets `limits.max_file_size`. The whole
//! configuration is parsed and validated once at start; a bad value is a one-line error that
//! names the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub mod cors;
pub mod http2;

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
    /// Base URL used for links mtfu builds (signed download URLs), e.g. `https://files.example.com`,
    /// used as-is (behind a gateway stage it must include the stage). Unset: built from the
    /// request's scheme and `Host` (as forwarded by a trusted proxy) and `base_path`.
    pub public_url: Option<String>,
    /// Time allowed to finish the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Time allowed to send a request's headers (HTTP/1).
    pub header_read_timeout_secs: u64,
    /// A connection with no request being handled and no response bytes sent for this long is
    /// closed (HTTP/2 PINGs are not activity); one with no bytes at all, too.
    pub idle_timeout_secs: u64,
    /// An upload whose body sends nothing for this long is aborted (a minimum body rate).
    pub body_read_timeout_secs: u64,
    /// Largest request head (request line + headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: u64,
    /// Addresses of the reverse proxies, load balancers or gateways in front of mtfu. Only a
    /// connection from one of them may say who the client is (`Forwarded`, `X-Forwarded-For`,
    /// `-Proto`, `-Host`). Empty: nobody is trusted and those headers are ignored.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// A path prefix in front of every route, e.g. `/prod` (an API Gateway stage). Stripped before
    /// routing; requests outside it answer 404. Empty: none.
    pub base_path: String,
    /// Largest request body an upload route accepts, in bytes (a gateway's cap, e.g. API
    /// Gateway's 10485760). Larger bodies answer 413 and point at resumable uploads. Unset: none.
    pub max_request_body: Option<u64>,
    /// Listener of `/metrics` (plain HTTP), `host:port`; kept off the service port. Empty or
    /// `"off"`: no metrics listener.
    pub metrics_listen: String,
    /// Slowest average rate of a request body, bytes per second of waiting for it, checked once
    /// the body has been waited for `body_read_timeout_secs`; slower: 408. 0: no minimum.
    pub body_min_rate_bytes_per_sec: u64,
    /// Whole time a body on a route without a token (`/api/token/`, `/api/token/refresh/`) may
    /// take, seconds.
    pub unauthenticated_body_deadline_secs: u64,
}

/// One entry of `server.trusted_proxies`: a CIDR block (`10.0.0.0/8`, `fd00::/8`) or a single
/// address (`10.1.2.3`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(pub ipnet::IpNet);

impl TrustedProxy {
    pub fn parse(s: &str) -> Result<TrustedProxy, String> {
        let s = s.trim();
        let net = match s.parse::<ipnet::IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => s.parse::<IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
                format!("{s:?} is neither an IP address nor a CIDR block like 10.0.0.0/8")
            })?,
        };
        Ok(TrustedProxy(net))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl Serialize for TrustedProxy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TrustedProxy::parse(&s).map_err(serde::de::Error::custom)
    }
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
            trusted_proxies: Vec::new(),
            base_path: String::new(),
            max_request_body: None,
            metrics_listen: "127.0.0.1:9898".into(),
            body_min_rate_bytes_per_sec: 1024,
            unauthenticated_body_deadline_secs: 10,
        }
    }
}

/// TLS certificate: PEM files, certificates obtained by ACME (`acme.domains`), or else a
/// self-signed certificate generated on first start and kept in `data_dir/tls/`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the self-signed certificate (besides localhost,
    /// 127.0.0.1 and ::1).
    pub self_signed_names: Vec<String>,
    pub acme: AcmeConfig,
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Certificates from an ACME CA (RFC 8555), obtained and renewed in the background.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// DNS names of the certificate; a non-empty list turns ACME on.
    pub domains: Vec<String>,
    /// Contact URLs of the ACME account (`mailto:admin@example.com`).
    pub contact: Vec<String>,
    /// The CA's directory URL.
    pub directory_url: String,
    /// How the CA checks that we control the names.
    pub challenge: AcmeChallenge,
    /// Extra root CA (PEM) trusted for the directory's HTTPS, for private or test CAs.
    pub ca_cert_path: Option<PathBuf>,
    /// Renew when the certificate expires within this many days.
    pub renew_before_days: u64,
    /// How often the certificate's expiry is checked.
    pub check_interval_secs: u64,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            contact: Vec::new(),
            directory_url: LETS_ENCRYPT_DIRECTORY.into(),
            challenge: AcmeChallenge::default(),
            ca_cert_path: None,
            renew_before_days: 30,
            check_interval_secs: 43_200,
        }
    }
}

impl AcmeConfig {
    pub fn enabled(&self) -> bool {
        !self.domains.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// TLS-ALPN-01 (RFC 8737) on the HTTPS listener, which must be reachable on port 443.
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// HTTP-01 on the plain listener (`server.plain_listen`), which must be reachable on port 80.
    #[serde(rename = "http-01")]
    Http01,
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
    /// Failed logins per username (all addresses) within `login_window_secs`; past it the
    /// username is guarded: an address it never logged in from gets one try per window.
    pub max_failed_logins_per_user: u32,
    /// Failed logins per (username, client address) within `login_window_secs` (then 429).
    pub max_failed_logins_per_user_address: u32,
    /// Failed logins per client address (IPv6: per /64), all usernames, within the window.
    pub max_failed_logins_per_ip: u32,
    pub login_window_secs: u64,
    /// The original Django service's `SECRET_KEY`, to accept the tokens it issued to tenants
    /// imported by `mtfu import-seed` (verify only; no minimum length). Unset: refused.
    pub seed_secret_key: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            access_ttl_secs: 3600,
            refresh_ttl_secs: 86_400,
            max_concurrent_hashes: 2,
            max_failed_logins_per_user: 10,
            max_failed_logins_per_user_address: 5,
            max_failed_logins_per_ip: 50,
            login_window_secs: 300,
            seed_secret_key: None,
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
    /// Content types an upload may have: `type/subtype`, `type/*` or `*/*`, case-insensitive.
    /// Empty: every type. See `crate::content_type` for how an upload's type is decided.
    pub allowed_content_types: Vec<String>,
    /// Default per-tenant quota: bytes of live files (uploads in flight count). Unset: none.
    /// `mtfu tenant quota` overrides it per tenant.
    pub quota_bytes: Option<u64>,
    /// Default per-tenant quota: number of live files (uploads in flight count). Unset: none.
    pub quota_files: Option<u64>,
    /// Bytes of all non-file fields of a multipart form together (`/api/upload`); more: 400.
    pub max_form_text_bytes: u64,
    /// Parts of a multipart form; more: 400.
    pub max_form_parts: u64,
    /// Bytes before a part's data (boundary line and the part's headers); more: 400.
    pub max_part_header_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_file_size: 10 * 1024 * 1024,
            default_ttl_secs: None,
            max_page_size: 1000,
            url_ttl_secs: 3600,
            buffer_budget: 64 * 1024 * 1024,
            allowed_content_types: Vec::new(),
            quota_bytes: None,
            quota_files: None,
            max_form_text_bytes: 8 * 1024,
            max_form_parts: 16,
            max_part_header_bytes: 8 * 1024,
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
    /// Hand out S3 presigned GET URLs (true, the contract's behaviour). False: mtfu's own signed
    /// `/dl/...` links, streamed from S3 through mtfu, which `mtfu tenant revoke-urls` can revoke
    /// (presigned URLs can only be revoked by rotating the S3 keys).
    pub presigned_urls: bool,
    /// Seconds to connect to S3.
    pub connect_timeout_secs: u64,
    /// Seconds S3 has to start answering one request attempt, writes included (completing a
    /// large multipart upload can take a while).
    pub read_timeout_secs: u64,
    /// Seconds a read (`GetObject`, retries included) has to start answering; then 503. Must be
    /// below `server.idle_timeout_secs`, so that a client always gets that answer.
    pub operation_timeout_secs: u64,
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
            presigned_urls: true,
            connect_timeout_secs: 5,
            read_timeout_secs: 60,
            operation_timeout_secs: 30,
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
            .field("presigned_urls", &self.presigned_urls)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("read_timeout_secs", &self.read_timeout_secs)
            .field("operation_timeout_secs", &self.operation_timeout_secs)
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
    /// Deleted or expired files, and orphan blobs, are kept this long before their blobs are
    /// removed or quarantined (a download that has begun may still be reading).
    pub grace_secs: u64,
    /// An upload's intent is leased this long, renewed while its bytes flow: gc takes only
    /// uploads that sent nothing for this long (and such an upload then fails, unstored).
    pub upload_lease_secs: u64,
    /// Orphan blobs (no file, upload or garbage row names them: e.g. files newer than a restored
    /// database backup) are moved aside, and deleted only after this long.
    pub quarantine_secs: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval_secs: 600,
            grace_secs: 3600,
            upload_lease_secs: 120,
            quarantine_secs: 7 * 86_400,
        }
    }
}

/// Resumable uploads (tus 1.0.0 at `/api/v2/uploads`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TusConfig {
    /// An unfinished upload expires this many seconds after its creation or its last chunk;
    /// then it cannot be resumed and gc removes it.
    pub expire_after_secs: u64,
    /// A `PATCH` holds its upload this long, renewed while it streams: two `PATCH`es of one
    /// upload never write at once, and one cut short by a node's death blocks the upload this
    /// long at most.
    pub lease_secs: u64,
    /// Unfinished uploads a tenant may hold at once (each holds a row, a temporary file or an
    /// S3 multipart upload until it expires); past it, a creation answers 429.
    pub max_unfinished_per_tenant: u64,
}

impl Default for TusConfig {
    fn default() -> Self {
        Self {
            expire_after_secs: 86_400,
            lease_secs: 30,
            max_unfinished_per_tenant: 100,
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
        validate_base_path(&self.server.base_path).map_err(|m| invalid("server.base_path", m))?;
        crate::http::limits::validate(self)?;
        self.cors.validate().map_err(|(k, m)| invalid(k, m))?;
        self.http2.validate().map_err(|(k, m)| invalid(k, m))?;
        if self.server.max_request_body == Some(0) {
            return Err(invalid("server.max_request_body", "must be at least 1"));
        }
        if self.tls.cert_path.is_some() != self.tls.key_path.is_some() {
            return Err(invalid(
                "tls.cert_path",
                "tls.cert_path and tls.key_path must be set together",
            ));
        }
        if self.tls.acme.enabled() {
            self.validate_acme()?;
        }
        // Like a client's expires_in: beyond 100 years an expiry is no longer a date a response
        // can state (years past 9999 are not RFC 3339).
        if self
            .limits
            .default_ttl_secs
            .is_some_and(|t| t > 3_155_760_000)
        {
            return Err(invalid(
                "limits.default_ttl_secs",
                "must be at most 3155760000 (100 years)",
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
        for pattern in &self.limits.allowed_content_types {
            crate::content_type::check_pattern(pattern)
                .map_err(|m| invalid("limits.allowed_content_types", m))?;
        }
        if self.tus.expire_after_secs == 0 {
            return Err(invalid("tus.expire_after_secs", "must be at least 1"));
        }
        if self.gc.upload_lease_secs == 0 {
            return Err(invalid("gc.upload_lease_secs", "must be at least 1"));
        }
        if self.tus.lease_secs == 0 {
            return Err(invalid("tus.lease_secs", "must be at least 1"));
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
        if self.auth.seed_secret_key.is_some() && self.auth.seed_secret_key == self.auth.jwt_secret
        {
            return Err(invalid(
                "auth.seed_secret_key",
                "must differ from auth.jwt_secret",
            ));
        }
        if self.metadata.backend == MetadataBackend::Postgres {
            self.validate_postgres()?;
        }
        if self.blobs.backend == BlobBackendKind::S3 {
            self.validate_s3()?;
        }
        Ok(())
    }

    fn validate_acme(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                message: message.into(),
            }
        }
        let acme = &self.tls.acme;
        if self.tls.cert_path.is_some() {
            return Err(invalid(
                "tls.acme.domains",
                "ACME and tls.cert_path exclude each other: unset one",
            ));
        }
        for d in &acme.domains {
            if !is_dns_name(d) {
                return Err(invalid(
                    "tls.acme.domains",
                    format!(
                        "{d:?} is not a DNS name (wildcards and IP addresses are not supported)"
                    ),
                ));
            }
        }
        if let Some(c) = acme.contact.iter().find(|c| !c.starts_with("mailto:")) {
            return Err(invalid(
                "tls.acme.contact",
                format!("{c:?} must be a mailto: URL"),
            ));
        }
        if !acme.directory_url.starts_with("https://") {
            return Err(invalid(
                "tls.acme.directory_url",
                "must start with https://",
            ));
        }
        if acme.challenge == AcmeChallenge::Http01 && self.server.plain_listen.is_none() {
            return Err(invalid(
                "tls.acme.challenge",
                "\"http-01\" needs server.plain_listen (reachable on port 80)",
            ));
        }
        if acme.renew_before_days == 0 {
            return Err(invalid("tls.acme.renew_before_days", "must be at least 1"));
        }
        if acme.check_interval_secs == 0 {
            return Err(invalid(
                "tls.acme.check_interval_secs",
                "must be at least 1",
            ));
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

/// `""`, or `/` and path segments without a trailing `/` (`/prod`, `/v1/files`).
fn validate_base_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    let ok_segment = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b))
    };
    match p.strip_prefix('/') {
        Some(rest) if rest.split('/').all(ok_segment) => Ok(()),
        _ => Err(format!(
            "{p:?} must be empty or start with / and have no trailing /, e.g. \"/prod\""
        )),
    }
}

/// A DNS name as an ACME CA accepts it: dot-separated labels of letters, digits and inner
/// hyphens, at most 253 bytes.
fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.parse::<std::net::IpAddr>().is_err()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
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
    fn a_default_ttl_past_100_years_is_refused() {
        let mut cfg = Config::default();
        cfg.limits.default_ttl_secs = Some(3_155_760_001);
        let err = cfg.validate().expect_err("refused").to_string();
        assert!(err.contains("limits.default_ttl_secs"), "{err}");
        cfg.limits.default_ttl_secs = Some(86_400);
        cfg.validate().expect("a day is fine");
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
    fn trusted_proxies_take_cidr_blocks_and_single_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::/8\", \"::1\"]\n",
        )
        .expect("write");
        let c = Config::load(Some(&p)).expect("loads");
        let t = &c.server.trusted_proxies;
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(t[0].contains(ip("10.200.0.1")));
        assert!(t[1].contains(ip("192.168.1.7")) && !t[1].contains(ip("192.168.1.8")));
        assert!(t[2].contains(ip("fd12::1")));
        assert!(t[3].contains(ip("::1")));
        std::fs::write(&p, "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n").expect("write");
        let err = Config::load(Some(&p)).expect_err("must fail").to_string();
        assert!(err.contains("server.trusted_proxies"), "{err}");
    }

    #[test]
    fn a_base_path_is_a_slash_and_segments() {
        for good in ["", "/prod", "/v1/files", "/stage-2"] {
            validate_base_path(good).expect(good);
        }
        for bad in [
            "prod", "/prod/", "/", "//prod", "/a//b", "/a?b", "/a b", "/..",
        ] {
            assert!(validate_base_path(bad).is_err(), "{bad}");
        }
        let mut c = Config::default();
        c.server.base_path = "prod".into();
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("server.base_path"), "{err}");
        c.server.base_path = "/prod".into();
        c.server.max_request_body = Some(0);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("server.max_request_body"), "{err}");
    }

    #[test]
    fn acme_checks_its_keys() {
        let mut c = Config::default();
        c.tls.acme.domains = vec!["files.example.com".into()];
        c.validate().expect("valid");
        c.tls.acme.domains.push("*.example.com".into());
        let err = c.validate().expect_err("wildcard").to_string();
        assert!(err.contains("tls.acme.domains"), "{err}");
        c.tls.acme.domains = vec!["files.example.com".into()];
        c.tls.acme.contact = vec!["admin@example.com".into()];
        let err = c.validate().expect_err("contact").to_string();
        assert!(err.contains("tls.acme.contact"), "{err}");
        c.tls.acme.contact = vec!["mailto:admin@example.com".into()];
        c.tls.acme.challenge = AcmeChallenge::Http01;
        let err = c
            .validate()
            .expect_err("http-01 without a plain listener")
            .to_string();
        assert!(err.contains("tls.acme.challenge"), "{err}");
        c.server.plain_listen = Some("0.0.0.0:80".into());
        c.validate().expect("valid");
        c.tls.cert_path = Some("/c.pem".into());
        c.tls.key_path = Some("/k.pem".into());
        let err = c.validate().expect_err("both").to_string();
        assert!(err.contains("tls.acme.domains"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_names_its_key() {
        let mut c = Config::default();
        c.server.listen = "nowhere".into();
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("server.listen"), "{err}");
    }
}
