//! The owner policy API (`/owner/…`): a resource owner uploads modules, makes policies of them,
//! binds policies to resources, dry-runs hypothetical requests and reads the decision audit.
//!
//! Who may do what:
//! - a token with scope `uma_policy` issued to the owner through the authorization code flow
//!   (the owner logged in), or a PAT from `client_credentials` (a resource server that owns its
//!   resources itself): everything, for that owner;
//! - a PAT that a resource server holds for a user (`uma_protection` through the authorization
//!   code flow): read the owner's modules and policies, and bind, dry-run and read the audit of
//!   the resources registered by that resource server only. It cannot upload or delete code, nor
//!   create or delete policies.
//!
//! Everything is scoped to the caller's owner; another owner's objects answer 404.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::extract::{StrictJson, read_body};
use super::openapi;
use crate::error::{Error, Result};
use crate::oauth::UMA_PROTECTION;
use crate::oauth::access_token::validate;
use crate::policy::{self, NewPolicy, Question, UMA_POLICY};
use crate::runtime::{Claim, Provenance};
use crate::store::policy::{AuditQuery, ResourcePolicy};
use crate::store::uma::{ApprovalRequest, ApprovalStatus};
use crate::store::{Owner, Permission, ResourceScope, unix_now};
use crate::uma::pat::bearer_token;

/// The authenticated owner.
#[derive(Debug, Clone)]
pub struct OwnerAuth {
    pub owner: Owner,
    /// Set when the caller is a PAT held by a resource server for a user: it may act only on
    /// that resource server's resources, and may not change code or policies.
    pub resource_server: Option<String>,
}

impl OwnerAuth {
    fn require_full(&self) -> Result<()> {
        match &self.resource_server {
            None => Ok(()),
            Some(_) => Err(Error::InsufficientScope(UMA_POLICY)),
        }
    }

    /// The scope of a resource of resource server `rs`, if this caller may act on it.
    fn resource_scope(&self, rs: &str) -> Result<ResourceScope> {
        if self.resource_server.as_deref().is_some_and(|own| own != rs) {
            // Another resource server's resources do not exist for this caller.
            return Err(Error::NotFound);
        }
        Ok(ResourceScope {
            owner: self.owner.clone(),
            resource_server: rs.to_string(),
        })
    }
}

impl FromRequestParts<AppState> for OwnerAuth {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(&parts.headers)?.ok_or(Error::MissingToken)?;
        let claims = validate(state, token).await?.map_err(Error::InvalidToken)?;
        if claims.is_rpt() || claims.aud != state.config.issuer {
            return Err(Error::InsufficientScope(UMA_POLICY));
        }
        let owner = claims
            .subject()
            .ok_or_else(|| Error::InvalidToken("unknown subject kind".into()))?;
        let exists = match &owner {
            Owner::User(u) => state.store.get_user(u).await?.is_some(),
            Owner::Client(c) => state.store.get_client(c).await?.is_some(),
        };
        if !exists {
            return Err(Error::InvalidToken(
                "the token's owner no longer exists".into(),
            ));
        }
        let rs_itself = matches!(&owner, Owner::Client(c) if *c == claims.client_id);
        if claims.has_scope(UMA_POLICY) && matches!(owner, Owner::User(_)) {
            Ok(OwnerAuth {
                owner,
                resource_server: None,
            })
        } else if claims.has_scope(UMA_PROTECTION) {
            Ok(OwnerAuth {
                owner,
                resource_server: (!rs_itself).then(|| claims.client_id.clone()),
            })
        } else {
            Err(Error::InsufficientScope(UMA_POLICY))
        }
    }
}

/// The routes, mounted at `/owner`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/modules", get(list_modules))
        .route("/modules/{name}", post(upload_module))
        .route(
            "/modules/{name}/{version}",
            get(show_module).delete(delete_module),
        )
        .route("/policies", get(list_policies).post(create_policy))
        .route("/policies/{id}", get(show_policy).delete(delete_policy))
        .route(
            "/resources/{rs}/{id}/policy",
            get(show_binding).put(put_binding).delete(delete_binding),
        )
        .route("/resources/{rs}/{id}/dry-run", post(dry_run))
        .route("/audit", get(audit))
        .route("/approvals", get(list_approvals))
        .route("/approvals/{id}", get(show_approval).post(decide_approval))
        .route("/grants", get(list_grants))
        .route("/grants/{jti}", axum::routing::delete(revoke_grant))
}

