//! Resource registration (Fed §3): create, read, full-replace update, delete and list, always
//! within the caller's (owner, resource server) scope taken from the PAT, never from the body
//! (S9, S10). Cross-scope ids answer 404 like ids that never existed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::pat::Pat;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::keys::random_token;
use crate::oauth::clients::valid_scope_token;
use crate::store::ResourceDescription;

/// The JSON body of create and update. Unknown members are ignored (RR-8), except
/// language-tagged `name#…` / `description#…`, which are kept (RR-4, RR-6).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResourceInput {
    resource_scopes: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    icon_uri: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    resource_type: Option<String>,
    /// Language-tagged `name#…` and `description#…` (strings) are kept; other members are
    /// ignored.
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

const MAX_SCOPES: usize = 256;
const MAX_TEXT: usize = 2048;

fn check_text(field: &str, v: &Option<String>) -> Result<()> {
    match v {
        Some(s) if s.len() > MAX_TEXT => Err(Error::invalid_request(format!(
            "{field} is longer than {MAX_TEXT} bytes"
        ))),
        _ => Ok(()),
    }
}

fn valid_language_tag(tag: &str) -> bool {
    (1..=64).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl ResourceInput {
    /// Validates the description with precise `invalid_request` messages.
    pub fn validate(self) -> Result<ResourceDescription> {
        if self.resource_scopes.len() > MAX_SCOPES {
            return Err(Error::invalid_request(format!(
                "resource_scopes: at most {MAX_SCOPES} scopes"
            )));
        }
        for (i, s) in self.resource_scopes.iter().enumerate() {
            if !valid_scope_token(s) || s.len() > MAX_TEXT {
                return Err(Error::invalid_request(format!(
                    "resource_scopes[{i}]: {s:?} is not a valid scope (printable ASCII, no spaces, quotes or backslashes)"
                )));
            }
            if self.resource_scopes[..i].contains(s) {
                return Err(Error::invalid_request(format!(
                    "resource_scopes[{i}]: {s:?} is listed twice"
                )));
            }
        }
        check_text("name", &self.name)?;
        check_text("description", &self.description)?;
        check_text("type", &self.resource_type)?;
        check_text("icon_uri", &self.icon_uri)?;
        if let Some(u) = &self.icon_uri {
            url::Url::parse(u).map_err(|e| {
                Error::invalid_request(format!("icon_uri: {u:?} is not an absolute URI: {e}"))
            })?;
        }
        let mut localized = BTreeMap::new();
        for (k, v) in self.rest {
            let Some((base, tag)) = k.split_once('#') else {
                continue; // unknown extension member: ignored
            };
            if !matches!(base, "name" | "description") {
                continue;
            }
            if !valid_language_tag(tag) {
                return Err(Error::invalid_request(format!("{k}: invalid language tag")));
            }
            match v {
                serde_json::Value::String(s) if s.len() <= MAX_TEXT => {
                    localized.insert(k, s);
                }
                serde_json::Value::String(_) => {
                    return Err(Error::invalid_request(format!(
                        "{k} is longer than {MAX_TEXT} bytes"
                    )));
                }
                _ => return Err(Error::invalid_request(format!("{k}: expected a string"))),
            }
        }
        Ok(ResourceDescription {
            resource_scopes: self.resource_scopes,
            description: self.description,
            icon_uri: self.icon_uri,
            name: self.name,
            resource_type: self.resource_type,
            localized,
        })
    }
}

/// Paging and filters of the list operation.
#[derive(Debug, Default)]
pub struct ListQuery {
    /// Index of the first id to return (default 0).
    pub first: Option<usize>,
    /// Most ids to return (default and cap 1000).
    pub max: Option<usize>,
    /// Keep resources whose `name` equals this (or starts with it, with `exactName=false`).
    pub name: Option<String>,
    pub exact_name: Option<bool>,
    /// Keep resources of this `type`.
    pub resource_type: Option<String>,
    /// Keep resources that have this scope.
    pub scope: Option<String>,
}

pub const MAX_PAGE: usize = 1000;

impl ListQuery {
    /// Parses `first`, `max`, `name`, `exactName`, `type`, `scope` from a query string.
    pub fn parse(query: &str) -> Result<ListQuery> {
        let p = crate::http::extract::FormParams::parse(query.as_bytes())?;
        fn num(p: &crate::http::extract::FormParams, k: &str) -> Result<Option<usize>> {
            p.get(k)
                .map(|v| {
                    v.parse().map_err(|_| {
                        Error::invalid_request(format!("{k} must be a non-negative integer"))
                    })
                })
                .transpose()
        }
        let exact_name = p
            .get("exactName")
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Error::invalid_request("exactName must be true or false")),
            })
            .transpose()?;
        Ok(ListQuery {
            first: num(&p, "first")?,
            max: num(&p, "max")?,
            name: p.get("name").map(str::to_owned),
            exact_name,
            resource_type: p.get("type").map(str::to_owned),
            scope: p.get("scope").map(str::to_owned),
        })
    }
}

pub async fn create(state: &AppState, pat: &Pat, input: ResourceInput) -> Result<String> {
    let description = input.validate()?;
    let id = random_token(16)?;
    state
        .store
        .create_resource(pat.scope(), &id, &description)
        .await?;
    Ok(id)
}

pub async fn read(state: &AppState, pat: &Pat, id: &str) -> Result<ResourceDescription> {
    state
        .store
        .get_resource(pat.scope(), id)
        .await?
        .ok_or(Error::NotFound)
}

pub async fn update(state: &AppState, pat: &Pat, id: &str, input: ResourceInput) -> Result<()> {
    let description = input.validate()?;
    if state
        .store
        .replace_resource(pat.scope(), id, &description)
        .await?
    {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

pub async fn delete(state: &AppState, pat: &Pat, id: &str) -> Result<()> {
    if state.store.delete_resource(pat.scope(), id).await? {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

pub async fn list(state: &AppState, pat: &Pat, q: &ListQuery) -> Result<Vec<String>> {
    let max = q.max.unwrap_or(MAX_PAGE);
    if max > MAX_PAGE {
        return Err(Error::invalid_request(format!(
            "max must be at most {MAX_PAGE}"
        )));
    }
    let exact = q.exact_name.unwrap_or(true);
    let all = state.store.list_resources(pat.scope()).await?;
    Ok(all
        .into_iter()
        .filter(|(_, r)| match (&q.name, &r.name) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(want), Some(have)) => {
                if exact {
                    have == want
                } else {
                    have.starts_with(want.as_str())
                }
            }
        })
        .filter(|(_, r)| q.resource_type.is_none() || r.resource_type == q.resource_type)
        .filter(|(_, r)| {
            q.scope
                .as_ref()
                .is_none_or(|s| r.resource_scopes.contains(s))
        })
        .skip(q.first.unwrap_or(0))
        .take(max)
        .map(|(id, _)| id)
        .collect())
}
