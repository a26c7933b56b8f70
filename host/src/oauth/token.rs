//! The token endpoint (RFC 6749 §3.2): grant dispatch and token responses.
//!
//! To add a grant: put its name in [`SUPPORTED_GRANTS`] (discovery's `grant_types_supported`
//! is derived from it) and add a match arm in [`token`] that returns a [`TokenResponse`].

use serde::Serialize;

use super::access_token::AccessTokenClaims;
use super::client_auth::{AuthMethod, ClientRequest};
use super::{UMA_PROTECTION, grant, split_scope};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::keys::random_token;
use crate::store::{Owner, RefreshGrant, unix_now};

/// Grant types the token endpoint implements, in discovery order.
pub const SUPPORTED_GRANTS: &[&str] = &[
    grant::AUTHORIZATION_CODE,
    grant::CLIENT_CREDENTIALS,
    grant::REFRESH_TOKEN,
    grant::UMA_TICKET,
];

/// A successful token response (RFC 6749 §5.1). `extra` carries grant-specific members such as
/// UMA's `pct` and `upgraded`.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Dispatches a token request of an authenticated client to its grant.
pub async fn token(state: &AppState, req: &ClientRequest) -> Result<TokenResponse> {
    let grant_type = req.params.require("grant_type")?;
    if !SUPPORTED_GRANTS.contains(&grant_type) {
        return Err(Error::UnsupportedGrantType);
    }
    if !req.client.may_use_grant(grant_type) {
        return Err(Error::UnauthorizedClient(format!(
            "client is not registered for {grant_type}"
        )));
    }
    match grant_type {
        grant::CLIENT_CREDENTIALS => client_credentials(state, req).await,
        grant::AUTHORIZATION_CODE => authorization_code(state, req).await,
        grant::REFRESH_TOKEN => refresh_token(state, req).await,
        grant::UMA_TICKET => crate::uma::grant::redeem(state, req).await,
        _ => Err(Error::UnsupportedGrantType),
    }
}

fn check_scope(client: &crate::store::Client, requested: &[String]) -> Result<()> {
    match super::unavailable_scope(client, requested) {
        Some(s) => Err(Error::InvalidScope(format!(
            "scope {s} is not available to this client"
        ))),
        None => Ok(()),
    }
}

/// How long a grant family must be remembered: as long as any of its tokens can live.
fn family_horizon(state: &AppState) -> u64 {
    unix_now()
        + state
            .config
            .refresh_token_lifetime_secs
            .max(state.config.access_token_lifetime_secs)
}

/// Revokes a grant family because one of its single-use credentials was replayed.
async fn revoke_replayed(state: &AppState, family: &str, what: &str) -> Error {
    tracing::warn!(family, "{what} replayed: revoking its grant");
    match state
        .store
        .revoke_family(family, family_horizon(state))
        .await
    {
        Ok(()) => Error::InvalidGrant(format!(
            "{what} was already used; the tokens issued from it are revoked"
        )),
        Err(e) => e,
    }
}

/// Signs an access token for `subject` (in grant `family`, if any) and, if `refresh` gives
/// its scope, stores a refresh token of the same family.
async fn issue(
    state: &AppState,
    subject: &Owner,
    client_id: &str,
    scope: &[String],
    family: Option<&str>,
    refresh: Option<&[String]>,
) -> Result<TokenResponse> {
    let lifetime = state.config.access_token_lifetime_secs;
    let mut claims = AccessTokenClaims::new(
        state,
        subject,
        client_id,
        &state.config.issuer,
        scope,
        lifetime,
    )?;
    claims.family = family.map(str::to_owned);
    let access_token = claims.sign(state)?;
    let refresh_token = match refresh {
        Some(refresh_scope) => {
            let token = random_token(32)?;
            let grant = RefreshGrant {
                client_id: client_id.to_owned(),
                subject: subject.clone(),
                scope: refresh_scope.to_vec(),
                exp: unix_now() + state.config.refresh_token_lifetime_secs,
                family: family.unwrap_or_default().to_owned(),
            };
            state.store.put_refresh(&token, &grant).await?;
            Some(token)
        }
        None => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: claims.scope.clone(),
        refresh_token,
        extra: Default::default(),
    })
}

