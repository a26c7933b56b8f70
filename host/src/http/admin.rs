//! The admin API (`/admin/...`), guarded by the admin credential from the config
//! (`Authorization: Bearer <admin_token>`). Disabled (404) when no credential is configured.
//! Used by `uma-host admin ...`.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::no_store;
use super::extract::StrictJson;
use crate::error::{Error, Result};
use crate::oauth::clients::{self, NewClient};
use crate::oauth::users::{self, NewUser};
use crate::uma::pat::bearer_token;

/// Proof that the request carries the admin credential.
pub struct Admin;

impl Admin {
    /// Checks the admin credential in `parts`.
    pub fn check(parts: &Parts, state: &AppState) -> Result<Admin> {
        let Some(expected) = &state.config.admin_token else {
            return Err(Error::NotFound);
        };
        let given = bearer_token(&parts.headers)
            .ok()
            .flatten()
            .ok_or(Error::AdminUnauthorized)?;
        // Hash both sides so the comparison is constant-time regardless of length.
        let ok: bool = sha2::Sha256::digest(given.as_bytes())
            .ct_eq(&sha2::Sha256::digest(expected.as_bytes()))
            .into();
        if ok {
            Ok(Admin)
        } else {
            Err(Error::AdminUnauthorized)
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        Admin::check(parts, state)
    }
}

/// Permission to use the registration endpoint: anyone with `open_registration`, otherwise the
/// admin credential as RFC 7591 initial access token.
pub struct RegistrationAccess;

impl FromRequestParts<AppState> for RegistrationAccess {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if state.config.open_registration {
            return Ok(RegistrationAccess);
        }
        Admin::check(parts, state).map(|_| RegistrationAccess)
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients", get(list_clients).post(create_client))
        .route("/clients/{id}", get(get_client).delete(delete_client))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{name}", get(get_user).delete(delete_user))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
}

async fn list_clients(_: Admin, State(s): State<AppState>) -> Result<Json<Vec<Value>>> {
    Ok(Json(
        s.store
            .list_clients()
            .await?
            .iter()
            .map(clients::view)
            .collect(),
    ))
}

async fn create_client(
    _: Admin,
    State(s): State<AppState>,
    StrictJson(new): StrictJson<NewClient>,
) -> Result<Response> {
    let (client, secret) = clients::create(&s, new).await?;
    let mut v = clients::view(&client);
    if let Some(secret) = secret {
        v["client_secret"] = secret.into();
    }
    let mut r = (StatusCode::CREATED, Json(v)).into_response();
    no_store(&mut r);
    Ok(r)
}

async fn get_client(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let c = s.store.get_client(&id).await?.ok_or(Error::NotFound)?;
    Ok(Json(clients::view(&c)))
}

async fn delete_client(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    if s.store.delete_client(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound)
    }
}

async fn list_users(_: Admin, State(s): State<AppState>) -> Result<Json<Vec<Value>>> {
    Ok(Json(
        s.store
            .list_users()
            .await?
            .iter()
            .map(users::view)
            .collect(),
    ))
}

async fn create_user(
    _: Admin,
    State(s): State<AppState>,
    StrictJson(new): StrictJson<NewUser>,
) -> Result<(StatusCode, Json<Value>)> {
    let u = users::create(&s, new).await?;
    Ok((StatusCode::CREATED, Json(users::view(&u))))
}

async fn get_user(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let u = s.store.get_user(&name).await?.ok_or(Error::NotFound)?;
    Ok(Json(users::view(&u)))
}

async fn delete_user(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    if s.store.delete_user(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound)
    }
}

async fn list_keys(_: Admin, State(s): State<AppState>) -> Result<Json<Value>> {
    let keys: Vec<Value> = s
        .store
        .list_keys()
        .await?
        .iter()
        .map(|k| json!({ "kid": k.kid, "created_at": k.created_at, "retired_at": k.retired_at }))
        .collect();
    Ok(Json(json!(keys)))
}

async fn rotate_keys(_: Admin, State(s): State<AppState>) -> Result<Json<Value>> {
    let kid = s.keys.rotate().await?;
    Ok(Json(json!({ "kid": kid })))
}
