//! `[blobs]`: which blob store holds the files' bytes (a local directory or an S3 bucket), and
//! the S3 store's addressing, credentials, part sizes, timeouts and download links. The stores
//! themselves are in [`crate::blob`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::LimitsConfig;

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

impl BlobsConfig {
    /// The chosen store's settings are usable. S3 buffers whole parts within
    /// `limits.buffer_budget` and must fit `limits.max_file_size` in its 10,000 parts; its
    /// reads must time out before a connection is closed as idle (`idle_timeout_secs`).
    pub fn validate(
        &self,
        limits: &LimitsConfig,
        idle_timeout_secs: u64,
    ) -> Result<(), (&'static str, String)> {
        match self.backend {
            BlobBackendKind::Local => Ok(()),
            BlobBackendKind::S3 => self.s3.validate(limits, idle_timeout_secs),
        }
    }
}

impl S3BlobConfig {
    fn validate(
        &self,
        limits: &LimitsConfig,
        idle_timeout_secs: u64,
    ) -> Result<(), (&'static str, String)> {
        self.validate_timeouts(idle_timeout_secs)?;
        if self.bucket.is_empty() {
            return Err((
                "blobs.s3.bucket",
                "must be set when blobs.backend is \"s3\"".into(),
            ));
        }
        if self.region.is_empty() {
            return Err(("blobs.s3.region", "must not be empty".into()));
        }
        if let Some(u) = &self.endpoint_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err((
                "blobs.s3.endpoint_url",
                "must start with https:// or http://".into(),
            ));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err((
                "blobs.s3.access_key_id",
                "blobs.s3.access_key_id and blobs.s3.secret_access_key must be set together".into(),
            ));
        }
        if self.part_size < S3_MIN_PART_SIZE {
            return Err((
                "blobs.s3.part_size",
                format!("must be at least {S3_MIN_PART_SIZE} (S3's minimum part size)"),
            ));
        }
        if self.part_size > 5 * 1024 * 1024 * 1024 {
            return Err((
                "blobs.s3.part_size",
                "must be at most 5368709120 (S3's maximum part size)".into(),
            ));
        }
        if self.parts_in_flight == 0 {
            return Err(("blobs.s3.parts_in_flight", "must be at least 1".into()));
        }
        if limits.buffer_budget < self.part_size {
            return Err((
                "limits.buffer_budget",
                "must be at least blobs.s3.part_size (an S3 upload buffers whole parts)".into(),
            ));
        }
        if self.presign_ttl_secs.is_some_and(|t| t == 0 || t > 604_800) {
            return Err((
                "blobs.s3.presign_ttl_secs",
                "must be between 1 and 604800 (7 days, SigV4's maximum)".into(),
            ));
        }
        // 10,000 parts at most: a file at the size limit must fit.
        if limits.max_file_size.div_ceil(self.part_size) > 10_000 {
            return Err((
                "blobs.s3.part_size",
                "too small for limits.max_file_size: S3 allows 10000 parts per object".into(),
            ));
        }
        Ok(())
    }

    fn validate_timeouts(&self, idle_timeout_secs: u64) -> Result<(), (&'static str, String)> {
        if self.connect_timeout_secs == 0 {
            return Err(("blobs.s3.connect_timeout_secs", "must be at least 1".into()));
        }
        if self.read_timeout_secs == 0 {
            return Err(("blobs.s3.read_timeout_secs", "must be at least 1".into()));
        }
        if self.operation_timeout_secs < self.connect_timeout_secs {
            return Err((
                "blobs.s3.operation_timeout_secs",
                "must be at least blobs.s3.connect_timeout_secs".into(),
            ));
        }
        // A download waits for S3 without sending anything: S3's answer (or its timeout, a 503)
        // must come before the connection is closed as idle.
        if self.operation_timeout_secs >= idle_timeout_secs {
            return Err((
                "blobs.s3.operation_timeout_secs",
                "must be below server.idle_timeout_secs (a client must get the 503 of a \
                 blob store that does not answer before its connection is closed as idle)"
                    .into(),
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
    fn s3_timeouts_must_be_below_the_idle_timeout() {
        let mut c = Config::default();
        c.blobs.backend = BlobBackendKind::S3;
        c.blobs.s3.bucket = "b".into();
        assert!(c.validate().is_ok(), "the defaults are ordered");
        c.blobs.s3.operation_timeout_secs = c.server.idle_timeout_secs;
        let err = c.validate().expect_err("not below").to_string();
        assert!(err.contains("blobs.s3.operation_timeout_secs"), "{err}");
        c.blobs.s3.operation_timeout_secs = 3;
        c.blobs.s3.connect_timeout_secs = 4;
        assert!(
            c.validate().is_err(),
            "a connect timeout beyond the operation's"
        );
    }
}
