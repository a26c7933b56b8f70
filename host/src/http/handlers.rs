//! Thin handlers: extract, call one domain function, shape the success response. Failures are
//! [`Error`]s, turned into responses in [`super::error`].

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::error::no_store;
use super::extract::{FormParams, StrictJson};
use super::openapi;
use crate::error::{Error, Result};
use crate::oauth::authorize::{self, CSRF_COOKIE, Outcome};
use crate::oauth::client_auth::{self, AuthMethod, ClientRequest};
use crate::oauth::{revoke as revocation, token as token_endpoint};
use crate::store;
use crate::uma::discovery::{self, paths};
use crate::uma::interaction;
use crate::uma::introspect::{self as introspection, Caller};
use crate::uma::pat::{self, Pat};
use crate::uma::permission as permissions;
use crate::uma::resources::{self, ListQuery, ResourceInput};

fn json_no_store(status: StatusCode, v: impl serde::Serialize) -> Response {
    let mut r = (status, Json(v)).into_response();
    no_store(&mut r);
    r
}

#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "The server is up", body = openapi::Health)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn not_found() -> Error {
    Error::NotFound
}

#[utoipa::path(get, path = "/.well-known/uma2-configuration", tag = "discovery",
    description = "Also served at `/.well-known/oauth-authorization-server` (RFC 8414).",
    responses((status = 200, description = "The discovery document", body = openapi::Discovery)))]
pub async fn discovery(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(discovery::document(&s.config))
}

#[utoipa::path(get, path = "/jwks", tag = "discovery",
    responses((status = 200, description = "The signing keys", content_type = "application/jwk-set+json", body = openapi::Jwks)))]
pub async fn jwks(State(s): State<AppState>) -> Response {
    let mut r = Json(s.keys.jwks()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    r
}

// --- OAuth ---

#[utoipa::path(post, path = "/token", tag = "oauth",
    description = "The token endpoint (RFC 6749 §3.2) with the grants `authorization_code` (PKCE), \
        `client_credentials`, `refresh_token` and `urn:ietf:params:oauth:grant-type:uma-ticket` \
        (UMA Grant §3.3).",
    request_body(content = openapi::TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Tokens", body = openapi::TokenSuccess),
        (status = 403, description = "UMA grant: `need_info`, `request_submitted`, `request_denied`; \
            or `quota_exceeded`", body = openapi::UmaTokenError),
        openapi::ClientErrors,
    ))]
pub async fn token(State(s): State<AppState>, req: ClientRequest) -> Result<Response> {
    // One flush for every write of the request (ticket, audit, RPT; code, refresh token).
    let resp = store::one_sync(&*s.store, token_endpoint::token(&s, &req)).await?;
    Ok(json_no_store(StatusCode::OK, resp))
}

#[utoipa::path(post, path = "/revoke", tag = "oauth",
    description = "Token revocation (RFC 7009).",
    request_body(content = openapi::TokenQuestion, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or the token was unknown", body = openapi::Empty),
        openapi::ClientErrors,
    ))]
pub async fn revoke(State(s): State<AppState>, req: ClientRequest) -> Result<Response> {
    revocation::revoke(&s, &req).await?;
    Ok(json_no_store(StatusCode::OK, serde_json::json!({})))
}

fn outcome_response(s: &AppState, o: Outcome) -> Response {
    page_response(s, o, CSRF_COOKIE, paths::AUTHORIZE)
}

/// An HTML page, redirect or error page of the browser-facing endpoints, with the anti-CSRF
/// cookie `cookie_name` scoped to `path`, and headers that forbid framing and caching.
fn page_response(s: &AppState, o: Outcome, cookie_name: &str, path: &str) -> Response {
    let mut r = match o {
        Outcome::LoginPage { html, csrf } => {
            let mut r = Html(html).into_response();
            let secure = if s.config.issuer.starts_with("https:") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{cookie_name}={csrf}; Path={}{path}; HttpOnly; SameSite=Strict{secure}",
                s.config.base_path(),
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Outcome::Redirect(location) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Outcome::ErrorPage { status, message } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Html(authorize::error_html(&message)),
        )
            .into_response(),
    };
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(&mut r);
    r
}

