//! The authorization endpoint: our HTML login and consent page for the authorization-code grant
//! with PKCE S256 (RFC 6749 §4.1, RFC 7636). A resource owner logs in and consents to a scope
//! (typically `uma_protection`) for a client; the code then yields a PAT representing the owner.
//!
//! Redirect safety: errors about the client or the redirect URI are shown on an error page and
//! never redirected (RFC 6749 §4.1.2.1, §10.15); redirect URIs are matched exactly. The login form
//! carries a pending-request id and an anti-CSRF value that must also come back as a cookie
//! (S23), and the page may not be framed.

use base64::Engine;
use subtle::ConstantTimeEq;

use super::{UMA_PROTECTION, grant, split_scope};
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::FormParams;
use crate::keys::random_token;
use crate::store::{AuthCode, PendingLogin, unix_now};

/// Wrong passwords accepted on one login before the pending request is dropped (the client must
/// start a new authorization request, which slows down password guessing through one flow).
pub const MAX_LOGIN_FAILURES: u32 = 5;

/// Name of the anti-CSRF cookie of the login form.
pub const CSRF_COOKIE: &str = "uma_login_csrf";

/// What the endpoint answers.
#[derive(Debug)]
pub enum Outcome {
    /// Show the login form; set the anti-CSRF cookie to `csrf`.
    LoginPage { html: String, csrf: String },
    /// Send the user agent back to the client.
    Redirect(String),
    /// Tell the user what went wrong; never redirect (bad client or redirect URI).
    ErrorPage { status: u16, message: String },
}

pub(crate) fn error_page(status: u16, message: impl Into<String>) -> Outcome {
    Outcome::ErrorPage {
        status,
        message: message.into(),
    }
}

/// `BASE64URL(SHA256(verifier)) == challenge`, compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use sha2::Digest;
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// `uri` with `params` appended to its query, keeping any query it already has.
pub(crate) fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Outcome {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            Outcome::Redirect(u.into())
        }
        Err(_) => error_page(400, "the redirect URI is invalid"),
    }
}

pub(crate) fn redirect_error(
    uri: &str,
    state: Option<&str>,
    code: &str,
    description: &str,
) -> Outcome {
    let mut p = vec![("error", code), ("error_description", description)];
    if let Some(s) = state {
        p.push(("state", s));
    }
    redirect_with(uri, &p)
}

/// `GET /authorize`: validates the request and shows the login page.
pub async fn begin(state: &AppState, query: &str) -> Result<Outcome> {
    let q = match FormParams::parse(query.as_bytes()) {
        Ok(q) => q,
        Err(e) => return Ok(error_page(400, e.to_string())),
    };
    let Some(client_id) = q.get("client_id") else {
        return Ok(error_page(400, "missing client_id"));
    };
    let Some(client) = state.store.get_client(client_id).await? else {
        return Ok(error_page(400, "unknown client"));
    };
    let (redirect_to, given) = match q.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => (r.to_owned(), true),
        Some(_) => {
            return Ok(error_page(
                400,
                "redirect_uri is not registered for this client",
            ));
        }
        None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        None => return Ok(error_page(400, "redirect_uri is required")),
    };
    let st = q.get("state");
    let fail = |code: &str, d: &str| Ok(redirect_error(&redirect_to, st, code, d));
    if q.get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    if !client.may_use_grant(grant::AUTHORIZATION_CODE) {
        return fail(
            "unauthorized_client",
            "client may not use authorization_code",
        );
    }
    let Some(challenge) = q.get("code_challenge") else {
        return fail("invalid_request", "PKCE code_challenge is required");
    };
    if q.get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail(
            "invalid_request",
            "code_challenge must be 43 base64url characters",
        );
    }
    let scope = match q.get("scope") {
        Some(s) => split_scope(s),
        None => vec![UMA_PROTECTION.to_owned()],
    };
    if let Some(s) = super::unavailable_scope(&client, &scope) {
        return fail("invalid_scope", &format!("scope {s} is not available"));
    }
    let pending = PendingLogin {
        client_id: client.client_id.clone(),
        redirect_to,
        redirect_uri_given: given,
        state: st.map(str::to_owned),
        code_challenge: challenge.to_owned(),
        scope,
        csrf: random_token(32)?,
        exp: unix_now() + state.config.login_lifetime_secs,
        failures: 0,
    };
    show_login(state, pending, None).await
}

async fn show_login(
    state: &AppState,
    mut pending: PendingLogin,
    message: Option<&str>,
) -> Result<Outcome> {
    let id = random_token(32)?;
    pending.csrf = random_token(32)?;
    state.store.put_login(&id, &pending).await?;
    let html = login_html(state, &id, &pending, message);
    Ok(Outcome::LoginPage {
        html,
        csrf: pending.csrf,
    })
}

/// `POST /authorize`: the login form came back.
pub async fn finish(
    state: &AppState,
    form: &FormParams,
    csrf_cookie: Option<&str>,
) -> Result<Outcome> {
    let Some(id) = form.get("login_id") else {
        return Ok(error_page(400, "missing login_id"));
    };
    let Some(pending) = state.store.take_login(id).await? else {
        return Ok(error_page(
            400,
            "this login page has expired; start again from the application",
        ));
    };
    let csrf_ok =
        csrf_cookie.is_some_and(|c| bool::from(c.as_bytes().ct_eq(pending.csrf.as_bytes())));
    if !csrf_ok {
        return Ok(error_page(
            403,
            "the login form was not submitted from this browser session",
        ));
    }
    let st = pending.state.as_deref();
    if form.get("decision") != Some("allow") {
        return Ok(redirect_error(
            &pending.redirect_to,
            st,
            "access_denied",
            "the resource owner denied the request",
        ));
    }
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return show_login(state, pending, Some("Enter your username and password.")).await;
    };
    let Some(user) = super::users::authenticate(state, username, password).await? else {
        let mut pending = pending;
        pending.failures += 1;
        if pending.failures >= MAX_LOGIN_FAILURES {
            return Ok(error_page(
                403,
                "too many failed attempts; start again from the application",
            ));
        }
        return show_login(state, pending, Some("Wrong username or password.")).await;
    };
    let code = random_token(32)?;
    let record = AuthCode {
        client_id: pending.client_id.clone(),
        redirect_uri: pending
            .redirect_uri_given
            .then(|| pending.redirect_to.clone()),
        code_challenge: pending.code_challenge.clone(),
        username: user.username,
        scope: pending.scope.clone(),
        exp: unix_now() + state.config.auth_code_lifetime_secs,
    };
    state.store.put_code(&code, &record).await?;
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = st {
        p.push(("state", s));
    }
    Ok(redirect_with(&pending.redirect_to, &p))
}

/// Minimal HTML escaping for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn login_html(state: &AppState, id: &str, p: &PendingLogin, message: Option<&str>) -> String {
    let action = escape(&state.config.endpoint("/authorize"));
    let msg = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
<p>The application <strong>{client}</strong> asks for access with scope <code>{scope}</code>.</p>
{msg}
<form method="post" action="{action}">
<input type="hidden" name="login_id" value="{id}">
<label>Username <input name="username" autocomplete="username" required></label><br>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label><br>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</form>
</body></html>
"#,
        client = escape(&p.client_id),
        scope = escape(&p.scope.join(" ")),
        id = escape(id),
    )
}

/// The error page shown instead of redirecting.
pub fn error_html(message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title></head>\n<body><h1>Authorization error</h1><p>{}</p></body></html>\n",
        escape(message)
    )
}
