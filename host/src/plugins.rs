//! The plugins that ship with the server, embedded at build time. They enter the runtime through
//! the same ingest path as any upload (security-lessons S1).

/// A built-in plugin.
#[derive(Debug)]
pub struct Builtin {
    /// Its name, e.g. `allow-list`.
    pub name: &'static str,
    /// What it does, in one line.
    pub description: &'static str,
    /// The component.
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The built-in plugin named `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Adversarial guests for tests: paths of compiled components.
#[doc(hidden)]
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}
