//! `[auth]`: token lifetimes and secrets, and the bounds on password hashing and failed logins.
//! Tokens and passwords themselves are handled by [`crate::auth`].

use serde::{Deserialize, Serialize};

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

impl AuthConfig {
    /// Secrets are long enough and distinct; hashing can proceed.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_concurrent_hashes == 0 {
            return Err(("auth.max_concurrent_hashes", "must be at least 1".into()));
        }
        if let Some(s) = &self.jwt_secret
            && s.len() < 32
        {
            return Err(("auth.jwt_secret", "must be at least 32 bytes".into()));
        }
        if self.seed_secret_key.is_some() && self.seed_secret_key == self.jwt_secret {
            return Err((
                "auth.seed_secret_key",
                "must differ from auth.jwt_secret".into(),
            ));
        }
        Ok(())
    }
}
