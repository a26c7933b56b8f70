//! Typed configuration of the server.
//!
//! Sources, lowest precedence first:
//!
//! 1. built-in defaults (documented on each field below);
//! 2. the TOML file given with `--config FILE`;
//! 3. environment variables `UMA_HOST_<FIELD>` (for example `UMA_HOST_ISSUER`,
//!    `UMA_HOST_TICKET_LIFETIME_SECS`), which override the file;
//! 4. the `serve` command-line flags `--issuer`, `--listen`, `--data-dir`, which override the file
//!    and the environment.
//!
//! This is the contract of issue 3 ("flags override the config file, which environment variables
//! override in turn"): both flags and environment override the file; where both are given, the
//! more specific, per-invocation flag wins, as is usual for command-line tools.
//!
//! The file may also declare `[[clients]]` and `[[users]]`; they are applied idempotently at every
//! start (created, or overwritten with the declared values), so a deployment can be kept in
//! version control. Objects created through the admin API and not named in the file are left
//! alone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::runtime::RuntimeConfig;
use serde::{Deserialize, Serialize};

/// Every knob of the server. Build one with [`Config::new`] (tests, embedding) or
/// [`Config::load`] (the binary).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The authorization server's issuer identifier. Every endpoint URL is formed by appending a
    /// path to it, the UMA discovery document is at `issuer + "/.well-known/uma2-configuration"`
    /// (plain concatenation, UMA Grant §2), and it is the `iss` of every token, byte for byte.
    ///
    /// Default: `http://127.0.0.1:8080`. One trailing `/` is removed when loading. It must be an
    /// absolute `https` URL without query or fragment; plain `http` is accepted only for loopback
    /// hosts or with [`Config::allow_insecure_http`], because the Protection API and the token
    /// endpoint carry bearer credentials (Fed §1.3, RFC 6749 §10.9).
    pub issuer: String,

    /// Address the HTTP listener binds to. Default: `127.0.0.1:8080` (loopback only, so a
    /// fresh install is not reachable from the network until an operator decides so, typically
    /// behind a TLS-terminating proxy).
    pub listen: SocketAddr,

    /// Directory of the sled database (clients, users, resources, tickets, signing keys).
    /// Default: `./data`. Created if missing. Only one process may open it at a time (sled
    /// holds a lock); back it up while the server is stopped.
    pub data_dir: PathBuf,

    /// Memory sled may use to cache the database's pages, in bytes.
    ///
    /// Default: 8 MiB. sled's own default is 1 GiB, and under load its cache is most of the
    /// server's resident memory: 90,000 permission tickets took a server from 37 to 240 MB.
    /// sled counts its cache below what it really holds (32 MiB here kept ~45 MB resident),
    /// and the load harness measured the same grant and RPT rates with 8 MiB as with 32 MiB
    /// at ~20 MB less memory. Reads of records that fell out of the cache go to the page files
    /// (the OS page cache usually still holds them); raise it when the working set of
    /// resources, policies and tickets is larger and memory is plentiful.
    pub store_cache_bytes: u64,

    /// Lifetime of access tokens (PATs and other OAuth access tokens), in seconds.
    /// Default: 3600. Access tokens are self-contained JWTs checked without a store lookup
    /// except for the revocation list, so a shorter lifetime narrows the window in which a leaked
    /// token is useful, at the price of more token requests from resource servers. Retired
    /// signing keys stay published at least this long after rotation.
    pub access_token_lifetime_secs: u64,

    /// Lifetime of refresh tokens, in seconds. Default: 1 209 600 (14 days). Refresh tokens are
    /// rotated on every use and bound to their client; a long lifetime lets an owner's PAT be
    /// renewed without a new login, a short one forces owners to log in again more often.
    pub refresh_token_lifetime_secs: u64,

    /// Lifetime of UMA permission tickets, in seconds. Default: 300. A ticket only has to live
    /// from the resource server's 401 to the client's token request (or the claims interaction):
    /// the spec wants it short-lived (Grant §5.5) and a long-lived ticket is a bearer credential
    /// lying around. Must be between 1 and 3600.
    pub ticket_lifetime_secs: u64,

    /// Lifetime of authorization codes, in seconds. Default: 60 (RFC 6749 §4.1.2 recommends at
    /// most 10 minutes). Codes are single-use and bound to client, redirect URI and PKCE
    /// challenge.
    pub auth_code_lifetime_secs: u64,

    /// How long a login page stays valid between display and submission, in seconds.
    /// Default: 600. Longer is friendlier to slow typists; shorter limits how long an abandoned
    /// pending authorization request occupies storage.
    pub login_lifetime_secs: u64,

    /// Largest accepted request body, in bytes. Default: 65 536. Resource descriptions, permission
    /// requests and token requests are small; a cap keeps a client from making the server buffer
    /// megabytes per request. Larger bodies are refused with 413 `invalid_request`.
    pub max_body_bytes: usize,

    /// Longest time one request may take, body upload included, in seconds. Default: 30.
    /// Bounds how long a slow or stalled client can hold a connection and a task; requests that
    /// exceed it get 408 `invalid_request`. Token and Protection API calls take milliseconds, so
    /// only pathological clients notice.
    pub request_timeout_secs: u64,

    /// Credential of the admin API (`Authorization: Bearer <admin_token>`), used by
    /// `uma-host admin …`. Default: none, which disables the admin API entirely (clients and
    /// users then come only from this file). At least 16 characters; prefer setting it through
    /// `UMA_HOST_ADMIN_TOKEN` rather than in a file kept in version control.
    pub admin_token: Option<String>,

    /// Let anyone register clients at the RFC 7591 registration endpoint. Default: false, in
    /// which case registration needs the admin credential as initial access token (and the
    /// endpoint exists only when [`Config::admin_token`] is set). Open registration lets
    /// strangers create clients that pre-register arbitrary scopes for the UMA grant.
    pub open_registration: bool,

    /// Accept a plain-`http` issuer on a non-loopback host. Default: false. Only for development
    /// setups where TLS is terminated elsewhere on a trusted network; tokens would otherwise
    /// travel in clear (S-20).
    pub allow_insecure_http: bool,

    /// PEM certificate chain for serving HTTPS directly (rustls). Default: none, which serves
    /// plain HTTP, as behind a TLS-terminating proxy. Set together with [`Config::tls_key_file`];
    /// the issuer should then be the `https` URL clients reach. Read once at start: a
    /// certificate renewal needs a restart.
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of [`Config::tls_cert_file`]. Default: none.
    pub tls_key_file: Option<PathBuf>,

    /// Requests per second each client may make on average; 0 turns rate limiting off.
    /// Default: 1 000. A client is the client id of HTTP Basic credentials, else the bearer
    /// token, else the peer address (see `http::ratelimit`). Far above what any legitimate
    /// client of an authorization server sends, it still stops one client from taking the whole
    /// server, and slows online guessing of client secrets. Load tests of a single client turn
    /// it off.
    pub rate_limit_per_sec: u32,

    /// Requests a client may send at once above its rate before being limited. Default: 2 000.
    pub rate_limit_burst: u32,

    /// How long a shutdown (SIGTERM, Ctrl-C) waits for in-flight requests, in seconds, before
    /// closing their connections. Default: 10. Long enough for every normal request (they take
    /// milliseconds); short enough that a stalled client cannot keep the process alive.
    pub shutdown_grace_secs: u64,

    /// Clients declared in the file (see the module documentation).
    pub clients: Vec<ClientConfig>,

    /// Users declared in the file (see the module documentation).
    pub users: Vec<UserConfig>,

    /// Lifetime of RPTs, in seconds. Default: 600. An RPT is checked by resource servers through
    /// introspection or its signature; a short lifetime makes policy changes and revocations
    /// reach self-validating resource servers sooner, at the price of more token requests.
    pub rpt_lifetime_secs: u64,

    /// Lifetime of persisted claims tokens (PCTs), in seconds. Default: 2 592 000 (30 days). A
    /// PCT spares the requesting party from proving the same claims again; the spec leaves the
    /// relevance of old claims to the server (Grant §3.3.4), so they should not live forever.
    pub pct_lifetime_secs: u64,

    /// How long a claims-interaction session (login and claims-plugin forms) stays valid, in
    /// seconds. Default: 600.
    pub interaction_lifetime_secs: u64,

    /// The `interval` a client is told to wait between polls after `request_submitted`, in
    /// seconds. Default: 5.
    pub approval_poll_interval_secs: u64,

    /// Issuers whose claim tokens (OpenID ID tokens, JWTs) the UMA grant verifies and accepts
    /// (`[[trusted_issuers]]`). A token from any other issuer is refused with `need_info`
    /// (Grant §5.7, security-lessons S16).
    pub trusted_issuers: Vec<TrustedIssuer>,

    /// The plugin sandbox: fuel, deadline, memory, stack, output and log limits, module size,
    /// compile timeout and concurrency (`[runtime]` table; each knob is documented on
    /// [`RuntimeConfig`]). Its `cache_dir` defaults to `<data_dir>/compiled`.
    pub runtime: RuntimeConfig,

    /// Per-owner quotas and audit retention of the owner policy API (`[policy]` table).
    pub policy: PolicyLimits,
}

