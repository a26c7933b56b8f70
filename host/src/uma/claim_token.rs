//! Verifying pushed claim tokens (Grant §3.3.1 `claim_token`): OpenID ID tokens and JWTs from
//! configured trusted issuers. Signature with the issuer's key (asymmetric algorithms only, the
//! key's own algorithm: no `none`, no HMAC-with-public-key confusion), issuer, expiry, not
//! before, and binding to the presenting client (`azp`, or `aud` naming it) are all checked
//! (security-lessons S16, Grant §5.7).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::TrustedIssuer;
use crate::http::AppState;
use crate::runtime::{Claim, Provenance};

/// The OpenID Connect ID token format (Grant §3.3.1).
pub const ID_TOKEN: &str = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken";
/// A plain JWT (RFC 8693 token type).
pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Formats the host verifies itself.
pub const FORMATS: [&str; 2] = [ID_TOKEN, JWT];

/// JWT members that describe the token rather than the requesting party.
const TECHNICAL: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "azp",
    "nonce",
    "auth_time",
    "at_hash",
    "c_hash",
    "sid",
    "typ",
    "acr",
    "amr",
];

fn issuer_of(token: &str) -> Result<String, String> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "the payload is not base64url")?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| "the payload is not JSON")?;
    v.get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the token has no iss".to_string())
}

fn jwks_cache() -> &'static Mutex<HashMap<String, (Instant, JwkSet)>> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Instant, JwkSet)>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

async fn keys_of(trusted: &TrustedIssuer) -> Result<JwkSet, String> {
    if let Some(inline) = &trusted.jwks {
        return serde_json::from_value(inline.clone())
            .map_err(|e| format!("the configured JWKS of {} is invalid: {e}", trusted.issuer));
    }
    let uri = trusted
        .jwks_uri
        .as_ref()
        .ok_or_else(|| format!("no keys are configured for {}", trusted.issuer))?;
    if let Some((at, set)) = jwks_cache().lock().unwrap().get(uri)
        && at.elapsed() < Duration::from_secs(300)
    {
        return Ok(set.clone());
    }
    let set: JwkSet = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?
        .get(uri)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("fetching the keys of {}: {e}", trusted.issuer))?
        .json()
        .await
        .map_err(|e| format!("the keys of {} are not a JWK Set: {e}", trusted.issuer))?;
    jwks_cache()
        .lock()
        .unwrap()
        .insert(uri.clone(), (Instant::now(), set.clone()));
    Ok(set)
}

/// The only algorithm a key may verify: its declared `alg`, else the one its type implies.
/// Symmetric keys are never used.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        Some(a) => a.to_string().parse::<Algorithm>().ok()?,
        None => implied,
    };
    let family_ok = matches!(
        (alg, &jwk.algorithm),
        (
            Algorithm::ES256 | Algorithm::ES384,
            AlgorithmParameters::EllipticCurve(_)
        ) | (
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
            AlgorithmParameters::RSA(_)
        ) | (Algorithm::EdDSA, AlgorithmParameters::OctetKeyPair(_))
    );
    family_ok.then_some(alg)
}

/// Verify `token` of `format` presented by `client_id` and return its claims, each tagged with
/// the verified issuer. The error says why, for `need_info`'s description.
pub async fn verify(
    state: &AppState,
    format: &str,
    token: &str,
    client_id: &str,
) -> Result<Vec<Claim>, String> {
    if !FORMATS.contains(&format) {
        return Err(format!("unsupported claim_token_format {format}"));
    }
    let iss = issuer_of(token)?;
    let trusted = state
        .config
        .trusted_issuers
        .iter()
        .find(|t| t.issuer == iss)
        .ok_or_else(|| format!("the issuer {iss} is not trusted"))?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token header")?;
    let set = keys_of(trusted).await?;
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or("no trusted key matches the token's kid")?;
    let alg = algorithm_of(jwk).ok_or("the issuer's key cannot verify signatures")?;
    if header.alg != alg {
        return Err(format!(
            "the token's alg {:?} is not the key's {alg:?}",
            header.alg
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "the issuer's key is unusable")?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[&iss]);
    v.validate_aud = false; // checked below against the presenting client
    v.validate_nbf = true;
    v.leeway = 30;
    v.set_required_spec_claims(&["exp", "iss"]);
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &v).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the claim token expired".into(),
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                "the claim token is not valid yet".into()
            }
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                "the claim token's signature is invalid".into()
            }
            _ => format!("the claim token is invalid: {e}"),
        },
    )?;
    let claims = data.claims;
    // Binding to the presenting client (keycloak#46717): an ID token issued to another client
    // must not be accepted.
    let aud_has_client = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client_id)),
        _ => false,
    };
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != client_id => {
            return Err("the claim token was issued to another client (azp)".into());
        }
        Some(_) => {}
        None if !aud_has_client => {
            return Err("the claim token's audience does not include this client".into());
        }
        None => {}
    }
    let provenance = Provenance::VerifiedToken {
        issuer: iss,
        format: format.to_owned(),
    };
    Ok(claims
        .into_iter()
        .filter(|(k, _)| !TECHNICAL.contains(&k.as_str()))
        .map(|(name, value)| Claim {
            name,
            value,
            provenance: provenance.clone(),
        })
        .collect())
}
