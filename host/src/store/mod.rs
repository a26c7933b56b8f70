//! Persistent state behind one trait, [`Store`], so that a PostgreSQL backend can replace
//! [`SledStore`] later.
//!
//! Rules every backend keeps:
//! - Resources are only reachable through a [`ResourceScope`] (owner, resource server): there is
//!   no method that looks a resource up by its id alone, so an IDOR across owners or resource
//!   servers cannot be written (security-lessons S8-S12).
//! - A write is durable when the method returns (sled: flushed), so a response that
//!   acknowledges it never lies after a crash — or, inside [`one_sync`], when the scope ends:
//!   a request that writes several times (the UMA grant: ticket, audit, RPT) pays for one
//!   flush before it answers instead of one per write.
//! - Single-use objects (permission tickets, authorization codes, refresh tokens, login requests)
//!   are consumed with an atomic `take_*`, so two concurrent redemptions cannot both succeed
//!   (S19). Expired objects are never returned.

/// Backend-independent behaviour checks, run by every backend's tests.
#[cfg(test)]
pub(crate) mod conformance;
pub mod policy;
mod sled_store;
pub mod uma;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use policy::PolicyStore;
pub use sled_store::SledStore;
pub use uma::UmaStore;

use crate::error::Result;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who owns resources. A PAT from `client_credentials` represents the resource server client
/// itself; one from `authorization_code` represents the user who logged in and consented.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Client(String),
    User(String),
}

impl Owner {
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::Client(_) => "client",
            Owner::User(_) => "user",
        }
    }
    pub fn id(&self) -> &str {
        match self {
            Owner::Client(s) | Owner::User(s) => s,
        }
    }
    pub fn from_parts(kind: &str, id: &str) -> Option<Owner> {
        match kind {
            "client" => Some(Owner::Client(id.to_owned())),
            "user" => Some(Owner::User(id.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

impl std::str::FromStr for Owner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, id) = s.split_once(':').ok_or("owner without kind")?;
        Owner::from_parts(k, id).ok_or_else(|| format!("unknown owner kind {k:?}"))
    }
}

impl Serialize for Owner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The composite key every resource operation is scoped by: the resource owner and the resource
/// server (client id) that manages the resources. Built from an authenticated PAT
/// ([`crate::uma::pat::Pat::scope`]), never from request bodies (S9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    pub owner: Owner,
    pub resource_server: String,
}

/// A registered OAuth client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    /// Hex HMAC-SHA256 of the secret under the server's secret-hashing key; `None` for a public
    /// client. Secrets are high-entropy, so a keyed fast hash is enough (perf-notes).
    pub secret_hash: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub claims_redirect_uris: Vec<String>,
    /// Pre-registered scopes (UMA Grant §3.3.4 `RegisteredScopes`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Grant types this client may use.
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub created_at: u64,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
    pub fn may_use_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

/// A resource owner or requesting party.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Attributes that become claims (`email`, `name`, …).
    #[serde(default)]
    pub claims: BTreeMap<String, serde_json::Value>,
    pub created_at: u64,
}

/// A UMA resource description (Fed §3.1), exactly as registered (wire format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResourceDescription {
    pub resource_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Language-tagged variants (`name#fr`, `description#ja-Jpan-JP`, RFC 7591 §2.2).
    #[serde(flatten)]
    pub localized: BTreeMap<String, String>,
}

/// One permission: a resource and the scopes asked for or granted on it (Fed §4.1, §5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Permission {
    pub resource_id: String,
    pub resource_scopes: Vec<String>,
}

