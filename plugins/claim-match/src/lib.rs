//! Claim-match policy: one claim must equal a value, be one of several, or be an e-mail address
//! in a domain, optionally from a verified token of a given issuer.
//!
//! Configuration:
//! ```json
//! { "claim": "email", "domain": "clinic.example", "issuer": "https://idp.example",
//!   "scopes": ["view"] }
//! ```
//! - `claim`: the claim's name.
//! - exactly one of `equals` (a JSON value), `one_of` (an array of JSON values), `domain`
//!   (the string value ends with `@domain`).
//! - `issuer` (optional): the claim counts only from a verified token of this issuer.
//! - `provenance` (optional): which provenances count, from `server`, `verified-token`,
//!   `interactive`, `pct`, `resource-server`; default all but `resource-server`.
//! - `scopes` (optional): the scopes a match grants; default every requested scope.
//! - `friendly_name` (optional): shown to the requesting party when the claim is missing.

use serde::Deserialize;
use serde_json::Value;
use uma_policy_sdk::policy::{Claim, Decision, Policy, Provenance, Request, RequiredClaim};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    claim: String,
    equals: Option<Value>,
    one_of: Option<Vec<Value>>,
    domain: Option<String>,
    issuer: Option<String>,
    provenance: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    friendly_name: Option<String>,
}

const PROVENANCES: [&str; 5] = [
    "server",
    "verified-token",
    "interactive",
    "pct",
    "resource-server",
];

fn provenance_name(p: &Provenance) -> &'static str {
    match p {
        Provenance::Server => "server",
        Provenance::VerifiedToken(_) => "verified-token",
        Provenance::Interactive(_) => "interactive",
        Provenance::Pct => "pct",
        Provenance::ResourceServer => "resource-server",
    }
}

impl Config {
    fn counts(&self, claim: &Claim) -> bool {
        if claim.name != self.claim {
            return false;
        }
        if let Some(issuer) = &self.issuer {
            return claim.issuer() == Some(issuer.as_str());
        }
        let name = provenance_name(&claim.provenance);
        match &self.provenance {
            Some(allowed) => allowed.iter().any(|a| a == name),
            None => name != "resource-server",
        }
    }

    fn matches(&self, value: &Value) -> bool {
        if let Some(expected) = &self.equals {
            return value == expected;
        }
        if let Some(options) = &self.one_of {
            return options.contains(value);
        }
        if let (Some(domain), Value::String(s)) = (&self.domain, value) {
            return s
                .rsplit_once('@')
                .is_some_and(|(local, d)| !local.is_empty() && d.eq_ignore_ascii_case(domain));
        }
        false
    }
}

struct ClaimMatch;

impl Policy for ClaimMatch {
    type Config = Config;

    fn evaluate(request: &Request, config: &Config) -> Decision {
        let mut seen = false;
        for claim in request.claims.iter().filter(|c| config.counts(c)) {
            seen = true;
            let value = claim.json();
            let hit = match &value {
                Value::Array(items) if config.equals.is_none() => {
                    items.iter().any(|v| config.matches(v))
                }
                v => config.matches(v),
            };
            if hit {
                return match &config.scopes {
                    Some(scopes) => request.permit_where(|s| scopes.iter().any(|g| g == s)),
                    None => request.permit_requested(),
                };
            }
        }
        if seen {
            return Decision::Deny(format!("claim `{}` does not match", config.claim));
        }
        Decision::NeedInfo(vec![RequiredClaim {
            name: config.claim.clone(),
            friendly_name: config.friendly_name.clone(),
            claim_type: None,
            claim_token_formats: Vec::new(),
            issuers: config.issuer.iter().cloned().collect(),
        }])
    }

    fn validate(config: &Config) -> Result<(), String> {
        if config.claim.is_empty() {
            return Err("`claim` must name a claim".into());
        }
        let ops = [
            config.equals.is_some(),
            config.one_of.is_some(),
            config.domain.is_some(),
        ];
        if ops.iter().filter(|o| **o).count() != 1 {
            return Err("give exactly one of `equals`, `one_of`, `domain`".into());
        }
        if matches!(&config.domain, Some(d) if d.is_empty() || d.contains('@')) {
            return Err("`domain` must be a bare domain such as `example.com`".into());
        }
        if let Some(p) = &config.provenance {
            if let Some(bad) = p.iter().find(|p| !PROVENANCES.contains(&p.as_str())) {
                return Err(format!(
                    "unknown provenance `{bad}`; use one of {}",
                    PROVENANCES.join(", ")
                ));
            }
            if config.issuer.is_some() {
                return Err("`issuer` already requires a verified token: drop `provenance`".into());
            }
        }
        Ok(())
    }
}

uma_policy_sdk::export_policy!(ClaimMatch, without_panic_messages);
