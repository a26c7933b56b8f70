//! RFC 9068 JWT access tokens: PATs, plain OAuth access tokens and (later) RPTs share one claim
//! set, signed by [`crate::keys::Keys`] and revocable by `jti`.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::http::AppState;
use crate::keys::random_token;
use crate::store::{Owner, Permission, unix_now};

/// Claims of every access token we issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The principal the token speaks for: a client id or a username (see `sub_kind`).
    pub sub: String,
    /// Whether `sub` names a `client` or a `user` (private claim; client ids and usernames are
    /// separate namespaces).
    pub sub_kind: String,
    /// PATs and plain tokens: the issuer (they are used at our own Protection API).
    /// RPTs: the resource server's client id.
    pub aud: String,
    pub client_id: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// Space-delimited scopes (absent on RPTs, Fed §5.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The grant family (authorization code and its refreshes) the token belongs to; revoking
    /// the family revokes the token (code or refresh-token replay, refresh-token revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// RPTs only: the resource owner whose resources `permissions` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// RPTs only: the granted UMA permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
}

impl AccessTokenClaims {
    /// Claims for a token for `subject`, obtained by `client_id`, valid for `lifetime` seconds.
    pub fn new(
        state: &AppState,
        subject: &Owner,
        client_id: &str,
        aud: &str,
        scope: &[String],
        lifetime: u64,
    ) -> Result<AccessTokenClaims> {
        let iat = unix_now();
        Ok(AccessTokenClaims {
            iss: state.config.issuer.clone(),
            sub: subject.id().to_owned(),
            sub_kind: subject.kind().to_owned(),
            aud: aud.to_owned(),
            client_id: client_id.to_owned(),
            iat,
            exp: iat + lifetime,
            jti: random_token(16)?,
            scope: (!scope.is_empty()).then(|| scope.join(" ")),
            family: None,
            owner: None,
            permissions: None,
        })
    }

    /// Claims of an RPT: `sub` is the requesting party, `aud` the resource server, `owner` the
    /// resource owner whose resources `permissions` name; no `scope` (Fed §5.1.1).
    #[allow(clippy::too_many_arguments)]
    pub fn rpt(
        state: &AppState,
        requesting_party: &Owner,
        client_id: &str,
        owner: &Owner,
        resource_server: &str,
        permissions: Vec<Permission>,
        lifetime: u64,
    ) -> Result<AccessTokenClaims> {
        let mut c = Self::new(
            state,
            requesting_party,
            client_id,
            resource_server,
            &[],
            lifetime,
        )?;
        c.owner = Some(owner.clone());
        c.permissions = Some(permissions);
        Ok(c)
    }

    /// The principal named by `sub` / `sub_kind`.
    pub fn subject(&self) -> Option<Owner> {
        Owner::from_parts(&self.sub_kind, &self.sub)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == scope))
    }

    pub fn is_rpt(&self) -> bool {
        self.permissions.is_some()
    }

    /// Signs the token. An RPT is remembered as verified for its first use (see
    /// [`crate::keys::Keys::sign_remembered`]): a resource server introspects a fresh RPT
    /// almost at once. Other tokens are not: a PAT's first use verifies it once and caches it,
    /// and remembering every token issued by client credentials would fill the cache (16,384
    /// entries, ~9 MB under the harness's PAT load) with tokens that may never come back.
    pub fn sign(&self, state: &AppState) -> Result<String> {
        if self.is_rpt() {
            state
                .keys
                .sign_remembered(self, &state.config.issuer, self.exp)
        } else {
            state.keys.sign(self)
        }
    }
}

/// Verifies a token we issued: signature, `typ`, issuer, expiry, and the revocation list.
/// `Ok(Err(reason))` for a token that is not valid, `Err` only for storage failures.
pub async fn validate(state: &AppState, token: &str) -> Result<Result<AccessTokenClaims, String>> {
    let verified =
        state
            .keys
            .verify_cached(token, &state.config.issuer, |c: &AccessTokenClaims| c.exp);
    let claims = match verified {
        Ok(c) => c,
        Err(reason) => return Ok(Err(reason)),
    };
    if state.store.is_revoked(&claims.jti).await? {
        return Ok(Err("token revoked".into()));
    }
    if let Some(f) = &claims.family
        && state.store.is_family_revoked(f).await?
    {
        return Ok(Err("token revoked".into()));
    }
    Ok(Ok(claims))
}
