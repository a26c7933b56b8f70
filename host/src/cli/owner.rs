//! `uma-host owner …`: a resource owner's command-line client of the owner policy API
//! (`{issuer}/owner/…`, see `docs/owner-api.md`).
//!
//! Authentication: `owner login` runs the authorization code flow with PKCE (S256) for a human,
//! with a loopback redirect (RFC 8252 §7.3) to `http://127.0.0.1:<port>/callback`, and saves the
//! tokens in a credentials file readable only by the user. Every other command uses, in this
//! order, `--token` / `UMA_OWNER_TOKEN`, or the saved login (refreshed with its refresh token
//! when the access token has expired).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method as M;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::api::{Api, CliError, CliResult, answer, http_client, print_json, seg, send};

#[derive(Debug, Args)]
pub struct OwnerArgs {
    /// Issuer URL of the server (default: the one of the saved login). Required by `login`.
    #[arg(long, global = true, env = "UMA_OWNER_URL")]
    pub url: Option<String>,
    /// An owner access token (scope `uma_policy`, or a PAT) to use instead of the saved login.
    #[arg(long, global = true, env = "UMA_OWNER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Credentials file written by `login` [default: $XDG_CONFIG_HOME/uma-host/owner.json or
    /// ~/.config/uma-host/owner.json].
    #[arg(long, global = true, env = "UMA_OWNER_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    #[command(subcommand)]
    pub command: OwnerCommand,
}

