//! A two-step interactive claims plugin: the requesting party accepts the terms, then states the
//! purpose of the access. Produces the claims `terms_accepted` (true) and `purpose`.
//!
//! Configuration:
//! ```json
//! { "terms": "Data is used for treatment only.", "purposes": ["treatment", "second opinion"] }
//! ```
//! `purposes` (optional) turns the purpose into a choice; without it the purpose is free text.

use serde::Deserialize;
use uma_policy_sdk::claims::{
    Answer, ClaimsPlugin, Field, FieldKind, Form, GatheredClaim, Interaction, Step, answer,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    terms: String,
    purposes: Option<Vec<String>>,
}

fn config(raw: &str) -> Result<Config, String> {
    serde_json::from_str(raw).map_err(|e| format!("invalid configuration: {e}"))
}

fn terms_form(config: &Config) -> Step {
    Step::Ask(Form {
        title: "Terms of access".into(),
        prompt: config.terms.clone(),
        fields: vec![Field {
            name: "accept".into(),
            label: "I accept these terms".into(),
            kind: FieldKind::Checkbox,
            required: true,
            help: None,
        }],
        state: "terms".into(),
    })
}

fn purpose_form(config: &Config) -> Step {
    let kind = match &config.purposes {
        Some(p) => FieldKind::Choice(p.iter().map(|p| (p.clone(), p.clone())).collect()),
        None => FieldKind::Multiline,
    };
    Step::Ask(Form {
        title: "Purpose".into(),
        prompt: "Why do you need access?".into(),
        fields: vec![Field {
            name: "purpose".into(),
            label: "Purpose of access".into(),
            kind,
            required: true,
            help: None,
        }],
        state: "purpose".into(),
    })
}

struct TermsPurpose;

impl ClaimsPlugin for TermsPurpose {
    fn token_formats() -> Vec<String> {
        Vec::new()
    }

    fn verify_token(
        format: String,
        _token: String,
        _config: String,
        _context: uma_policy_sdk::claims::ServerContext,
    ) -> Result<Vec<GatheredClaim>, String> {
        Err(format!(
            "this plugin verifies no claim tokens (got format `{format}`)"
        ))
    }

    fn start(interaction: Interaction) -> Step {
        match config(&interaction.config) {
            Ok(c) => terms_form(&c),
            Err(e) => Step::Fail(e),
        }
    }

    fn submit(interaction: Interaction, state: String, answers: Vec<Answer>) -> Step {
        let config = match config(&interaction.config) {
            Ok(c) => c,
            Err(e) => return Step::Fail(e),
        };
        match state.as_str() {
            "terms" => match answer(&answers, "accept") {
                Some("true") => purpose_form(&config),
                _ => Step::Fail("the terms were not accepted".into()),
            },
            "purpose" => {
                let purpose = answer(&answers, "purpose").unwrap_or("").trim();
                let allowed = config
                    .purposes
                    .as_ref()
                    .is_none_or(|p| p.iter().any(|x| x == purpose));
                if purpose.is_empty() || !allowed {
                    return purpose_form(&config);
                }
                Step::Done(vec![
                    GatheredClaim {
                        name: "terms_accepted".into(),
                        value: "true".into(),
                    },
                    GatheredClaim::string("purpose", purpose),
                ])
            }
            _ => Step::Fail("unknown step".into()),
        }
    }

    fn validate_config(raw: String) -> Result<(), String> {
        let c = config(&raw)?;
        if c.terms.trim().is_empty() {
            return Err("`terms` must not be empty".into());
        }
        if matches!(&c.purposes, Some(p) if p.is_empty()) {
            return Err("`purposes`, when given, must list at least one purpose".into());
        }
        Ok(())
    }
}

uma_policy_sdk::export_claims!(TermsPurpose, without_panic_messages);
