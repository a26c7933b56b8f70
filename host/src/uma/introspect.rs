//! Token introspection (RFC 7662 with the UMA extension of Fed §5), authorized by a PAT or by
//! the resource server's client credentials. A caller only learns about tokens meant for it: an
//! RPT for its own resource server (and, with a user's PAT, that user's resources), or a token
//! its own client obtained. Everything else, like garbage, expired or revoked tokens, is exactly
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
    /// The owner the caller is restricted to. A PAT obtained by the resource server for itself
    /// (client credentials) authenticates the resource server as such, exactly like its client
    /// credentials, so it is not restricted to one owner; a PAT of a user is (IN-20).
    fn owner(&self) -> Option<&Owner> {
        match self {
            Caller::Pat(p) => {
                let scope = p.scope();
                match &scope.owner {
                    Owner::Client(c) if *c == scope.resource_server => None,
                    owner => Some(owner),
                }
            }
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

#[cfg(test)]
mod tests {
    //! RPT introspection (IN-6 … IN-10, IN-20 for RPTs) at the domain level: the HTTP path is
    //! covered by the integration tests, but RPTs only come from the UMA grant, so here they are
    //! minted with the same claims constructor the grant uses.

    use super::*;
    use crate::config::{ClientConfig, Config, UserConfig};
    use crate::oauth::UMA_PROTECTION;
    use crate::store::Permission;

    async fn state() -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::new(
            "http://127.0.0.1:1",
            "127.0.0.1:0".parse().unwrap(),
            dir.path(),
        );
        c.clients = ["rs1", "rs2", "c1"]
            .iter()
            .map(|id| ClientConfig {
                client_id: id.to_string(),
                client_secret: Some(format!("{id}-secret-0123456789")),
                redirect_uris: vec![],
                claims_redirect_uris: vec![],
                scopes: vec![],
                grant_types: None,
                name: None,
            })
            .collect();
        c.users = ["alice", "bob"]
            .iter()
            .map(|u| UserConfig {
                username: u.to_string(),
                password: format!("{u}-password"),
                claims: Default::default(),
            })
            .collect();
        c.validate().unwrap();
        let s = AppState::open(c).await.unwrap();
        (dir, s)
    }

    async fn pat(s: &AppState, owner: &str, rs: &str) -> Caller {
        let claims = AccessTokenClaims::new(
            s,
            &Owner::User(owner.into()),
            rs,
            &s.config.issuer,
            &[UMA_PROTECTION.to_owned()],
            60,
        )
        .unwrap();
        let token = claims.sign(s).unwrap();
        Caller::Pat(crate::uma::pat::authenticate(s, &token).await.unwrap())
    }

    fn rpt(s: &AppState, owner: &str, rs: &str) -> String {
        AccessTokenClaims::rpt(
            s,
            &Owner::User("bob".into()),
            "c1",
            &Owner::User(owner.into()),
            rs,
            vec![Permission {
                resource_id: "r1".into(),
                resource_scopes: vec!["view".into()],
            }],
            60,
        )
        .unwrap()
        .sign(s)
        .unwrap()
    }

    fn form(token: &str) -> FormParams {
        FormParams::parse(format!("token={token}").as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn in_6_to_in_9_active_rpt_has_permissions_and_no_scope() {
        let (_d, s) = state().await;
        let token = rpt(&s, "alice", "rs1");
        let caller = pat(&s, "alice", "rs1").await;
        let v = introspect(&s, &caller, &form(&token)).await.unwrap();
        assert_eq!(v["active"], true);
        assert!(v.get("scope").is_none());
        assert_eq!(
            v["permissions"],
            json!([{"resource_id": "r1", "resource_scopes": ["view"]}])
        );
        assert!(v["exp"].is_u64() && v["iat"].is_u64());
        assert_eq!(v["aud"], "rs1");
        // The resource server's own client credentials see it too.
        let rs1 = s.store.get_client("rs1").await.unwrap().unwrap();
        let v = introspect(&s, &Caller::Client(rs1), &form(&token))
            .await
            .unwrap();
        assert_eq!(v["active"], true);
        // So does the PAT the resource server obtained for itself with client credentials.
        let own = AccessTokenClaims::new(
            &s,
            &Owner::Client("rs1".into()),
            "rs1",
            &s.config.issuer,
            &[UMA_PROTECTION.to_owned()],
            60,
        )
        .unwrap()
        .sign(&s)
        .unwrap();
        let caller = Caller::Pat(crate::uma::pat::authenticate(&s, &own).await.unwrap());
        let v = introspect(&s, &caller, &form(&token)).await.unwrap();
        assert_eq!(v["active"], true);
    }

    #[tokio::test]
    async fn in_20_rpt_is_inactive_for_other_owners_and_resource_servers() {
        let (_d, s) = state().await;
        let token = rpt(&s, "alice", "rs1");
        for caller in [pat(&s, "bob", "rs1").await, pat(&s, "alice", "rs2").await] {
            let v = introspect(&s, &caller, &form(&token)).await.unwrap();
            assert_eq!(v, json!({"active": false}));
        }
        let rs2 = s.store.get_client("rs2").await.unwrap().unwrap();
        let v = introspect(&s, &Caller::Client(rs2), &form(&token))
            .await
            .unwrap();
        assert_eq!(v, json!({"active": false}));
    }

    #[tokio::test]
    async fn s_6_an_rpt_is_never_a_pat() {
        let (_d, s) = state().await;
        let token = rpt(&s, "alice", "rs1");
        let err = crate::uma::pat::authenticate(&s, &token).await.unwrap_err();
        assert!(matches!(err, crate::error::Error::InsufficientScope(_)));
    }
}
