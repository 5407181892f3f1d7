//! Session epochs in the metadata store: one counter per tenant (`tenants.session_epoch`,
//! migration 0007) that every token carries. Raising it ends every session issued before, on
//! every node sharing the store: a password change raises it in the same statement, and so do
//! `mtfu tenant logout` and `POST /api/v2/sessions/revoke`.
//!
//! A separate trait from [`MetaBackend`](super::MetaBackend) (of which it is a supertrait), with
//! its SQL written once for both stores in `sql/session.rs`.

use async_trait::async_trait;

use super::MetaResult;
use crate::domain::{Micros, Tenant, TenantId};

#[async_trait]
pub trait SessionStore {
    /// The tenant and its session epoch: one primary-key lookup, made by every authenticated
    /// request (it replaces the plain tenant lookup).
    async fn tenant_session(&self, id: TenantId) -> MetaResult<Option<(Tenant, i64)>>;
    /// The tenant, its password hash and its session epoch, read together (a login must not
    /// pair an old password with a new epoch).
    async fn tenant_login(&self, name: &str) -> MetaResult<Option<(Tenant, String, i64)>>;
    /// End every session of the tenant issued until now; its new epoch, `None` if there is no
    /// such tenant.
    async fn end_sessions(&self, id: TenantId) -> MetaResult<Option<i64>>;
    /// Note a successful password login at `at` (`tenants.last_login_at`, migration 0011).
    async fn record_login(&self, id: TenantId, at: Micros) -> MetaResult<()>;
}