#[utoipa::path(get, path = "/owner/modules", tag = "owner",
    description = "The owner's module versions and the built-in library.",
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "Modules", body = openapi::ModuleList),
        openapi::BearerErrors,
    ))]
async fn list_modules(
    State(s): State<AppState>,
    who: OwnerAuth,
) -> Result<Json<serde_json::Value>> {
    let owned = policy::list_modules(&s, &who.owner).await?;
    let builtin = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || policy::builtin_modules(&s))
            .await
            .map_err(Error::internal)?
    };
    Ok(Json(json!({ "owned": owned, "builtin": builtin })))
}

/// The component: the raw body (`application/wasm` or `application/octet-stream`), or the
/// first file part of a `multipart/form-data` body.
async fn module_bytes(s: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>> {
    let limit = s.runtime.config().max_module_bytes;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.to_ascii_lowercase();
    if media.starts_with("multipart/form-data") {
        // The boundary is case-sensitive: parse it from the header as sent.
        let boundary = multer::parse_boundary(content_type)
            .map_err(|e| Error::invalid_request(format!("multipart body: {e}")))?;
        let bytes = read_body(headers, body, limit + 64 * 1024).await?;
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| Error::invalid_request(format!("multipart body: {e}")))?
        {
            if field.file_name().is_some() || field.name() == Some("module") {
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| Error::invalid_request(format!("multipart body: {e}")))?;
                return Ok(data.to_vec());
            }
        }
        return Err(Error::invalid_request(
            "the multipart body has no file part (name it `module`)",
        ));
    }
    if !(media.starts_with("application/wasm") || media.starts_with("application/octet-stream")) {
        return Err(Error::invalid_request(
            "Content-Type must be application/wasm, application/octet-stream or multipart/form-data",
        ));
    }
    Ok(read_body(headers, body, limit).await?.to_vec())
}

/// Limits an upload may ask for, as query parameters of `POST /owner/modules/{name}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadLimits {
    /// Instruction budget (wasmtime fuel) of one evaluation of this module, up to the server's
    /// `runtime.max_fuel`; default the server's `runtime.fuel`. Interpreted languages (Python,
    /// JavaScript) may need more than compiled ones.
    fuel: Option<u64>,
    /// Linear memory one evaluation may use, in bytes, up to the server's
    /// `runtime.max_module_memory_bytes`; default the server's `runtime.max_memory_bytes`.
    memory_bytes: Option<usize>,
}

