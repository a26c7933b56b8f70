//! `uma-host plugin …`: try a policy module locally, in the server's own sandbox, before
//! uploading it: ingest checks, `validate-config`, and evaluations of hypothetical requests.
//! No server, no network: the module runs in this process's runtime with the server's default
//! limits (or the fuel and memory the upload would ask for).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;

use crate::runtime::{
    Claim, Decision, Permission, PolicyInput, Provenance, RequestedLimits, Runtime, RuntimeConfig,
    ServerContext,
};

#[derive(Debug, Args)]
pub struct PluginArgs {
    /// Keep compiled modules in ~/.cache/uma-host/compiled (only this user's own artifacts are
    /// ever loaded from there), so trying a Python module again takes milliseconds instead of
    /// seconds. `--no-cache` compiles every time.
    #[arg(long)]
    pub no_cache: bool,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run FILE through the server's ingest (size, features, imports, world, compile) and print
    /// what it declares.
    Check { file: PathBuf },
    /// Run a policy module's own `validate-config` on a configuration.
    Validate {
        file: PathBuf,
        /// The configuration (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
        /// `valid` (the default) or `invalid`: exit with status 1 unless the module answers so.
        #[arg(long, default_value = "valid")]
        expect: String,
    },
    /// Evaluate a policy module on a hypothetical request and print the decision with what the
    /// evaluation used (fuel, memory, time, log lines).
    Eval {
        file: PathBuf,
        /// The configuration (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
        /// The request as JSON, like the owner API's dry-run body:
        /// `{"client_id": "…", "scopes": ["view"], "claims": [{"name": "…", "value": …,
        /// "provenance": {"kind": "interactive", "source": "login"}}]}`.
        /// Default: client `client`, scope `view`, no claims.
        #[arg(long)]
        request: Option<String>,
        /// Instruction budget, as an upload would ask for (`?fuel=`).
        #[arg(long)]
        fuel: Option<u64>,
        /// Memory cap in bytes, as an upload would ask for (`?memory_bytes=`).
        #[arg(long)]
        memory_bytes: Option<usize>,
        /// Exit with status 1 unless the decision is this one: permit, deny, need-info or
        /// defer-to-owner.
        #[arg(long)]
        expect: Option<String>,
    },
}

/// A hypothetical request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default = "default_client")]
    client_id: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    #[serde(default)]
    claims: Vec<RequestClaim>,
    #[serde(default)]
    resource_name: Option<String>,
    #[serde(default)]
    registered_scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestClaim {
    name: String,
    value: serde_json::Value,
    /// Default: `{"kind": "server"}`.
    #[serde(default)]
    provenance: Option<Provenance>,
}

fn default_client() -> String {
    "client".into()
}

fn default_scopes() -> Vec<String> {
    vec!["view".into()]
}

fn runtime(cache: bool) -> anyhow::Result<Runtime> {
    let cache_dir = match std::env::var_os("HOME") {
        Some(home) if cache => Some(PathBuf::from(home).join(".cache/uma-host/compiled")),
        _ => None,
    };
    // Interpreted languages compile for seconds; a local check may wait for them.
    Runtime::new(RuntimeConfig {
        compile_timeout: Duration::from_secs(300),
        cache_dir,
        ..RuntimeConfig::default()
    })
}

fn load(rt: &Runtime, file: &Path) -> anyhow::Result<std::sync::Arc<crate::runtime::Module>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    rt.ingest(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is refused: {e}", file.display()))
}

fn print(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub fn run(args: PluginArgs) -> anyhow::Result<()> {
    let rt = runtime(!args.no_cache)?;
    let now_ms = crate::policy::now_ms();
    match args.command {
        PluginCommand::Check { file } => {
            let m = load(&rt, &file)?;
            print(&json!({
                "world": m.world.name(),
                "size": m.size,
                "digest": m.digest,
                "imports": m.imports,
                "exports": m.exports,
                "compile_ms": m.load_time.as_millis() as u64,
            }));
        }
        PluginCommand::Validate {
            file,
            config,
            expect,
        } => {
            if !["valid", "invalid"].contains(&expect.as_str()) {
                bail!("--expect is `valid` or `invalid`");
            }
            let m = load(&rt, &file)?;
            let valid = match rt.validate_config(&m, &config, now_ms) {
                Ok(Ok(())) => {
                    print(&json!({"valid": true}));
                    true
                }
                Ok(Err(message)) => {
                    print(&json!({"valid": false, "error": message}));
                    false
                }
                Err(failure) => bail!("the module failed while validating: {failure}"),
            };
            match (valid, expect.as_str()) {
                (false, "valid") => bail!("the module rejects the configuration"),
                (true, "invalid") => bail!("the module accepts the configuration"),
                _ => {}
            }
        }
        PluginCommand::Eval {
            file,
            config,
            request,
            fuel,
            memory_bytes,
            expect,
        } => {
            let limits = rt
                .config()
                .limits(RequestedLimits { fuel, memory_bytes })
                .map_err(anyhow::Error::msg)?;
            let request: Request = serde_json::from_str(request.as_deref().unwrap_or("{}"))
                .context("--request must be JSON like the dry-run body")?;
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&config) {
                bail!("--config is not JSON: {e}");
            }
            let m = load(&rt, &file)?;
            let input = PolicyInput {
                permission: Permission {
                    resource_id: "resource-1".into(),
                    owner: "owner".into(),
                    resource_server: "resource-server".into(),
                    resource_type: None,
                    resource_name: request.resource_name,
                    registered_scopes: request
                        .registered_scopes
                        .unwrap_or_else(|| request.scopes.clone()),
                    requested_scopes: request.scopes,
                },
                context: ServerContext {
                    now_ms,
                    client_id: request.client_id,
                    issuer: "http://127.0.0.1:8080".into(),
                },
                claims: request
                    .claims
                    .into_iter()
                    .map(|c| Claim {
                        name: c.name,
                        value: c.value,
                        provenance: c.provenance.unwrap_or(Provenance::Server),
                    })
                    .collect(),
                config,
            };
            let outcome = rt.evaluate_policy_limited(&m, &input, limits);
            print(&serde_json::to_value(&outcome)?);
            if let Some(want) = expect {
                let got = match &outcome.decision {
                    Decision::Permit { .. } => "permit",
                    Decision::Deny { .. } => "deny",
                    Decision::NeedInfo { .. } => "need-info",
                    Decision::DeferToOwner { .. } => "defer-to-owner",
                };
                if got != want {
                    bail!("expected {want}, got {got}");
                }
            }
        }
    }
    Ok(())
}
