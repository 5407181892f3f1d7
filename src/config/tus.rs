//! `[tus]`: resumable uploads' lifetime, the lease of a `PATCH`, and how many unfinished uploads
//! a tenant may hold. The protocol itself is [`crate::tus`].

use serde::{Deserialize, Serialize};

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

impl TusConfig {
    /// Lifetimes and leases are non-zero.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.expire_after_secs == 0 {
            return Err(("tus.expire_after_secs", "must be at least 1".into()));
        }
        if self.lease_secs == 0 {
            return Err(("tus.lease_secs", "must be at least 1".into()));
        }
        Ok(())
    }
}
