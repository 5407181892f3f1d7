//! `POST /api/v2/sessions/revoke`: the caller ends its own sessions. Every access and refresh
//! token of the tenant issued until now (this request's own included) answers 401 from then on,
//! on every node: the tenant's session epoch in the metadata store rises (see
//! [`crate::meta::session`]). A new login starts a new session.

use http::StatusCode;

use super::error::ApiError;
use super::wire::{Revoked, respond};
use super::{AppState, Response};
use crate::domain::{Tenant, format_micros, now_micros};

/// 200 `{"revoked_before": "<RFC 3339>"}` (the contract's shape, as for link revocation).
pub async fn revoke(state: &AppState, tenant: &Tenant) -> Result<Response, ApiError> {
    // None: the tenant was removed meanwhile; its tokens are dead either way.
    let _ = state.files.meta.end_sessions(tenant.id).await?;
    Ok(respond(
        StatusCode::OK,
        &Revoked {
            revoked_before: format_micros(now_micros()),
        },
    ))
}