#[utoipa::path(get, path = "/authorize", tag = "oauth",
    description = "The authorization endpoint (RFC 6749 §4.1, PKCE S256 required): shows the \
        login and consent page and sets its anti-CSRF cookie.",
    params(openapi::AuthorizeQuery),
    responses(
        (status = 200, description = "The login page", content_type = "text/html", body = String),
        (status = 303, description = "Back to the client's redirect URI with `error`"),
        (status = 400, description = "Unknown client or redirect URI (an HTML page)", content_type = "text/html", body = String),
        (status = 500, description = "`server_error`", body = openapi::OAuthError),
    ))]
pub async fn authorize_page(State(s): State<AppState>, RawQuery(q): RawQuery) -> Result<Response> {
    let o = authorize::begin(&s, q.as_deref().unwrap_or("")).await?;
    Ok(outcome_response(&s, o))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[utoipa::path(post, path = "/authorize", tag = "oauth",
    description = "The login form of the authorization page; with the anti-CSRF cookie.",
    request_body(content = openapi::AuthorizeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The login page again (wrong credentials)", content_type = "text/html", body = String),
        (status = 303, description = "Back to the client's redirect URI with `code` and `state`, or `error`"),
        (status = 400, description = "Expired or unknown login (an HTML page); or a malformed form", content(
            (String = "text/html"), (openapi::OAuthError = "application/json"))),
        (status = 403, description = "The anti-CSRF cookie is missing or wrong, or too many wrong \
            passwords (an HTML page)", content_type = "text/html", body = String),
        (status = 413, description = "Request body too large", body = openapi::OAuthError),
        (status = 500, description = "`server_error`", body = openapi::OAuthError),
    ))]
pub async fn authorize_submit(State(s): State<AppState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let form = FormParams::from_body(&parts.headers, body, s.config.max_body_bytes).await?;
    let o = authorize::finish(&s, &form, cookie(&parts.headers, CSRF_COOKIE)).await?;
    Ok(outcome_response(&s, o))
}

// --- UMA claims interaction ---

fn claims_response(s: &AppState, p: interaction::Page) -> Response {
    let o = match p {
        interaction::Page::Html { html, csrf } => Outcome::LoginPage { html, csrf },
        interaction::Page::Other(o) => o,
    };
    page_response(s, o, interaction::CSRF_COOKIE, paths::CLAIMS_INTERACTION)
}

#[utoipa::path(get, path = "/claims", tag = "uma-grant",
    description = "The claims interaction endpoint (UMA Grant §3.3.2): the requesting party \
        logs in and answers the owner's claims plugins, then is redirected back to the client \
        with a new ticket.",
    params(openapi::ClaimsQuery),
    responses(
        (status = 200, description = "The first page of the dialogue", content_type = "text/html", body = String),
        (status = 303, description = "Back to the client's claims redirect URI with `ticket` or `error`"),
        (status = 400, description = "Unknown client, redirect URI or ticket (an HTML page)", content_type = "text/html", body = String),
        (status = 500, description = "`server_error`", body = openapi::OAuthError),
    ))]
pub async fn claims_page(State(s): State<AppState>, RawQuery(q): RawQuery) -> Result<Response> {
    let p = interaction::begin(&s, q.as_deref().unwrap_or("")).await?;
    Ok(claims_response(&s, p))
}

#[utoipa::path(post, path = "/claims", tag = "uma-grant",
    description = "A page of the claims dialogue came back; with the anti-CSRF cookie.",
    request_body(content = openapi::ClaimsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The next page of the dialogue", content_type = "text/html", body = String),
        (status = 303, description = "Back to the client's claims redirect URI with `ticket`, `state` or `error`"),
        (status = 400, description = "Expired or unknown session (an HTML page); or a malformed form", content(
            (String = "text/html"), (openapi::OAuthError = "application/json"))),
        (status = 403, description = "The anti-CSRF token is missing or wrong (an HTML page)", content_type = "text/html", body = String),
        (status = 413, description = "Request body too large", body = openapi::OAuthError),
        (status = 500, description = "`server_error`", body = openapi::OAuthError),
    ))]
