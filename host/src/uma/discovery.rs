//! The discovery document (UMA Grant §2, Fed §2, RFC 8414): served at
//! `issuer + "/.well-known/uma2-configuration"` (concatenation, X-2) and at the RFC 8414
//! `/.well-known/oauth-authorization-server` locations. No member is an empty array (D-5).

use serde_json::{Value, json};

use crate::config::Config;
use crate::oauth::UMA_PROTECTION;
use crate::oauth::token::SUPPORTED_GRANTS;

/// Paths of our endpoints, relative to the issuer.
pub mod paths {
    pub const AUTHORIZE: &str = "/authorize";
    pub const TOKEN: &str = "/token";
    pub const REVOKE: &str = "/revoke";
    pub const INTROSPECT: &str = "/introspect";
    pub const JWKS: &str = "/jwks";
    pub const RESOURCE_SET: &str = "/resource_set";
    pub const PERMISSION: &str = "/permission";
    pub const REGISTER: &str = "/register";
    pub const CLAIMS_INTERACTION: &str = "/claims";
    pub const UMA2_CONFIGURATION: &str = "/.well-known/uma2-configuration";
    pub const OAUTH_AS_METADATA: &str = "/.well-known/oauth-authorization-server";
}

pub fn document(config: &Config) -> Value {
    let e = |p: &str| config.endpoint(p);
    let client_auth = ["client_secret_basic", "client_secret_post"];
    let registration = config.registration_enabled().then(|| e(paths::REGISTER));
    json!({
        "issuer": config.issuer,
        "authorization_endpoint": e(paths::AUTHORIZE),
        "token_endpoint": e(paths::TOKEN),
        "jwks_uri": e(paths::JWKS),
        "revocation_endpoint": e(paths::REVOKE),
        "introspection_endpoint": e(paths::INTROSPECT),
        "resource_registration_endpoint": e(paths::RESOURCE_SET),
        "permission_endpoint": e(paths::PERMISSION),
        "registration_endpoint": registration,
        "claims_interaction_endpoint": e(paths::CLAIMS_INTERACTION),
        "scopes_supported": [UMA_PROTECTION, crate::policy::UMA_POLICY],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": SUPPORTED_GRANTS,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": client_auth,
    })
    .as_object()
    .map(|o| {
        Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    })
    .unwrap_or(Value::Null)
}
