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
use super::openapi;
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

#[utoipa::path(get, path = "/admin/clients", tag = "admin",
    description = "Every registered client.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The clients", body = Vec<openapi::ClientView>),
        openapi::AdminErrors,
    ))]
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

#[utoipa::path(post, path = "/admin/clients", tag = "admin",
    description = "Create a client; the answer carries its secret, once.",
    request_body(content = NewClient, content_type = "application/json"),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created; `client_secret` for a confidential client", body = openapi::ClientView),
        (status = 409, description = "The client id exists", body = openapi::OAuthError),
        openapi::AdminErrors,
    ))]
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

#[utoipa::path(get, path = "/admin/clients/{id}", tag = "admin",
    description = "One client.",
    params(("id" = String, Path, description = "The client id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The client", body = openapi::ClientView),
        openapi::AdminErrors,
    ))]
async fn get_client(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let c = s.store.get_client(&id).await?.ok_or(Error::NotFound)?;
    Ok(Json(clients::view(&c)))
}

#[utoipa::path(delete, path = "/admin/clients/{id}", tag = "admin",
    description = "Delete a client.",
    params(("id" = String, Path, description = "The client id")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        openapi::AdminErrors,
    ))]
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

#[utoipa::path(get, path = "/admin/users", tag = "admin",
    description = "Every user.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The users", body = Vec<openapi::UserView>),
        openapi::AdminErrors,
    ))]
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

#[utoipa::path(post, path = "/admin/users", tag = "admin",
    description = "Create a user.",
    request_body(content = NewUser, content_type = "application/json"),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = openapi::UserView),
        (status = 409, description = "The username exists", body = openapi::OAuthError),
        openapi::AdminErrors,
    ))]
async fn create_user(
    _: Admin,
    State(s): State<AppState>,
    StrictJson(new): StrictJson<NewUser>,
) -> Result<(StatusCode, Json<Value>)> {
    let u = users::create(&s, new).await?;
    Ok((StatusCode::CREATED, Json(users::view(&u))))
}

#[utoipa::path(get, path = "/admin/users/{name}", tag = "admin",
    description = "One user.",
    params(("name" = String, Path, description = "The username")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The user", body = openapi::UserView),
        openapi::AdminErrors,
    ))]
async fn get_user(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let u = s.store.get_user(&name).await?.ok_or(Error::NotFound)?;
    Ok(Json(users::view(&u)))
}

#[utoipa::path(delete, path = "/admin/users/{name}", tag = "admin",
    description = "Delete a user.",
    params(("name" = String, Path, description = "The username")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        openapi::AdminErrors,
    ))]
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

#[utoipa::path(get, path = "/admin/keys", tag = "admin",
    description = "The signing keys, current and retired.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The keys", body = Vec<openapi::KeyView>),
        openapi::AdminErrors,
    ))]
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

#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin",
    description = "Retire the signing key and start signing with a fresh one.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The new key id", body = openapi::Kid),
        openapi::AdminErrors,
    ))]
async fn rotate_keys(_: Admin, State(s): State<AppState>) -> Result<Json<Value>> {
    let kid = s.keys.rotate().await?;
    Ok(Json(json!({ "kid": kid })))
}
