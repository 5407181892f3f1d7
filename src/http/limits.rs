//! Limits against hostile clients that span the HTTP layer: which body policy a route gets
//! (stricter on routes without a token). The checks of the keys behind it are in
//! [`crate::config::server`] and, for the order of the S3 and idle timeouts, in
//! [`crate::config::blobs`].

use std::time::Duration;

use super::body::BodyPolicy;
use super::router::Endpoint;
use crate::config::Config;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
