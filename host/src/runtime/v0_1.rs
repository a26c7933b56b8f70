//! Bindings of `uma:policy@0.1.0` and their conversions to the host's types.
//!
//! A released contract version is never edited; a new one gets a module of its own beside this
//! one, and the ingest path picks the module by the version a component exports.

use super::types as host;

/// The `policy` world.
pub mod policy {
    wasmtime::component::bindgen!({
        world: "uma:policy/policy@0.1.0",
        path: "../wit/v0.1.0",
        // `log` may trap: the host stops a plugin that floods it (`max_log_calls`).
        imports: { "uma:policy/log.log": trappable },
    });
}

/// The `claims` world, sharing the `types` and `log` interfaces with the `policy` world so the
/// host implements logging once.
pub mod claims {
    wasmtime::component::bindgen!({
        world: "uma:policy/claims@0.1.0",
        path: "../wit/v0.1.0",
        with: {
            "uma:policy/types": super::policy::uma::policy::types,
            "uma:policy/log": super::policy::uma::policy::log,
        },
    });
}

/// The export a policy component must have.
pub const POLICY_EXPORT: &str = "uma:policy/evaluator@0.1.0";
/// The export a claims component must have.
pub const CLAIMS_EXPORT: &str = "uma:policy/gatherer@0.1.0";
/// Imports of our own package a component may have.
pub const OWN_IMPORTS: [&str; 2] = ["uma:policy/types@0.1.0", "uma:policy/log@0.1.0"];

use policy::exports::uma::policy::evaluator as ev;
use policy::uma::policy::types as t;

use claims::exports::uma::policy::gatherer as ga;

fn provenance(p: &host::Provenance) -> t::Provenance {
    match p {
        host::Provenance::Server => t::Provenance::Server,
        host::Provenance::VerifiedToken { issuer, format } => {
            t::Provenance::VerifiedToken(t::TokenOrigin {
                issuer: issuer.clone(),
                format: format.clone(),
            })
        }
        host::Provenance::Interactive { source } => t::Provenance::Interactive(source.clone()),
        host::Provenance::Pct => t::Provenance::Pct,
        host::Provenance::ResourceServer => t::Provenance::ResourceServer,
    }
}

fn context(c: &host::ServerContext) -> t::ServerContext {
    t::ServerContext {
        now_ms: c.now_ms,
        client_id: c.client_id.clone(),
        issuer: c.issuer.clone(),
    }
}

fn required_to_wit(r: &host::RequiredClaim) -> t::RequiredClaim {
    t::RequiredClaim {
        name: r.name.clone(),
        friendly_name: r.friendly_name.clone(),
        claim_type: r.claim_type.clone(),
        claim_token_formats: r.claim_token_formats.clone(),
        issuers: r.issuers.clone(),
    }
}

fn required_from_wit(r: t::RequiredClaim) -> host::RequiredClaim {
    host::RequiredClaim {
        name: r.name,
        friendly_name: r.friendly_name,
        claim_type: r.claim_type,
        claim_token_formats: r.claim_token_formats,
        issuers: r.issuers,
    }
}

/// The request in this version's types.
pub fn request(input: &host::PolicyInput) -> ev::Request {
    let p = &input.permission;
    ev::Request {
        permission: ev::Permission {
            resource_id: p.resource_id.clone(),
            owner: p.owner.clone(),
            resource_server: p.resource_server.clone(),
            resource_type: p.resource_type.clone(),
            resource_name: p.resource_name.clone(),
            registered_scopes: p.registered_scopes.clone(),
            requested_scopes: p.requested_scopes.clone(),
        },
        context: context(&input.context),
        claims: input
            .claims
            .iter()
            .map(|c| t::Claim {
                name: c.name.clone(),
                value: c.value.to_string(),
                provenance: provenance(&c.provenance),
            })
            .collect(),
        config: input.config.clone(),
    }
}

fn strings_len(list: &[String]) -> usize {
    list.iter().map(|s| s.len() + 1).sum()
}

fn required_len(r: &t::RequiredClaim) -> usize {
    r.name.len()
        + r.friendly_name.as_ref().map_or(0, |s| s.len())
        + r.claim_type.as_ref().map_or(0, |s| s.len())
        + strings_len(&r.claim_token_formats)
        + strings_len(&r.issuers)
}

