//! What the owner-policy room stores: uploaded modules, policies (module + configuration),
//! the policies bound to each resource, and the decision audit. Every key starts with the owner
//! (and, for resources, the resource server), so no method reaches another owner's objects
//! (security-lessons S8-S12, S17).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Owner, ResourceScope};
use crate::error::Result;
use crate::runtime::World;

/// One version of an owner's module. The bytes are stored once per content digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleRecord {
    pub name: String,
    pub version: u32,
    /// Hex SHA-256 of the component.
    pub digest: String,
    #[schema(value_type = crate::http::openapi::runtime::World)]
    pub world: World,
    pub size: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub created_at: u64,
    /// The budget the uploader asked for; what is absent takes the server's defaults.
    #[serde(default, skip_serializing_if = "ModuleLimits::is_default")]
    pub requested_limits: ModuleLimits,
}

/// Limits a module's upload asked for, within the server's global maxima
/// (`runtime.max_fuel`, `runtime.max_module_memory_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleLimits {
    /// Instruction budget (wasmtime fuel) of one evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Linear memory one evaluation may use, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<usize>,
}

impl ModuleLimits {
    pub fn is_default(&self) -> bool {
        *self == ModuleLimits::default()
    }
}

/// Which module a policy runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "library", rename_all = "kebab-case")]
pub enum ModuleRef {
    /// A plugin shipped with the server, available to every owner read-only.
    Builtin { name: String },
    /// One version of the owner's own module.
    Owned { name: String, version: u32 },
}

impl std::fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleRef::Builtin { name } => write!(f, "builtin:{name}"),
            ModuleRef::Owned { name, version } => write!(f, "{name}@{version}"),
        }
    }
}

/// A policy: a module, the owner's configuration for it, and a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyRecord {
    pub id: String,
    pub name: String,
    pub module: ModuleRef,
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: u64,
}

/// How several policies on one resource combine (as Keycloak offers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Every applicable policy must permit a scope.
    #[default]
    Unanimous,
    /// One permitting policy is enough.
    Affirmative,
    /// More policies permit a scope than deny it.
    Consensus,
}

/// One policy bound to a resource, optionally for some of its scopes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Binding {
    /// The policy's id.
    pub policy: String,
    /// The scopes it decides; `None` means every scope of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// The policies of one resource and how they combine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePolicy {
    #[serde(default)]
    pub strategy: Strategy,
    pub bindings: Vec<Binding>,
    /// The claims plugin that gathers claims from requesting parties at the claims interaction
    /// endpoint, after they log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsBinding>,
}

/// A claims plugin and the owner's configuration for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimsBinding {
    pub module: ModuleRef,
    #[serde(default = "empty_config")]
    pub config: serde_json::Value,
}

fn empty_config() -> serde_json::Value {
    serde_json::json!({})
}

/// One policy's part in a decision, as the owner reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyVerdict {
    pub policy: String,
    pub policy_name: String,
    pub module: String,
    /// The scopes this policy was asked about.
    pub scopes: Vec<String>,
    #[schema(value_type = crate::http::openapi::runtime::Decision)]
    pub decision: crate::runtime::Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::http::openapi::runtime::Failure>)]
    pub failure: Option<crate::runtime::Failure>,
    pub fuel_used: u64,
    pub elapsed_us: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<crate::http::openapi::runtime::LogLine>)]
    pub logs: Vec<crate::runtime::LogLine>,
}

/// One real evaluation, recorded for the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the owner's log; increases with time.
    pub seq: u64,
    pub at: u64,
    pub resource_server: String,
    pub resource_id: String,
    pub client_id: String,
    /// The requesting party's `sub`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_party: Option<String>,
    pub requested_scopes: Vec<String>,
    pub granted_scopes: Vec<String>,
    /// `permit`, `partial`, `deny`, `need-info` or `defer-to-owner`.
    pub outcome: String,
    pub policies: Vec<PolicyVerdict>,
}

/// Filters of an audit query.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries after this `seq` (paging cursor).
    pub after: Option<u64>,
    pub limit: Option<usize>,
    pub resource_id: Option<String>,
    pub client_id: Option<String>,
    pub outcome: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<u64>,
    pub until: Option<u64>,
}

/// The owner-policy part of [`super::Store`].
#[async_trait]
pub trait PolicyStore: Send + Sync {
    // --- module bytes, by content digest ---
    async fn put_module_bytes(&self, digest: &str, bytes: &[u8]) -> Result<()>;
    async fn get_module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>>;

    // --- module versions, scoped by owner ---
    /// Stores the next version of `record.name` (its `version` is assigned here) if the owner's
    /// quota allows: `Ok(None)` when it would exceed `max_count` modules or `max_bytes`.
    async fn create_module_version(
        &self,
        owner: &Owner,
        record: ModuleRecord,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Option<ModuleRecord>>;
    async fn get_module(
        &self,
        owner: &Owner,
        name: &str,
        version: u32,
    ) -> Result<Option<ModuleRecord>>;
    async fn list_modules(&self, owner: &Owner) -> Result<Vec<ModuleRecord>>;
    /// Deletes a module version unless a policy of the owner uses it: `Err(Conflict)` then.
    /// Drops the bytes when no module version anywhere has the digest any more.
    async fn delete_module(&self, owner: &Owner, name: &str, version: u32) -> Result<bool>;

    // --- policies, scoped by owner ---
    /// Creates the policy unless the owner already has one with that name (`Ok(false)`); fails
    /// with `Conflict` if its module was deleted meanwhile.
    async fn create_policy(&self, owner: &Owner, policy: &PolicyRecord) -> Result<bool>;
    async fn get_policy(&self, owner: &Owner, id: &str) -> Result<Option<PolicyRecord>>;
    async fn list_policies(&self, owner: &Owner) -> Result<Vec<PolicyRecord>>;
    /// Deletes a policy unless it is bound to a resource (`Err(Conflict)`).
    async fn delete_policy(&self, owner: &Owner, id: &str) -> Result<bool>;

    // --- bindings, scoped by (owner, resource server, resource) ---
    /// Replaces the resource's policies; fails with `Conflict` if a named policy does not exist
    /// (checked in the same transaction as the write).
    async fn put_resource_policy(
        &self,
        scope: &ResourceScope,
        resource_id: &str,
        policy: &ResourcePolicy,
    ) -> Result<()>;
    async fn get_resource_policy(
        &self,
        scope: &ResourceScope,
        resource_id: &str,
    ) -> Result<Option<ResourcePolicy>>;
    async fn delete_resource_policy(&self, scope: &ResourceScope, resource_id: &str) -> Result<()>;

    // --- audit, scoped by owner ---
    /// Appends an entry (its `seq` is assigned here) and drops the oldest entries beyond
    /// `keep` for that owner.
    async fn append_audit(&self, owner: &Owner, entry: AuditEntry, keep: usize) -> Result<u64>;
    /// Appends several entries in order, as [`append_audit`](Self::append_audit) would one by
    /// one; a backend may write them together (one grant decides up to hundreds of
    /// permissions).
    async fn append_audits(
        &self,
        owner: &Owner,
        entries: Vec<AuditEntry>,
        keep: usize,
    ) -> Result<()> {
        for entry in entries {
            self.append_audit(owner, entry, keep).await?;
        }
        Ok(())
    }
    async fn query_audit(&self, owner: &Owner, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}
