//! The one place where failures become HTTP: domain [`Error`] → status, OAuth/UMA error JSON
//! (RFC 6749 §5.2, Fed §6), `WWW-Authenticate` (RFC 6750 §3, RFC 6749 §5.2 Basic), and
//! `Cache-Control: no-store`. Also turns axum's own empty or plain-text rejections (405, 404,
//! 413, …) into the same JSON shape.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;

use crate::error::Error;

/// Realm of our `WWW-Authenticate` challenges.
pub const REALM: &str = "uma-host";

/// RFC 6749 §5.2 restricts `error_description` to %x20-21 / %x23-5B / %x5D-7E: replace anything
/// else (quotes, backslashes, control and non-ASCII characters).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .take(300)
        .collect()
}

fn body(status: StatusCode, code: &str, description: Option<&str>) -> Response<Body> {
    let mut obj = serde_json::Map::new();
    obj.insert("error".into(), code.into());
    if let Some(d) = description {
        obj.insert("error_description".into(), sanitize(d).into());
    }
    let mut r = (status, axum::Json(serde_json::Value::Object(obj))).into_response();
    no_store(&mut r);
    r
}

/// RFC 6749 §5.1 / G-11: responses carrying tokens (and, following the UMA examples, errors)
/// must not be cached.
pub fn no_store<B>(r: &mut Response<B>) {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn challenge(r: &mut Response<Body>, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        use StatusCode as S;
        match &self {
            Error::InvalidRequest(d) => body(S::BAD_REQUEST, "invalid_request", Some(d)),
            Error::PayloadTooLarge => body(
                S::PAYLOAD_TOO_LARGE,
                "invalid_request",
                Some("request body too large"),
            ),
            Error::InvalidClient { basic } => {
                let mut r = body(
                    S::UNAUTHORIZED,
                    "invalid_client",
                    Some("client authentication failed"),
                );
                if *basic {
                    challenge(&mut r, format!("Basic realm=\"{REALM}\""));
                }
                r
            }
            Error::InvalidGrant(d) => body(S::BAD_REQUEST, "invalid_grant", Some(d)),
            Error::UnauthorizedClient(d) => body(S::BAD_REQUEST, "unauthorized_client", Some(d)),
            Error::UnsupportedGrantType => body(S::BAD_REQUEST, "unsupported_grant_type", None),
            Error::UnsupportedTokenType => body(S::BAD_REQUEST, "unsupported_token_type", None),
            Error::InvalidScope(d) => body(S::BAD_REQUEST, "invalid_scope", Some(d)),
            Error::InvalidResourceId(d) => body(S::BAD_REQUEST, "invalid_resource_id", Some(d)),
            Error::MissingToken => {
                // RFC 6750 §3.1: no error information when the request had no credentials.
                let mut r = S::UNAUTHORIZED.into_response();
                challenge(&mut r, format!("Bearer realm=\"{REALM}\""));
                no_store(&mut r);
                r
            }
            Error::InvalidToken(d) => {
                let d = sanitize(d);
                let mut r = body(S::UNAUTHORIZED, "invalid_token", Some(&d));
                challenge(
                    &mut r,
                    format!(
                        "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{d}\""
                    ),
                );
                r
            }
            Error::InsufficientScope(scope) => {
                let mut r = body(
                    S::FORBIDDEN,
                    "insufficient_scope",
                    Some(&format!("the token lacks scope {scope}")),
                );
                challenge(
                    &mut r,
                    format!(
                        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
                    ),
                );
                r
            }
            Error::InvalidRedirectUri(d) => body(S::BAD_REQUEST, "invalid_redirect_uri", Some(d)),
            Error::InvalidClientMetadata(d) => {
                body(S::BAD_REQUEST, "invalid_client_metadata", Some(d))
            }
            Error::NotFound => body(S::NOT_FOUND, "not_found", None),
            Error::Conflict(d) => body(S::CONFLICT, "conflict", Some(d)),
            // UMA 403s carry no WWW-Authenticate: they are not bearer-token challenges.
            Error::NeedInfo {
                ticket,
                required_claims,
                redirect_user,
                description,
            } => {
                let mut v = serde_json::json!({ "error": "need_info", "ticket": ticket });
                if required_claims.as_array().is_some_and(|a| !a.is_empty()) {
                    v["required_claims"] = required_claims.clone();
                }
                if let Some(u) = redirect_user {
                    v["redirect_user"] = u.clone().into();
                }
                if let Some(d) = description {
                    v["error_description"] = sanitize(d).into();
                }
                let mut r = (S::FORBIDDEN, axum::Json(v)).into_response();
                no_store(&mut r);
                r
            }
            Error::RequestDenied(d) => body(S::FORBIDDEN, "request_denied", Some(d)),
            Error::RequestSubmitted { ticket, interval } => {
                let v = serde_json::json!({
                    "error": "request_submitted",
                    "ticket": ticket,
                    "interval": interval,
                });
                let mut r = (S::FORBIDDEN, axum::Json(v)).into_response();
                no_store(&mut r);
                r
            }
            Error::InvalidModule(d) => body(S::BAD_REQUEST, "invalid_module", Some(d)),
            Error::QuotaExceeded(d) => body(S::FORBIDDEN, "quota_exceeded", Some(d)),
            Error::TemporarilyUnavailable(d) => {
                let mut r = body(S::SERVICE_UNAVAILABLE, "temporarily_unavailable", Some(d));
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
                r
            }
            Error::AdminUnauthorized => {
                let mut r = body(
                    S::UNAUTHORIZED,
                    "invalid_token",
                    Some("admin credential required"),
                );
                challenge(&mut r, format!("Bearer realm=\"{REALM}-admin\""));
                r
            }
            Error::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                body(S::INTERNAL_SERVER_ERROR, "server_error", None)
            }
        }
    }
}

/// Middleware body: gives axum's own rejections (unmatched method → 405 with `Allow`, unknown
/// route → 404, body limit → 413, plain-text extractor rejections) the protocol's JSON shape,
/// keeping their status and headers.
pub async fn protocol_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || status == StatusCode::UNAUTHORIZED
    {
        return resp;
    }
    let is_ours = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if is_ours {
        return resp;
    }
    let (code, status) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("unsupported_method_type", status),
        StatusCode::NOT_FOUND => ("not_found", status),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => ("invalid_request", status),
        s if s.is_server_error() => ("server_error", s),
        // 415, 422 and other extractor rejections are malformed requests.
        _ => ("invalid_request", StatusCode::BAD_REQUEST),
    };
    let (mut parts, _) = resp.into_parts();
    let fresh = body(status, code, None);
    let (fresh_parts, fresh_body) = fresh.into_parts();
    parts.status = fresh_parts.status;
    for (k, v) in fresh_parts.headers.iter() {
        parts.headers.insert(k, v.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, fresh_body)
}
