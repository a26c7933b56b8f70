//! OAuth 2.0 core: clients and users, the login page (authorization code + PKCE S256), the token
//! endpoint and its grant dispatch, refresh, revocation (RFC 7009), client authentication, and
//! RFC 9068 JWT access tokens.

pub mod access_token;
pub mod authorize;
pub mod client_auth;
pub mod clients;
pub mod registration;
pub mod revoke;
pub mod token;
pub mod users;

/// The scope that makes an access token a PAT (Fed §1.2).
pub const UMA_PROTECTION: &str = "uma_protection";

/// Grant type names.
pub mod grant {
    pub const AUTHORIZATION_CODE: &str = "authorization_code";
    pub const CLIENT_CREDENTIALS: &str = "client_credentials";
    pub const REFRESH_TOKEN: &str = "refresh_token";
    pub const UMA_TICKET: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";
}

/// Scopes a client may be granted in an OAuth access token: `uma_protection` plus its
/// pre-registered scopes. Returns the first requested scope outside that set.
pub fn unavailable_scope<'a>(
    client: &crate::store::Client,
    requested: &'a [String],
) -> Option<&'a String> {
    requested
        .iter()
        .find(|s| *s != UMA_PROTECTION && !client.scopes.contains(s))
}

/// Splits a space-delimited scope string (RFC 6749 §3.3), dropping repeats.
pub fn split_scope(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(' ').filter(|p| !p.is_empty()) {
        if !out.iter().any(|o| o == part) {
            out.push(part.to_owned());
        }
    }
    out
}
