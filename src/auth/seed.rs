//! Tokens the original Django service issued: SimpleJWT HS256 tokens signed with its
//! `SECRET_KEY` (`auth.seed_secret_key`), with claims `token_type`, `exp`, `iat`, `jti` and
//! `user_id`, the original's `auth_user_tenant.id` (no `username`, no session epoch). Accepted
//! only with that key configured, for tenants `mtfu import-seed` imported (the HTTP side maps
//! `user_id` through the import's records, `crate::http::seed_tokens`). The key only verifies:
//! mtfu never signs with it.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Auth, AuthError};

/// The claims of one of the original's tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedClaims {
    pub token_type: String,
    pub exp: i64,
    pub jti: String,
    /// The original's user id (a JSON integer).
    pub user_id: i64,
    /// mtfu's own tokens carry one; the original's never do.
    #[serde(default)]
    username: Option<serde_json::Value>,
}

/// The verifying key, from `auth.seed_secret_key`.
pub(super) fn key(secret: Option<&str>) -> Option<DecodingKey> {
    secret.map(|s| DecodingKey::from_secret(s.as_bytes()))
}

impl Auth {
    /// The claims of a valid token of the original of type `token_type` (`access` or
    /// `refresh`); refused without `auth.seed_secret_key`, and for any token with a `username`
    /// claim (one of mtfu's, never read as the original's).
    pub fn verify_seed(&self, token: &str, token_type: &str) -> Result<SeedClaims, AuthError> {
        let Some(key) = &self.seed else {
            return Err(AuthError::InvalidToken);
        };
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<SeedClaims>(token, key, &v)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        if claims.token_type != token_type || claims.username.is_some() {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::config::AuthConfig;

    fn django_token(
        key: &str,
        token_type: &str,
        exp_in: i64,
        user_id: serde_json::Value,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({"token_type": token_type, "exp": now + exp_in,
            "iat": now, "jti": "0123456789abcdef0123456789abcdef", "user_id": user_id});
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .expect("encode")
    }

    fn auth(seed: Option<&str>) -> Auth {
        let cfg = AuthConfig {
            seed_secret_key: seed.map(str::to_owned),
            ..AuthConfig::default()
        };
        Auth::new(&cfg, &[7u8; 32])
    }

    #[test]
    fn the_originals_tokens_verify_with_its_key_only() {
        let t = django_token("short", "access", 60, serde_json::json!(7));
        let a = auth(Some("short"));
        assert_eq!(a.verify_seed(&t, "access").expect("valid").user_id, 7);
        assert!(a.verify_seed(&t, "refresh").is_err());
        assert!(auth(None).verify_seed(&t, "access").is_err());
        assert!(auth(Some("other")).verify_seed(&t, "access").is_err());
        // Not as one of mtfu's own either.
        assert!(a.verify_access(&t).is_err());
        let expired = django_token("short", "access", -1, serde_json::json!(7));
        assert!(a.verify_seed(&expired, "access").is_err());
        let text_id = django_token("short", "access", 60, serde_json::json!("7"));
        assert!(a.verify_seed(&text_id, "access").is_err());
    }

    #[test]
    fn mtfus_own_tokens_are_never_read_as_the_originals() {
        // Even if the two keys were the same, an mtfu token has a username claim.
        let a = Auth::new(
            &AuthConfig {
                seed_secret_key: Some("k".repeat(32)),
                ..AuthConfig::default()
            },
            "k".repeat(32).as_bytes(),
        );
        let tenant = crate::domain::Tenant {
            id: crate::domain::TenantId(3),
            name: crate::domain::TenantName::parse("john1").expect("name"),
        };
        let (_, access) = a.issue_pair(&tenant, 0);
        assert!(a.verify_access(&access).is_ok());
        assert!(a.verify_seed(&access, "access").is_err());
    }
}