/// A permission ticket (Fed §4): the permissions a resource server asked for on behalf of a
/// client, for the resources of exactly one owner at one resource server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    pub owner: Owner,
    pub resource_server: String,
    pub permissions: Vec<Permission>,
    pub iat: u64,
    pub exp: u64,
    /// Set on tickets this server rotated (need_info, request_submitted, claims redirect): only
    /// the client that received it may redeem it. Tickets from the permission endpoint are for
    /// whichever client the resource server hands them to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Claims gathered at the claims interaction endpoint, carried to the next token request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<crate::runtime::Claim>,
    /// The owner-approval request this ticket polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// A pending authorization code (RFC 6749 §4.1, PKCE S256).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthCode {
    pub client_id: String,
    /// The `redirect_uri` parameter if the authorization request carried one (then the token
    /// request must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri: Option<String>,
    pub code_challenge: String,
    pub username: String,
    pub scope: Vec<String>,
    pub exp: u64,
}

/// A refresh token, stored under the SHA-256 of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub client_id: String,
    pub subject: Owner,
    pub scope: Vec<String>,
    pub exp: u64,
    /// The grant family (one per authorization code) shared by every token issued from it,
    /// so a replayed code or refresh token can revoke them all.
    #[serde(default)]
    pub family: String,
}

/// A validated authorization request waiting for the user to log in on our page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub client_id: String,
    /// Where to send the user back (registered, exactly matched).
    pub redirect_to: String,
    /// Whether `redirect_uri` was given explicitly.
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: Vec<String>,
    /// Anti-CSRF value also set as a cookie: the form post must carry both (S23).
    pub csrf: String,
    pub exp: u64,
    /// Wrong passwords entered on this login so far.
    #[serde(default)]
    pub failures: u32,
}

/// A signing key pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    /// PKCS#8 DER of the ES256 private key, base64url.
    pub pkcs8: String,
    pub created_at: u64,
    /// When the key stopped signing; it stays published until every token it signed expired.
    pub retired_at: Option<u64>,
}

