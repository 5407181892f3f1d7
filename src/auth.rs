//! Authentication: JWT access/refresh tokens (SimpleJWT semantics), argon2id passwords, signed
//! download links, and the failed-login limiter ([`limiter`]).
//!
//! Sessions: every token carries its tenant's *session epoch* (claim `epoch`, absent in tokens
//! of earlier versions: epoch 0). The epoch lives in the metadata store; a password change,
//! `mtfu tenant logout` and `POST /api/v2/sessions/revoke` raise it, and a token of another
//! epoch is refused, on every node at once (the check rides on the tenant lookup every
//! authenticated request makes anyway).
//!
//! Secrets: the JWT secret comes from `auth.jwt_secret` or is generated once into
//! `data_dir/jwt.secret` (mode 0600). Download links are signed with a key derived from it, so
//! one secret is all a cluster of nodes must share.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm as ArgonAlg, Argon2, Block, Params, Version};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::AuthConfig;
use crate::domain::{Tenant, TenantId};

pub mod django;
pub mod limiter;
pub mod seed;
pub use limiter::LoginLimiter;

/// argon2id with OWASP's first recommended setting: 19 MiB, 2 passes, 1 lane. With
/// `auth.max_concurrent_hashes` (default 2) at most ~38 MiB go to hashing on a 1 GiB machine.
const ARGON_M_KIB: u32 = 19 * 1024;
const ARGON_T: u32 = 2;
const ARGON_P: u32 = 1;

/// Claims of both token types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub token_type: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The tenant's id (SimpleJWT's claim name).
    pub user_id: i64,
    pub username: String,
    /// The tenant's session epoch when the token was issued; tokens issued before epochs
    /// existed have none and count as epoch 0.
    #[serde(default)]
    pub epoch: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Bad signature, wrong algorithm, expired, malformed, or the wrong token type.
    #[error("token not valid")]
    InvalidToken,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Tokens and passwords, configured once.
pub struct Auth {
    enc: EncodingKey,
    dec: DecodingKey,
    url_key: Vec<u8>,
    access_ttl: i64,
    refresh_ttl: i64,
    hashing: Semaphore,
    /// argon2 working memory, reused: at most `max_concurrent_hashes` buffers exist. Allocating
    /// 19 MiB per login instead left glibc holding gigabytes (its mmap threshold adapts upward
    /// after the first free, so later buffers land in arenas that never shrink).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    argon: Argon2<'static>,
    /// Verified against when the username is unknown, so both paths cost one argon2 run.
    dummy_hash: String,
    pub limiter: LoginLimiter,
    /// `auth.seed_secret_key`: verifies the original service's tokens ([`seed`]).
    seed: Option<DecodingKey>,
}

/// Read `auth.jwt_secret`, else `data_dir/jwt.secret`, else make and keep a new one.
pub fn load_or_create_secret(cfg: &AuthConfig, data_dir: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(s) = &cfg.jwt_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt.secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} holds fewer than 32 bytes",
                path.display()
            )));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