/// An identity provider whose claim tokens are trusted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The `iss` value, compared byte for byte.
    pub issuer: String,
    /// Its signing keys as a JWK Set document, inline. One of `jwks` and `jwks_uri` is required.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Where to fetch its JWK Set; fetched on first use and cached for five minutes.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// Per-owner limits of the owner policy API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyLimits {
    /// Module versions one owner may hold. Default: 50. Every module costs a compilation and
    /// cache space; the cap also bounds what one account can make the server compile
    /// (security-lessons S4).
    pub max_modules_per_owner: usize,

    /// Bytes of modules one owner may hold, summed over versions. Default: 128 MiB (a few
    /// Python components, hundreds of Rust ones).
    pub max_module_bytes_per_owner: usize,

    /// Policies one owner may define. Default: 500.
    pub max_policies_per_owner: usize,

    /// Policies bound to one resource. Default: 16. Each is one sandboxed evaluation per
    /// permission of every grant, so this bounds the work one request can cause.
    pub max_bindings_per_resource: usize,

    /// Audit entries kept per owner; the oldest go first. Default: 10 000.
    pub audit_entries_per_owner: usize,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            max_modules_per_owner: 50,
            max_module_bytes_per_owner: 128 << 20,
            max_policies_per_owner: 500,
            max_bindings_per_resource: 16,
            audit_entries_per_owner: 10_000,
        }
    }
}