/// The size of a decision in bytes, for the output cap.
pub fn decision_len(d: &ev::Decision) -> usize {
    match d {
        ev::Decision::Permit(scopes) => strings_len(scopes),
        ev::Decision::Deny(reason) | ev::Decision::DeferToOwner(reason) => reason.len(),
        ev::Decision::NeedInfo(required) => required.iter().map(required_len).sum(),
    }
}

/// The decision in the host's types; a permit keeps only scopes that were requested.
pub fn decision(d: ev::Decision, requested: &[String]) -> host::Decision {
    match d {
        ev::Decision::Permit(scopes) => {
            let mut granted: Vec<String> = Vec::new();
            for s in scopes {
                if requested.contains(&s) && !granted.contains(&s) {
                    granted.push(s);
                }
            }
            host::Decision::Permit { scopes: granted }
        }
        ev::Decision::Deny(reason) => host::Decision::Deny { reason },
        ev::Decision::NeedInfo(required) => host::Decision::NeedInfo {
            required: required.into_iter().map(required_from_wit).collect(),
        },
        ev::Decision::DeferToOwner(message) => host::Decision::DeferToOwner { message },
    }
}

/// The interaction in this version's types.
pub fn interaction(i: &host::InteractionInput) -> ga::Interaction {
    ga::Interaction {
        context: context(&i.context),
        required: i.required.iter().map(required_to_wit).collect(),
        config: i.config.clone(),
    }
}

/// The context in this version's types.
pub fn server_context(c: &host::ServerContext) -> t::ServerContext {
    context(c)
}

fn gathered(claims: Vec<ga::GatheredClaim>) -> Result<Vec<host::GatheredClaim>, String> {
    claims
        .into_iter()
        .map(|c| match serde_json::from_str(&c.value) {
            Ok(value) => Ok(host::GatheredClaim {
                name: c.name,
                value,
            }),
            Err(e) => Err(format!("claim `{}` is not valid JSON: {e}", c.name)),
        })
        .collect()
}

/// Gathered claims in the host's types; an invalid JSON value is a contract violation.
pub fn gathered_claims(claims: Vec<ga::GatheredClaim>) -> Result<Vec<host::GatheredClaim>, String> {
    gathered(claims)
}

/// The size of gathered claims in bytes.
pub fn gathered_len(claims: &[ga::GatheredClaim]) -> usize {
    claims.iter().map(|c| c.name.len() + c.value.len()).sum()
}

/// The size of a step in bytes.
pub fn step_len(s: &ga::Step) -> usize {
    match s {
        ga::Step::Ask(form) => {
            form.title.len()
                + form.prompt.len()
                + form.state.len()
                + form
                    .fields
                    .iter()
                    .map(|f| {
                        f.name.len()
                            + f.label.len()
                            + f.help.as_ref().map_or(0, |h| h.len())
                            + match &f.kind {
                                ga::FieldKind::Choice(options) => {
                                    options.iter().map(|(a, b)| a.len() + b.len()).sum()
                                }
                                _ => 0,
                            }
                    })
                    .sum::<usize>()
        }
        ga::Step::Done(claims) => gathered_len(claims),
        ga::Step::Fail(reason) => reason.len(),
    }
}

/// A step in the host's types.
pub fn step(s: ga::Step) -> Result<host::Step, String> {
    Ok(match s {
        ga::Step::Ask(form) => host::Step::Ask {
            form: host::Form {
                title: form.title,
                prompt: form.prompt,
                state: form.state,
                fields: form
                    .fields
                    .into_iter()
                    .map(|f| host::Field {
                        name: f.name,
                        label: f.label,
                        required: f.required,
                        help: f.help,
                        kind: match f.kind {
                            ga::FieldKind::Text => host::FieldKind::Text,
                            ga::FieldKind::Email => host::FieldKind::Email,
                            ga::FieldKind::Number => host::FieldKind::Number,
                            ga::FieldKind::Multiline => host::FieldKind::Multiline,
                            ga::FieldKind::Checkbox => host::FieldKind::Checkbox,
                            ga::FieldKind::Choice(options) => host::FieldKind::Choice { options },
                        },
                    })
                    .collect(),
            },
        },
        ga::Step::Done(claims) => host::Step::Done {
            claims: gathered(claims)?,
        },
        ga::Step::Fail(reason) => host::Step::Fail { reason },
    })
}

/// Answers in this version's types.
pub fn answers(answers: &[(String, String)]) -> Vec<ga::Answer> {
    answers
        .iter()
        .map(|(name, value)| ga::Answer {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}
