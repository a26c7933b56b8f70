//! The claims interaction endpoint (Grant §3.3.2-§3.3.3): the client redirects the requesting
//! party here with its ticket; they log in with their account at this server and then walk
//! through the claims plugins the resource owner bound to the resources (forms rendered from
//! the plugins' structured steps); at the end they are sent back to the client's registered
//! claims redirect URI with a new ticket that carries the gathered claims.
//!
//! Safety: the redirect URI is matched exactly against the client's registered claims redirect
//! URIs, and a bad client or URI never redirects (CI-5…CI-7, CI-10); every POST carries a
//! per-session anti-CSRF token both as a cookie and in the form (CI-12, S23); the session
//! lives server-side, the browser holds only its id; the ticket is spent on arrival (T-3).

use std::fmt::Write as _;

use subtle::ConstantTimeEq;

use super::grant::{self, LOGIN_SOURCE};
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::FormParams;
use crate::keys::random_token;
use crate::oauth::authorize::{Outcome, error_page, escape, redirect_error, redirect_with};
use crate::policy;
use crate::runtime::{
    Claim, ClaimsAnswer, ClaimsCall, FieldKind, Form, InteractionInput, Provenance, ServerContext,
    Step,
};
use crate::store::policy::ClaimsBinding;
use crate::store::uma::InteractionSession;
use crate::store::{ResourceScope, unix_now};

/// The anti-CSRF cookie of the claims interaction pages.
pub const CSRF_COOKIE: &str = "uma_claims_csrf";

/// Answer of the endpoint: a page (with the CSRF value for the cookie) or a redirect.
pub enum Page {
    Html { html: String, csrf: String },
    Other(Outcome),
}

impl From<Outcome> for Page {
    fn from(o: Outcome) -> Page {
        Page::Other(o)
    }
}

/// `GET /claims?client_id&ticket&claims_redirect_uri&state`.
pub async fn begin(state: &AppState, query: &str) -> Result<Page> {
    let q = match FormParams::parse(query.as_bytes()) {
        Ok(q) => q,
        Err(e) => return Ok(error_page(400, e.to_string()).into()),
    };
    let Some(client_id) = q.get("client_id") else {
        return Ok(error_page(400, "missing client_id").into());
    };
    let Some(client) = state.store.get_client(client_id).await? else {
        return Ok(error_page(400, "unknown client").into());
    };
    // CI-3 … CI-7: exact match against the claims redirect URIs (never the OAuth ones).
    let redirect_uri = match q.get("claims_redirect_uri") {
        Some(u) if client.claims_redirect_uris.iter().any(|r| r == u) => u.to_owned(),
        Some(_) => {
            return Ok(
                error_page(400, "claims_redirect_uri is not registered for this client").into(),
            );
        }
        None if client.claims_redirect_uris.len() == 1 => client.claims_redirect_uris[0].clone(),
        None => {
            return Ok(error_page(
                400,
                "claims_redirect_uri is required: the client has no single registered claims redirect URI",
            )
            .into());
        }
    };
    let st = q.get("state").map(str::to_owned);
    let Some(ticket_value) = q.get("ticket") else {
        return Ok(redirect_error(
            &redirect_uri,
            st.as_deref(),
            "invalid_request",
            "missing ticket",
        )
        .into());
    };
    // T-3: presenting the ticket here spends it.
    let Some(ticket) = super::ticket::take(state, ticket_value).await? else {
        return Ok(redirect_error(
            &redirect_uri,
            st.as_deref(),
            "invalid_request",
            "unknown, used or expired ticket",
        )
        .into());
    };
    if ticket
        .client_id
        .as_deref()
        .is_some_and(|c| c != client.client_id)
    {
        return Ok(redirect_error(
            &redirect_uri,
            st.as_deref(),
            "invalid_request",
            "the ticket was issued to another client",
        )
        .into());
    }
    let id = random_token(32)?;
    let session = InteractionSession {
        client_id: client.client_id.clone(),
        redirect_uri,
        state: st,
        claims: ticket.claims.clone(),
        ticket,
        csrf: random_token(32)?,
        plugin: 0,
        plugin_state: None,
        form: None,
        logged_in: false,
        exp: unix_now() + state.config.interaction_lifetime_secs,
        extra: Default::default(),
    };
    state.store.put_interaction(&id, &session).await?;
    Ok(login_page(state, &id, &session, None))
}

