//! uma-host: a UMA 2.0 authorization server whose decisions are made by sandboxed WebAssembly
//! plugins.

pub mod plugins;
pub mod runtime;
