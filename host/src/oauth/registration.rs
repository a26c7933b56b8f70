//! Dynamic client registration (RFC 7591), with UMA's `claims_redirect_uris` (Grant §2, D-16).
//!
//! By default the endpoint is protected: the initial access token is the admin credential, so
//! only operators (or tooling they trust) can register clients. With `open_registration` anyone
//! may register; a registered client still only ever owns its own resources, but it can
//! pre-register any scope it likes for the UMA grant, so enable that only where clients are
//! not adversarial or policies do not trust client scopes blindly.

use serde::Deserialize;
use serde_json::{Value, json};

use super::clients::{self, NewClient};
use super::split_scope;
use crate::error::{Error, Result};
use crate::http::AppState;

/// The client metadata we understand (RFC 7591 §2); other members are ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegistrationRequest {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub claims_redirect_uris: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Registers a client and returns the RFC 7591 §3.2.1 response body.
pub async fn register(state: &AppState, req: RegistrationRequest) -> Result<Value> {
    let method = req
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".to_owned());
    let public = match method.as_str() {
        "none" => true,
        "client_secret_basic" | "client_secret_post" => false,
        other => {
            return Err(Error::InvalidClientMetadata(format!(
                "token_endpoint_auth_method {other:?} is not supported"
            )));
        }
    };
    let response_types = req.response_types.unwrap_or_else(|| vec!["code".into()]);
    if let Some(rt) = response_types.iter().find(|r| *r != "code") {
        return Err(Error::InvalidClientMetadata(format!(
            "response_type {rt:?} is not supported"
        )));
    }
    let new = NewClient {
        client_id: None,
        client_secret: None,
        public,
        redirect_uris: req.redirect_uris,
        claims_redirect_uris: req.claims_redirect_uris,
        scopes: req.scope.as_deref().map(split_scope).unwrap_or_default(),
        grant_types: req.grant_types,
        name: req.client_name,
    };
    let (client, secret) = clients::create(state, new).await.map_err(|e| match e {
        Error::InvalidRequest(m) => Error::InvalidClientMetadata(m),
        e => e,
    })?;
    let mut v = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "redirect_uris": client.redirect_uris,
        "claims_redirect_uris": client.claims_redirect_uris,
        "grant_types": client.grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": method,
    });
    if let Some(s) = secret {
        v["client_secret"] = s.into();
        v["client_secret_expires_at"] = 0.into();
    }
    if let Some(n) = client.name {
        v["client_name"] = n.into();
    }
    if !client.scopes.is_empty() {
        v["scope"] = client.scopes.join(" ").into();
    }
    // RFC 7591 §3.2.1 echoes metadata; drop empty arrays like discovery does.
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| x.as_array().is_none_or(|a| !a.is_empty()));
    }
    Ok(v)
}