/// `POST /claims`: a form came back.
pub async fn submit(state: &AppState, form: &FormParams, cookie: Option<&str>) -> Result<Page> {
    let Some(id) = form.get("session") else {
        return Ok(error_page(400, "missing session").into());
    };
    let Some(mut session) = state.store.get_interaction(id).await? else {
        return Ok(error_page(
            400,
            "this page has expired; start again from the application",
        )
        .into());
    };
    let same = |v: Option<&str>| {
        v.is_some_and(|v| bool::from(v.as_bytes().ct_eq(session.csrf.as_bytes())))
    };
    if !same(cookie) || !same(form.get("csrf")) {
        return Ok(error_page(403, "the form was not submitted from this browser session").into());
    }
    let st = session.state.clone();
    if form.get("action") == Some("cancel") {
        state.store.take_interaction(id).await?;
        return Ok(redirect_error(
            &session.redirect_uri,
            st.as_deref(),
            "access_denied",
            "the requesting party cancelled",
        )
        .into());
    }

    if !session.logged_in {
        let (Some(user), Some(password)) = (form.get("username"), form.get("password")) else {
            return Ok(login_page(
                state,
                id,
                &session,
                Some("Enter your username and password."),
            ));
        };
        let Some(user) = crate::oauth::users::authenticate(state, user, password).await? else {
            let failures: u32 = session
                .extra
                .get("failures")
                .and_then(|f| f.parse().ok())
                .unwrap_or(0)
                + 1;
            if failures >= 5 {
                state.store.take_interaction(id).await?;
                return Ok(redirect_error(
                    &session.redirect_uri,
                    st.as_deref(),
                    "access_denied",
                    "too many failed sign-in attempts",
                )
                .into());
            }
            session
                .extra
                .insert("failures".into(), failures.to_string());
            state.store.put_interaction(id, &session).await?;
            return Ok(login_page(
                state,
                id,
                &session,
                Some("Wrong username or password."),
            ));
        };
        let source = Provenance::Interactive {
            source: LOGIN_SOURCE.into(),
        };
        session.claims.retain(|c| c.provenance != source);
        session.claims.push(Claim {
            name: "sub".into(),
            value: user.username.clone().into(),
            provenance: source.clone(),
        });
        for (name, value) in &user.claims {
            session.claims.push(Claim {
                name: name.clone(),
                value: value.clone(),
                provenance: source.clone(),
            });
        }
        session.logged_in = true;
        return advance(state, id, session, None).await;
    }

    // Answers to the current plugin form.
    let answers: Vec<(String, String)> = match session
        .form
        .as_ref()
        .and_then(|f| serde_json::from_value::<Form>(f.clone()).ok())
    {
        Some(f) => f
            .fields
            .iter()
            .map(|field| {
                let v = form.get(&field.name).unwrap_or("");
                let v = match field.kind {
                    FieldKind::Checkbox => (v == "true").to_string(),
                    _ => v.to_owned(),
                };
                (field.name.clone(), v)
            })
            .collect(),
        None => Vec::new(),
    };
    advance(state, id, session, Some(answers)).await
}

/// The claims plugins of the ticket's resources, in ticket order, without repeats.
async fn plugins(state: &AppState, session: &InteractionSession) -> Result<Vec<ClaimsBinding>> {
    let scope = ResourceScope {
        owner: session.ticket.owner.clone(),
        resource_server: session.ticket.resource_server.clone(),
    };
    let ids: Vec<String> = session
        .ticket
        .permissions
        .iter()
        .map(|p| p.resource_id.clone())
        .collect();
    policy::claims_plugins(state, &scope, &ids).await
}