/// Storage of everything the server remembers. All methods are durable on return.
#[async_trait]
pub trait Store: PolicyStore + UmaStore + Send + Sync + 'static {
    // --- clients ---
    /// Creates the client; `Ok(false)` if the id is taken.
    async fn create_client(&self, client: &Client) -> Result<bool>;
    /// Creates or overwrites (config-file clients).
    async fn put_client(&self, client: &Client) -> Result<()>;
    async fn get_client(&self, client_id: &str) -> Result<Option<Client>>;
    async fn list_clients(&self) -> Result<Vec<Client>>;
    async fn delete_client(&self, client_id: &str) -> Result<bool>;

    // --- users ---
    async fn create_user(&self, user: &User) -> Result<bool>;
    async fn put_user(&self, user: &User) -> Result<()>;
    async fn get_user(&self, username: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn delete_user(&self, username: &str) -> Result<bool>;

    // --- resources, always scoped by (owner, resource server) ---
    /// Registers a new resource under a fresh id.
    async fn create_resource(
        &self,
        scope: &ResourceScope,
        id: &str,
        r: &ResourceDescription,
    ) -> Result<()>;
    /// Replaces an existing resource; `Ok(false)` (and no write) if it does not exist in scope.
    async fn replace_resource(
        &self,
        scope: &ResourceScope,
        id: &str,
        r: &ResourceDescription,
    ) -> Result<bool>;
    async fn get_resource(
        &self,
        scope: &ResourceScope,
        id: &str,
    ) -> Result<Option<ResourceDescription>>;
    async fn delete_resource(&self, scope: &ResourceScope, id: &str) -> Result<bool>;
    /// All resources in scope, ordered by id.
    async fn list_resources(
        &self,
        scope: &ResourceScope,
    ) -> Result<Vec<(String, ResourceDescription)>>;

    // --- permission tickets ---
    /// Stores a new ticket, or the rotated successor of a consumed one.
    async fn put_ticket(&self, ticket: &str, t: &Ticket) -> Result<()>;
    /// Atomically removes and returns the ticket; `None` if unknown, used or expired.
    async fn take_ticket(&self, ticket: &str) -> Result<Option<Ticket>>;
    /// Marks the sealed ticket `id` (see `uma::ticket`) used, remembered until `exp`, after
    /// which the ticket's own expiry refuses it. `true` for exactly one of any number of
    /// concurrent callers with the same `id`, `false` for every later one.
    async fn spend_ticket(&self, id: &str, exp: u64) -> Result<bool>;

    // --- authorization codes, login requests, refresh tokens (single use) ---
    async fn put_code(&self, code: &str, c: &AuthCode) -> Result<()>;
    async fn take_code(&self, code: &str) -> Result<Option<AuthCode>>;
    async fn put_login(&self, id: &str, l: &PendingLogin) -> Result<()>;
    async fn take_login(&self, id: &str) -> Result<Option<PendingLogin>>;
    async fn put_refresh(&self, token: &str, r: &RefreshGrant) -> Result<()>;
    /// Reads without consuming (introspection).
    async fn get_refresh(&self, token: &str) -> Result<Option<RefreshGrant>>;
    async fn take_refresh(&self, token: &str) -> Result<Option<RefreshGrant>>;

    // --- revoked access tokens (by jti, kept until the token would have expired) ---
    async fn revoke_jti(&self, jti: &str, exp: u64) -> Result<()>;
    async fn is_revoked(&self, jti: &str) -> Result<bool>;

    // --- grant families: replay detection (RFC 6749 §4.1.2, §10.4; RFC 7009 §2.1) ---
    /// Remembers until `exp` that a single-use credential (authorization code, refresh token)
    /// of grant `family` was consumed.
    async fn put_spent(&self, token: &str, family: &str, exp: u64) -> Result<()>;
    /// The family of a consumed credential, while it is remembered.
    async fn spent_family(&self, token: &str) -> Result<Option<String>>;
    /// Revokes every token of a grant family until `exp`.
    async fn revoke_family(&self, family: &str, exp: u64) -> Result<()>;
    async fn is_family_revoked(&self, family: &str) -> Result<bool>;

    // --- signing keys ---
    async fn list_keys(&self) -> Result<Vec<KeyRecord>>;
    async fn put_key(&self, key: &KeyRecord) -> Result<()>;
    async fn delete_key(&self, kid: &str) -> Result<()>;

    /// A 32-byte server secret named `name`, generated from the OS CSPRNG on first use and
    /// persisted (e.g. the client-secret hashing key).
    async fn server_secret(&self, name: &str) -> Result<[u8; 32]>;

    /// Drops expired tickets (stored and spent), codes, logins, refresh tokens and revocation
    /// entries.
    async fn prune_expired(&self, now: u64) -> Result<usize>;

    /// Makes every write so far durable. Writes already are on return, except inside
    /// [`one_sync`], which calls this once at its end.
    async fn sync(&self) -> Result<()>;
}

tokio::task_local! {
    /// Set inside [`one_sync`]: backends note that a write needs flushing instead of flushing.
    static DEFERRED: std::cell::Cell<bool>;
}

/// Runs `f`, whose store writes become durable together when it finishes, before its result
/// is returned: the caller still acknowledges nothing that is not durable. Whatever `f`
/// returns, success or a protocol error, the writes it made are synced first (an error answer
/// can acknowledge a write too, e.g. the consumption of a ticket). Backends whose writes are
/// durable on commit anyway (PostgreSQL) ignore the scope.
pub async fn one_sync<T>(
    store: &dyn Store,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let (out, dirty) = DEFERRED
        .scope(std::cell::Cell::new(false), async {
            let out = f.await;
            (out, DEFERRED.with(|d| d.get()))
        })
        .await;
    if dirty {
        store.sync().await?;
    }
    out
}

/// For backends: `true` (and the scope marked dirty) when the current write may skip its own
/// flush because an enclosing [`one_sync`] will sync.
pub(crate) fn defer_flush() -> bool {
    DEFERRED.try_with(|d| d.set(true)).is_ok()
}
