//! `POST /api/v2/sessions/revoke`: the caller ends its own sessions. Every access and refresh
//! token of the tenant issued until now (this request's own included) answers 401 from then on,
//! on every node: the tenant's session epoch in the metadata store rises (see
//! [`crate::meta::session`]). A new login starts a new session.

use http::StatusCode;
use serde_json::json;

use super::error::ApiError;
use super::{AppState, Response, json_response};
use crate::domain::{Tenant, format_micros, now_micros};

/// 200 `{"revoked_before": "<RFC 3339>"}` (the contract's shape, as for link revocation).
pub async fn revoke(state: &AppState, tenant: &Tenant) -> Result<Response, ApiError> {
    // None: the tenant was removed meanwhile; its tokens are dead either way.
    let _ = state.files.meta.end_sessions(tenant.id).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"revoked_before": format_micros(now_micros())}),
    ))
}
