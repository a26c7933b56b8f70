//! Client authentication (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, and
//! `none` for public clients, as an axum extractor that also yields the form parameters.
//!
//! Rules: Basic credentials are form-url-decoded before use (§2.3.1); Basic plus a body
//! `client_secret` is two methods (`invalid_request`); a Bearer header is not client
//! authentication and is ignored here; every failure is `invalid_client` without saying which
//! part was wrong (S22), with a `Basic` challenge when Basic was tried.

use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use base64::Engine;

use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{FormParams, authorization};
use crate::store::Client;

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client identified by `client_id` only.
    None,
}

/// An authenticated client together with the request's form parameters.
#[derive(Debug)]
pub struct ClientRequest {
    pub client: Client,
    pub method: AuthMethod,
    pub params: FormParams,
}

impl FromRequest<AppState> for ClientRequest {
    type Rejection = Error;
    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let (parts, body) = req.into_parts();
        let params =
            FormParams::from_body(&parts.headers, body, state.config.max_body_bytes).await?;
        match authenticate(state, &parts.headers, &params).await? {
            Some((client, method)) => Ok(ClientRequest {
                client,
                method,
                params,
            }),
            None => Err(Error::InvalidClient { basic: false }),
        }
    }
}

fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// `Some((id, secret))` for an `Authorization: Basic` header; `Err` if it is malformed.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>> {
    // Another scheme (e.g. a Bearer token) is not client authentication.
    let Some(rest) = authorization(headers, "basic")? else {
        return Ok(None);
    };
    let bad = || Error::InvalidClient { basic: true };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
    Ok(Some((
        form_decode(id).ok_or_else(bad)?,
        form_decode(secret).ok_or_else(bad)?,
    )))
}

/// Authenticates the client of a request. `Ok(None)` when the request carries no client
/// credentials at all.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &FormParams,
) -> Result<Option<(Client, AuthMethod)>> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let Some((id, secret)) = basic_credentials(headers)? {
        if body_secret.is_some() {
            return Err(Error::invalid_request(
                "client authenticated with more than one method",
            ));
        }
        if body_id.is_some_and(|b| b != id) {
            return Err(Error::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
        let client = check_secret(state, &id, &secret, true).await?;
        return Ok(Some((client, AuthMethod::ClientSecretBasic)));
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => {
            let client = check_secret(state, id, secret, false).await?;
            Ok(Some((client, AuthMethod::ClientSecretPost)))
        }
        (Some(id), None) => match state.store.get_client(id).await? {
            Some(c) if c.is_public() => Ok(Some((c, AuthMethod::None))),
            _ => Err(Error::InvalidClient { basic: false }),
        },
        (None, Some(_)) => Err(Error::InvalidClient { basic: false }),
        (None, None) => Ok(None),
    }
}

async fn check_secret(state: &AppState, id: &str, secret: &str, basic: bool) -> Result<Client> {
    let client = state.store.get_client(id).await?;
    let stored = client.as_ref().and_then(|c| c.secret_hash.clone());
    // Always compute one HMAC so unknown ids and public clients cost the same as a wrong secret.
    let ok = match &stored {
        Some(h) => state.secrets.verify(secret, h),
        None => {
            let _ = state.secrets.verify(secret, "00");
            false
        }
    };
    match client {
        Some(c) if ok => Ok(c),
        _ => Err(Error::InvalidClient { basic }),
    }
}
