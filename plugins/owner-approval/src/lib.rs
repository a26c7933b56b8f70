//! Owner-approval policy: sends the request to the resource owner, who approves or denies it.
//!
//! Configuration:
//! ```json
//! { "message": "An insurer asks to read your lab reports", "scopes": ["edit"] }
//! ```
//! - `message` (optional): shown to the owner with the pending request.
//! - `scopes` (optional): only these scopes need approval; the other requested scopes are
//!   permitted by this policy. Default: every scope needs approval.

use serde::Deserialize;
use uma_policy_sdk::policy::{Decision, Policy, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    message: Option<String>,
    scopes: Option<Vec<String>>,
}

struct OwnerApproval;

impl Policy for OwnerApproval {
    type Config = Config;

    fn evaluate(request: &Request, config: &Config) -> Decision {
        let needs_approval = match &config.scopes {
            None => true,
            Some(s) => request
                .permission
                .requested_scopes
                .iter()
                .any(|r| s.contains(r)),
        };
        if needs_approval {
            let message = config.message.clone().unwrap_or_else(|| {
                format!(
                    "client {} asks for {} on {}",
                    request.context.client_id,
                    request.permission.requested_scopes.join(", "),
                    request
                        .permission
                        .resource_name
                        .as_deref()
                        .unwrap_or(&request.permission.resource_id)
                )
            });
            Decision::DeferToOwner(message)
        } else {
            request.permit_requested()
        }
    }

    fn validate(config: &Config) -> Result<(), String> {
        if matches!(&config.message, Some(m) if m.len() > 1000) {
            return Err("message is longer than 1000 bytes".into());
        }
        Ok(())
    }
}

uma_policy_sdk::export_policy!(OwnerApproval, without_panic_messages);
