//! The permission endpoint (Fed §4): a resource server asks, with a PAT, for a permission
//! ticket covering one or more (resource, scopes) pairs of the PAT's owner. Every named resource
//! and scope is checked against the caller's own registrations (S8); one failure fails the
//! whole request and no ticket is stored.

use serde::Deserialize;
use serde_json::Value;

use super::pat::Pat;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::store::{Permission, Ticket, unix_now};

/// One requested permission (Fed §4.1).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PermissionInput {
    pub resource_id: String,
    pub resource_scopes: Vec<String>,
}

/// Most permissions one request may carry.
pub const MAX_PERMISSIONS: usize = 100;

/// Reads a request body that is one permission object or an array of one or more.
pub fn parse_request(body: Value) -> Result<Vec<PermissionInput>> {
    fn one(v: Value, at: &str) -> Result<PermissionInput> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let mut location = at.to_owned();
            let path = e.path().to_string();
            if path != "." {
                if !location.is_empty() {
                    location.push('.');
                }
                location.push_str(&path);
            }
            let inner = e.into_inner();
            if location.is_empty() {
                Error::invalid_request(inner.to_string())
            } else {
                Error::invalid_request(format!("{location}: {inner}"))
            }
        })
    }
    match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Error::invalid_request(
                    "the request must hold one or more permissions",
                ));
            }
            if items.len() > MAX_PERMISSIONS {
                return Err(Error::invalid_request(format!(
                    "at most {MAX_PERMISSIONS} permissions per request"
                )));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| one(v, &format!("[{i}]")))
                .collect()
        }
        v @ Value::Object(_) => Ok(vec![one(v, "")?]),
        _ => Err(Error::invalid_request(
            "expected a permission object or an array of them",
        )),
    }
}

/// Validates the permissions against the caller's registrations and stores a fresh ticket.
pub async fn request_ticket(
    state: &AppState,
    pat: &Pat,
    requested: Vec<PermissionInput>,
) -> Result<String> {
    // Merge repeats of the same resource, keeping first-seen order.
    let mut permissions: Vec<Permission> = Vec::new();
    for p in requested {
        let Some(resource) = state
            .store
            .get_resource(pat.scope(), &p.resource_id)
            .await?
        else {
            return Err(Error::InvalidResourceId(format!(
                "resource {} is not registered",
                p.resource_id
            )));
        };
        if let Some(s) = p
            .resource_scopes
            .iter()
            .find(|s| !resource.resource_scopes.contains(s))
        {
            return Err(Error::InvalidScope(format!(
                "scope {s} is not registered for resource {}",
                p.resource_id
            )));
        }
        let index = match permissions
            .iter()
            .position(|x| x.resource_id == p.resource_id)
        {
            Some(i) => i,
            None => {
                permissions.push(Permission {
                    resource_id: p.resource_id,
                    resource_scopes: Vec::new(),
                });
                permissions.len() - 1
            }
        };
        let scopes = &mut permissions[index].resource_scopes;
        for s in p.resource_scopes {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    let now = unix_now();
    let record = Ticket {
        owner: pat.scope().owner.clone(),
        resource_server: pat.scope().resource_server.clone(),
        permissions,
        iat: now,
        exp: now + state.config.ticket_lifetime_secs,
        client_id: None,
        claims: Vec::new(),
        approval: None,
    };
    super::ticket::issue(state, &record).await
}
