//! Thin handlers: extract, call one domain function, shape the success response. Failures are
//! [`Error`]s, turned into responses in [`super::error`].

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::error::no_store;
use super::extract::{FormParams, StrictJson};
use crate::error::{Error, Result};
use crate::oauth::authorize::{self, CSRF_COOKIE, Outcome};
use crate::oauth::client_auth::{self, AuthMethod, ClientRequest};
use crate::oauth::{revoke as revocation, token as token_endpoint};
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

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn not_found() -> Error {
    Error::NotFound
}

pub async fn discovery(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(discovery::document(&s.config))
}

pub async fn jwks(State(s): State<AppState>) -> Response {
    let mut r = Json(s.keys.jwks()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    r
}

// --- OAuth ---

pub async fn token(State(s): State<AppState>, req: ClientRequest) -> Result<Response> {
    let resp = token_endpoint::token(&s, &req).await?;
    Ok(json_no_store(StatusCode::OK, resp))
}

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

pub async fn claims_page(State(s): State<AppState>, RawQuery(q): RawQuery) -> Result<Response> {
    let p = interaction::begin(&s, q.as_deref().unwrap_or("")).await?;
    Ok(claims_response(&s, p))
}

pub async fn claims_submit(State(s): State<AppState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let form = FormParams::from_body(&parts.headers, body, s.config.max_body_bytes).await?;
    let p =
        interaction::submit(&s, &form, cookie(&parts.headers, interaction::CSRF_COOKIE)).await?;
    Ok(claims_response(&s, p))
}

// --- UMA Protection API ---

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

pub async fn update_resource(
    State(s): State<AppState>,
    pat: Pat,
    Path(id): Path<String>,
    StrictJson(input): StrictJson<ResourceInput>,
) -> Result<Json<serde_json::Value>> {
    resources::update(&s, &pat, &id, input).await?;
    Ok(Json(serde_json::json!({ "_id": id })))
}

pub async fn delete_resource(
    State(s): State<AppState>,
    pat: Pat,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    resources::delete(&s, &pat, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_resources(
    State(s): State<AppState>,
    pat: Pat,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<String>>> {
    let q = ListQuery::parse(q.as_deref().unwrap_or(""))?;
    Ok(Json(resources::list(&s, &pat, &q).await?))
}

pub async fn register(
    State(s): State<AppState>,
    _: super::admin::RegistrationAccess,
    StrictJson(req): StrictJson<crate::oauth::registration::RegistrationRequest>,
) -> Result<Response> {
    let v = crate::oauth::registration::register(&s, req).await?;
    Ok(json_no_store(StatusCode::CREATED, v))
}

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