/// A client declared in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// URL-safe identifier (`A-Z a-z 0-9 - . _ ~`).
    pub client_id: String,
    /// Omit for a public client (which must use PKCE). At least 16 characters.
    pub client_secret: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub claims_redirect_uris: Vec<String>,
    /// Scopes the client is pre-registered for (UMA Grant §3.3.4 `RegisteredScopes`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Grant types the client may use. Default: all the server supports that fit the client
    /// type.
    pub grant_types: Option<Vec<String>>,
    pub name: Option<String>,
}

/// A user (resource owner or requesting party) declared in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    pub password: String,
    /// Attributes that become claims (`email`, `name`, …).
    #[serde(default)]
    pub claims: BTreeMap<String, serde_json::Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:8080".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            store_cache_bytes: 8 << 20,
            access_token_lifetime_secs: 3600,
            refresh_token_lifetime_secs: 14 * 24 * 3600,
            ticket_lifetime_secs: 300,
            auth_code_lifetime_secs: 60,
            login_lifetime_secs: 600,
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 30,
            admin_token: None,
            open_registration: false,
            allow_insecure_http: false,
            tls_cert_file: None,
            tls_key_file: None,
            shutdown_grace_secs: 10,
            rate_limit_per_sec: 1_000,
            rate_limit_burst: 2_000,
            clients: Vec::new(),
            users: Vec::new(),
            rpt_lifetime_secs: 600,
            pct_lifetime_secs: 30 * 24 * 3600,
            interaction_lifetime_secs: 600,
            approval_poll_interval_secs: 5,
            trusted_issuers: Vec::new(),
            runtime: RuntimeConfig::default(),
            policy: PolicyLimits::default(),
        }
    }
}

