//! What the UMA grant stores beyond tickets: persisted claims (PCTs), requests waiting for the
//! owner's approval, the RPTs owners have granted, and claims-interaction sessions.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Owner, Permission};
use crate::error::Result;
use crate::runtime::Claim;

/// A persisted claims token (Grant §3.3.5): the requesting party's claims, kept here and
/// referenced by an opaque value; bound to the client it was issued to (PCT-2, PCT-3, S21).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PctRecord {
    pub client_id: String,
    pub claims: Vec<Claim>,
    pub iat: u64,
    pub exp: u64,
}

/// Where an owner's decision on a deferred request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ApprovalStatus {
    Pending,
    /// Approved; the scopes granted per resource (a subset of those asked).
    Approved {
        granted: Vec<Permission>,
    },
    Denied,
}

/// A request the owner's policies deferred to the owner.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalRequest {
    pub id: String,
    pub resource_server: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_party: Option<String>,
    /// The permissions waiting for the owner, with the scopes still to decide.
    pub permissions: Vec<Permission>,
    /// What the policies told the owner.
    pub messages: Vec<String>,
    #[serde(flatten)]
    pub status: ApprovalStatus,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<u64>,
}

/// An RPT issued for an owner's resources, so the owner can list and revoke what they granted.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RptRecord {
    pub jti: String,
    pub resource_server: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_party: Option<String>,
    pub permissions: Vec<Permission>,
    pub iat: u64,
    pub exp: u64,
}

/// A claims-interaction session (Grant §3.3.2): the requesting party's progress through the
/// login and the claims plugins, kept server-side; the browser holds only its id and CSRF token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InteractionSession {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The consumed ticket's contents, re-issued under a new value at the end.
    pub ticket: super::Ticket,
    pub csrf: String,
    /// Claims gathered so far.
    pub claims: Vec<Claim>,
    /// Index of the claims plugin in progress (after the login step), and its opaque state.
    pub plugin: usize,
    pub plugin_state: Option<String>,
    /// The form the requesting party is answering (JSON of the runtime's `Form`).
    pub form: Option<serde_json::Value>,
    pub logged_in: bool,
    pub exp: u64,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// The UMA-grant part of [`super::Store`].
#[async_trait]
pub trait UmaStore: Send + Sync {
    async fn put_pct(&self, pct: &str, record: &PctRecord) -> Result<()>;
    /// `None` if unknown, revoked or expired.
    async fn get_pct(&self, pct: &str) -> Result<Option<PctRecord>>;
    async fn revoke_pct(&self, pct: &str) -> Result<bool>;

    async fn put_approval(&self, owner: &Owner, request: &ApprovalRequest) -> Result<()>;
    async fn get_approval(&self, owner: &Owner, id: &str) -> Result<Option<ApprovalRequest>>;
    async fn list_approvals(&self, owner: &Owner) -> Result<Vec<ApprovalRequest>>;
    /// Decides a pending request exactly once: `Ok(None)` if it is unknown, `Err(Conflict)` if it
    /// was already decided.
    async fn decide_approval(
        &self,
        owner: &Owner,
        id: &str,
        status: ApprovalStatus,
        at: u64,
    ) -> Result<Option<ApprovalRequest>>;

    async fn record_rpt(&self, owner: &Owner, rpt: &RptRecord) -> Result<()>;
    async fn list_rpts(&self, owner: &Owner) -> Result<Vec<RptRecord>>;
    /// Removes the record and returns it, so the caller can revoke the token.
    async fn take_rpt(&self, owner: &Owner, jti: &str) -> Result<Option<RptRecord>>;

    async fn put_interaction(&self, id: &str, session: &InteractionSession) -> Result<()>;
    async fn get_interaction(&self, id: &str) -> Result<Option<InteractionSession>>;
    async fn take_interaction(&self, id: &str) -> Result<Option<InteractionSession>>;
}
