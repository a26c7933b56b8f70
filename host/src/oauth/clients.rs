//! Client registration: validation, secret generation and hashing, config-file clients.
//!
//! Client secrets are high-entropy, so they are stored as HMAC-SHA256 under a server-side key
//! (generated on first start, kept in the store) and checked with a constant-time comparison: a
//! per-request argon2 would dominate the token endpoint (perf-notes) without adding safety.

use serde::{Deserialize, Serialize};

use super::grant;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::keys::random_token;
use crate::store::{Client, Store, unix_now};

/// Keyed hash of client secrets.
pub struct SecretHasher {
    key: aws_lc_rs::hmac::Key,
}

impl SecretHasher {
    pub async fn load(store: &dyn Store) -> Result<SecretHasher> {
        let secret = store.server_secret("client-secret-hmac").await?;
        Ok(SecretHasher {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        })
    }

    pub fn hash(&self, secret: &str) -> String {
        hex::encode(aws_lc_rs::hmac::sign(&self.key, secret.as_bytes()))
    }

    /// Constant-time check of `secret` against a stored hash.
    pub fn verify(&self, secret: &str, stored_hex: &str) -> bool {
        match hex::decode(stored_hex) {
            Ok(tag) => aws_lc_rs::hmac::verify(&self.key, secret.as_bytes(), &tag).is_ok(),
            Err(_) => false,
        }
    }
}

/// What the admin API (and the config file) may say about a new client.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewClient {
    /// Chosen id; generated (URL-safe) when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Chosen secret (at least 16 characters); generated when absent for a confidential client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// A public client has no secret and must use PKCE.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub claims_redirect_uris: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub name: Option<String>,
}

impl From<&ClientConfig> for NewClient {
    fn from(c: &ClientConfig) -> Self {
        NewClient {
            client_id: Some(c.client_id.clone()),
            client_secret: c.client_secret.clone(),
            public: c.client_secret.is_none(),
            redirect_uris: c.redirect_uris.clone(),
            claims_redirect_uris: c.claims_redirect_uris.clone(),
            scopes: c.scopes.clone(),
            grant_types: c.grant_types.clone(),
            name: c.name.clone(),
        }
    }
}

/// Grant types a client may be registered for.
pub const KNOWN_GRANTS: &[&str] = &[
    grant::AUTHORIZATION_CODE,
    grant::CLIENT_CREDENTIALS,
    grant::REFRESH_TOKEN,
    grant::UMA_TICKET,
];

/// Client ids use URL-safe characters only, so they survive Basic-auth form encoding and URLs
/// unchanged.
pub fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An absolute URI without fragment (RFC 6749 §3.1.2, UMA Grant §3.3.2).
fn check_redirect_uri(field: &str, uri: &str) -> Result<()> {
    let u = url::Url::parse(uri).map_err(|e| {
        Error::InvalidRedirectUri(format!("{field}: {uri:?} is not an absolute URI: {e}"))
    })?;
    if u.fragment().is_some() || uri.contains('#') {
        return Err(Error::InvalidRedirectUri(format!(
            "{field}: {uri:?} must not contain a fragment"
        )));
    }
    Ok(())
}

pub fn valid_scope_token(s: &str) -> bool {
    // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Validates `new` and builds the stored client; returns the plain secret to show once.
pub fn build(hasher: &SecretHasher, new: NewClient) -> Result<(Client, Option<String>)> {
    let client_id = match new.client_id {
        Some(id) => id,
        None => random_token(16)?,
    };
    if !valid_client_id(&client_id) {
        return Err(Error::invalid_request(
            "client_id must be 1-128 characters from A-Z a-z 0-9 - . _ ~",
        ));
    }
    let secret = if new.public {
        if new.client_secret.is_some() {
            return Err(Error::invalid_request(
                "a public client has no client_secret",
            ));
        }
        None
    } else {
        let s = match new.client_secret {
            Some(s) => s,
            None => random_token(32)?,
        };
        if s.len() < 16 || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Error::invalid_request(
                "client_secret must be at least 16 printable ASCII characters",
            ));
        }
        Some(s)
    };
    for u in &new.redirect_uris {
        check_redirect_uri("redirect_uris", u)?;
    }
    for u in &new.claims_redirect_uris {
        check_redirect_uri("claims_redirect_uris", u)?;
    }
    if let Some(s) = new.scopes.iter().find(|s| !valid_scope_token(s)) {
        return Err(Error::invalid_request(format!(
            "scopes: {s:?} is not a valid scope token"
        )));
    }
    let grant_types = match new.grant_types {
        Some(g) => {
            if let Some(bad) = g.iter().find(|g| !KNOWN_GRANTS.contains(&g.as_str())) {
                return Err(Error::invalid_request(format!(
                    "grant_types: unknown {bad:?}"
                )));
            }
            if new.public && g.iter().any(|g| g == grant::CLIENT_CREDENTIALS) {
                return Err(Error::invalid_request(
                    "a public client cannot use client_credentials",
                ));
            }
            g
        }
        None => KNOWN_GRANTS
            .iter()
            .filter(|g| !(new.public && **g == grant::CLIENT_CREDENTIALS))
            .map(|g| g.to_string())
            .collect(),
    };
    let client = Client {
        client_id,
        secret_hash: secret.as_deref().map(|s| hasher.hash(s)),
        redirect_uris: new.redirect_uris,
        claims_redirect_uris: new.claims_redirect_uris,
        scopes: new.scopes,
        grant_types,
        name: new.name,
        created_at: unix_now(),
    };
    Ok((client, secret))
}

/// Registers a new client; `Conflict` if the id is taken.
pub async fn create(state: &AppState, new: NewClient) -> Result<(Client, Option<String>)> {
    let (client, secret) = build(&state.secrets, new)?;
    if !state.store.create_client(&client).await? {
        return Err(Error::Conflict(format!(
            "client {} already exists",
            client.client_id
        )));
    }
    Ok((client, secret))
}

/// Applies the config file's clients: created, or overwritten with the declared values.
pub async fn apply_config(state: &AppState, clients: &[ClientConfig]) -> anyhow::Result<()> {
    for c in clients {
        let (mut client, _) = build(&state.secrets, NewClient::from(c))
            .map_err(|e| anyhow::anyhow!("config client {:?}: {e}", c.client_id))?;
        if let Some(existing) = state.store.get_client(&client.client_id).await? {
            client.created_at = existing.created_at;
        }
        state.store.put_client(&client).await?;
    }
    Ok(())
}

/// The admin API's view of a client (never the secret hash).
pub fn view(c: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.client_id,
        "public": c.is_public(),
        "redirect_uris": c.redirect_uris,
        "claims_redirect_uris": c.claims_redirect_uris,
        "scopes": c.scopes,
        "grant_types": c.grant_types,
        "name": c.name,
        "created_at": c.created_at,
    })
}