pub async fn claims_submit(State(s): State<AppState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let form = FormParams::from_body(&parts.headers, body, s.config.max_body_bytes).await?;
    let p =
        interaction::submit(&s, &form, cookie(&parts.headers, interaction::CSRF_COOKIE)).await?;
    Ok(claims_response(&s, p))
}

// --- UMA Protection API ---

#[utoipa::path(post, path = "/introspect", tag = "uma-protection",
    description = "Token introspection (RFC 7662, UMA Fed §5) by a PAT or by the resource \
        server's client credentials (`client_secret_basic` or `client_secret_post`).",
    request_body(content = openapi::TokenQuestion, content_type = "application/x-www-form-urlencoded"),
    security(("pat" = []), ("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "The token's state", body = openapi::Introspection),
        (status = 400, description = "Malformed request", body = openapi::OAuthError),
        (status = 401, description = "No credentials (empty body), `invalid_token` or `invalid_client`", body = openapi::OAuthError),
        (status = 403, description = "`insufficient_scope`", body = openapi::OAuthError),
        (status = 413, description = "Request body too large", body = openapi::OAuthError),
        (status = 500, description = "`server_error`", body = openapi::OAuthError),
    ))]
pub async fn introspect(State(s): State<AppState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let limit = s.config.max_body_bytes;
    let (caller, params) = match pat::bearer_token(&parts.headers)? {
        // Authenticate before looking at the body (RR-23 ordering).
        Some(t) => {
            let p = pat::authenticate(&s, t).await?;
            let params = FormParams::from_body(&parts.headers, body, limit).await?;
            if params.get("access_token").is_some() {
                return Err(Error::invalid_request(
                    "the access token was sent by more than one method",
                ));
            }
            (Caller::Pat(p), params)
        }
        None => {
            let has_auth = parts.headers.contains_key(header::AUTHORIZATION);
            let params = match FormParams::from_body(&parts.headers, body, limit).await {
                Ok(p) => p,
                Err(_) if !has_auth => return Err(Error::MissingToken),
                Err(e) => return Err(e),
            };
            match client_auth::authenticate(&s, &parts.headers, &params).await? {
                Some((_, AuthMethod::None)) => {
                    return Err(Error::InvalidClient { basic: false });
                }
                Some((c, _)) => (Caller::Client(c), params),
                None => return Err(Error::MissingToken),
            }
        }
    };
    let v = introspection::introspect(&s, &caller, &params).await?;
    Ok(json_no_store(StatusCode::OK, v))
}

#[utoipa::path(post, path = "/resource_set", tag = "uma-protection",
    description = "Register a resource (Fed §3.4.1).",
    request_body(content = ResourceInput, content_type = "application/json"),
    security(("pat" = [])),
    responses(
        (status = 201, description = "Registered; `Location` is its URL", body = openapi::ResourceId,
            headers(("Location" = String, description = "The resource's URL"))),
        openapi::BearerErrors,
    ))]
