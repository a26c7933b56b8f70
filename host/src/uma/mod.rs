//! UMA 2.0 Federated Authorization: discovery, the PAT that guards the Protection API,
//! resource registration, permission tickets and introspection.

pub mod discovery;
pub mod introspect;
pub mod pat;
pub mod permission;
pub mod resources;