/// The `serve` flags that override file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub issuer: Option<String>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// Prefix of the environment variables read by [`Config::load`].
pub const ENV_PREFIX: &str = "UMA_HOST_";

impl Config {
    /// Defaults with the three knobs every deployment sets.
    pub fn new(
        issuer: impl Into<String>,
        listen: SocketAddr,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Config {
            issuer: issuer.into(),
            listen,
            data_dir: data_dir.into(),
            ..Config::default()
        }
    }

    /// Reads the file (if any), applies the process environment and then the flags, and
    /// validates the result.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> anyhow::Result<Config> {
        let text = match file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?,
            ),
            None => None,
        };
        Self::from_sources(text.as_deref(), |k| std::env::var(k).ok(), flags)
    }

    /// [`Config::load`] with its inputs made explicit (file text, environment lookup, flags).
    pub fn from_sources(
        file_text: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> anyhow::Result<Config> {
        let mut c: Config = match file_text {
            Some(t) => toml::from_str(t).context("parsing config file")?,
            None => Config::default(),
        };
        c.apply_env(env)?;
        if let Some(i) = &flags.issuer {
            c.issuer = i.clone();
        }
        if let Some(l) = flags.listen {
            c.listen = l;
        }
        if let Some(d) = &flags.data_dir {
            c.data_dir = d.clone();
        }
        c.validate()?;
        Ok(c)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let get = |name: &str| env(&format!("{ENV_PREFIX}{name}")).filter(|v| !v.is_empty());
        fn parse<T: std::str::FromStr>(name: &str, v: String) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            v.parse()
                .map_err(|e| anyhow::anyhow!("{ENV_PREFIX}{name}={v:?}: {e}"))
        }
        if let Some(v) = get("ISSUER") {
            self.issuer = v;
        }
        if let Some(v) = get("LISTEN") {
            self.listen = parse("LISTEN", v)?;
        }
        if let Some(v) = get("DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("TLS_CERT_FILE") {
            self.tls_cert_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("TLS_KEY_FILE") {
            self.tls_key_file = Some(PathBuf::from(v));
        }
        macro_rules! num {
            ($($field:ident => $name:literal),* $(,)?) => {$(
                if let Some(v) = get($name) {
                    self.$field = parse($name, v)?;
                }
            )*};
        }
        num! {
            access_token_lifetime_secs => "ACCESS_TOKEN_LIFETIME_SECS",
            refresh_token_lifetime_secs => "REFRESH_TOKEN_LIFETIME_SECS",
            ticket_lifetime_secs => "TICKET_LIFETIME_SECS",
            auth_code_lifetime_secs => "AUTH_CODE_LIFETIME_SECS",
            login_lifetime_secs => "LOGIN_LIFETIME_SECS",
            max_body_bytes => "MAX_BODY_BYTES",
            request_timeout_secs => "REQUEST_TIMEOUT_SECS",
            shutdown_grace_secs => "SHUTDOWN_GRACE_SECS",
            rate_limit_per_sec => "RATE_LIMIT_PER_SEC",
            rate_limit_burst => "RATE_LIMIT_BURST",
            allow_insecure_http => "ALLOW_INSECURE_HTTP",
            open_registration => "OPEN_REGISTRATION",
        }
        if let Some(v) = get("ADMIN_TOKEN") {
            self.admin_token = Some(v);
        }
        Ok(())
    }

    /// Normalises (one trailing `/` of the issuer) and checks every knob.
    pub fn validate(&mut self) -> anyhow::Result<()> {
        if self.issuer.ends_with('/') {
            self.issuer.pop();
        }
        let url = url::Url::parse(&self.issuer)
            .with_context(|| format!("issuer {:?} is not an absolute URL", self.issuer))?;
        if url.query().is_some() || url.fragment().is_some() || self.issuer.contains(['?', '#']) {
            bail!("issuer must have no query or fragment (RFC 8414 §2)");
        }
        match url.scheme() {
            "https" => {}
            "http" => {
                let loopback = match url.host() {
                    Some(url::Host::Domain(d)) => d == "localhost",
                    Some(url::Host::Ipv4(a)) => a.is_loopback(),
                    Some(url::Host::Ipv6(a)) => a.is_loopback(),
                    None => false,
                };
                if !loopback && !self.allow_insecure_http {
                    bail!(
                        "issuer {:?} uses plain http on a non-loopback host; use https or set allow_insecure_http",
                        self.issuer
                    );
                }
            }
            s => bail!("issuer scheme {s:?} is not http(s)"),
        }
        for (name, v) in [
            (
                "access_token_lifetime_secs",
                self.access_token_lifetime_secs,
            ),
            (
                "refresh_token_lifetime_secs",
                self.refresh_token_lifetime_secs,
            ),
            ("ticket_lifetime_secs", self.ticket_lifetime_secs),
            ("auth_code_lifetime_secs", self.auth_code_lifetime_secs),
            ("login_lifetime_secs", self.login_lifetime_secs),
            ("request_timeout_secs", self.request_timeout_secs),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            bail!("tls_cert_file and tls_key_file must be set together");
        }
        if self.ticket_lifetime_secs > 3600 {
            bail!("ticket_lifetime_secs must be at most 3600: tickets are meant to be short-lived");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        if let Some(t) = &self.admin_token
            && t.len() < 16
        {
            bail!("admin_token must be at least 16 characters");
        }
        Ok(())
    }

    /// The issuer's path component (`""` when the issuer has none): every route is served under
    /// it, so that `issuer + "/token"` is both advertised and answered.
    pub fn base_path(&self) -> &str {
        // validate() guarantees an absolute URL without trailing slash.
        let after_scheme = self.issuer.split_once("://").map_or("", |(_, r)| r);
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }

    /// Absolute URL of an endpoint (`path` starts with `/`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Whether the RFC 7591 registration endpoint is served (and advertised).
    pub fn registration_enabled(&self) -> bool {
        self.open_registration || self.admin_token.is_some()
    }

    /// The longest lifetime of any token signed with our keys: a retired signing key stays
    /// published in the JWKS at least this long. Extend when new token kinds (RPTs) get their
    /// own lifetime.
    pub fn max_signed_token_lifetime_secs(&self) -> u64 {
        self.access_token_lifetime_secs.max(self.rpt_lifetime_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_env_which_overrides_file() {
        let file = "issuer = \"http://127.0.0.1:1\"\nticket_lifetime_secs = 5\ndata_dir = \"/f\"\n";
        let env = |k: &str| match k {
            "UMA_HOST_ISSUER" => Some("http://127.0.0.1:2".to_string()),
            "UMA_HOST_DATA_DIR" => Some("/e".to_string()),
            _ => None,
        };
        let flags = Overrides {
            data_dir: Some("/flag".into()),
            ..Default::default()
        };
        let c = Config::from_sources(Some(file), env, &flags).unwrap();
        assert_eq!(c.issuer, "http://127.0.0.1:2");
        assert_eq!(c.ticket_lifetime_secs, 5);
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
    }

    #[test]
    fn s_20_d_20_issuer_is_https_or_loopback_without_query_or_fragment() {
        let mut c = Config::new(
            "https://as.example/realms/x/",
            "127.0.0.1:0".parse().unwrap(),
            "/d",
        );
        c.validate().unwrap();
        assert_eq!(c.issuer, "https://as.example/realms/x");
        assert_eq!(c.base_path(), "/realms/x");
        let mut c = Config::new("http://as.example", "127.0.0.1:0".parse().unwrap(), "/d");
        assert!(c.validate().is_err());
        let mut c = Config::new(
            "https://as.example?x=1",
            "127.0.0.1:0".parse().unwrap(),
            "/d",
        );
        assert!(c.validate().is_err());
        let mut c = Config::new("http://127.0.0.1:9", "127.0.0.1:0".parse().unwrap(), "/d");
        c.validate().unwrap();
        assert_eq!(c.base_path(), "");
    }
}