/// Write a file readable by its owner only.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Auth {
    pub fn new(cfg: &AuthConfig, secret: &[u8]) -> Auth {
        let params = Params::new(ARGON_M_KIB, ARGON_T, ARGON_P, None)
            .expect("constant argon2 parameters are valid");
        let argon = Argon2::new(ArgonAlg::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"mtfu-dummy-salt!").expect("a constant salt is valid");
        let dummy_hash = argon
            .hash_password(b"mtfu dummy password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"mtfu download links v1");
        Auth {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            url_key: mac.finalize().into_bytes().to_vec(),
            access_ttl: cfg.access_ttl_secs as i64,
            refresh_ttl: cfg.refresh_ttl_secs as i64,
            hashing: Semaphore::new(cfg.max_concurrent_hashes),
            memory: Arc::new(Mutex::new(Vec::new())),
            argon,
            dummy_hash,
            limiter: LoginLimiter::new(limiter::Limits {
                per_user: cfg.max_failed_logins_per_user,
                per_user_address: cfg.max_failed_logins_per_user_address,
                per_ip: cfg.max_failed_logins_per_ip,
                window: Duration::from_secs(cfg.login_window_secs),
            }),
            seed: seed::key(cfg.seed_secret_key.as_deref()),
        }
    }

    fn sign(&self, tenant: &Tenant, epoch: i64, token_type: &str, ttl: i64) -> String {
        let now = unix_now();
        let claims = Claims {
            token_type: token_type.into(),
            exp: now + ttl,
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            user_id: tenant.id.0,
            username: tenant.name.as_str().into(),
            epoch,
        };
        // HS256 encoding of a serialisable struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc).unwrap_or_default()
    }

    /// A new (refresh, access) pair of the tenant's session `epoch`.
    pub fn issue_pair(&self, tenant: &Tenant, epoch: i64) -> (String, String) {
        (
            self.sign(tenant, epoch, "refresh", self.refresh_ttl),
            self.sign(tenant, epoch, "access", self.access_ttl),
        )
    }

    fn verify(&self, token: &str, token_type: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.dec, &v)
            .map_err(|_| AuthError::InvalidToken)?;
        if data.claims.token_type != token_type {
            return Err(AuthError::InvalidToken);
        }
        Ok(data.claims)
    }

    /// The claims of a valid access token (the caller checks the tenant still exists and the
    /// session epoch is its current one).
    pub fn verify_access(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify(token, "access")
    }

    /// The claims of a valid refresh token (the caller blacklists its `jti`).
    pub fn verify_refresh(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify(token, "refresh")
    }

    pub async fn hash_password(&self, password: String) -> Result<String, AuthError> {
        let _p = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AuthError::Hash(e.to_string()))
        })
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))?
    }

    /// Check `password` against `hash`, or against a dummy hash when there is no such user, so
    /// that the answer takes as long either way. argon2's comparison is constant-time.
    pub async fn verify_password(&self, hash: Option<String>, password: String) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let Ok(_p) = self.hashing.acquire().await else {
            return false;
        };
        let memory = self.memory.clone();
        let dummy = self.dummy_hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            if django::is_django(&hash) {
                // An imported tenant's hash, until its first login (see `django`). An unusable
                // one costs an argon2 run too, like an unknown user.
                let ok = django::verify(&hash, password.as_bytes());
                if !ok && !django::usable(&hash) {
                    verify_with_memory(&dummy, password.as_bytes(), &memory);
                }
                ok
            } else {
                verify_with_memory(&hash, password.as_bytes(), &memory)
            }
        })
        .await
        .unwrap_or(false);
        ok && known
    }

    /// Signature of a download link for `file_id` owned by `owner`, valid until `expires`
    /// (Unix seconds), issued at `issued` (Unix microseconds, signed so that the owner's
    /// revocation point can be checked against it). `issued` 0 is a link of the first version,
    /// which carried no issue time: same message as then, so such links stay valid until their
    /// owner first revokes.
    pub fn link_signature(
        &self,
        owner: TenantId,
        file_id: &str,
        expires: i64,
        issued: i64,
    ) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.url_key).expect("HMAC takes keys of any length");
        let msg = if issued == 0 {
            format!("{}\n{}\n{}", owner.0, file_id, expires)
        } else {
            format!("{}\n{}\n{}\n{}", owner.0, file_id, expires, issued)
        };
        mac.update(msg.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// [`link_signature`](Auth::link_signature) of a link without an issue time.
    pub fn url_signature(&self, owner: TenantId, file_id: &str, expires: i64) -> String {
        self.link_signature(owner, file_id, expires, 0)
    }

    /// Whether `sig` is the signature of that link (issued at `issued`, 0 if it says nothing)
    /// and it has not expired. Revocation is the caller's check.
    pub fn check_link(
        &self,
        owner: TenantId,
        file_id: &str,
        expires: i64,
        issued: i64,
        sig: &str,
    ) -> bool {
        use subtle::ConstantTimeEq;
        let want = self.link_signature(owner, file_id, expires, issued);
        expires > unix_now() && bool::from(want.as_bytes().ct_eq(sig.as_bytes()))
    }

    /// [`check_link`](Auth::check_link) of a link without an issue time.
    pub fn check_url(&self, owner: TenantId, file_id: &str, expires: i64, sig: &str) -> bool {
        self.check_link(owner, file_id, expires, 0, sig)
    }
}

