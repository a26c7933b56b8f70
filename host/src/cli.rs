//! The `uma-host` command line: `serve` runs the server; `admin …` talks to a running server's
//! admin API with the admin credential and prints JSON; `owner …` is a resource owner's client
//! of the owner policy API ([`owner`]).

pub mod api;
pub mod owner;
pub mod plugin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{Config, Overrides};
use api::{Api, CliError};

#[derive(Debug, Parser)]
#[command(name = "uma-host", version, about = "UMA 2.0 authorization server")]
pub struct Cli {
    /// Without a command, `serve` with its defaults (so `cargo run` starts the server).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (flags override the config file and the environment).
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (sled database).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Issuer URL.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Manage a running server through its admin API.
    Admin(AdminArgs),
    /// Act as a resource owner: log in, upload policy modules, create and bind policies,
    /// dry-run, read the decision audit, answer approval requests.
    Owner(owner::OwnerArgs),
    /// Try a policy module locally in the server's sandbox before uploading it: ingest
    /// checks, validate-config, and evaluations of hypothetical requests.
    Plugin(plugin::PluginArgs),
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Config file to read the issuer and admin token from.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Base URL of the server (default: the configured issuer).
    #[arg(long, env = "UMA_HOST_ADMIN_URL")]
    pub url: Option<String>,
    /// Admin credential (default: admin_token of the config / UMA_HOST_ADMIN_TOKEN).
    #[arg(long, env = "UMA_HOST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// OAuth clients (resource servers, requesting-party clients).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Users (resource owners, requesting parties).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Create a client; prints its secret once.
    Create {
        /// Client id (generated if omitted).
        #[arg(long = "id")]
        client_id: Option<String>,
        /// Client secret (generated for confidential clients if omitted).
        #[arg(long = "secret")]
        client_secret: Option<String>,
        /// A public client (no secret, PKCE).
        #[arg(long)]
        public: bool,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long = "claims-redirect-uri")]
        claims_redirect_uris: Vec<String>,
        /// Pre-registered scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Allowed grant type (repeatable; default: all that fit the client type).
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Get {
        client_id: String,
    },
    Delete {
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        username: String,
        #[arg(long, env = "UMA_HOST_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// Attribute that becomes a claim, KEY=VALUE (repeatable).
        #[arg(long = "claim", value_parser = parse_claim)]
        claims: Vec<(String, String)>,
    },
    List,
    Get {
        username: String,
    },
    Delete {
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    List,
    /// Start signing with a new key; old keys stay published until their tokens expire.
    Rotate,
}

fn parse_claim(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        config: None,
        listen: None,
        data_dir: None,
        issuer: None,
    });
    let result = match command {
        Command::Serve {
            config,
            listen,
            data_dir,
            issuer,
        } => serve(
            config,
            Overrides {
                issuer,
                listen,
                data_dir,
            },
        ),
        Command::Admin(a) => admin(a),
        Command::Owner(o) => owner::run(o).map_err(anyhow::Error::from),
        Command::Plugin(p) => plugin::run(p),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<CliError>() {
            Some(cli) => {
                cli.report();
                cli.exit_code()
            }
            None => {
                eprintln!("uma-host: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(config_file: Option<PathBuf>, flags: Overrides) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json_logs = std::env::var("UMA_HOST_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
    let config = Config::load(config_file.as_deref(), &flags)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        crate::http::serve(config, listener, shutdown_signal()).await
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

fn admin(a: AdminArgs) -> anyhow::Result<()> {
    let (url, token) = match (a.url, a.admin_token) {
        (Some(u), Some(t)) => (u, t),
        (u, t) => {
            let config = Config::load(a.config.as_deref(), &Overrides::default())?;
            let token = t.or(config.admin_token).ok_or_else(|| {
                anyhow::anyhow!(
                    "no admin credential: pass --admin-token or set UMA_HOST_ADMIN_TOKEN"
                )
            })?;
            (u.unwrap_or(config.issuer), token)
        }
    };
    let api = Api::new(format!("{}/admin", url.trim_end_matches('/')), token)?;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| -> anyhow::Result<()> {
        Ok(api.show(method, path, body)?)
    };
    use reqwest::Method as M;
    match a.command {
        AdminCommand::Clients(c) => match c {
            ClientsCommand::Create {
                client_id,
                client_secret,
                public,
                redirect_uris,
                claims_redirect_uris,
                scopes,
                grant_types,
                name,
            } => call(
                M::POST,
                "/clients",
                Some(json!({
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "public": public,
                    "redirect_uris": redirect_uris,
                    "claims_redirect_uris": claims_redirect_uris,
                    "scopes": scopes,
                    "grant_types": (!grant_types.is_empty()).then_some(grant_types),
                    "name": name,
                })),
            ),
            ClientsCommand::List => call(M::GET, "/clients", None),
            ClientsCommand::Get { client_id } => {
                call(M::GET, &format!("/clients/{client_id}"), None)
            }
            ClientsCommand::Delete { client_id } => {
                call(M::DELETE, &format!("/clients/{client_id}"), None)
            }
        },
        AdminCommand::Users(u) => match u {
            UsersCommand::Create {
                username,
                password,
                claims,
            } => {
                let claims: serde_json::Map<String, Value> = claims
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                call(
                    M::POST,
                    "/users",
                    Some(json!({ "username": username, "password": password, "claims": claims })),
                )
            }
            UsersCommand::List => call(M::GET, "/users", None),
            UsersCommand::Get { username } => call(M::GET, &format!("/users/{username}"), None),
            UsersCommand::Delete { username } => {
                call(M::DELETE, &format!("/users/{username}"), None)
            }
        },
        AdminCommand::Keys(k) => match k {
            KeysCommand::List => call(M::GET, "/keys", None),
            KeysCommand::Rotate => call(M::POST, "/keys/rotate", None),
        },
    }
}