#[derive(Debug, Subcommand)]
pub enum OwnerCommand {
    /// Log in through the browser (authorization code + PKCE) and save the tokens.
    Login {
        /// A client registered for scope `uma_policy` with redirect URI
        /// http://127.0.0.1:<port>/callback.
        #[arg(long)]
        client_id: String,
        /// The client's secret, if it is a confidential client (saved with the tokens, which
        /// the refresh needs).
        #[arg(long, env = "UMA_OWNER_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        /// Loopback port of the redirect listener.
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// Scope to ask for.
        #[arg(long, default_value = "uma_policy")]
        scope: String,
        /// How long to wait for the browser, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Forget the saved login (and revoke its refresh token at the server).
    Logout,
    /// Policy modules (WebAssembly components): yours and the built-in library.
    #[command(subcommand)]
    Modules(ModulesCommand),
    /// Policies: a module version plus its configuration.
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Bind policies (and optionally a claims plugin) to a resource; replaces what was bound.
    Bind {
        /// The resource server the resource is registered at (its client id).
        rs: String,
        resource_id: String,
        /// POLICY_ID, or POLICY_ID:scope,scope to let it decide only those scopes
        /// (repeatable).
        #[arg(long = "policy", required = true)]
        policies: Vec<String>,
        /// How the policies combine [server default: unanimous].
        #[arg(long, value_enum)]
        strategy: Option<Strategy>,
        /// A built-in claims plugin that gathers claims from requesting parties at the claims
        /// interaction endpoint (e.g. terms-purpose).
        #[arg(long, conflicts_with = "claims_module")]
        claims_builtin: Option<String>,
        /// One of your claims plugins, with --claims-version.
        #[arg(long, requires = "claims_version")]
        claims_module: Option<String>,
        /// The version of --claims-module.
        #[arg(long, requires = "claims_module")]
        claims_version: Option<u32>,
        /// The claims plugin's configuration, as JSON or @FILE [default: {}].
        #[arg(long)]
        claims_config: Option<String>,
    },
    /// Remove every policy from a resource (it then grants nothing to anyone but you).
    Unbind { rs: String, resource_id: String },
    /// Show the policies bound to a resource.
    Bindings { rs: String, resource_id: String },
    /// Ask what the resource's policies would decide for a hypothetical request.
    DryRun {
        rs: String,
        resource_id: String,
        /// The requesting client's id.
        #[arg(long)]
        client: String,
        /// A scope asked for (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// A requesting-party claim NAME=VALUE; VALUE is read as JSON when it parses (30, true,
        /// ["a"]), as a string otherwise (repeatable).
        #[arg(long = "claim", value_parser = parse_pair)]
        claims: Vec<(String, String)>,
        /// Claims as JSON or @FILE: [{"name", "value", "provenance"?}, …] or {"name": value, …}.
        #[arg(long = "claims")]
        claims_json: Option<String>,
    },
    /// Read the decision audit of your resources, oldest first.
    Audit {
        /// Only decisions about this resource id.
        #[arg(long)]
        resource: Option<String>,
        /// Only decisions for this client.
        #[arg(long)]
        client: Option<String>,
        /// Only this outcome: permit, partial, deny, need-info, defer-to-owner.
        #[arg(long)]
        outcome: Option<String>,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<usize>,
        /// Only entries after this sequence number (the `next_after` of the previous page).
        #[arg(long)]
        after: Option<u64>,
        /// Only entries at or after this Unix time (seconds).
        #[arg(long)]
        since: Option<u64>,
        /// Only entries at or before this Unix time (seconds).
        #[arg(long)]
        until: Option<u64>,
    },
    /// Requests waiting for your approval.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// RPTs granted on your resources.
    #[command(subcommand)]
    Grants(GrantsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModulesCommand {
    /// Your modules and the built-in library.
    List,
    /// Upload FILE as a new version of module NAME.
    Upload {
        name: String,
        file: PathBuf,
        /// Ask for this instruction budget per evaluation (within the server's maximum);
        /// interpreted languages may need more than the default.
        #[arg(long)]
        fuel: Option<u64>,
        /// Ask for this much linear memory per evaluation, in bytes (within the server's
        /// maximum).
        #[arg(long)]
        memory_bytes: Option<usize>,
    },
    Show {
        name: String,
        version: u32,
    },
    /// Delete a module version (refused while a policy uses it).
    Delete {
        name: String,
        version: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    List,
    Show {
        id: String,
    },
    /// Delete a policy (refused while it is bound).
    Delete {
        id: String,
    },
    /// Create a policy; the module checks the configuration.
    Create {
        #[arg(long)]
        name: String,
        /// A built-in module (see `owner modules list`).
        #[arg(long, conflicts_with = "module", required_unless_present = "module")]
        builtin: Option<String>,
        /// One of your modules, with --version.
        #[arg(long, requires = "module_version")]
        module: Option<String>,
        /// The version of --module.
        #[arg(long = "version", requires = "module")]
        module_version: Option<u32>,
        /// The configuration, as JSON or @FILE [default: {}].
        #[arg(long)]
        config: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Pending requests first, oldest first.
    List,
    Show {
        id: String,
    },
    /// Approve everything asked, or only RESOURCE_ID:scope pairs given with --scope.
    Approve {
        id: String,
        /// RESOURCE_ID:scope to approve (repeatable; default: everything asked).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    Deny {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    List,
    /// Revoke a granted RPT: introspection answers inactive from now on.
    Revoke {
        jti: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Strategy {
    Unanimous,
    Affirmative,
    Consensus,
}

impl Strategy {
    fn as_str(self) -> &'static str {
        match self {
            Strategy::Unanimous => "unanimous",
            Strategy::Affirmative => "affirmative",
            Strategy::Consensus => "consensus",
        }
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// What `owner login` saves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The issuer.
    pub url: String,
    pub client_id: String,
    /// Only for a confidential client: the refresh needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The default credentials file.
pub fn default_credentials_path() -> CliResult<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err(CliError::Input(
                    "neither XDG_CONFIG_HOME nor HOME is set: pass --credentials FILE".into(),
                ));
            }
        },
    };
    Ok(base.join("uma-host").join("owner.json"))
}

fn credentials_path(args: &OwnerArgs) -> CliResult<PathBuf> {
    match &args.credentials {
        Some(p) => Ok(p.clone()),
        None => default_credentials_path(),
    }
}

fn load_credentials(path: &Path) -> CliResult<Option<Credentials>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Login(format!(
                "{} is not a credentials file ({e}); run `uma-host owner login` again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Input(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the credentials readable by the user only (0600), atomically: a rotated refresh token
/// must never be lost half-written, or the next refresh would replay the old one and the server
/// would revoke the whole login.
fn save_credentials(path: &Path, c: &Credentials) -> CliResult<()> {
    let io = |e: std::io::Error| CliError::Input(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(c).map_err(|e| CliError::Input(e.to_string()))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The server's endpoints, from its discovery document.
struct Endpoints {
    authorization: String,
    token: String,
    revocation: Option<String>,
}

fn discover(http: &reqwest::blocking::Client, issuer: &str) -> CliResult<Endpoints> {
    let url = format!("{issuer}/.well-known/uma2-configuration");
    let doc = send(http.get(&url)).map_err(|e| match e {
        CliError::Server { status, .. } => CliError::Transport(format!(
            "{url} answered {status}: is {issuer} the issuer of a uma-host server?"
        )),
        other => other,
    })?;
    let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(Endpoints {
        authorization: field("authorization_endpoint")
            .ok_or_else(|| CliError::Transport(format!("{url} has no authorization_endpoint")))?,
        token: field("token_endpoint")
            .ok_or_else(|| CliError::Transport(format!("{url} has no token_endpoint")))?,
        revocation: field("revocation_endpoint"),
    })
}

/// A token endpoint request, authenticated as the client (Basic with a secret, `client_id` in
/// the body for a public client).
fn token_request(
    http: &reqwest::blocking::Client,
    endpoint: &str,
    client_id: &str,
    client_secret: Option<&str>,
    form: &[(&str, &str)],
) -> CliResult<Value> {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut req = http.post(endpoint);
    match client_secret {
        Some(s) => req = req.basic_auth(client_id, Some(s)),
        None => form.push(("client_id", client_id)),
    }
    send(req.form(&form))
}

/// Credentials from a token endpoint answer.
fn credentials_from(
    issuer: &str,
    client_id: &str,
    client_secret: Option<&str>,
    answer: &Value,
    previous_refresh: Option<&str>,
) -> CliResult<Credentials> {
    let access_token = answer["access_token"]
        .as_str()
        .ok_or_else(|| CliError::Transport(format!("the token endpoint answered {answer}")))?;
    Ok(Credentials {
        url: issuer.to_owned(),
        client_id: client_id.to_owned(),
        client_secret: client_secret.map(str::to_owned),
        access_token: access_token.to_owned(),
        refresh_token: answer["refresh_token"]
            .as_str()
            .or(previous_refresh)
            .map(str::to_owned),
        expires_at: unix_now() + answer["expires_in"].as_u64().unwrap_or(0),
        scope: answer["scope"].as_str().map(str::to_owned),
    })
}

/// The API client for an owner command: `--token` wins, then the saved login (refreshed if it
/// has expired or expires within 30 seconds).
fn session(args: &OwnerArgs) -> CliResult<Api> {
    let path = credentials_path(args)?;
    if let Some(token) = &args.token {
        let url = match &args.url {
            Some(u) => u.clone(),
            None => match load_credentials(&path).ok().flatten() {
                Some(c) => c.url,
                None => {
                    return Err(CliError::Login(
                        "no server URL: pass --url ISSUER (or UMA_OWNER_URL) with --token".into(),
                    ));
                }
            },
        };
        return Api::new(owner_base(&url), token.clone());
    }
    let Some(mut creds) = load_credentials(&path)? else {
        return Err(CliError::Login(format!(
            "not logged in ({} does not exist): run `uma-host owner login --url ISSUER --client-id ID`, or pass --token / UMA_OWNER_TOKEN",
            path.display()
        )));
    };
    if let Some(u) = &args.url
        && issuer(u) != creds.url
    {
        return Err(CliError::Login(format!(
            "the saved login is for {}, not {}: log in there, or pass --token",
            creds.url,
            issuer(u)
        )));
    }
    if creds.expires_at <= unix_now() + 30 {
        let Some(refresh) = creds.refresh_token.clone() else {
            return Err(CliError::Login(
                "the saved login has expired: run `uma-host owner login` again".into(),
            ));
        };
        let http = http_client()?;
        let endpoints = discover(&http, &creds.url)?;
        let answer = token_request(
            &http,
            &endpoints.token,
            &creds.client_id,
            creds.client_secret.as_deref(),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .map_err(|e| match e {
            CliError::Server { body, .. } => CliError::Login(format!(
                "the saved login has expired and could not be refreshed ({}): run `uma-host owner login` again",
                body["error_description"]
                    .as_str()
                    .or(body["error"].as_str())
                    .unwrap_or("refused")
            )),
            other => other,
        })?;
        creds = credentials_from(
            &creds.url,
            &creds.client_id,
            creds.client_secret.as_deref(),
            &answer,
            Some(&refresh),
        )?;
        save_credentials(&path, &creds)?;
    }
    Api::new(owner_base(&creds.url), creds.access_token)
}

/// The issuer as typed, without trailing slashes.
fn issuer(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

fn owner_base(url: &str) -> String {
    format!("{}/owner", issuer(url))
}

// ---------------------------------------------------------------------------------------------
// Login

fn random_b64(n: usize) -> CliResult<String> {
    crate::keys::random_token(n).map_err(|e| CliError::Input(e.to_string()))
}

fn login(
    args: &OwnerArgs,
    client_id: &str,
    client_secret: Option<&str>,
    port: u16,
    scope: &str,
    timeout: u64,
) -> CliResult<()> {
    let url = args
        .url
        .as_deref()
        .map(issuer)
        .ok_or_else(|| CliError::Input("login needs --url ISSUER (or UMA_OWNER_URL)".into()))?;
    let path = credentials_path(args)?;
    let http = http_client()?;
    let endpoints = discover(&http, &url)?;
    // Listen before printing the URL, so the redirect cannot arrive before we are ready.
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        CliError::Input(format!(
            "cannot listen on 127.0.0.1:{port} for the login redirect: {e} (pass --port)"
        ))
    })?;
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let verifier = random_b64(32)?;
    let challenge = B64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = random_b64(16)?;
    let mut auth = url::Url::parse(&endpoints.authorization).map_err(|e| {
        CliError::Transport(format!(
            "authorization_endpoint {:?}: {e}",
            endpoints.authorization
        ))
    })?;
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    eprintln!("Open this URL in a browser and log in as the resource owner:\n\n  {auth}\n");
    eprintln!("Waiting for the redirect to {redirect_uri} (up to {timeout} s)…");
    let code = wait_for_code(&listener, &state, Duration::from_secs(timeout))?;
    let answer = token_request(
        &http,
        &endpoints.token,
        client_id,
        client_secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ],
    )?;
    let creds = credentials_from(&url, client_id, client_secret, &answer, None)?;
    save_credentials(&path, &creds)?;
    print_json(&json!({
        "logged_in": true,
        "url": creds.url,
        "client_id": creds.client_id,
        "scope": creds.scope,
        "expires_at": creds.expires_at,
        "refreshable": creds.refresh_token.is_some(),
        "credentials": path,
    }));
    Ok(())
}

/// Serves the loopback redirect until a request to `/callback` carries our `state`, and returns
/// its code. Requests with another state are answered 400 and ignored (they are not from the
/// login we started); an OAuth error redirect ends the login with that error.
fn wait_for_code(listener: &TcpListener, state: &str, timeout: Duration) -> CliResult<String> {
    let deadline = Instant::now() + timeout;
    listener
        .set_nonblocking(true)
        .map_err(|e| CliError::Transport(e.to_string()))?;
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(CliError::Login(format!(
                        "no login redirect arrived within {} s",
                        timeout.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(CliError::Transport(format!("login listener: {e}"))),
        };
        if let Some(result) = handle_callback(stream, state) {
            return result;
        }
    }
}

/// One request to the loopback listener; `None` when it was not the awaited redirect.
fn handle_callback(mut stream: TcpStream, state: &str) -> Option<CliResult<String>> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" || path != "/callback" {
        respond(&mut stream, "404 Not Found", "Not found.");
        return None;
    }
    let q: std::collections::HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if q.get("state").map(String::as_str) != Some(state) {
        respond(
            &mut stream,
            "400 Bad Request",
            "This redirect does not belong to the login the uma-host CLI started; it was ignored.",
        );
        return None;
    }
    if let Some(error) = q.get("error") {
        respond(
            &mut stream,
            "200 OK",
            "The login did not complete; see the terminal.",
        );
        let mut body = json!({ "error": error });
        if let Some(d) = q.get("error_description") {
            body["error_description"] = json!(d);
        }
        return Some(Err(CliError::Server { status: 400, body }));
    }
    match q.get("code") {
        Some(code) => {
            respond(
                &mut stream,
                "200 OK",
                "Logged in. You can close this window and return to the terminal.",
            );
            Some(Ok(code.clone()))
        }
        None => {
            respond(&mut stream, "400 Bad Request", "The redirect has no code.");
            None
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>uma-host</title><p>{}</p>",
        crate::oauth::authorize::escape(text)
    );
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

fn logout(args: &OwnerArgs) -> CliResult<()> {
    let path = credentials_path(args)?;
    let Some(creds) = load_credentials(&path)? else {
        print_json(&json!({ "logged_out": true, "credentials": path, "was_logged_in": false }));
        return Ok(());
    };
    // Revoke the refresh token (and with it the access tokens of its grant) before forgetting
    // it; a server that cannot be reached does not keep the user from forgetting the login.
    let mut revoked = false;
    if let Some(refresh) = &creds.refresh_token {
        let http = http_client()?;
        if let Ok(Endpoints {
            revocation: Some(endpoint),
            ..
        }) = discover(&http, &creds.url)
        {
            revoked = token_request(
                &http,
                &endpoint,
                &creds.client_id,
                creds.client_secret.as_deref(),
                &[("token", refresh), ("token_type_hint", "refresh_token")],
            )
            .is_ok();
        }
    }
    std::fs::remove_file(&path)
        .map_err(|e| CliError::Input(format!("cannot remove {}: {e}", path.display())))?;
    print_json(&json!({ "logged_out": true, "credentials": path, "revoked": revoked }));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Input helpers

/// A JSON argument: inline JSON, or `@FILE`.
fn json_arg(flag: &str, s: &str) -> CliResult<Value> {
    match s.strip_prefix('@') {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::Input(format!("{flag}: cannot read {file}: {e}")))?;
            serde_json::from_str(&text)
                .map_err(|e| CliError::Input(format!("{flag}: {file} is not valid JSON: {e}")))
        }
        None => serde_json::from_str(s).map_err(|e| {
            CliError::Input(format!(
                "{flag} is not valid JSON: {e} (write @FILE to read it from a file)"
            ))
        }),
    }
}

/// `POLICY_ID` or `POLICY_ID:scope,scope` → a binding.
fn binding(spec: &str) -> CliResult<Value> {
    match spec.split_once(':') {
        None if !spec.is_empty() => Ok(json!({ "policy": spec })),
        Some((id, scopes)) if !id.is_empty() => {
            let scopes: Vec<&str> = scopes.split(',').filter(|s| !s.is_empty()).collect();
            if scopes.is_empty() {
                return Err(CliError::Input(format!(
                    "--policy {spec:?}: name at least one scope after ':'"
                )));
            }
            Ok(json!({ "policy": id, "scopes": scopes }))
        }
        _ => Err(CliError::Input(format!(
            "--policy {spec:?}: expected POLICY_ID or POLICY_ID:scope,scope"
        ))),
    }
}

/// The claims of a dry-run: `--claims` first, then each `--claim`.
fn dry_run_claims(json_claims: Option<&str>, pairs: &[(String, String)]) -> CliResult<Vec<Value>> {
    let mut out = Vec::new();
    if let Some(s) = json_claims {
        match json_arg("--claims", s)? {
            Value::Array(items) => out.extend(items),
            Value::Object(map) => out.extend(
                map.into_iter()
                    .map(|(name, value)| json!({ "name": name, "value": value })),
            ),
            _ => {
                return Err(CliError::Input(
                    "--claims must be a JSON array of {\"name\", \"value\"} objects or an object of name: value".into(),
                ));
            }
        }
    }
    for (name, raw) in pairs {
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()));
        out.push(json!({ "name": name, "value": value }));
    }
    Ok(out)
}

/// `RESOURCE_ID:scope` pairs → permissions grouped by resource, in the order first named.
fn approved_permissions(specs: &[String]) -> CliResult<Vec<Value>> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for spec in specs {
        let (rid, scope) = spec
            .split_once(':')
            .filter(|(r, s)| !r.is_empty() && !s.is_empty())
            .ok_or_else(|| {
                CliError::Input(format!("--scope {spec:?}: expected RESOURCE_ID:scope"))
            })?;
        match grouped.iter_mut().find(|(r, _)| r == rid) {
            Some((_, scopes)) => scopes.push(scope.to_owned()),
            None => grouped.push((rid.to_owned(), vec![scope.to_owned()])),
        }
    }
    Ok(grouped
        .into_iter()
        .map(|(rid, scopes)| json!({ "resource_id": rid, "resource_scopes": scopes }))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Upload

/// Streams the module file to the server, reporting progress on a terminal and one line
/// otherwise.
///
/// This one request uses reqwest's async client: the blocking client reports a server that
/// answers before reading the whole body (a bad token, a module over the size limit) as a broken
/// pipe and drops the answer, whereas hyper hands the early answer over, so the user gets the
/// server's own error.
fn upload(
    api: &Api,
    name: &str,
    file: &Path,
    fuel: Option<u64>,
    memory_bytes: Option<usize>,
) -> CliResult<()> {
    let mut f = std::fs::File::open(file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
    let len = f
        .metadata()
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?
        .len();
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} uploading [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let started = Instant::now();
    let progress = bar.clone();
    let chunks = futures_util::stream::poll_fn(move |_| {
        let mut buf = vec![0u8; 64 * 1024];
        std::task::Poll::Ready(match f.read(&mut buf) {
            Ok(0) => {
                if let Some(bar) = &progress {
                    bar.set_message("sent; the server validates and compiles it…");
                }
                None
            }
            Ok(n) => {
                buf.truncate(n);
                if let Some(bar) = &progress {
                    bar.inc(n as u64);
                }
                Some(Ok::<_, std::io::Error>(buf))
            }
            Err(e) => Some(Err(e)),
        })
    });
    let mut url = format!("{}/modules/{}", api.base, seg(name));
    let query: Vec<String> = [
        ("fuel", fuel.map(|f| f.to_string())),
        ("memory_bytes", memory_bytes.map(|m| m.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
    .collect();
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Transport(e.to_string()))
        .and_then(|rt| {
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(Duration::from_secs(10))
                    // Large modules take a while to send, and the server compiles before it
                    // answers.
                    .timeout(Duration::from_secs(600))
                    .build()?;
                let resp = client
                    .post(&url)
                    .bearer_auth(&api.token)
                    .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::wrap_stream(chunks))
                    .send()
                    .await?;
                let status = resp.status();
                let text = resp.text().await?;
                answer(status, text)
            })
        });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let module = match result {
        Err(CliError::Transport(e)) if len > 0 => {
            return Err(explain_cut_upload(api, &url, len, e));
        }
        other => other?,
    };
    eprintln!(
        "uploaded {} ({len} bytes) as {}@{} in {:.1} s",
        file.display(),
        module["name"].as_str().unwrap_or(name),
        module["version"],
        started.elapsed().as_secs_f64()
    );
    print_json(&module);
    Ok(())
}

/// The server answered before reading the whole body and closed the connection, and the
/// connection reset lost its answer. That happens when it refuses the request outright: a token
/// that may not upload, or a body over its size limit. Ask again without a body to get its own
/// answer about the token (an empty body stores nothing: it is not a component); if the token is
/// fine, the size is what was refused.
fn explain_cut_upload(api: &Api, url: &str, len: u64, cause: String) -> CliError {
    let probe = api
        .http
        .post(url)
        .bearer_auth(&api.token)
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(Vec::new());
    match send(probe) {
        Err(
            e @ CliError::Server {
                status: 401 | 403, ..
            },
        ) => e,
        _ => CliError::Transport(format!(
            "the server closed the connection while the module ({len} bytes) was being sent: it \
             refuses modules over its size limit (runtime.max_module_bytes, 32 MiB by default) \
             ({cause})"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/// Runs an owner command.
pub fn run(args: OwnerArgs) -> CliResult<()> {
    match &args.command {
        OwnerCommand::Login {
            client_id,
            client_secret,
            port,
            scope,
            timeout,
        } => {
            return login(
                &args,
                client_id,
                client_secret.as_deref(),
                *port,
                scope,
                *timeout,
            );
        }
        OwnerCommand::Logout => return logout(&args),
        _ => {}
    }
    // Check local input before anything touches the network or the credentials.
    let body = prepared_body(&args.command)?;
    let api = session(&args)?;
    match args.command {
        OwnerCommand::Login { .. } | OwnerCommand::Logout => unreachable!("handled above"),
        OwnerCommand::Modules(m) => match m {
            ModulesCommand::List => api.show(M::GET, "/modules", None),
            ModulesCommand::Upload {
                name,
                file,
                fuel,
                memory_bytes,
            } => upload(&api, &name, &file, fuel, memory_bytes),
            ModulesCommand::Show { name, version } => {
                api.show(M::GET, &format!("/modules/{}/{version}", seg(&name)), None)
            }
            ModulesCommand::Delete { name, version } => api.show(
                M::DELETE,
                &format!("/modules/{}/{version}", seg(&name)),
                None,
            ),
        },
        OwnerCommand::Policies(p) => match p {
            PoliciesCommand::List => api.show(M::GET, "/policies", None),
            PoliciesCommand::Show { id } => {
                api.show(M::GET, &format!("/policies/{}", seg(&id)), None)
            }
            PoliciesCommand::Delete { id } => {
                api.show(M::DELETE, &format!("/policies/{}", seg(&id)), None)
            }
            PoliciesCommand::Create { .. } => api.show(M::POST, "/policies", body),
        },
        OwnerCommand::Bind {
            rs, resource_id, ..
        } => api.show(M::PUT, &resource_path(&rs, &resource_id, "policy"), body),
        OwnerCommand::Unbind { rs, resource_id } => {
            api.show(M::DELETE, &resource_path(&rs, &resource_id, "policy"), None)
        }
        OwnerCommand::Bindings { rs, resource_id } => {
            api.show(M::GET, &resource_path(&rs, &resource_id, "policy"), None)
        }
        OwnerCommand::DryRun {
            rs, resource_id, ..
        } => api.show(M::POST, &resource_path(&rs, &resource_id, "dry-run"), body),
        OwnerCommand::Audit {
            resource,
            client,
            outcome,
            limit,
            after,
            since,
            until,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            let opts = [
                ("resource_id", resource),
                ("client_id", client),
                ("outcome", outcome),
                ("limit", limit.map(|v| v.to_string())),
                ("after", after.map(|v| v.to_string())),
                ("since", since.map(|v| v.to_string())),
                ("until", until.map(|v| v.to_string())),
            ];
            for (k, v) in opts {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            print_json(&send(api.request(M::GET, "/audit").query(&q))?);
            Ok(())
        }
        OwnerCommand::Approvals(a) => match a {
            ApprovalsCommand::List => api.show(M::GET, "/approvals", None),
            ApprovalsCommand::Show { id } => {
                api.show(M::GET, &format!("/approvals/{}", seg(&id)), None)
            }
            ApprovalsCommand::Approve { id, .. } | ApprovalsCommand::Deny { id } => {
                api.show(M::POST, &format!("/approvals/{}", seg(&id)), body)
            }
        },
        OwnerCommand::Grants(g) => match g {
            GrantsCommand::List => api.show(M::GET, "/grants", None),
            GrantsCommand::Revoke { jti } => {
                api.show(M::DELETE, &format!("/grants/{}", seg(&jti)), None)
            }
        },
    }
}

fn resource_path(rs: &str, id: &str, what: &str) -> String {
    format!("/resources/{}/{}/{what}", seg(rs), seg(id))
}

/// The JSON body a command sends, built (and its input checked) before any request.
fn prepared_body(command: &OwnerCommand) -> CliResult<Option<Value>> {
    Ok(match command {
        OwnerCommand::Policies(PoliciesCommand::Create {
            name,
            builtin,
            module,
            module_version,
            config,
            description,
        }) => {
            let module_ref = match (builtin, module, module_version) {
                (Some(b), None, None) => json!({ "library": "builtin", "name": b }),
                (None, Some(m), Some(v)) => {
                    json!({ "library": "owned", "name": m, "version": v })
                }
                _ => {
                    return Err(CliError::Input(
                        "give --builtin MODULE, or --module NAME --version V".into(),
                    ));
                }
            };
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("module".into(), module_ref);
            if let Some(c) = config {
                body.insert("config".into(), json_arg("--config", c)?);
            }
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            Some(Value::Object(body))
        }
        OwnerCommand::Bind {
            policies,
            strategy,
            claims_builtin,
            claims_module,
            claims_version,
            claims_config,
            ..
        } => {
            let bindings = policies
                .iter()
                .map(|p| binding(p))
                .collect::<CliResult<Vec<_>>>()?;
            let mut body = json!({ "bindings": bindings });
            if let Some(s) = strategy {
                body["strategy"] = json!(s.as_str());
            }
            let claims_module = match (claims_builtin, claims_module, claims_version) {
                (Some(b), None, None) => Some(json!({ "library": "builtin", "name": b })),
                (None, Some(m), Some(v)) => {
                    Some(json!({ "library": "owned", "name": m, "version": v }))
                }
                (None, None, None) => None,
                _ => {
                    return Err(CliError::Input(
                        "give --claims-builtin NAME, or --claims-module NAME --claims-version V"
                            .into(),
                    ));
                }
            };
            match (claims_module, claims_config) {
                (Some(module), config) => {
                    let config = match config {
                        Some(c) => json_arg("--claims-config", c)?,
                        None => json!({}),
                    };
                    body["claims"] = json!({ "module": module, "config": config });
                }
                (None, Some(_)) => {
                    return Err(CliError::Input(
                        "--claims-config needs --claims-builtin or --claims-module".into(),
                    ));
                }
                (None, None) => {}
            }
            Some(body)
        }
        OwnerCommand::DryRun {
            client,
            scopes,
            claims,
            claims_json,
            ..
        } => Some(json!({
            "client_id": client,
            "scopes": scopes,
            "claims": dry_run_claims(claims_json.as_deref(), claims)?,
        })),
        OwnerCommand::Approvals(ApprovalsCommand::Approve { scopes, .. }) => {
            let mut body = json!({ "decision": "approve" });
            if !scopes.is_empty() {
                body["permissions"] = json!(approved_permissions(scopes)?);
            }
            Some(body)
        }
        OwnerCommand::Approvals(ApprovalsCommand::Deny { .. }) => {
            Some(json!({ "decision": "deny" }))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        <crate::cli::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn bindings_parse_with_and_without_scopes() {
        assert_eq!(binding("p1").unwrap(), json!({"policy": "p1"}));
        assert_eq!(
            binding("p1:view,edit").unwrap(),
            json!({"policy": "p1", "scopes": ["view", "edit"]})
        );
        assert!(binding("p1:").is_err());
        assert!(binding(":view").is_err());
        assert!(binding("").is_err());
    }

    #[test]
    fn claims_from_pairs_and_json() {
        let pairs = vec![
            ("email".to_string(), "dr@clinic.example".to_string()),
            ("age".to_string(), "30".to_string()),
        ];
        let c = dry_run_claims(Some(r#"{"sub": "bob"}"#), &pairs).unwrap();
        assert_eq!(
            c,
            vec![
                json!({"name": "sub", "value": "bob"}),
                json!({"name": "email", "value": "dr@clinic.example"}),
                json!({"name": "age", "value": 30}),
            ]
        );
        let err = dry_run_claims(Some("[1,"), &[]).unwrap_err();
        assert!(matches!(err, CliError::Input(m) if m.contains("--claims is not valid JSON")));
        assert!(dry_run_claims(Some("42"), &[]).is_err());
    }

    #[test]
    fn approvals_group_scopes_by_resource() {
        let p =
            approved_permissions(&["r1:view".into(), "r2:edit".into(), "r1:edit".into()]).unwrap();
        assert_eq!(
            p,
            vec![
                json!({"resource_id": "r1", "resource_scopes": ["view", "edit"]}),
                json!({"resource_id": "r2", "resource_scopes": ["edit"]}),
            ]
        );
        assert!(approved_permissions(&["r1".into()]).is_err());
    }

    #[test]
    fn credentials_are_written_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("owner.json");
        let c = Credentials {
            url: "http://127.0.0.1:1".into(),
            client_id: "cli".into(),
            client_secret: None,
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            expires_at: 42,
            scope: Some("uma_policy".into()),
        };
        save_credentials(&path, &c).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = load_credentials(&path).unwrap().unwrap();
        assert_eq!(back.refresh_token.as_deref(), Some("rt"));
        assert_eq!(back.expires_at, 42);
        assert!(
            load_credentials(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
    }
}
