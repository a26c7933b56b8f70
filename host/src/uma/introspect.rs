//! Token introspection (RFC 7662 with the UMA extension of Fed §5), authorized by a PAT or by
//! the resource server's client credentials. A caller only learns about tokens meant for it: an
//! RPT for its own resource server (and, with a PAT, its owner), or a token its own client
//! obtained. Everything else, like garbage, expired or revoked tokens, is exactly
//! `{"active":false}` (IN-12, IN-20).

use serde_json::{Value, json};

use super::pat::Pat;
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::FormParams;
use crate::oauth::access_token::{AccessTokenClaims, validate};
use crate::store::{Client, Owner, RefreshGrant};

/// Who is asking.
#[derive(Debug)]
pub enum Caller {
    /// A resource server acting for one owner.
    Pat(Pat),
    /// A client authenticated with its own credentials.
    Client(Client),
}

impl Caller {
    fn client_id(&self) -> &str {
        match self {
            Caller::Pat(p) => &p.scope().resource_server,
            Caller::Client(c) => &c.client_id,
        }
    }
    fn owner(&self) -> Option<&Owner> {
        match self {
            Caller::Pat(p) => Some(&p.scope().owner),
            Caller::Client(_) => None,
        }
    }

    fn may_see(&self, t: &AccessTokenClaims) -> bool {
        if t.is_rpt() {
            t.aud == self.client_id() && self.owner().is_none_or(|o| t.owner.as_ref() == Some(o))
        } else {
            t.client_id == self.client_id()
                && self.owner().is_none_or(|o| t.subject().as_ref() == Some(o))
        }
    }

    fn may_see_refresh(&self, r: &RefreshGrant) -> bool {
        r.client_id == self.client_id() && self.owner().is_none_or(|o| &r.subject == o)
    }
}

fn inactive() -> Value {
    json!({ "active": false })
}

pub async fn introspect(state: &AppState, caller: &Caller, params: &FormParams) -> Result<Value> {
    let token = params.require("token")?;
    // token_type_hint only orders a search that always covers every kind (RFC 7662 §2.1).
    if let Ok(t) = validate(state, token).await? {
        if !caller.may_see(&t) {
            return Ok(inactive());
        }
        let mut out = json!({
            "active": true,
            "iss": t.iss,
            "sub": t.sub,
            "aud": t.aud,
            "client_id": t.client_id,
            "exp": t.exp,
            "iat": t.iat,
            "jti": t.jti,
            "token_type": "Bearer",
        });
        if t.sub_kind == "user" {
            out["username"] = t.sub.clone().into();
        }
        match (&t.permissions, &t.scope) {
            // An active RPT has `permissions` and no `scope` (Fed §5.1.1).
            (Some(p), _) => out["permissions"] = serde_json::to_value(p)?,
            (None, Some(s)) => out["scope"] = s.clone().into(),
            (None, None) => {}
        }
        return Ok(out);
    }
    if let Some(r) = state.store.get_refresh(token).await? {
        if !caller.may_see_refresh(&r) {
            return Ok(inactive());
        }
        let mut out = json!({
            "active": true,
            "client_id": r.client_id,
            "sub": r.subject.id(),
            "exp": r.exp,
            "token_type": "refresh_token",
        });
        if !r.scope.is_empty() {
            out["scope"] = r.scope.join(" ").into();
        }
        return Ok(out);
    }
    Ok(inactive())
}
