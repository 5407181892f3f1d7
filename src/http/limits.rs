//! Limits against hostile clients that span the HTTP layer: which body policy a route gets
//! (stricter on routes without a token), and the configuration checks of the transport's keys,
//! among them the order of the timeouts (a blob store that does not answer must time out before
//! the client's connection is closed as idle, so that the client gets a 503).

use std::time::Duration;

use super::body::BodyPolicy;
use super::router::Endpoint;
use crate::config::{BlobBackendKind, Config, ConfigError, parse_addr};

/// The body policy of a request to `ep`: the minimum average rate always; the whole-body
/// deadline on every route that takes no token (`/api/token/`, `/api/token/refresh/`, ...).
pub fn body_policy(cfg: &Config, ep: Option<&Endpoint>) -> BodyPolicy {
    let s = &cfg.server;
    let authenticated = matches!(
        ep,
        Some(
            Endpoint::Upload
                | Endpoint::ResourceFiles { .. }
                | Endpoint::ListFiles
                | Endpoint::V2Files
                | Endpoint::V2File { .. }
                | Endpoint::V2FileContent { .. }
                | Endpoint::V2FileUrl { .. }
                | Endpoint::V2Put { .. }
                | Endpoint::V2RevokeUrls
                | Endpoint::V2Usage
                | Endpoint::TusUploads
                | Endpoint::TusUpload { .. }
        )
    );
    BodyPolicy {
        min_rate: s.body_min_rate_bytes_per_sec,
        grace: Duration::from_secs(s.body_read_timeout_secs),
        deadline: (!authenticated)
            .then(|| Duration::from_secs(s.unauthenticated_body_deadline_secs)),
    }
}

/// Whether `server.metrics_listen` turns the metrics listener off.
pub fn metrics_off(listen: &str) -> bool {
    let l = listen.trim();
    l.is_empty() || l.eq_ignore_ascii_case("off")
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The checks of the transport's keys (called by `Config::validate`).
pub fn validate(cfg: &Config) -> Result<(), ConfigError> {
    let s = &cfg.server;
    if !metrics_off(&s.metrics_listen) {
        parse_addr(&s.metrics_listen).map_err(|m| invalid("server.metrics_listen", m))?;
    }
    if s.idle_timeout_secs == 0 {
        return Err(invalid("server.idle_timeout_secs", "must be at least 1"));
    }
    if s.body_read_timeout_secs == 0 {
        return Err(invalid(
            "server.body_read_timeout_secs",
            "must be at least 1",
        ));
    }
    if s.unauthenticated_body_deadline_secs == 0 {
        return Err(invalid(
            "server.unauthenticated_body_deadline_secs",
            "must be at least 1",
        ));
    }
    let l = &cfg.limits;
    if l.max_form_parts == 0 {
        return Err(invalid("limits.max_form_parts", "must be at least 1"));
    }
    if l.max_form_text_bytes == 0 {
        return Err(invalid("limits.max_form_text_bytes", "must be at least 1"));
    }
    if l.max_part_header_bytes < 1024 {
        return Err(invalid(
            "limits.max_part_header_bytes",
            "must be at least 1024",
        ));
    }
    if cfg.blobs.backend == BlobBackendKind::S3 {
        let s3 = &cfg.blobs.s3;
        if s3.connect_timeout_secs == 0 {
            return Err(invalid(
                "blobs.s3.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        if s3.read_timeout_secs == 0 {
            return Err(invalid("blobs.s3.read_timeout_secs", "must be at least 1"));
        }
        if s3.operation_timeout_secs < s3.connect_timeout_secs {
            return Err(invalid(
                "blobs.s3.operation_timeout_secs",
                "must be at least blobs.s3.connect_timeout_secs",
            ));
        }
        // A download waits for S3 without sending anything: S3's answer (or its timeout, a 503)
        // must come before the connection is closed as idle.
        if s3.operation_timeout_secs >= s.idle_timeout_secs {
            return Err(invalid(
                "blobs.s3.operation_timeout_secs",
                "must be below server.idle_timeout_secs (a client must get the 503 of a \
                 blob store that does not answer before its connection is closed as idle)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_timeouts_must_be_below_the_idle_timeout() {
        let mut c = Config::default();
        c.blobs.backend = BlobBackendKind::S3;
        c.blobs.s3.bucket = "b".into();
        assert!(validate(&c).is_ok(), "the defaults are ordered");
        c.blobs.s3.operation_timeout_secs = c.server.idle_timeout_secs;
        let err = validate(&c).expect_err("not below").to_string();
        assert!(err.contains("blobs.s3.operation_timeout_secs"), "{err}");
        c.blobs.s3.operation_timeout_secs = 3;
        c.blobs.s3.connect_timeout_secs = 4;
        assert!(
            validate(&c).is_err(),
            "a connect timeout beyond the operation's"
        );
    }

    #[test]
    fn the_token_routes_get_a_deadline_and_uploads_do_not() {
        let c = Config::default();
        assert!(body_policy(&c, Some(&Endpoint::Token)).deadline.is_some());
        assert!(
            body_policy(&c, Some(&Endpoint::TokenRefresh))
                .deadline
                .is_some()
        );
        assert!(body_policy(&c, Some(&Endpoint::Upload)).deadline.is_none());
        assert_eq!(body_policy(&c, Some(&Endpoint::Upload)).min_rate, 1024);
    }

    #[test]
    fn metrics_listen_off_or_an_address() {
        assert!(metrics_off("") && metrics_off("off") && metrics_off(" OFF "));
        let mut c = Config::default();
        assert!(validate(&c).is_ok());
        c.server.metrics_listen = "nonsense".into();
        assert!(validate(&c).is_err());
    }
}
