//! `[limits]`: file sizes and lifetimes, listing pages, default quotas, the bounds of a multipart
//! form, and the memory budget of all uploads together.

use serde::{Deserialize, Serialize};

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

impl LimitsConfig {
    /// Sizes are non-zero, the budget holds at least a MiB, content-type patterns parse.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        // Like a client's expires_in: beyond 100 years an expiry is no longer a date a response
        // can state (years past 9999 are not RFC 3339).
        if self.default_ttl_secs.is_some_and(|t| t > 3_155_760_000) {
            return Err((
                "limits.default_ttl_secs",
                "must be at most 3155760000 (100 years)".into(),
            ));
        }
        if self.max_file_size == 0 {
            return Err(("limits.max_file_size", "must be at least 1".into()));
        }
        if self.max_page_size == 0 {
            return Err(("limits.max_page_size", "must be at least 1".into()));
        }
        if self.buffer_budget < 1024 * 1024 {
            return Err(("limits.buffer_budget", "must be at least 1048576".into()));
        }
        for pattern in &self.allowed_content_types {
            crate::content_type::check_pattern(pattern)
                .map_err(|m| ("limits.allowed_content_types", m))?;
        }
        if self.max_form_parts == 0 {
            return Err(("limits.max_form_parts", "must be at least 1".into()));
        }
        if self.max_form_text_bytes == 0 {
            return Err(("limits.max_form_text_bytes", "must be at least 1".into()));
        }
        if self.max_part_header_bytes < 1024 {
            return Err((
                "limits.max_part_header_bytes",
                "must be at least 1024".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_default_ttl_past_100_years_is_refused() {
        let mut cfg = Config::default();
        cfg.limits.default_ttl_secs = Some(3_155_760_001);
        let err = cfg.validate().expect_err("refused").to_string();
        assert!(err.contains("limits.default_ttl_secs"), "{err}");
        cfg.limits.default_ttl_secs = Some(86_400);
        cfg.validate().expect("a day is fine");
    }
}
