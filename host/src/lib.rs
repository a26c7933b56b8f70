//! uma-host: a UMA 2.0 authorization server whose decisions are made by sandboxed WebAssembly
//! plugins.
//!
//! Rooms: [`runtime`] (the Wasm plugin runtime: ingest, limits, evaluation), [`plugins`] (the
//! built-in plugins), [`policy`] (owner modules, policies, bindings, dry-run, audit), [`config`] (typed configuration), [`store`] (persistence, owner/RS-scoped),
//! [`keys`] (ES256 signing keys, JWKS), [`oauth`] (clients, users, login, token endpoint,
//! revocation), [`uma`] (discovery, Protection API), [`http`] (router, extractors, the one error
//! mapping, serving), [`cli`] (`uma-host serve` / `uma-host admin`), [`error`] (the error
//! vocabulary).

pub mod cli;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod plugins;
pub mod policy;
pub mod runtime;
pub mod store;
pub mod uma;

pub use config::Config;
pub use http::{AppState, serve};
