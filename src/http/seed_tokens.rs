//! The original Django service's sessions after the switch (`auth.seed_secret_key`): its access
//! tokens authenticate their imported tenant until they expire, and each of its refresh tokens
//! rotates once into an mtfu pair (then it is blacklisted, unlike on the original). Its
//! `user_id` is mapped through `mtfu import-seed`'s records; a session the tenant ended in mtfu
//! (logout, revoke, password change: its session epoch rose) ends these tokens too. And on the
//! first login with an imported password, the Django hash is replaced by mtfu's argon2id.

use http::StatusCode;

use super::error::ApiError;
use super::wire::{TokenPair, respond};
use super::{AppState, Response};
use crate::auth::seed::SeedClaims;
use crate::domain::Tenant;

/// The imported tenant of `claims`, while none of its sessions was ended in mtfu.
async fn tenant_of(state: &AppState, claims: &SeedClaims) -> Result<Option<Tenant>, ApiError> {
    let meta = &state.files.meta;
    let Some(id) = meta.seed_tenant(claims.user_id).await? else {
        return Ok(None);
    };
    Ok(meta
        .tenant_session(id)
        .await?
        .and_then(|(tenant, epoch)| (epoch == 0).then_some(tenant)))
}

/// The tenant of an access token of the original's (after mtfu's own check refused it).
pub async fn authenticate(state: &AppState, token: &str) -> Result<Tenant, ApiError> {
    let claims = state
        .auth
        .verify_seed(token, "access")
        .map_err(|_| ApiError::InvalidToken)?;
    tenant_of(state, &claims)
        .await?
        .ok_or(ApiError::InvalidToken)
}

/// Rotate a refresh token of the original's into an mtfu pair, once.
pub async fn refresh(state: &AppState, token: &str) -> Result<Response, ApiError> {
    let claims = state
        .auth
        .verify_seed(token, "refresh")
        .map_err(|_| ApiError::RefreshInvalid)?;
    let tenant = tenant_of(state, &claims)
        .await?
        .ok_or(ApiError::RefreshInvalid)?;
    // Its own namespace in the blacklist: the original's jtis are not mtfu's.
    let first_use = state
        .files
        .meta
        .blacklist_refresh(
            &format!("seed:{}", claims.jti),
            claims.exp.saturating_mul(1_000_000),
        )
        .await?;
    if !first_use {
        return Err(ApiError::RefreshInvalid);
    }
    let (refresh, access) = state.auth.issue_pair(&tenant, 0);
    Ok(respond(StatusCode::OK, &TokenPair { refresh, access }))
}

/// After a successful login with a Django hash: store mtfu's argon2id of the password instead
/// (unless the hash changed meanwhile). Best effort: the next login tries again.
pub async fn upgrade_password(state: &AppState, tenant: &Tenant, old: &str, password: &str) {
    let new = match state.auth.hash_password(password.to_owned()).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(tenant = %tenant.name, error = %e, "could not re-hash an imported password");
            return;
        }
    };
    match state
        .files
        .meta
        .upgrade_password(tenant.id, old, &new)
        .await
    {
        Ok(true) => {
            tracing::info!(tenant = %tenant.name, "imported password re-hashed to argon2id")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(tenant = %tenant.name, error = %e, "could not store a re-hashed password")
        }
    }
}
