//! The UMA grant (`urn:ietf:params:oauth:grant-type:uma-ticket`, Grant §3.3): a client trades
//! a permission ticket, with claims, a PCT or an RPT to upgrade, for an RPT — or learns that
//! more claims are needed (`need_info`), that the owner was asked (`request_submitted`), or
//! that the request is denied.
//!
//! One straight line: parse → consume the ticket (single use, atomically) → compute the scopes
//! (Grant §3.3.4) → gather claims with their provenance → run the owner's bound policies per
//! permission → answer. Every real evaluation is audited for the owner.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::claim_token;
use super::discovery::paths;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::keys::random_token;
use crate::oauth::access_token::AccessTokenClaims;
use crate::oauth::client_auth::ClientRequest;
use crate::oauth::split_scope;
use crate::oauth::token::TokenResponse;
use crate::policy::strategy::Combined;
use crate::policy::{self, Question};
use crate::runtime::{Claim, Provenance, RequiredClaim};
use crate::store::uma::{ApprovalRequest, ApprovalStatus, PctRecord, RptRecord};
use crate::store::{
    Client, Owner, Permission, ResourceDescription, ResourceScope, Ticket, unix_now,
};

/// The source name of claims from a login at this server's claims interaction endpoint.
pub const LOGIN_SOURCE: &str = "login";

/// Issue a fresh ticket carrying `t`'s permissions, bound to `client` (ticket rotation, S19).
pub async fn rotate(
    state: &AppState,
    t: &Ticket,
    client: &str,
    claims: Vec<Claim>,
) -> Result<String> {
    let now = unix_now();
    let record = Ticket {
        iat: now,
        exp: now + state.config.ticket_lifetime_secs,
        client_id: Some(client.to_owned()),
        claims,
        ..t.clone()
    };
    super::ticket::issue(state, &record).await
}

/// The requesting party's identity, when a trustworthy `sub` is known.
fn requesting_party(claims: &[Claim]) -> Option<String> {
    claims
        .iter()
        .find(|c| {
            c.name == "sub"
                && matches!(
                    c.provenance,
                    Provenance::Interactive { .. }
                        | Provenance::VerifiedToken { .. }
                        | Provenance::Pct
                )
        })
        .and_then(|c| c.value.as_str().map(str::to_owned))
}

/// Whether the requesting party logged in here as the resource owner: the owner needs no
/// policy to reach their own resources (S14).
fn is_owner(owner: &Owner, claims: &[Claim]) -> bool {
    let Owner::User(user) = owner else {
        return false;
    };
    claims.iter().any(|c| {
        c.name == "sub"
            && c.value.as_str() == Some(user)
            && matches!(&c.provenance, Provenance::Interactive { source } if source == LOGIN_SOURCE)
    })
}

/// `required_claims` in the spec's member names (Grant §3.3.6).
fn required_claims_json(required: &[RequiredClaim]) -> Value {
    Value::Array(
        required
            .iter()
            .map(|r| {
                let mut o = json!({ "name": r.name });
                if let Some(f) = &r.friendly_name {
                    o["friendly_name"] = f.clone().into();
                }
                if let Some(t) = &r.claim_type {
                    o["claim_type"] = t.clone().into();
                }
                let formats = if r.claim_token_formats.is_empty() {
                    claim_token::FORMATS.iter().map(|s| s.to_string()).collect()
                } else {
                    r.claim_token_formats.clone()
                };
                o["claim_token_format"] = json!(formats);
                if !r.issuers.is_empty() {
                    o["issuer"] = json!(r.issuers);
                }
                o
            })
            .collect(),
    )
}

/// `redirect_user` is offered when the client can be sent back after the interaction.
fn redirect_user(state: &AppState, client: &Client) -> Option<String> {
    (!client.claims_redirect_uris.is_empty())
        .then(|| state.config.endpoint(paths::CLAIMS_INTERACTION))
}

/// The RPT the client presented, if it can be upgraded: ours, of this client, not revoked, for
/// the same owner and resource server. An ordinary access token of the same client counts as
/// "no RPT yet"; anything else is `invalid_grant` (wg-uma #349).
async fn presented_rpt(
    state: &AppState,
    value: &str,
    client: &str,
    scope: &ResourceScope,
) -> Result<Option<AccessTokenClaims>> {
    let claims: AccessTokenClaims = state
        .keys
        .verify_allowing_expired(value, &state.config.issuer)
        .map_err(|e| Error::InvalidGrant(format!("rpt: {e}")))?;
    if claims.client_id != client {
        return Err(Error::InvalidGrant(
            "the rpt was issued to another client".into(),
        ));
    }
    if !claims.is_rpt() {
        return Ok(None);
    }
    if state.store.is_revoked(&claims.jti).await? {
        return Ok(None);
    }
    let same_target =
        claims.owner.as_ref() == Some(&scope.owner) && claims.aud == scope.resource_server;
    Ok(same_target.then_some(claims))
}