pub async fn create_resource(
    State(s): State<AppState>,
    pat: Pat,
    StrictJson(input): StrictJson<ResourceInput>,
) -> Result<Response> {
    let id = resources::create(&s, &pat, input).await?;
    let location = s.config.endpoint(&format!("{}/{id}", paths::RESOURCE_SET));
    let mut r = (StatusCode::CREATED, Json(serde_json::json!({ "_id": id }))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/resource_set/{id}", tag = "uma-protection",
    description = "Read a resource description (Fed §3.4.2).",
    params(("id" = String, Path, description = "The resource's id")),
    security(("pat" = [])),
    responses(
        (status = 200, description = "The description as registered", body = openapi::ResourceWithId),
        (status = 404, description = "No such resource for this PAT's owner and resource server", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
pub async fn read_resource(
    State(s): State<AppState>,
    pat: Pat,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let r = resources::read(&s, &pat, &id).await?;
    let mut v = serde_json::to_value(r)?;
    v["_id"] = id.into();
    Ok(Json(v))
}

#[utoipa::path(put, path = "/resource_set/{id}", tag = "uma-protection",
    description = "Replace a resource description (Fed §3.4.3).",
    params(("id" = String, Path, description = "The resource's id")),
    request_body(content = ResourceInput, content_type = "application/json"),
    security(("pat" = [])),
    responses(
        (status = 200, description = "Replaced", body = openapi::ResourceId),
        (status = 404, description = "No such resource for this PAT's owner and resource server", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
pub async fn update_resource(
    State(s): State<AppState>,
    pat: Pat,
    Path(id): Path<String>,
    StrictJson(input): StrictJson<ResourceInput>,
) -> Result<Json<serde_json::Value>> {
    resources::update(&s, &pat, &id, input).await?;
    Ok(Json(serde_json::json!({ "_id": id })))
}

#[utoipa::path(delete, path = "/resource_set/{id}", tag = "uma-protection",
    description = "Delete a resource (Fed §3.4.4).",
    params(("id" = String, Path, description = "The resource's id")),
    security(("pat" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such resource for this PAT's owner and resource server", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
pub async fn delete_resource(
    State(s): State<AppState>,
    pat: Pat,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    resources::delete(&s, &pat, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/resource_set", tag = "uma-protection",
    description = "List the ids of the PAT's resources (Fed §3.4.5).",
    params(openapi::ResourceListQuery),
    security(("pat" = [])),
    responses(
        (status = 200, description = "Resource ids", body = Vec<String>),
        openapi::BearerErrors,
    ))]
pub async fn list_resources(
    State(s): State<AppState>,
    pat: Pat,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<String>>> {
    let q = ListQuery::parse(q.as_deref().unwrap_or(""))?;
    Ok(Json(resources::list(&s, &pat, &q).await?))
}

#[utoipa::path(post, path = "/register", tag = "oauth",
    description = "Dynamic client registration (RFC 7591). The admin credential is the initial \
        access token unless `open_registration` is set; without an admin credential and with \
        registration closed the endpoint answers 404.",
    request_body(content = crate::oauth::registration::RegistrationRequest, content_type = "application/json"),
    security(("admin_token" = []), ()),
    responses(
        (status = 201, description = "Registered", body = openapi::RegistrationResponse),
        (status = 400, description = "`invalid_request`, `invalid_client_metadata`, `invalid_redirect_uri`", body = openapi::OAuthError),
        (status = 401, description = "Missing or wrong initial access token", body = openapi::OAuthError),
        (status = 404, description = "Registration is disabled", body = openapi::OAuthError),
        (status = 413, description = "Request body too large", body = openapi::OAuthError),
        (status = 500, description = "`server_error`", body = openapi::OAuthError),
    ))]
pub async fn register(
    State(s): State<AppState>,
    _: super::admin::RegistrationAccess,
    StrictJson(req): StrictJson<crate::oauth::registration::RegistrationRequest>,
) -> Result<Response> {
    let v = crate::oauth::registration::register(&s, req).await?;
    Ok(json_no_store(StatusCode::CREATED, v))
}

#[utoipa::path(post, path = "/permission", tag = "uma-protection",
    description = "Request a permission ticket (Fed §4).",
    request_body(content = openapi::PermissionRequest, content_type = "application/json"),
    security(("pat" = [])),
    responses(
        (status = 201, description = "The ticket", body = openapi::TicketResponse),
        (status = 400, description = "`invalid_request`, `invalid_resource_id`, `invalid_scope`", body = openapi::OAuthError),
        openapi::BearerErrors,
    ))]
pub async fn permission(
    State(s): State<AppState>,
    pat: Pat,
    StrictJson(body): StrictJson<serde_json::Value>,
) -> Result<Response> {
    let requested = permissions::parse_request(body)?;
    let ticket = permissions::request_ticket(&s, &pat, requested).await?;
    Ok(json_no_store(
        StatusCode::CREATED,
        serde_json::json!({ "ticket": ticket }),
    ))
}
