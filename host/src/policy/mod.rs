//! Owner policies: the modules owners upload, the policies they make of them (module +
//! configuration), the policies bound to each resource and how they combine, dry-runs, and the
//! decision audit.
//!
//! Everything here takes the caller's [`Owner`] (and, for resources, the resource server) from
//! an authenticated token, never from a request body, and the store offers no unscoped lookup
//! (security-lessons S8-S12, S17).

pub mod strategy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::AppState;
use crate::keys::random_token;
use crate::plugins;
use crate::runtime::{
    self, Claim, IngestError, Limits, Module, PolicyInput, RequestedLimits, ServerContext, Usage,
    World,
};
use crate::store::policy::*;
use crate::store::{Owner, ResourceDescription, ResourceScope, unix_now};
use strategy::{Combined, Vote};

/// The scope of an access token with which a resource owner manages their policies.
pub const UMA_POLICY: &str = "uma_policy";

/// Milliseconds since the Unix epoch: the server time handed to plugins.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "{kind} name must be 1-64 characters of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
        )))
    }
}

/// Run the runtime's ingest off the async reactor. When every compile slot is taken it waits for
/// one (they free up within `compile_timeout`) instead of failing a well-formed module; if none
/// frees up in that time the caller is told to retry (503), never that the module is invalid.
async fn ingest(
    state: &AppState,
    bytes: Arc<[u8]>,
    keep_loaded: bool,
) -> Result<Result<Arc<Module>, IngestError>> {
    let deadline = tokio::time::Instant::now() + state.runtime.config().compile_timeout;
    loop {
        let runtime = state.runtime.clone();
        let b = bytes.clone();
        let result = tokio::task::spawn_blocking(move || {
            if keep_loaded {
                runtime.ingest(&b)
            } else {
                runtime.ingest_unloaded(&b)
            }
        })
        .await
        .map_err(Error::internal)?;
        match result {
            Err(IngestError::Busy) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            Err(IngestError::Busy) => {
                return Err(Error::TemporarilyUnavailable(IngestError::Busy.to_string()));
            }
            other => return Ok(other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Modules

/// A module as the owner API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleView {
    #[serde(flatten)]
    pub record: ModuleRecord,
    /// `owned` or `builtin`.
    pub library: String,
    /// The sandbox limits this module runs under: the server's defaults, or what its upload
    /// asked for (`requested_limits`).
    pub limits: LimitsView,
    /// What the module's evaluations used since the server started (owned modules that have
    /// run; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
}

/// The sandbox limits a module runs under.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitsView {
    /// Instruction budget (wasmtime fuel) of one evaluation of this module.
    pub fuel: u64,
    pub deadline_ms: u64,
    /// Linear memory one evaluation of this module may use.
    pub max_memory_bytes: usize,
    pub max_output_bytes: usize,
    /// The most fuel an upload may ask for on this server (`?fuel=`).
    pub max_requestable_fuel: u64,
    /// The most memory an upload may ask for on this server (`?memory_bytes=`).
    pub max_requestable_memory_bytes: usize,
}

/// What a module's evaluations used since the server started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageView {
    /// Evaluations run (real decisions and dry-runs).
    pub evaluations: u64,
    /// Evaluations that failed (a limit or a trap) and so denied.
    pub failures: u64,
    /// The most fuel one evaluation used.
    pub peak_fuel_used: u64,
    /// The most linear memory one evaluation used, in bytes.
    pub peak_memory_bytes: usize,
    /// The longest evaluation, instantiation included, in microseconds.
    pub peak_elapsed_us: u64,
    /// Fuel of the latest evaluation.
    pub last_fuel_used: u64,
}

/// Usage of owned modules, kept in memory by (owner, module, version): what the owner sees in
/// the module's metadata. Not persisted: a restart starts the figures anew.
#[derive(Default)]
pub struct UsageBook {
    entries: Mutex<HashMap<(String, String, u32), UsageView>>,
}

/// The most entries a usage book holds; past it, figures of further modules are not kept
/// (bounded memory whatever owners upload).
const MAX_USAGE_ENTRIES: usize = 100_000;

impl UsageBook {
    fn key(owner: &Owner, name: &str, version: u32) -> (String, String, u32) {
        (owner.to_string(), name.to_string(), version)
    }

    pub fn record(&self, owner: &Owner, r: &ModuleRef, usage: &Usage, failed: bool) {
        let ModuleRef::Owned { name, version } = r else {
            return;
        };
        let mut entries = self.entries.lock().unwrap();
        let key = Self::key(owner, name, *version);
        if !entries.contains_key(&key) && entries.len() >= MAX_USAGE_ENTRIES {
            return;
        }
        let e = entries.entry(key).or_default();
        e.evaluations += 1;
        e.failures += failed as u64;
        e.peak_fuel_used = e.peak_fuel_used.max(usage.fuel_used);
        e.peak_memory_bytes = e.peak_memory_bytes.max(usage.memory_bytes);
        e.peak_elapsed_us = e.peak_elapsed_us.max(usage.elapsed.as_micros() as u64);
        e.last_fuel_used = usage.fuel_used;
    }

    pub fn get(&self, owner: &Owner, name: &str, version: u32) -> Option<UsageView> {
        let entries = self.entries.lock().unwrap();
        entries.get(&Self::key(owner, name, version)).cloned()
    }

    fn forget(&self, owner: &Owner, name: &str, version: u32) {
        self.entries
            .lock()
            .unwrap()
            .remove(&Self::key(owner, name, version));
    }
}

fn requested(r: &ModuleLimits) -> RequestedLimits {
    RequestedLimits {
        fuel: r.fuel,
        memory_bytes: r.memory_bytes,
    }
}

/// The limits a module record runs under. A record stored under larger maxima than the
/// server has now runs under the present maxima.
fn effective_limits(state: &AppState, r: &ModuleLimits) -> Limits {
    let c = state.runtime.config();
    c.limits(requested(r)).unwrap_or_else(|_| Limits {
        fuel: r.fuel.unwrap_or(c.fuel).min(c.max_fuel),
        memory_bytes: r
            .memory_bytes
            .unwrap_or(c.max_memory_bytes)
            .min(c.max_module_memory_bytes.max(c.max_memory_bytes)),
    })
}

fn limits(state: &AppState, r: &ModuleLimits) -> LimitsView {
    let c = state.runtime.config();
    let l = effective_limits(state, r);
    LimitsView {
        fuel: l.fuel,
        deadline_ms: c.deadline.as_millis() as u64,
        max_memory_bytes: l.memory_bytes,
        max_output_bytes: c.max_output_bytes,
        max_requestable_fuel: c.max_fuel,
        max_requestable_memory_bytes: c.max_module_memory_bytes.max(c.max_memory_bytes),
    }
}

fn owned_view(state: &AppState, owner: &Owner, record: ModuleRecord) -> ModuleView {
    ModuleView {
        limits: limits(state, &record.requested_limits),
        usage: state.usage.get(owner, &record.name, record.version),
        record,
        library: "owned".into(),
    }
}

fn record_of(name: &str, module: &Module) -> ModuleRecord {
    ModuleRecord {
        name: name.to_string(),
        version: 0,
        digest: module.digest.clone(),
        world: module.world,
        size: module.size,
        imports: module.imports.clone(),
        exports: module.exports.clone(),
        created_at: unix_now(),
        requested_limits: ModuleLimits::default(),
    }
}

/// Upload a new version of the owner's module `name`, optionally asking for its own limits
/// within the server's maxima. The bytes go through the runtime's one ingest path before
/// anything is stored.
pub async fn upload_module(
    state: &AppState,
    owner: &Owner,
    name: &str,
    bytes: Vec<u8>,
    requested_limits: ModuleLimits,
) -> Result<ModuleView> {
    check_name("module", name)?;
    state
        .runtime
        .config()
        .limits(requested(&requested_limits))
        .map_err(Error::invalid_request)?;
    let limits_cfg = &state.config.policy;
    if bytes.len() > limits_cfg.max_module_bytes_per_owner {
        return Err(Error::QuotaExceeded(format!(
            "the module is {} bytes; an owner may hold {} bytes of modules",
            bytes.len(),
            limits_cfg.max_module_bytes_per_owner
        )));
    }
    let bytes: Arc<[u8]> = bytes.into();
    // Not kept loaded: an upload is not a use, and the artifact it compiled loads in ms.
    let module = ingest(state, bytes.clone(), false)
        .await?
        .map_err(|e| Error::InvalidModule(e.to_string()))?;
    state.store.put_module_bytes(&module.digest, &bytes).await?;
    let record = state
        .store
        .create_module_version(
            owner,
            ModuleRecord {
                requested_limits,
                ..record_of(name, &module)
            },
            limits_cfg.max_modules_per_owner,
            limits_cfg.max_module_bytes_per_owner,
        )
        .await?
        .ok_or_else(|| {
            Error::QuotaExceeded(format!(
                "an owner may hold {} module versions and {} bytes of modules; delete some first",
                limits_cfg.max_modules_per_owner, limits_cfg.max_module_bytes_per_owner
            ))
        })?;
    Ok(owned_view(state, owner, record))
}

/// The built-in plugins, as read-only modules every owner can use.
pub fn builtin_modules(state: &AppState) -> Vec<ModuleView> {
    plugins::BUILTINS
        .iter()
        .filter_map(|b| {
            let module = state.runtime.ingest(b.bytes).ok()?;
            let mut record = record_of(b.name, &module);
            record.version = 1;
            record.created_at = 0;
            Some(ModuleView {
                limits: limits(state, &record.requested_limits),
                record,
                library: "builtin".into(),
                usage: None,
            })
        })
        .collect()
}

pub async fn list_modules(state: &AppState, owner: &Owner) -> Result<Vec<ModuleView>> {
    Ok(state
        .store
        .list_modules(owner)
        .await?
        .into_iter()
        .map(|record| owned_view(state, owner, record))
        .collect())
}

pub async fn get_module(
    state: &AppState,
    owner: &Owner,
    name: &str,
    version: u32,
) -> Result<ModuleView> {
    let record = state
        .store
        .get_module(owner, name, version)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(owned_view(state, owner, record))
}

pub async fn delete_module(
    state: &AppState,
    owner: &Owner,
    name: &str,
    version: u32,
) -> Result<()> {
    if state.store.delete_module(owner, name, version).await? {
        state.usage.forget(owner, name, version);
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// The compiled module a reference names, loaded into the runtime (from the compiled cache when
/// the server compiled it before).
pub async fn load_module(state: &AppState, owner: &Owner, r: &ModuleRef) -> Result<Arc<Module>> {
    Ok(load_module_limited(state, owner, r).await?.0)
}

/// Like [`load_module`], with the limits the module runs under (its upload's, or the
/// server's defaults).
pub async fn load_module_limited(
    state: &AppState,
    owner: &Owner,
    r: &ModuleRef,
) -> Result<(Arc<Module>, Limits)> {
    let defaults = state.runtime.config().default_limits();
    match r {
        ModuleRef::Builtin { name } => {
            let b = plugins::builtin(name)
                .ok_or_else(|| Error::invalid_request(format!("no built-in module `{name}`")))?;
            if let Some(m) = state.runtime.loaded(builtin_digest(b)) {
                return Ok((m, defaults));
            }
            let m = ingest(state, b.bytes.into(), true)
                .await?
                .map_err(|e| Error::internal(format!("built-in {name}: {e}")))?;
            Ok((m, defaults))
        }
        ModuleRef::Owned { name, version } => {
            let record = state
                .store
                .get_module(owner, name, *version)
                .await?
                .ok_or_else(|| Error::invalid_request(format!("module {r} does not exist")))?;
            let limits = effective_limits(state, &record.requested_limits);
            if let Some(m) = state.runtime.loaded(&record.digest) {
                return Ok((m, limits));
            }
            let bytes = state
                .store
                .get_module_bytes(&record.digest)
                .await?
                .ok_or_else(|| Error::internal(format!("bytes of module {r} are missing")))?;
            let m = ingest(state, bytes.into(), true)
                .await?
                .map_err(|e| Error::internal(format!("stored module {r}: {e}")))?;
            Ok((m, limits))
        }
    }
}

fn builtin_digest(b: &'static plugins::Builtin) -> &'static str {
    static DIGESTS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let all = DIGESTS.get_or_init(|| {
        plugins::BUILTINS
            .iter()
            .map(|b| (b.name, runtime::digest(b.bytes)))
            .collect()
    });
    all.iter()
        .find(|(n, _)| *n == b.name)
        .map(|(_, d)| d.as_str())
        .unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Policies

/// What an owner sends to create a policy.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPolicy {
    pub name: String,
    pub module: ModuleRef,
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    #[serde(default)]
    pub description: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Create a policy; its configuration is checked by the module's own `validate-config`.
pub async fn create_policy(
    state: &AppState,
    owner: &Owner,
    new: NewPolicy,
) -> Result<PolicyRecord> {
    if new.name.trim().is_empty() || new.name.len() > 100 || new.name.chars().any(char::is_control)
    {
        return Err(Error::invalid_request(
            "policy name must be 1-100 printable characters",
        ));
    }
    if state.store.list_policies(owner).await?.len() >= state.config.policy.max_policies_per_owner {
        return Err(Error::QuotaExceeded(format!(
            "an owner may define {} policies",
            state.config.policy.max_policies_per_owner
        )));
    }
    let (module, limits) = load_module_limited(state, owner, &new.module).await?;
    if module.world != World::Policy {
        return Err(Error::invalid_request(format!(
            "module {} is a claims plugin ({}), not a policy",
            new.module,
            module.world.name()
        )));
    }
    let config = new.config.to_string();
    let m = module.clone();
    let verdict = state
        .runtime
        .sandboxed(move |runtime| runtime.validate_config_limited(&m, &config, now_ms(), limits))
        .await
        .map_err(Error::internal)?;
    match verdict {
        Ok(Ok(())) => {}
        Ok(Err(message)) => {
            return Err(Error::invalid_request(format!(
                "configuration rejected by module {}: {message}",
                new.module
            )));
        }
        Err(failure) => {
            return Err(Error::invalid_request(format!(
                "module {} failed while validating the configuration: {failure}",
                new.module
            )));
        }
    }
    let policy = PolicyRecord {
        id: random_token(12)?,
        name: new.name,
        module: new.module,
        config: new.config,
        description: new.description,
        created_at: unix_now(),
    };
    if !state.store.create_policy(owner, &policy).await? {
        return Err(Error::Conflict(format!(
            "a policy named {:?} already exists",
            policy.name
        )));
    }
    Ok(policy)
}

pub async fn get_policy(state: &AppState, owner: &Owner, id: &str) -> Result<PolicyRecord> {
    state
        .store
        .get_policy(owner, id)
        .await?
        .ok_or(Error::NotFound)
}

pub async fn delete_policy(state: &AppState, owner: &Owner, id: &str) -> Result<()> {
    if state.store.delete_policy(owner, id).await? {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// Run the module's own `validate-config` on `config`; its message reaches the owner as is.
async fn check_config(
    state: &AppState,
    module: Arc<Module>,
    name: &ModuleRef,
    config: &serde_json::Value,
) -> Result<()> {
    let config = config.to_string();
    let verdict = state
        .runtime
        .sandboxed(move |runtime| runtime.validate_config(&module, &config, now_ms()))
        .await
        .map_err(Error::internal)?;
    match verdict {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(Error::invalid_request(format!(
            "configuration rejected by module {name}: {message}"
        ))),
        Err(failure) => Err(Error::invalid_request(format!(
            "module {name} failed while validating the configuration: {failure}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Bindings

/// Bind policies to a resource of the caller's scope, replacing its previous bindings.
pub async fn bind(
    state: &AppState,
    scope: &ResourceScope,
    resource_id: &str,
    policy: ResourcePolicy,
) -> Result<ResourcePolicy> {
    let resource = state
        .store
        .get_resource(scope, resource_id)
        .await?
        .ok_or(Error::NotFound)?;
    if policy.bindings.len() > state.config.policy.max_bindings_per_resource {
        return Err(Error::invalid_request(format!(
            "at most {} policies may be bound to one resource",
            state.config.policy.max_bindings_per_resource
        )));
    }
    for b in &policy.bindings {
        if let Some(scopes) = &b.scopes {
            if scopes.is_empty() {
                return Err(Error::invalid_request(
                    "a binding's scopes, when given, must name at least one scope",
                ));
            }
            if let Some(s) = scopes
                .iter()
                .find(|s| !resource.resource_scopes.contains(s))
            {
                return Err(Error::InvalidScope(format!(
                    "scope {s:?} is not registered for resource {resource_id}"
                )));
            }
        }
    }
    if let Some(c) = &policy.claims {
        let module = load_module(state, &scope.owner, &c.module).await?;
        if module.world != World::Claims {
            return Err(Error::invalid_request(format!(
                "module {} is a policy, not a claims plugin",
                c.module
            )));
        }
        check_config(state, module, &c.module, &c.config).await?;
    }
    state
        .store
        .put_resource_policy(scope, resource_id, &policy)
        .await?;
    Ok(policy)
}

pub async fn bindings(
    state: &AppState,
    scope: &ResourceScope,
    resource_id: &str,
) -> Result<ResourcePolicy> {
    if state
        .store
        .get_resource(scope, resource_id)
        .await?
        .is_none()
    {
        return Err(Error::NotFound);
    }
    Ok(state
        .store
        .get_resource_policy(scope, resource_id)
        .await?
        .unwrap_or_default())
}

/// The claims plugins bound to these resources, in order, without repeats.
pub async fn claims_plugins(
    state: &AppState,
    scope: &ResourceScope,
    resource_ids: &[String],
) -> Result<Vec<ClaimsBinding>> {
    let mut out: Vec<ClaimsBinding> = Vec::new();
    for id in resource_ids {
        if let Some(rp) = state.store.get_resource_policy(scope, id).await?
            && let Some(c) = rp.claims
            && !out.contains(&c)
        {
            out.push(c);
        }
    }
    Ok(out)
}

/// Verify a claim token of a format the host does not handle itself with the claims plugins
/// the owner bound to the resources (the first that lists the format). The claims are tagged
/// as verified by that plugin.
pub async fn verify_with_plugins(
    state: &AppState,
    scope: &ResourceScope,
    resource_ids: &[String],
    format: &str,
    token: &str,
    client_id: &str,
) -> std::result::Result<Vec<Claim>, String> {
    let plugins = claims_plugins(state, scope, resource_ids)
        .await
        .map_err(|e| e.to_string())?;
    for binding in plugins {
        let (module, limits) = load_module_limited(state, &scope.owner, &binding.module)
            .await
            .map_err(|e| e.to_string())?;
        let context = ServerContext {
            now_ms: now_ms(),
            client_id: client_id.to_string(),
            issuer: state.config.issuer.clone(),
        };
        let calls = [
            runtime::ClaimsCall::TokenFormats,
            runtime::ClaimsCall::VerifyToken {
                format: format.to_string(),
                token: token.to_string(),
                config: binding.config.to_string(),
                context,
            },
        ];
        let (answers, usages) = state
            .runtime
            .sandboxed(move |rt| {
                let now = now_ms();
                let (formats, used) = rt.call_claims_limited(&module, &calls[0], now, limits);
                let wanted = calls[1].format();
                let handles = match &formats {
                    Ok(runtime::ClaimsAnswer::TokenFormats(f)) => f.iter().any(|f| f == wanted),
                    _ => false,
                };
                let mut usages = vec![(used, formats.is_err())];
                let verified = handles.then(|| {
                    let (answer, used) = rt.call_claims_limited(&module, &calls[1], now, limits);
                    usages.push((used, answer.is_err()));
                    answer
                });
                (verified, usages)
            })
            .await
            .map_err(|e| e.to_string())?;
        for (usage, failed) in &usages {
            state
                .usage
                .record(&scope.owner, &binding.module, usage, *failed);
        }
        match answers {
            None => continue,
            Some(Ok(runtime::ClaimsAnswer::Verified(Ok(claims)))) => {
                let provenance = runtime::Provenance::VerifiedToken {
                    issuer: format!("plugin:{}", binding.module),
                    format: format.to_string(),
                };
                return Ok(claims
                    .into_iter()
                    .map(|c| Claim {
                        name: c.name,
                        value: c.value,
                        provenance: provenance.clone(),
                    })
                    .collect());
            }
            Some(Ok(runtime::ClaimsAnswer::Verified(Err(reason)))) => return Err(reason),
            Some(Ok(_)) => return Err("the claims plugin answered out of turn".into()),
            Some(Err(failure)) => return Err(format!("the claims plugin failed: {failure}")),
        }
    }
    Err(format!("unsupported claim_token_format {format}"))
}

// ---------------------------------------------------------------------------------------------
// Evaluation: the one path from a permission to a decision, used by dry-runs and the grant.

/// One permission to decide.
pub struct Question<'a> {
    pub scope: &'a ResourceScope,
    pub resource_id: &'a str,
    pub resource: &'a ResourceDescription,
    pub requested_scopes: &'a [String],
    pub client_id: &'a str,
    /// The request's claims, shared by all its permissions.
    pub claims: &'a [Claim],
    pub now_ms: u64,
}

/// The decision with its explanation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub strategy: Strategy,
    pub combined: Combined,
    pub verdicts: Vec<PolicyVerdict>,
}

/// The policies a request's evaluations share, each read and loaded once per request.
#[derive(Default)]
struct Memo {
    policies: HashMap<String, Option<Arc<Resolved>>>,
}

struct Resolved {
    policy: PolicyRecord,
    /// The policy's configuration as the module receives it, serialized once.
    config: String,
    module: Arc<Module>,
    limits: Limits,
}

impl Memo {
    async fn resolve(
        &mut self,
        state: &AppState,
        owner: &Owner,
        id: &str,
    ) -> Result<Option<Arc<Resolved>>> {
        if let Some(hit) = self.policies.get(id) {
            return Ok(hit.clone());
        }
        let resolved = match state.store.get_policy(owner, id).await? {
            None => None,
            Some(policy) => {
                let (module, limits) = load_module_limited(state, owner, &policy.module).await?;
                Some(Arc::new(Resolved {
                    config: policy.config.to_string(),
                    policy,
                    module,
                    limits,
                }))
            }
        };
        self.policies.insert(id.to_owned(), resolved.clone());
        Ok(resolved)
    }
}

/// Run every policy bound to the resource and combine them by the owner's strategy.
pub async fn evaluate(state: &AppState, q: &Question<'_>) -> Result<Evaluation> {
    let mut all = evaluate_all(state, std::slice::from_ref(q)).await?;
    all.pop()
        .ok_or_else(|| Error::internal("a permission was not evaluated"))
}

/// The policies one question runs: each with the scopes it is asked about.
struct Plan {
    strategy: Strategy,
    runs: Vec<(Arc<Resolved>, Vec<String>)>,
}

/// [`evaluate`] for every question of one request, answering in their order. The bindings
/// are read first and each bound policy loaded once (one RPT over 500 resources usually names
/// the same policy 500 times); then all evaluations go to the runtime together, which hands
/// them to its evaluation threads in runs instead of one thread hand-off each.
pub async fn evaluate_all(state: &AppState, questions: &[Question<'_>]) -> Result<Vec<Evaluation>> {
    let mut memo = Memo::default();
    let mut plans = Vec::with_capacity(questions.len());
    let mut jobs = Vec::with_capacity(questions.len());
    for q in questions {
        let owner = &q.scope.owner;
        let rp = state
            .store
            .get_resource_policy(q.scope, q.resource_id)
            .await?
            .unwrap_or_default();
        let context = ServerContext {
            now_ms: q.now_ms,
            client_id: q.client_id.to_string(),
            issuer: state.config.issuer.clone(),
        };
        let mut runs = Vec::new();
        for binding in &rp.bindings {
            let scopes: Vec<String> = q
                .requested_scopes
                .iter()
                .filter(|s| binding.scopes.as_ref().is_none_or(|b| b.contains(s)))
                .cloned()
                .collect();
            if scopes.is_empty() && !q.requested_scopes.is_empty() {
                continue;
            }
            let Some(resolved) = memo.resolve(state, owner, &binding.policy).await? else {
                continue;
            };
            jobs.push(runtime::PolicyJob {
                module: resolved.module.clone(),
                input: PolicyInput {
                    permission: runtime::Permission {
                        resource_id: q.resource_id.to_string(),
                        owner: owner.to_string(),
                        resource_server: q.scope.resource_server.clone(),
                        resource_type: q.resource.resource_type.clone(),
                        resource_name: q.resource.name.clone(),
                        registered_scopes: q.resource.resource_scopes.clone(),
                        requested_scopes: scopes.clone(),
                    },
                    context: context.clone(),
                    claims: q.claims.to_vec(),
                    config: resolved.config.clone(),
                },
                limits: resolved.limits,
            });
            runs.push((resolved, scopes));
        }
        plans.push(Plan {
            strategy: rp.strategy,
            runs,
        });
    }

    let mut outcomes = state.runtime.evaluate_policies_with(jobs).await.into_iter();
    let mut evaluations = Vec::with_capacity(plans.len());
    for (q, plan) in questions.iter().zip(plans) {
        let mut verdicts = Vec::with_capacity(plan.runs.len());
        for (resolved, scopes) in plan.runs {
            // One outcome per job by construction; a missing one must not become a permit.
            let outcome = outcomes
                .next()
                .ok_or_else(|| Error::internal("a policy was not evaluated"))?;
            let policy = &resolved.policy;
            state.usage.record(
                &q.scope.owner,
                &policy.module,
                &outcome.usage,
                outcome.failure.is_some(),
            );
            verdicts.push(PolicyVerdict {
                policy: policy.id.clone(),
                policy_name: policy.name.clone(),
                module: policy.module.to_string(),
                scopes,
                decision: outcome.decision,
                failure: outcome.failure,
                fuel_used: outcome.usage.fuel_used,
                elapsed_us: outcome.usage.elapsed.as_micros() as u64,
                logs: outcome.usage.logs,
            });
        }
        let votes: Vec<Vote> = verdicts
            .iter()
            .map(|v| Vote {
                scopes: &v.scopes,
                decision: &v.decision,
            })
            .collect();
        let combined = strategy::combine(plan.strategy, q.requested_scopes, &votes);
        evaluations.push(Evaluation {
            strategy: plan.strategy,
            combined,
            verdicts,
        });
    }
    Ok(evaluations)
}

/// Record a request's evaluations in the owner's audit log, in order, appended together (one
/// retention trim, one flush).
pub async fn audit_all(
    state: &AppState,
    decided: &[(&Question<'_>, &Evaluation)],
    requesting_party: Option<String>,
) -> Result<()> {
    let Some((first, _)) = decided.first() else {
        return Ok(());
    };
    let entries = decided
        .iter()
        .map(|(q, evaluation)| audit_entry(q, requesting_party.clone(), evaluation))
        .collect();
    state
        .store
        .append_audits(
            &first.scope.owner,
            entries,
            state.config.policy.audit_entries_per_owner,
        )
        .await
}

fn audit_entry(
    q: &Question<'_>,
    requesting_party: Option<String>,
    evaluation: &Evaluation,
) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at: q.now_ms / 1000,
        resource_server: q.scope.resource_server.clone(),
        resource_id: q.resource_id.to_string(),
        client_id: q.client_id.to_string(),
        requesting_party,
        requested_scopes: q.requested_scopes.to_vec(),
        granted_scopes: evaluation.combined.granted().to_vec(),
        outcome: evaluation.combined.label().to_string(),
        policies: evaluation.verdicts.clone(),
    }
}
