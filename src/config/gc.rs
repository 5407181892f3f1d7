//! `[gc]`: how often the garbage collector runs, and how long deleted files, stalled uploads and
//! orphan blobs are kept before it takes them. The collector itself is [`crate::gc`].

use serde::{Deserialize, Serialize};

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

impl GcConfig {
    /// An upload's lease cannot be zero (every upload would be taken as stalled).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.upload_lease_secs == 0 {
            return Err(("gc.upload_lease_secs", "must be at least 1".into()));
        }
        Ok(())
    }
}