#[utoipa::path(post, path = "/owner/modules/{name}", tag = "owner",
    description = "Upload a new version of module `name` (full access only). The component is validated and compiled before anything is stored. The query may ask for the module's own fuel and memory limits within the server's maxima; the module's metadata shows the limits it runs under and what its evaluations used.",
    params(("name" = String, Path, description = "1-64 characters of a-z, 0-9, -, _, ., starting with a letter or digit"), UploadLimits),
    request_body(content((openapi::WasmBytes = "application/wasm"), (openapi::WasmBytes = "application/octet-stream"), (openapi::ModuleUpload = "multipart/form-data")), description = "The component: the raw body, or a multipart file part (named `module`)"),
    security(("owner_token" = [])),
    responses(
        (status = 201, description = "The new version", body = crate::policy::ModuleView),
        (status = 400, description = "`invalid_module` with the precise reason, or `invalid_request` (also for limits outside the server's maxima)", body = openapi::OAuthError),
        (status = 403, description = "`quota_exceeded` or `insufficient_scope`", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn upload_module(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path(name): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    who.require_full()?;
    let Query(limits) = Query::<UploadLimits>::try_from_uri(&uri).map_err(|e| {
        Error::invalid_request(format!(
            "bad query: {}; it may carry fuel and memory_bytes, whole numbers",
            e.body_text()
        ))
    })?;
    let requested = crate::store::policy::ModuleLimits {
        fuel: limits.fuel,
        memory_bytes: limits.memory_bytes,
    };
    let bytes = module_bytes(&s, &headers, body).await?;
    let view = policy::upload_module(&s, &who.owner, &name, bytes, requested).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(get, path = "/owner/modules/{name}/{version}", tag = "owner",
    description = "One module version.",
    params(("name" = String, Path, description = "The module name"), ("version" = u32, Path, description = "The module version")),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "The module", body = crate::policy::ModuleView),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn show_module(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path((name, version)): Path<(String, u32)>,
) -> Result<Json<policy::ModuleView>> {
    Ok(Json(
        policy::get_module(&s, &who.owner, &name, version).await?,
    ))
}

#[utoipa::path(delete, path = "/owner/modules/{name}/{version}", tag = "owner",
    description = "Delete a module version (full access only); refused while a policy uses it.",
    params(("name" = String, Path, description = "The module name"), ("version" = u32, Path, description = "The module version")),
    security(("owner_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        (status = 409, description = "A policy uses it", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn delete_module(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path((name, version)): Path<(String, u32)>,
) -> Result<StatusCode> {
    who.require_full()?;
    policy::delete_module(&s, &who.owner, &name, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/owner/policies", tag = "owner",
    description = "The owner's policies.",
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "Policies", body = Vec<crate::store::policy::PolicyRecord>),
        openapi::BearerErrors,
    ))]
async fn list_policies(
    State(s): State<AppState>,
    who: OwnerAuth,
) -> Result<Json<serde_json::Value>> {
    let policies = s.store.list_policies(&who.owner).await?;
    Ok(Json(json!(policies)))
}

#[utoipa::path(post, path = "/owner/policies", tag = "owner",
    description = "Create a policy (full access only); its configuration is checked by the module's own validation.",
    request_body(content = NewPolicy, content_type = "application/json"),
    security(("owner_token" = [])),
    responses(
        (status = 201, description = "Created", body = crate::store::policy::PolicyRecord),
        (status = 409, description = "A policy of that name exists", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn create_policy(
    State(s): State<AppState>,
    who: OwnerAuth,
    StrictJson(new): StrictJson<NewPolicy>,
) -> Result<Response> {
    who.require_full()?;
    let created = policy::create_policy(&s, &who.owner, new).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/owner/policies/{id}", tag = "owner",
    description = "One policy.",
    params(("id" = String, Path, description = "The policy id")),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "The policy", body = crate::store::policy::PolicyRecord),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn show_policy(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path(id): Path<String>,
) -> Result<Json<crate::store::policy::PolicyRecord>> {
    Ok(Json(policy::get_policy(&s, &who.owner, &id).await?))
}

#[utoipa::path(delete, path = "/owner/policies/{id}", tag = "owner",
    description = "Delete a policy (full access only); refused while bound.",
    params(("id" = String, Path, description = "The policy id")),
    security(("owner_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        (status = 409, description = "It is bound to a resource", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn delete_policy(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require_full()?;
    policy::delete_policy(&s, &who.owner, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/owner/resources/{rs}/{id}/policy", tag = "owner",
    description = "The policies bound to a resource and how they combine.",
    params(("rs" = String, Path, description = "The resource server (client id) that registered the resource"), ("id" = String, Path, description = "The resource id")),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "The bindings", body = ResourcePolicy),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn show_binding(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path((rs, id)): Path<(String, String)>,
) -> Result<Json<ResourcePolicy>> {
    let scope = who.resource_scope(&rs)?;
    Ok(Json(policy::bindings(&s, &scope, &id).await?))
}

#[utoipa::path(put, path = "/owner/resources/{rs}/{id}/policy", tag = "owner",
    description = "Replace the policies bound to a resource.",
    params(("rs" = String, Path, description = "The resource server (client id) that registered the resource"), ("id" = String, Path, description = "The resource id")),
    request_body(content = ResourcePolicy, content_type = "application/json"),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "The bindings", body = ResourcePolicy),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        (status = 409, description = "A named policy does not exist", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn put_binding(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path((rs, id)): Path<(String, String)>,
    StrictJson(binding): StrictJson<ResourcePolicy>,
) -> Result<Json<ResourcePolicy>> {
    let scope = who.resource_scope(&rs)?;
    Ok(Json(policy::bind(&s, &scope, &id, binding).await?))
}

#[utoipa::path(delete, path = "/owner/resources/{rs}/{id}/policy", tag = "owner",
    description = "Unbind every policy: the resource grants nothing to anyone but its owner.",
    params(("rs" = String, Path, description = "The resource server (client id) that registered the resource"), ("id" = String, Path, description = "The resource id")),
    security(("owner_token" = [])),
    responses(
        (status = 204, description = "Unbound"),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn delete_binding(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path((rs, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let scope = who.resource_scope(&rs)?;
    policy::bind(&s, &scope, &id, ResourcePolicy::default()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A hypothetical request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DryRun {
    client_id: String,
    scopes: Vec<String>,
    #[serde(default)]
    claims: Vec<HypotheticalClaim>,
}

/// A claim the hypothetical requesting party presents.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct HypotheticalClaim {
    name: String,
    value: serde_json::Value,
    /// Default: `{"kind": "server"}`.
    #[serde(default)]
    #[schema(value_type = Option<openapi::runtime::Provenance>)]
    provenance: Option<Provenance>,
}

#[utoipa::path(post, path = "/owner/resources/{rs}/{id}/dry-run", tag = "owner",
    description = "Evaluate a hypothetical request against the resource's policies, with an explanation per policy. Not recorded in the audit.",
    params(("rs" = String, Path, description = "The resource server (client id) that registered the resource"), ("id" = String, Path, description = "The resource id")),
    request_body(content = DryRun, content_type = "application/json"),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "The decision", body = openapi::DryRunResult),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn dry_run(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path((rs, id)): Path<(String, String)>,
    StrictJson(req): StrictJson<DryRun>,
) -> Result<Json<serde_json::Value>> {
    let scope = who.resource_scope(&rs)?;
    let resource = s
        .store
        .get_resource(&scope, &id)
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(bad) = req
        .scopes
        .iter()
        .find(|x| !resource.resource_scopes.contains(x))
    {
        return Err(Error::InvalidScope(format!(
            "scope {bad:?} is not registered for resource {id}"
        )));
    }
    let claims: Vec<Claim> = req
        .claims
        .into_iter()
        .map(|c| Claim {
            name: c.name,
            value: c.value,
            provenance: c.provenance.unwrap_or(Provenance::Server),
        })
        .collect();
    let question = Question {
        scope: &scope,
        resource_id: &id,
        resource: &resource,
        requested_scopes: &req.scopes,
        client_id: &req.client_id,
        claims: &claims,
        now_ms: policy::now_ms(),
    };
    let evaluation = policy::evaluate(&s, &question).await?;
    let combined = &evaluation.combined;
    let mut out = json!({
        "decision": combined.label(),
        "granted_scopes": combined.granted(),
        "strategy": evaluation.strategy,
        "policies": evaluation.verdicts,
    });
    match combined {
        policy::strategy::Combined::NeedInfo { required, .. } => {
            out["required_claims"] = json!(required);
        }
        policy::strategy::Combined::DeferToOwner { messages, .. } => {
            out["owner_messages"] = json!(messages);
        }
        _ => {}
    }
    if evaluation.verdicts.is_empty() {
        out["explanation"] =
            json!("no policy decides these scopes: nothing is granted to anyone but the owner");
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/owner/audit", tag = "owner",
    description = "The decision audit, oldest first, filtered and paged.",
    params(AuditQuery),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "A page of entries", body = openapi::AuditPage),
        openapi::BearerErrors,
    ))]
async fn audit(
    State(s): State<AppState>,
    who: OwnerAuth,
    Query(mut q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>> {
    let entries = s.store.query_audit(&who.owner, &q).await?;
    let entries: Vec<_> = match &who.resource_server {
        // A resource server's PAT sees only decisions about its own resources.
        Some(rs) => entries
            .into_iter()
            .filter(|e| &e.resource_server == rs)
            .collect(),
        None => entries,
    };
    q.after = entries.last().map(|e| e.seq);
    Ok(Json(json!({ "entries": entries, "next_after": q.after })))
}

impl OwnerAuth {
    /// Whether an object of resource server `rs` is visible to this caller.
    fn sees(&self, rs: &str) -> bool {
        self.resource_server.as_deref().is_none_or(|own| own == rs)
    }
}

#[utoipa::path(get, path = "/owner/approvals", tag = "owner",
    description = "Requests the policies deferred to the owner, pending first.",
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "Approval requests", body = Vec<ApprovalRequest>),
        openapi::BearerErrors,
    ))]
async fn list_approvals(
    State(s): State<AppState>,
    who: OwnerAuth,
) -> Result<Json<Vec<ApprovalRequest>>> {
    let mut all: Vec<ApprovalRequest> = s
        .store
        .list_approvals(&who.owner)
        .await?
        .into_iter()
        .filter(|a| who.sees(&a.resource_server))
        .collect();
    // Pending first, oldest first.
    all.sort_by_key(|a| (a.status != ApprovalStatus::Pending, a.created_at));
    Ok(Json(all))
}

#[utoipa::path(get, path = "/owner/approvals/{id}", tag = "owner",
    description = "One approval request.",
    params(("id" = String, Path, description = "The approval request id")),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "The request", body = ApprovalRequest),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn show_approval(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path(id): Path<String>,
) -> Result<Json<ApprovalRequest>> {
    Ok(Json(visible_approval(&s, &who, &id).await?))
}

/// The owner's approval request `id`, if this caller may see it (else 404, as if absent).
async fn visible_approval(s: &AppState, who: &OwnerAuth, id: &str) -> Result<ApprovalRequest> {
    s.store
        .get_approval(&who.owner, id)
        .await?
        .filter(|a| who.sees(&a.resource_server))
        .ok_or(Error::NotFound)
}

/// The owner's answer: `{"decision": "approve"}` (every scope asked), `{"decision": "approve",
/// "permissions": [{"resource_id": …, "resource_scopes": […]}]}` (a subset), or
/// `{"decision": "deny"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ApprovalDecision)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// `approve` or `deny`.
    #[schema(pattern = "^(approve|deny)$")]
    decision: String,
    #[serde(default)]
    permissions: Option<Vec<Permission>>,
}

#[utoipa::path(post, path = "/owner/approvals/{id}", tag = "owner",
    description = "Approve (all or a subset of what was asked) or deny a request.",
    params(("id" = String, Path, description = "The approval request id")),
    request_body(content = Decision, content_type = "application/json"),
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "The decided request", body = ApprovalRequest),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn decide_approval(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path(id): Path<String>,
    StrictJson(d): StrictJson<Decision>,
) -> Result<Json<ApprovalRequest>> {
    let request = visible_approval(&s, &who, &id).await?;
    let status = match d.decision.as_str() {
        "deny" => ApprovalStatus::Denied,
        "approve" => {
            let granted = match d.permissions {
                None => request.permissions.clone(),
                Some(subset) => {
                    // Only what was asked can be approved (S8, S20).
                    for p in &subset {
                        let asked = request
                            .permissions
                            .iter()
                            .find(|a| a.resource_id == p.resource_id)
                            .ok_or_else(|| {
                                Error::invalid_request(format!(
                                    "resource {} is not part of this request",
                                    p.resource_id
                                ))
                            })?;
                        if let Some(x) = p
                            .resource_scopes
                            .iter()
                            .find(|x| !asked.resource_scopes.contains(x))
                        {
                            return Err(Error::invalid_request(format!(
                                "scope {x} was not asked for resource {}",
                                p.resource_id
                            )));
                        }
                    }
                    subset
                }
            };
            ApprovalStatus::Approved { granted }
        }
        other => {
            return Err(Error::invalid_request(format!(
                "decision must be approve or deny, not {other:?}"
            )));
        }
    };
    let decided = s
        .store
        .decide_approval(&who.owner, &id, status, unix_now())
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(decided))
}

#[utoipa::path(get, path = "/owner/grants", tag = "owner",
    description = "The RPTs issued for the owner's resources.",
    security(("owner_token" = [])),
    responses(
        (status = 200, description = "Granted RPTs", body = Vec<crate::store::uma::RptRecord>),
        openapi::BearerErrors,
    ))]
