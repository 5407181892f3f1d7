//! `POST /api/token/` and `POST /api/token/refresh/`: SimpleJWT's obtain-pair and rotating
//! refresh, with its shapes and messages.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::body::{FormValue, small_form};
use super::error::ApiError;
use super::wire::{TokenPair, respond};
use super::{AppState, Ctx, Response};
use crate::domain::TenantId;

/// DRF's CharField checks: present, and not blank.
fn required<'a>(
    fields: &'a HashMap<String, FormValue>,
    names: &[&str],
) -> Result<Vec<&'a str>, ApiError> {
    let mut errors = BTreeMap::new();
    let mut values = Vec::new();
    for name in names {
        match fields.get(*name) {
            None | Some(FormValue::File) => {
                errors.insert(
                    name.to_string(),
                    vec!["This field is required.".to_string()],
                );
            }
            Some(FormValue::Text(s)) if s.is_empty() => {
                errors.insert(
                    name.to_string(),
                    vec!["This field may not be blank.".to_string()],
                );
            }
            // DRF's CharField refuses NUL, and no store could look it up.
            Some(FormValue::Text(s)) if !crate::domain::text::storable(s) => {
                let m = crate::domain::text::NUL_MESSAGE.to_string();
                errors.insert(name.to_string(), vec![m]);
            }
            Some(FormValue::Text(s)) => values.push(s.as_str()),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(ApiError::Fields(errors))
    }
}

fn idle(state: &AppState) -> Duration {
    Duration::from_secs(state.cfg.server.body_read_timeout_secs)
}

pub async fn obtain(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Incoming>,
) -> Result<Response, ApiError> {
    let fields = small_form(req, idle(state)).await?;
    let v = required(&fields, &["username", "password"])?;
    let (username, password) = (v[0], v[1]);
    let ip = ctx.client;
    // Counted now, before the (queued, slow) password check: concurrent guesses cost as much of
    // the budget as sequential ones. Given back if the password is right.
    let attempt = state
        .auth
        .limiter
        .begin(username, ip)
        .map_err(|wait_secs| ApiError::Throttled { wait_secs })?;
    let found = match state.files.meta.tenant_login(username).await {
        Ok(found) => found,
        Err(e) => {
            attempt.not_checked();
            return Err(e.into());
        }
    };
    let (tenant, hash) = match found {
        Some((t, h, epoch)) => (Some((t, epoch)), Some(h)),
        None => (None, None),
    };
    let imported = hash.clone().filter(|h| crate::auth::django::is_django(h));
    let ok = state.auth.verify_password(hash, password.to_owned()).await;
    let Some((tenant, epoch)) = tenant.filter(|_| ok) else {
        metrics::counter!("mtfu_failed_logins_total").increment(1);
        return Err(ApiError::BadCredentials);
    };
    attempt.succeeded();
    // For `mtfu tenant list`: bookkeeping, which the login does not wait for (on SQLite it
    // queues behind the writes); a store that cannot record it loses only the date.
    let (meta, id, at) = (
        state.files.meta.clone(),
        tenant.id,
        crate::domain::now_micros(),
    );
    tokio::spawn(async move {
        if let Err(e) = meta.record_login(id, at).await {
            tracing::warn!(error = %e, "recording a login's time failed");
        }
    });
    if let Some(old) = imported {
        super::seed_tokens::upgrade_password(state, &tenant, &old, password).await;
    }
    let (refresh, access) = state.auth.issue_pair(&tenant, epoch);
    Ok(respond(StatusCode::OK, &TokenPair { refresh, access }))
}

pub async fn refresh(state: &AppState, req: Request<Incoming>) -> Result<Response, ApiError> {
    let fields = small_form(req, idle(state)).await?;
    let token = required(&fields, &["refresh"])?[0];
    let claims = match state.auth.verify_refresh(token) {
        Ok(c) => c,
        // Perhaps one the original service issued (`auth.seed_secret_key`).
        Err(_) => return super::seed_tokens::refresh(state, token).await,
    };
    let (tenant, epoch) = state
        .files
        .meta
        .tenant_session(TenantId(claims.user_id))
        .await?
        .ok_or(ApiError::RefreshInvalid)?;
    // A session ended since (password change, logout, revoke) does not rotate on.
    if claims.epoch != epoch || claims.username != tenant.name.as_str() {
        return Err(ApiError::RefreshInvalid);
    }
    // Rotation: the presented token is spent. The blacklist lives in the metadata store, so a
    // token used on one node is refused on every other.
    let first_use = state
        .files
        .meta
        .blacklist_refresh(&claims.jti, claims.exp.saturating_mul(1_000_000))
        .await?;
    if !first_use {
        return Err(ApiError::RefreshInvalid);
    }
    let (refresh, access) = state.auth.issue_pair(&tenant, epoch);
    Ok(respond(StatusCode::OK, &TokenPair { refresh, access }))
}
