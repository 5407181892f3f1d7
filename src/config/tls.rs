//! `[tls]` and `[tls.acme]`: where the HTTPS certificate comes from (PEM files, an ACME CA, or a
//! self-signed certificate kept in `data_dir/tls/`). The certificates themselves are handled by
//! [`crate::tls`] and [`crate::acme`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

impl TlsConfig {
    /// The certificate's files come in pairs, and ACME's keys are usable. `plain_listener`:
    /// whether `server.plain_listen` is set (HTTP-01 answers there).
    pub fn validate(&self, plain_listener: bool) -> Result<(), (&'static str, String)> {
        if self.cert_path.is_some() != self.key_path.is_some() {
            return Err((
                "tls.cert_path",
                "tls.cert_path and tls.key_path must be set together".into(),
            ));
        }
        if self.acme.enabled() {
            if self.cert_path.is_some() {
                return Err((
                    "tls.acme.domains",
                    "ACME and tls.cert_path exclude each other: unset one".into(),
                ));
            }
            self.acme.validate(plain_listener)?;
        }
        Ok(())
    }
}

impl AcmeConfig {
    fn validate(&self, plain_listener: bool) -> Result<(), (&'static str, String)> {
        for d in &self.domains {
            if !is_dns_name(d) {
                return Err((
                    "tls.acme.domains",
                    format!(
                        "{d:?} is not a DNS name (wildcards and IP addresses are not supported)"
                    ),
                ));
            }
        }
        if let Some(c) = self.contact.iter().find(|c| !c.starts_with("mailto:")) {
            return Err(("tls.acme.contact", format!("{c:?} must be a mailto: URL")));
        }
        if !self.directory_url.starts_with("https://") {
            return Err(("tls.acme.directory_url", "must start with https://".into()));
        }
        if self.challenge == AcmeChallenge::Http01 && !plain_listener {
            return Err((
                "tls.acme.challenge",
                "\"http-01\" needs server.plain_listen (reachable on port 80)".into(),
            ));
        }
        if self.renew_before_days == 0 {
            return Err(("tls.acme.renew_before_days", "must be at least 1".into()));
        }
        if self.check_interval_secs == 0 {
            return Err(("tls.acme.check_interval_secs", "must be at least 1".into()));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
}