async fn list_grants(
    State(s): State<AppState>,
    who: OwnerAuth,
) -> Result<Json<Vec<crate::store::uma::RptRecord>>> {
    Ok(Json(
        s.store
            .list_rpts(&who.owner)
            .await?
            .into_iter()
            .filter(|r| who.sees(&r.resource_server))
            .collect(),
    ))
}

/// Revoke an RPT the owner granted: introspection answers inactive from now on, and it can no
/// longer be upgraded.
#[utoipa::path(delete, path = "/owner/grants/{jti}", tag = "owner",
    description = "Revoke an RPT: introspection answers inactive from now on, and it can no longer be upgraded.",
    params(("jti" = String, Path, description = "The RPT's jti")),
    security(("owner_token" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such object of this owner", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
async fn revoke_grant(
    State(s): State<AppState>,
    who: OwnerAuth,
    Path(jti): Path<String>,
) -> Result<StatusCode> {
    let visible = s
        .store
        .list_rpts(&who.owner)
        .await?
        .into_iter()
        .any(|r| r.jti == jti && who.sees(&r.resource_server));
    if !visible {
        return Err(Error::NotFound);
    }
    let record = s
        .store
        .take_rpt(&who.owner, &jti)
        .await?
        .ok_or(Error::NotFound)?;
    s.store.revoke_jti(&record.jti, record.exp).await?;
    Ok(StatusCode::NO_CONTENT)
}
