//! Claims plugin: verifies claim tokens a partner signs with a secret it shares with the
//! resource owner — compact JWS with `HS256` — in the claim token format
//! `urn:uma-host:claim-token:hs256-jwt`. The host itself never accepts HMAC-signed tokens from
//! trusted issuers (a public key must never double as an HMAC secret); here the secret is the
//! owner's own configuration, so the trust decision is theirs.
//!
//! Configuration:
//! ```json
//! { "secret": "at least 32 bytes of shared secret", "issuer": "https://partner.example" }
//! ```
//! `issuer` (optional): the token's `iss` must equal it. `exp` is required and checked against
//! the server's clock; `aud`, when present, must name the presenting client. It gathers nothing
//! interactively.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use uma_policy_sdk::claims::{
    Answer, ClaimsPlugin, GatheredClaim, Interaction, ServerContext, Step,
};

/// The claim token format this plugin verifies.
const FORMAT: &str = "urn:uma-host:claim-token:hs256-jwt";
const TECHNICAL: &[&str] = &["iss", "aud", "exp", "iat", "nbf", "jti", "azp"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    secret: String,
    issuer: Option<String>,
}

fn config(raw: &str) -> Result<Config, String> {
    let c: Config = serde_json::from_str(raw).map_err(|e| format!("invalid configuration: {e}"))?;
    if c.secret.len() < 32 {
        return Err("`secret` must be at least 32 bytes".into());
    }
    Ok(c)
}

fn verify(
    token: &str,
    config: &Config,
    context: &ServerContext,
) -> Result<Vec<GatheredClaim>, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".into());
    };
    let header: Value = serde_json::from_slice(&B64.decode(h).map_err(|_| "bad header encoding")?)
        .map_err(|_| "bad header")?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err("only HS256 is accepted".into());
    }
    let signature = B64.decode(s).map_err(|_| "bad signature encoding")?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(config.secret.as_bytes()).map_err(|_| "bad key")?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| "the signature does not match the shared secret")?;
    let payload: serde_json::Map<String, Value> =
        serde_json::from_slice(&B64.decode(p).map_err(|_| "bad payload encoding")?)
            .map_err(|_| "the payload is not a JSON object")?;
    let now = (context.now_ms / 1000) as i64;
    match payload.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => {}
        Some(_) => return Err("the token expired".into()),
        None => return Err("the token has no exp".into()),
    }
    if let Some(issuer) = &config.issuer
        && payload.get("iss").and_then(Value::as_str) != Some(issuer)
    {
        return Err("the token's iss is not the configured issuer".into());
    }
    let aud_ok = match payload.get("aud") {
        None => true,
        Some(Value::String(a)) => a == &context.client_id,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(&context.client_id)),
        Some(_) => false,
    };
    if !aud_ok {
        return Err("the token's audience does not include this client".into());
    }
    Ok(payload
        .into_iter()
        .filter(|(k, _)| !TECHNICAL.contains(&k.as_str()))
        .map(|(name, value)| GatheredClaim {
            name,
            value: value.to_string(),
        })
        .collect())
}

struct HmacToken;

impl ClaimsPlugin for HmacToken {
    fn token_formats() -> Vec<String> {
        vec![FORMAT.to_string()]
    }

    fn verify_token(
        format: String,
        token: String,
        config_json: String,
        context: ServerContext,
    ) -> Result<Vec<GatheredClaim>, String> {
        if format != FORMAT {
            return Err(format!("unsupported format {format}"));
        }
        verify(&token, &config(&config_json)?, &context)
    }

    fn start(_: Interaction) -> Step {
        Step::Done(Vec::new())
    }

    fn submit(_: Interaction, _: String, _: Vec<Answer>) -> Step {
        Step::Done(Vec::new())
    }

    fn validate_config(raw: String) -> Result<(), String> {
        config(&raw).map(|_| ())
    }
}

uma_policy_sdk::export_claims!(HmacToken, without_panic_messages);
