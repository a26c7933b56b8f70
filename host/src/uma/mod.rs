//! UMA 2.0: discovery, the PAT that guards the Protection API, resource registration,
//! permission tickets, introspection, and the UMA grant with its claim tokens, claims
//! interaction and owner approval.

pub mod claim_token;
pub mod discovery;
pub mod grant;
pub mod interaction;
pub mod introspect;
pub mod pat;
pub mod permission;
pub mod resources;
pub mod ticket;
