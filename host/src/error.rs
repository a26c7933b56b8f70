//! The domain's error vocabulary, named after the OAuth 2.0 / RFC 6750 / UMA error codes.
//!
//! Domain functions return [`Error`]; the mapping to status codes, JSON bodies and
//! `WWW-Authenticate` headers lives in exactly one place, [`crate::http::error`], so every
//! route answers a given failure the same way (security-lessons S13).

/// Why a request failed, in the protocol's words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RFC 6749 §5.2 / Fed §6 `invalid_request`: missing, repeated or malformed parameter.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// The request body exceeded the configured limit (`invalid_request`, 413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// RFC 6749 §5.2 `invalid_client`. `basic` records whether the client tried HTTP Basic, in
    /// which case the answer must be 401 with a `WWW-Authenticate: Basic` challenge. The reason is
    /// deliberately not carried: no hint which part was wrong (S22).
    #[error("invalid_client")]
    InvalidClient { basic: bool },
    /// RFC 6749 §5.2 `invalid_grant`.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// RFC 6749 §5.2 `unauthorized_client`: the client may not use this grant type.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// RFC 7009 §2.2.1 `unsupported_token_type`.
    #[error("unsupported_token_type")]
    UnsupportedTokenType,
    /// RFC 6749 §5.2 / Fed §4.3 `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// Fed §4.3 `invalid_resource_id`.
    #[error("invalid_resource_id: {0}")]
    InvalidResourceId(String),
    /// RFC 6750 §3.1: no credentials at all (401, bare `Bearer` challenge, no error code).
    #[error("missing bearer token")]
    MissingToken,
    /// RFC 6750 §3.1 `invalid_token` (401).
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    /// RFC 6750 §3.1 `insufficient_scope` (403) for the named scope.
    #[error("insufficient_scope: {0}")]
    InsufficientScope(&'static str),
    /// RFC 7591 §3.2.2 `invalid_redirect_uri` (400): a redirect or claims redirect URI is not
    /// absolute or has a fragment.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// RFC 7591 §3.2.2 `invalid_client_metadata` (400).
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// Fed §3.2 `not_found` (404).
    #[error("not_found")]
    NotFound,
    /// An admin-API object already exists (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The admin credential is missing or wrong (401), or the admin API is disabled (404).
    #[error("admin credential required")]
    AdminUnauthorized,
    /// UMA Grant §3.3.6 `need_info` (403): a new ticket, and the claims wanted and/or where the
    /// requesting party can supply them.
    #[error("need_info")]
    NeedInfo {
        ticket: String,
        required_claims: serde_json::Value,
        redirect_user: Option<String>,
        description: Option<String>,
    },
    /// UMA Grant §3.3.6 `request_denied` (403); no new ticket.
    #[error("request_denied: {0}")]
    RequestDenied(String),
    /// UMA Grant §3.3.6 `request_submitted` (403): the owner is asked; poll with the new ticket.
    #[error("request_submitted")]
    RequestSubmitted { ticket: String, interval: u64 },
    /// An uploaded module failed ingest (400 `invalid_module`); the message names the problem
    /// (bad import, wrong world, size, invalid Wasm…) and is shown to the owner.
    #[error("invalid_module: {0}")]
    InvalidModule(String),
    /// A bounded resource is busy for a moment (503 `temporarily_unavailable`, `Retry-After: 1`):
    /// every compile slot stayed taken while the request waited. Retrying is the right answer.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(String),
    /// An owner's quota would be exceeded (403 `quota_exceeded`).
    #[error("quota_exceeded: {0}")]
    QuotaExceeded(String),
    /// Anything that is our fault (storage, crypto). Logged; answered `server_error` 500 without
    /// details.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
    pub fn invalid_request(msg: impl Into<String>) -> Self {
        Error::InvalidRequest(msg.into())
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::internal(format_args!("storage: {e}"))
    }
}
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format_args!("encoding: {e}"))
    }
}