/// Run the current plugin (starting it, or submitting `answers`), until a form must be shown
/// or every plugin is done.
async fn advance(
    state: &AppState,
    id: &str,
    mut session: InteractionSession,
    mut answers: Option<Vec<(String, String)>>,
) -> Result<Page> {
    let plugins = plugins(state, &session).await?;
    let st = session.state.clone();
    while let Some(binding) = plugins.get(session.plugin) {
        let owner = &session.ticket.owner;
        let (module, limits) = policy::load_module_limited(state, owner, &binding.module).await?;
        let input = InteractionInput {
            context: ServerContext {
                now_ms: policy::now_ms(),
                client_id: session.client_id.clone(),
                issuer: state.config.issuer.clone(),
            },
            required: Vec::new(),
            config: binding.config.to_string(),
        };
        let call = match (answers.take(), &session.plugin_state) {
            (Some(answers), Some(plugin_state)) => ClaimsCall::Submit {
                interaction: input,
                state: plugin_state.clone(),
                answers,
            },
            _ => ClaimsCall::Start(input),
        };
        let now = policy::now_ms();
        let (answer, usage) = state
            .runtime
            .sandboxed(move |runtime| runtime.call_claims_limited(&module, &call, now, limits))
            .await
            .map_err(crate::error::Error::internal)?;
        state
            .usage
            .record(owner, &binding.module, &usage, answer.is_err());
        let step = match answer {
            Ok(ClaimsAnswer::Step(step)) => step,
            Ok(_) => Step::Fail {
                reason: "the claims plugin answered out of turn".into(),
            },
            Err(failure) => Step::Fail {
                reason: format!("the claims plugin failed: {failure}"),
            },
        };
        match step {
            Step::Ask { form } => {
                session.plugin_state = Some(form.state.clone());
                session.form = Some(serde_json::to_value(&form)?);
                state.store.put_interaction(id, &session).await?;
                return Ok(form_page(state, id, &session, &form));
            }
            Step::Done { claims } => {
                let source = Provenance::Interactive {
                    source: binding.module.to_string(),
                };
                for c in claims {
                    session.claims.push(Claim {
                        name: c.name,
                        value: c.value,
                        provenance: source.clone(),
                    });
                }
                session.plugin += 1;
                session.plugin_state = None;
                session.form = None;
            }
            Step::Fail { reason } => {
                state.store.take_interaction(id).await?;
                return Ok(redirect_error(
                    &session.redirect_uri,
                    st.as_deref(),
                    "access_denied",
                    &reason,
                )
                .into());
            }
        }
    }

    // Done: back to the client with a new ticket that carries the claims (CI-9, T-5). The
    // session is consumed first, so a replayed final POST cannot mint a second ticket.
    if state.store.take_interaction(id).await?.is_none() {
        return Ok(error_page(
            400,
            "this page has expired; start again from the application",
        )
        .into());
    }
    let ticket = grant::rotate(
        state,
        &session.ticket,
        &session.client_id,
        session.claims.clone(),
    )
    .await?;
    let mut params = vec![("ticket", ticket.as_str())];
    if let Some(s) = st.as_deref() {
        params.push(("state", s));
    }
    Ok(redirect_with(&session.redirect_uri, &params).into())
}

fn page(state: &AppState, id: &str, session: &InteractionSession, title: &str, body: &str) -> Page {
    let action = escape(
        &state
            .config
            .endpoint(super::discovery::paths::CLAIMS_INTERACTION),
    );
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>The application <strong>{client}</strong> asks for access to resources shared with you.</p>
<form method="post" action="{action}">
<input type="hidden" name="session" value="{id}">
<input type="hidden" name="csrf" value="{csrf}">
{body}
<button type="submit" name="action" value="continue">Continue</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</form>
</body></html>
"#,
        title = escape(title),
        client = escape(&session.client_id),
        id = escape(id),
        csrf = escape(&session.csrf),
    );
    Page::Html {
        html,
        csrf: session.csrf.clone(),
    }
}

fn login_page(
    state: &AppState,
    id: &str,
    session: &InteractionSession,
    message: Option<&str>,
) -> Page {
    let msg = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    let body = format!(
        "{msg}<label>Username <input name=\"username\" autocomplete=\"username\" required></label><br>\n\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label><br>"
    );
    page(state, id, session, "Sign in", &body)
}

fn form_page(state: &AppState, id: &str, session: &InteractionSession, form: &Form) -> Page {
    let mut body = format!("<p>{}</p>\n", escape(&form.prompt));
    for f in &form.fields {
        let name = escape(&f.name);
        let label = escape(&f.label);
        let required = if f.required { " required" } else { "" };
        let _ = match &f.kind {
            FieldKind::Text | FieldKind::Email | FieldKind::Number => {
                let t = match f.kind {
                    FieldKind::Email => "email",
                    FieldKind::Number => "number",
                    _ => "text",
                };
                writeln!(
                    body,
                    "<label>{label} <input type=\"{t}\" name=\"{name}\"{required}></label><br>"
                )
            }
            FieldKind::Multiline => {
                writeln!(
                    body,
                    "<label>{label}<br><textarea name=\"{name}\"{required}></textarea></label><br>"
                )
            }
            FieldKind::Checkbox => writeln!(
                body,
                "<label><input type=\"checkbox\" name=\"{name}\" value=\"true\"{required}> {label}</label><br>"
            ),
            FieldKind::Choice { options } => {
                let opts: String = options
                    .iter()
                    .map(|(v, l)| format!("<option value=\"{}\">{}</option>", escape(v), escape(l)))
                    .collect();
                writeln!(
                    body,
                    "<label>{label} <select name=\"{name}\"{required}>{opts}</select></label><br>"
                )
            }
        };
        if let Some(help) = &f.help {
            let _ = writeln!(body, "<small>{}</small><br>", escape(help));
        }
    }
    page(state, id, session, &form.title, &body)
}