/// One permission to decide: the resource and `RequestedScopes(resource)`.
struct Asked {
    resource_id: String,
    resource: ResourceDescription,
    scopes: Vec<String>,
}

/// The token endpoint's `uma-ticket` grant.
pub async fn redeem(state: &AppState, req: &ClientRequest) -> Result<TokenResponse> {
    let p = &req.params;
    let client = &req.client;
    let ticket_value = p.require("ticket")?;
    let claim_token = p.get("claim_token");
    let claim_format = p.get("claim_token_format");
    if claim_token.is_some() != claim_format.is_some() {
        return Err(Error::invalid_request(
            "claim_token and claim_token_format must be sent together",
        ));
    }
    let requested: Vec<String> = p.get("scope").map(split_scope).unwrap_or_default();

    // Presenting the ticket invalidates it, whatever happens next (Grant §5.5, T-2).
    let ticket = super::ticket::take(state, ticket_value)
        .await?
        .ok_or_else(|| Error::InvalidGrant("unknown, used or expired ticket".into()))?;
    if ticket
        .client_id
        .as_deref()
        .is_some_and(|c| c != client.client_id)
    {
        return Err(Error::InvalidGrant(
            "the ticket was issued to another client".into(),
        ));
    }
    let scope = ResourceScope {
        owner: ticket.owner.clone(),
        resource_server: ticket.resource_server.clone(),
    };

    // Scopes (Grant §3.3.4): TicketScopes(resource) ∪ (RegisteredScopes ∩ RequestedScopes),
    // the latter only where the resource has the scope.
    if let Some(s) = requested.iter().find(|s| !client.scopes.contains(s)) {
        return Err(Error::InvalidScope(format!(
            "the client is not registered for scope {s}"
        )));
    }
    let mut asked = Vec::new();
    for perm in &ticket.permissions {
        let resource = state
            .store
            .get_resource(&scope, &perm.resource_id)
            .await?
            .ok_or_else(|| {
                Error::InvalidGrant(format!(
                    "resource {} is no longer registered",
                    perm.resource_id
                ))
            })?;
        let mut scopes = perm.resource_scopes.clone();
        for s in &requested {
            if resource.resource_scopes.contains(s) && !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        asked.push(Asked {
            resource_id: perm.resource_id.clone(),
            resource,
            scopes,
        });
    }
    if let Some(s) = requested
        .iter()
        .find(|s| !asked.iter().any(|a| a.resource.resource_scopes.contains(s)))
    {
        return Err(Error::InvalidScope(format!(
            "scope {s} is not available on any resource of the ticket"
        )));
    }

    // Claims, each with its provenance. Server context first; nothing pushed can replace it.
    let mut claims = vec![Claim {
        name: "client_id".into(),
        value: client.client_id.clone().into(),
        provenance: Provenance::Server,
    }];
    let mut gathered: Vec<Claim> = ticket.claims.clone();
    if let Some(pct) = p.get("pct") {
        let record = state
            .store
            .get_pct(pct)
            .await?
            .filter(|r| r.client_id == client.client_id)
            .ok_or_else(|| Error::InvalidGrant("unknown, revoked or foreign pct".into()))?;
        gathered.extend(record.claims.into_iter().map(|c| Claim {
            provenance: Provenance::Pct,
            ..c
        }));
    }
    if let (Some(token), Some(format)) = (claim_token, claim_format) {
        let verified = if claim_token::FORMATS.contains(&format) {
            claim_token::verify(state, format, token, &client.client_id).await
        } else {
            // Formats the host does not know go to the owner's claims plugins.
            let ids: Vec<String> = ticket
                .permissions
                .iter()
                .map(|p| p.resource_id.clone())
                .collect();
            policy::verify_with_plugins(state, &scope, &ids, format, token, &client.client_id).await
        };
        match verified {
            Ok(verified) => gathered.extend(verified),
            Err(reason) => {
                // A bad claim token asks for a good one (Grant §3.3.6, G-E3d).
                let ticket = rotate(state, &ticket, &client.client_id, gathered).await?;
                let issuers: Vec<String> = state
                    .config
                    .trusted_issuers
                    .iter()
                    .map(|t| t.issuer.clone())
                    .collect();
                let mut required = json!([{ "claim_token_format": claim_token::FORMATS }]);
                if !issuers.is_empty() {
                    required[0]["issuer"] = json!(issuers);
                }
                return Err(Error::NeedInfo {
                    ticket,
                    required_claims: required,
                    redirect_user: redirect_user(state, client),
                    description: Some(reason),
                });
            }
        }
    }
    claims.extend(gathered.iter().cloned());
    let rqp = requesting_party(&claims);

    // An RPT to upgrade: its permissions are decided again with today's policies and claims,
    // never copied (S20).
    let old_rpt = match p.get("rpt") {
        Some(v) => presented_rpt(state, v, &client.client_id, &scope).await?,
        None => None,
    };
    if let Some(old) = &old_rpt {
        for perm in old.permissions.iter().flatten() {
            if let Some(a) = asked.iter_mut().find(|a| a.resource_id == perm.resource_id) {
                for s in &perm.resource_scopes {
                    if a.resource.resource_scopes.contains(s) && !a.scopes.contains(s) {
                        a.scopes.push(s.clone());
                    }
                }
            } else if let Some(resource) =
                state.store.get_resource(&scope, &perm.resource_id).await?
            {
                let scopes = perm
                    .resource_scopes
                    .iter()
                    .filter(|s| resource.resource_scopes.contains(s))
                    .cloned()
                    .collect();
                asked.push(Asked {
                    resource_id: perm.resource_id.clone(),
                    resource,
                    scopes,
                });
            }
        }
    }

    // The owner's answer to an earlier deferral.
    let approved: Vec<Permission> = match &ticket.approval {
        None => Vec::new(),
        Some(id) => match state.store.get_approval(&scope.owner, id).await? {
            None => return Err(Error::InvalidGrant("the approval request is gone".into())),
            Some(a) => match a.status {
                ApprovalStatus::Pending => {
                    let ticket = rotate(state, &ticket, &client.client_id, gathered).await?;
                    return Err(Error::RequestSubmitted {
                        ticket,
                        interval: state.config.approval_poll_interval_secs,
                    });
                }
                ApprovalStatus::Denied => {
                    return Err(Error::RequestDenied(
                        "the resource owner denied the request".into(),
                    ));
                }
                ApprovalStatus::Approved { granted } => granted,
            },
        },
    };

    // Decide each permission. The owner asking for their own resources needs no policy.
    // Otherwise every permission's policies run, handed to the runtime together (it runs them
    // in batches on the owner's evaluation slots), and the decisions go into the audit log
    // together: an RPT over 500 resources is 500 decisions.
    let owner_asks = is_owner(&scope.owner, &claims);
    let now_ms = policy::now_ms();
    let questions: Vec<Question> = if owner_asks {
        Vec::new()
    } else {
        asked
            .iter()
            .map(|a| Question {
                scope: &scope,
                resource_id: &a.resource_id,
                resource: &a.resource,
                requested_scopes: &a.scopes,
                client_id: &client.client_id,
                claims: &claims,
                now_ms,
            })
            .collect()
    };
    let evaluations = policy::evaluate_all(state, &questions).await?;
    let audited: Vec<_> = questions.iter().zip(&evaluations).collect();
    policy::audit_all(state, &audited, rqp.clone()).await?;
    let mut evaluations = evaluations.into_iter();
    let mut decided: Vec<(String, Combined)> = Vec::new();
    for a in &asked {
        let combined = match (owner_asks, evaluations.next()) {
            (true, _) => Combined::Permit {
                scopes: a.scopes.clone(),
            },
            // One evaluation per permission by construction; never grant without one.
            (false, None) => return Err(Error::internal("a permission was not evaluated")),
            (false, Some(evaluation)) => {
                let pre_granted: Vec<String> = approved
                    .iter()
                    .filter(|p| p.resource_id == a.resource_id)
                    .flat_map(|p| p.resource_scopes.clone())
                    .filter(|s| a.scopes.contains(s))
                    .collect();
                with_approved(evaluation.combined, &a.scopes, &pre_granted)
            }
        };
        decided.push((a.resource_id.clone(), combined));
    }

    // Answer: more claims could help → need_info; the owner could → request_submitted;
    // something granted → an RPT with what was granted (Grant §3.3.4 partial grant);
    // nothing → request_denied.
    let mut required: Vec<RequiredClaim> = Vec::new();
    let mut deferred: Vec<(Permission, Vec<String>)> = Vec::new();
    let mut granted: Vec<Permission> = Vec::new();
    for (resource_id, c) in &decided {
        if !c.granted().is_empty() {
            granted.push(Permission {
                resource_id: resource_id.clone(),
                resource_scopes: c.granted().to_vec(),
            });
        }
        match c {
            Combined::NeedInfo { required: r, .. } => {
                for x in r {
                    if !required.contains(x) {
                        required.push(x.clone());
                    }
                }
            }
            Combined::DeferToOwner {
                granted: g,
                messages,
            } => {
                let asked_scopes = &asked
                    .iter()
                    .find(|a| &a.resource_id == resource_id)
                    .map(|a| a.scopes.clone())
                    .unwrap_or_default();
                let open: Vec<String> = asked_scopes
                    .iter()
                    .filter(|s| !g.contains(s))
                    .cloned()
                    .collect();
                deferred.push((
                    Permission {
                        resource_id: resource_id.clone(),
                        resource_scopes: open,
                    },
                    messages.clone(),
                ));
            }
            _ => {}
        }
    }

    if !required.is_empty() {
        let ticket = rotate(state, &ticket, &client.client_id, gathered).await?;
        return Err(Error::NeedInfo {
            ticket,
            required_claims: required_claims_json(&required),
            redirect_user: redirect_user(state, client),
            description: None,
        });
    }
    if !deferred.is_empty() {
        let messages: BTreeSet<String> = deferred.iter().flat_map(|(_, m)| m.clone()).collect();
        let request = ApprovalRequest {
            id: random_token(12)?,
            resource_server: scope.resource_server.clone(),
            client_id: client.client_id.clone(),
            requesting_party: rqp.clone(),
            permissions: deferred.into_iter().map(|(p, _)| p).collect(),
            messages: messages.into_iter().collect(),
            status: ApprovalStatus::Pending,
            created_at: unix_now(),
            decided_at: None,
        };
        state.store.put_approval(&scope.owner, &request).await?;
        let mut next = ticket.clone();
        next.approval = Some(request.id.clone());
        let ticket = rotate(state, &next, &client.client_id, gathered).await?;
        return Err(Error::RequestSubmitted {
            ticket,
            interval: state.config.approval_poll_interval_secs,
        });
    }
    if granted.is_empty() {
        return Err(Error::RequestDenied(
            "the resource owner's policies do not grant this request".into(),
        ));
    }

    issue_rpt(state, client, &scope, granted, rqp, old_rpt, &gathered).await
}

/// Scopes the owner approved count as granted.
fn with_approved(c: Combined, asked: &[String], approved: &[String]) -> Combined {
    if approved.is_empty() {
        return c;
    }
    let mut granted: Vec<String> = c.granted().to_vec();
    for s in approved {
        if !granted.contains(s) {
            granted.push(s.clone());
        }
    }
    if asked.iter().all(|s| granted.contains(s)) {
        Combined::Permit { scopes: granted }
    } else {
        match c {
            Combined::NeedInfo { required, .. } => Combined::NeedInfo { granted, required },
            // The owner already answered; what they did not approve is not asked again.
            _ => Combined::Partial { scopes: granted },
        }
    }
}

async fn issue_rpt(
    state: &AppState,
    client: &Client,
    scope: &ResourceScope,
    permissions: Vec<Permission>,
    rqp: Option<String>,
    old_rpt: Option<AccessTokenClaims>,
    gathered: &[Claim],
) -> Result<TokenResponse> {
    let subject = match &rqp {
        Some(u) => Owner::User(u.clone()),
        None => Owner::Client(client.client_id.clone()),
    };
    let lifetime = state.config.rpt_lifetime_secs;
    let claims = AccessTokenClaims::rpt(
        state,
        &subject,
        &client.client_id,
        &scope.owner,
        &scope.resource_server,
        permissions.clone(),
        lifetime,
    )?;
    let access_token = claims.sign(state)?;
    state
        .store
        .record_rpt(
            &scope.owner,
            &RptRecord {
                jti: claims.jti.clone(),
                resource_server: scope.resource_server.clone(),
                client_id: client.client_id.clone(),
                requesting_party: rqp,
                permissions: permissions.clone(),
                iat: claims.iat,
                exp: claims.exp,
            },
        )
        .await?;

    let mut extra = serde_json::Map::new();
    if let Some(old) = old_rpt {
        // The old RPT's permissions were decided again and are part of the new one (RPT-2);
        // the old token is revoked (RPT-5).
        let carried = old
            .permissions
            .iter()
            .flatten()
            .any(|o| permissions.iter().any(|n| n.resource_id == o.resource_id));
        if carried {
            extra.insert("upgraded".into(), true.into());
        }
        state
            .store
            .revoke_jti(&old.jti, old.exp.max(unix_now() + 1))
            .await?;
        let _ = state.store.take_rpt(&scope.owner, &old.jti).await;
    }
    let persistable: Vec<Claim> = gathered
        .iter()
        .filter(|c| {
            !matches!(
                c.provenance,
                Provenance::Server | Provenance::ResourceServer
            )
        })
        .cloned()
        .collect();
    if !persistable.is_empty() {
        let pct = random_token(32)?;
        let now = unix_now();
        state
            .store
            .put_pct(
                &pct,
                &PctRecord {
                    client_id: client.client_id.clone(),
                    claims: persistable,
                    iat: now,
                    exp: now + state.config.pct_lifetime_secs,
                },
            )
            .await?;
        extra.insert("pct".into(), pct.into());
    }
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: None,
        refresh_token: None,
        extra,
    })
}
