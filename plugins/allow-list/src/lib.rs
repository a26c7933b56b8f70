//! Allow-list policy: permits listed clients, subjects and e-mail addresses.
//!
//! Configuration:
//! ```json
//! { "subjects": ["alice"], "emails": ["doctor@clinic.example"], "client_ids": ["portal"],
//!   "scopes": ["view"], "issuers": ["https://idp.example"] }
//! ```
//! - `subjects`, `emails`, `client_ids`: who is allowed; at least one entry in all.
//! - `scopes` (optional): the scopes a match grants, intersected with those requested; default
//!   every requested scope.
//! - `issuers` (optional): `sub`/`email` claims count only from verified tokens of these
//!   issuers. Without it they count from any provenance but the resource server's (pushed claims
//!   are not verified by the host).

use serde::Deserialize;
use uma_policy_sdk::policy::{Claim, Decision, Policy, Provenance, Request, RequiredClaim};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    client_ids: Vec<String>,
    scopes: Option<Vec<String>>,
    issuers: Option<Vec<String>>,
}

struct AllowList;

impl Config {
    fn trusted(&self, claim: &Claim) -> bool {
        match (&self.issuers, &claim.provenance) {
            (Some(issuers), Provenance::VerifiedToken(origin)) => issuers.contains(&origin.issuer),
            (Some(_), _) => false,
            (None, Provenance::ResourceServer) => false,
            (None, _) => true,
        }
    }

    fn grant(&self, request: &Request) -> Decision {
        match &self.scopes {
            Some(scopes) => request.permit_where(|s| scopes.iter().any(|g| g == s)),
            None => request.permit_requested(),
        }
    }
}

impl Policy for AllowList {
    type Config = Config;

    fn evaluate(request: &Request, config: &Config) -> Decision {
        if config.client_ids.contains(&request.context.client_id) {
            return config.grant(request);
        }
        let mut identified = false;
        for claim in request.claims.iter().filter(|c| config.trusted(c)) {
            let list = match claim.name.as_str() {
                "sub" => &config.subjects,
                "email" => &config.emails,
                _ => continue,
            };
            identified = true;
            if claim.strings().iter().any(|v| list.contains(v)) {
                return config.grant(request);
            }
        }
        let identity_listed = !config.subjects.is_empty() || !config.emails.is_empty();
        if !identified && identity_listed {
            let name = if config.emails.is_empty() {
                "sub"
            } else {
                "email"
            };
            return Decision::NeedInfo(vec![RequiredClaim {
                name: name.to_string(),
                friendly_name: Some(
                    if name == "email" {
                        "E-mail address"
                    } else {
                        "Subject"
                    }
                    .into(),
                ),
                claim_type: None,
                claim_token_formats: Vec::new(),
                issuers: config.issuers.clone().unwrap_or_default(),
            }]);
        }
        Decision::Deny("the requesting party is not on the allow-list".into())
    }

    fn validate(config: &Config) -> Result<(), String> {
        if config.subjects.is_empty() && config.emails.is_empty() && config.client_ids.is_empty() {
            return Err(
                "the allow-list is empty: give at least one of subjects, emails, client_ids".into(),
            );
        }
        if matches!(&config.issuers, Some(i) if i.is_empty()) {
            return Err("issuers, when given, must name at least one issuer".into());
        }
        Ok(())
    }
}

uma_policy_sdk::export_policy!(AllowList, without_panic_messages);