/// Verify `password` against a PHC argon2 `hash`, computing in a pooled memory buffer. The
/// comparison of the digests is constant-time.
fn verify_with_memory(hash: &str, password: &[u8], pool: &Mutex<Vec<Vec<Block>>>) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(params), Ok(alg)) = (
        Params::try_from(&parsed),
        ArgonAlg::try_from(parsed.algorithm),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    let mut memory = pool
        .lock()
        .ok()
        .and_then(|mut p| p.pop())
        .unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(alg, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .is_ok();
    if let Ok(mut p) = pool.lock() {
        p.push(memory);
    }
    computed && bool::from(out.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantName;

    fn auth() -> Auth {
        Auth::new(&AuthConfig::default(), &[7u8; 32])
    }

    fn tenant() -> Tenant {
        Tenant {
            id: TenantId(3),
            name: TenantName::parse("john1").expect("name"),
        }
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token() {
        let a = auth();
        let (refresh, access) = a.issue_pair(&tenant(), 4);
        let claims = a.verify_access(&access).expect("access");
        assert_eq!((claims.user_id, claims.epoch), (3, 4));
        assert_eq!(a.verify_refresh(&refresh).expect("refresh").epoch, 4);
        assert!(a.verify_access(&refresh).is_err());
        assert!(a.verify_refresh(&access).is_err());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = Auth::new(&AuthConfig::default(), &[8u8; 32]);
        let (_, access) = other.issue_pair(&tenant(), 0);
        assert!(auth().verify_access(&access).is_err());
    }

    #[test]
    fn a_token_without_an_epoch_is_of_epoch_0() {
        let a = auth();
        let now = unix_now();
        let old = serde_json::json!({"token_type": "access", "exp": now + 60, "iat": now,
            "jti": "x", "user_id": 3, "username": "john1"});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &old, &a.enc).expect("encode");
        assert_eq!(a.verify_access(&token).expect("valid").epoch, 0);
    }

    #[test]
    fn a_tampered_download_signature_is_refused() {
        let a = auth();
        let exp = unix_now() + 60;
        let sig = a.url_signature(TenantId(3), "abc", exp);
        assert!(a.check_url(TenantId(3), "abc", exp, &sig));
        assert!(!a.check_url(TenantId(4), "abc", exp, &sig));
        assert!(!a.check_url(TenantId(3), "abd", exp, &sig));
        assert!(!a.check_url(TenantId(3), "abc", exp + 1, &sig));
        let past = unix_now() - 1;
        let sig = a.url_signature(TenantId(3), "abc", past);
        assert!(!a.check_url(TenantId(3), "abc", past, &sig));
    }

    #[test]
    fn the_issue_time_is_under_the_signature() {
        let a = auth();
        let exp = unix_now() + 60;
        let issued = 1_700_000_000_000_000;
        let sig = a.link_signature(TenantId(3), "abc", exp, issued);
        assert!(a.check_link(TenantId(3), "abc", exp, issued, &sig));
        // Moving the issue time forward (past a revocation point), or dropping it, breaks it.
        assert!(!a.check_link(TenantId(3), "abc", exp, issued + 1, &sig));
        assert!(!a.check_url(TenantId(3), "abc", exp, &sig));
        // A link of the first version (no issue time) is still the same link.
        assert_eq!(
            a.url_signature(TenantId(3), "abc", exp),
            a.link_signature(TenantId(3), "abc", exp, 0)
        );
    }

    #[tokio::test]
    async fn passwords_verify_and_unknown_users_fail() {
        let a = auth();
        let h = a.hash_password("test".into()).await.expect("hash");
        assert!(a.verify_password(Some(h.clone()), "test".into()).await);
        assert!(!a.verify_password(Some(h), "nope".into()).await);
        assert!(!a.verify_password(None, "test".into()).await);
        // Verifying reuses one working buffer instead of allocating 19 MiB each time.
        assert_eq!(a.memory.lock().expect("pool").len(), 1);
        let other = Auth::new(&AuthConfig::default(), &[9u8; 32]);
        let h2 = other.hash_password("x".into()).await.expect("hash");
        assert!(
            a.verify_password(Some(h2), "x".into()).await,
            "any valid PHC hash verifies"
        );
    }
}