/// RFC 6749 §4.4: a token for the client itself. With `uma_protection` it is a PAT for the
/// resources the resource server owns itself. No refresh token (§4.4.3).
async fn client_credentials(state: &AppState, req: &ClientRequest) -> Result<TokenResponse> {
    if req.method == AuthMethod::None {
        return Err(Error::UnauthorizedClient(
            "public clients cannot use client_credentials".into(),
        ));
    }
    let scope = match req.params.get("scope") {
        Some(s) => split_scope(s),
        None => vec![UMA_PROTECTION.to_owned()],
    };
    check_scope(&req.client, &scope)?;
    let subject = Owner::Client(req.client.client_id.clone());
    issue(state, &subject, &req.client.client_id, &scope, None, None).await
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6, S256 only): the PAT represents the user who logged
/// in and consented.
async fn authorization_code(state: &AppState, req: &ClientRequest) -> Result<TokenResponse> {
    let code = req.params.require("code")?;
    let verifier = req.params.require("code_verifier")?;
    if !(43..=128).contains(&verifier.len())
        || !verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(Error::invalid_request(
            "code_verifier must be 43-128 characters from A-Z a-z 0-9 - . _ ~",
        ));
    }
    let Some(stored) = state.store.take_code(code).await? else {
        // RFC 6749 §4.1.2: a code used twice revokes what it produced.
        if let Some(family) = state.store.spent_family(code).await? {
            return Err(revoke_replayed(state, &family, "authorization code").await);
        }
        return Err(Error::InvalidGrant("unknown, used or expired code".into()));
    };
    if stored.client_id != req.client.client_id {
        return Err(Error::InvalidGrant(
            "code was issued to another client".into(),
        ));
    }
    match (
        stored.redirect_uri.as_deref(),
        req.params.get("redirect_uri"),
    ) {
        (Some(a), Some(b)) if a == b => {}
        (None, None) => {}
        _ => return Err(Error::InvalidGrant("redirect_uri does not match".into())),
    }
    if !super::authorize::pkce_matches(verifier, &stored.code_challenge) {
        return Err(Error::InvalidGrant("code_verifier does not match".into()));
    }
    if state.store.get_user(&stored.username).await?.is_none() {
        return Err(Error::InvalidGrant("the user no longer exists".into()));
    }
    let subject = Owner::User(stored.username);
    let family = random_token(16)?;
    state
        .store
        .put_spent(code, &family, family_horizon(state))
        .await?;
    let refresh = req
        .client
        .may_use_grant(grant::REFRESH_TOKEN)
        .then_some(stored.scope.as_slice());
    issue(
        state,
        &subject,
        &req.client.client_id,
        &stored.scope,
        Some(&family),
        refresh,
    )
    .await
}

/// RFC 6749 §6: refresh tokens are bound to their client and rotated on every use; a replayed
/// (already rotated) refresh token, or one presented by another client, revokes its whole
/// grant family (OAuth 2.0 Security BCP, refresh token rotation).
async fn refresh_token(state: &AppState, req: &ClientRequest) -> Result<TokenResponse> {
    let token = req.params.require("refresh_token")?;
    let Some(stored) = state.store.take_refresh(token).await? else {
        if let Some(family) = state.store.spent_family(token).await? {
            return Err(revoke_replayed(state, &family, "refresh token").await);
        }
        return Err(Error::InvalidGrant(
            "unknown, used or expired refresh token".into(),
        ));
    };
    let family = (!stored.family.is_empty()).then_some(stored.family.as_str());
    if let Some(f) = family {
        state.store.put_spent(token, f, stored.exp).await?;
        if state.store.is_family_revoked(f).await? {
            return Err(Error::InvalidGrant("refresh token revoked".into()));
        }
    }
    if stored.client_id != req.client.client_id {
        if let Some(f) = family {
            return Err(revoke_replayed(state, f, "refresh token of another client").await);
        }
        return Err(Error::InvalidGrant(
            "refresh token was issued to another client".into(),
        ));
    }
    let scope = match req.params.get("scope") {
        Some(s) => {
            let s = split_scope(s);
            if let Some(extra) = s.iter().find(|x| !stored.scope.contains(x)) {
                return Err(Error::InvalidScope(format!(
                    "scope {extra} was not granted originally"
                )));
            }
            s
        }
        None => stored.scope.clone(),
    };
    let exists = match &stored.subject {
        Owner::User(u) => state.store.get_user(u).await?.is_some(),
        Owner::Client(c) => state.store.get_client(c).await?.is_some(),
    };
    if !exists {
        return Err(Error::InvalidGrant(
            "the token's subject no longer exists".into(),
        ));
    }
    issue(
        state,
        &stored.subject,
        &req.client.client_id,
        &scope,
        family,
        Some(&stored.scope),
    )
    .await
}
