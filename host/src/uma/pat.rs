//! The PAT (Fed §1.3): every Protection API route takes a [`Pat`] extractor, so no route can
//! forget to demand a valid bearer token with `uma_protection` (S13). Refusals follow RFC 6750
//! §3.1: no credentials → 401 bare challenge; bad, expired or revoked → 401 `invalid_token`;
//! wrong scope (or an RPT) → 403 `insufficient_scope`; a token sent two ways → 400.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::authorization;
use crate::oauth::UMA_PROTECTION;
use crate::oauth::access_token::{AccessTokenClaims, validate};
use crate::store::{Owner, ResourceScope};

/// An authenticated Protection API caller: a resource server acting for one resource owner.
#[derive(Debug, Clone)]
pub struct Pat {
    pub claims: AccessTokenClaims,
    scope: ResourceScope,
}

impl Pat {
    /// The (owner, resource server) pair every operation of this caller is scoped by.
    pub fn scope(&self) -> &ResourceScope {
        &self.scope
    }
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>> {
    match authorization(headers, "bearer")? {
        Some("") => Err(Error::InvalidToken("empty bearer token".into())),
        t => Ok(t),
    }
}

/// Checks a bearer token as a PAT.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Pat> {
    let claims = validate(state, token).await?.map_err(Error::InvalidToken)?;
    if claims.is_rpt() || claims.aud != state.config.issuer {
        // An RPT is never a PAT (S-6).
        return Err(Error::InsufficientScope(UMA_PROTECTION));
    }
    if !claims.has_scope(UMA_PROTECTION) {
        return Err(Error::InsufficientScope(UMA_PROTECTION));
    }
    let owner = claims
        .subject()
        .ok_or_else(|| Error::InvalidToken("unknown subject kind".into()))?;
    // A PAT dies with its resource server client or its owner.
    let rs_exists = state.store.get_client(&claims.client_id).await?.is_some();
    let owner_exists = match &owner {
        Owner::Client(c) => c == &claims.client_id || state.store.get_client(c).await?.is_some(),
        Owner::User(u) => state.store.get_user(u).await?.is_some(),
    };
    if !rs_exists || !owner_exists {
        return Err(Error::InvalidToken(
            "the token's client or owner no longer exists".into(),
        ));
    }
    let scope = ResourceScope {
        owner,
        resource_server: claims.client_id.clone(),
    };
    Ok(Pat { claims, scope })
}

impl FromRequestParts<AppState> for Pat {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header_token = bearer_token(&parts.headers)?;
        let in_query = parts.uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
        });
        match (header_token, in_query) {
            (Some(_), true) => Err(Error::invalid_request(
                "the access token was sent by more than one method",
            )),
            (None, true) => Err(Error::invalid_request(
                "access tokens are accepted only in the Authorization header",
            )),
            (None, false) => Err(Error::MissingToken),
            (Some(t), false) => authenticate(state, t).await,
        }
    }
}
