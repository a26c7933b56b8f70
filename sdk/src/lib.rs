//! Write UMA policy and claims plugins for `uma-host` in Rust.
//!
//! This crate vendors the `uma:policy@0.1.0` WIT contract, re-exports [`wit_bindgen`], and
//! wraps the generated bindings in a small API, so a plugin is one dependency and a dozen lines.
//!
//! # A complete policy
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "only-doctors"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! uma-policy-sdk = { path = "../sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use uma_policy_sdk::policy::{Decision, Policy, Request};
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     /// Only tokens from this issuer count.
//!     issuer: String,
//! }
//!
//! struct OnlyDoctors;
//!
//! impl Policy for OnlyDoctors {
//!     type Config = Config;
//!
//!     fn evaluate(request: &Request, config: &Config) -> Decision {
//!         let role = request.claims("role").find(|c| c.issuer() == Some(&config.issuer));
//!         match role.and_then(|c| c.as_str()) {
//!             Some("doctor") => request.permit_requested(),
//!             Some(_) => Decision::Deny("only doctors may see lab reports".into()),
//!             None => Decision::NeedInfo(vec![uma_policy_sdk::policy::require("role")]),
//!         }
//!     }
//! }
//!
//! uma_policy_sdk::export_policy!(OnlyDoctors);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm` file in
//! `target/wasm32-wasip2/release/` is the component to upload.
//!
//! # Worlds
//!
//! [`policy`] and [`export_policy!`] make a policy plugin; [`claims`] and [`export_claims!`] a
//! claims plugin. The world a component implements is the one whose export macro it calls: the
//! generated bindings describe their exports only at that call site.

#![warn(missing_docs)]

pub use wit_bindgen;

/// Logging that the host ties to the evaluation in progress. The resource owner sees these lines
/// in dry-runs and the decision audit; the host bounds how many it keeps.
pub mod log {
    use crate::policy::bindings::uma::policy::log as imp;
    pub use crate::policy::bindings::uma::policy::types::Level;

    /// Log a line with key/value fields.
    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        imp::log(level, message, &fields);
    }

    /// Log at `debug` level.
    pub fn debug(message: &str) {
        log(Level::Debug, message, &[]);
    }

    /// Log at `info` level.
    pub fn info(message: &str) {
        log(Level::Info, message, &[]);
    }

    /// Log at `warn` level.
    pub fn warn(message: &str) {
        log(Level::Warn, message, &[]);
    }
}

/// Claim helpers shared by both worlds; implemented once per world's generated types.
macro_rules! claim_helpers {
    ($claim:ty, $provenance:ident) => {
        impl $claim {
            /// The value parsed from its JSON text (`Null` if it is not valid JSON).
            pub fn json(&self) -> serde_json::Value {
                serde_json::from_str(&self.value).unwrap_or(serde_json::Value::Null)
            }

            /// The value if it is a JSON string.
            pub fn as_str(&self) -> Option<&str> {
                // A JSON string without escapes is its text between the quotes: no allocation.
                let v = self.value.trim();
                let inner = v.strip_prefix('"')?.strip_suffix('"')?;
                if inner.contains('\\') || inner.contains('"') {
                    return None;
                }
                Some(inner)
            }

            /// The value's strings: the string itself, or each string of a JSON array.
            pub fn strings(&self) -> Vec<String> {
                match self.json() {
                    serde_json::Value::String(s) => vec![s],
                    serde_json::Value::Array(items) => items
                        .into_iter()
                        .filter_map(|i| match i {
                            serde_json::Value::String(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                }
            }

            /// The issuer, if the claim came from a verified claim token.
            pub fn issuer(&self) -> Option<&str> {
                match &self.provenance {
                    $provenance::VerifiedToken(origin) => Some(&origin.issuer),
                    _ => None,
                }
            }

            /// Whether the claim came from a verified claim token.
            pub fn is_verified_token(&self) -> bool {
                matches!(self.provenance, $provenance::VerifiedToken(_))
            }

            /// Whether this authorization server asserted the claim.
            pub fn is_server(&self) -> bool {
                matches!(self.provenance, $provenance::Server)
            }
        }
    };
}

/// The `policy` world: decide one permission of a UMA grant.
pub mod policy {
    /// The raw bindings generated from the WIT contract.
    #[allow(missing_docs)]
    pub mod bindings {
        wit_bindgen::generate!({
            world: "policy",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_policy_world",
            default_bindings_module: "uma_policy_sdk::policy::bindings",
            generate_all,
        });
    }

    pub use bindings::exports::uma::policy::evaluator::{Decision, Permission, Request};
    pub use bindings::uma::policy::types::{
        Claim, Provenance, RequiredClaim, ServerContext, TokenOrigin,
    };

    claim_helpers!(Claim, Provenance);

    /// A policy. Implement it and hand the type to [`export_policy!`](crate::export_policy).
    pub trait Policy {
        /// The owner's configuration, parsed from the policy's JSON document.
        type Config: serde::de::DeserializeOwned;

        /// Decide one permission.
        fn evaluate(request: &Request, config: &Self::Config) -> Decision;

        /// Further checks of a configuration that parsed; the error is shown to the owner.
        fn validate(config: &Self::Config) -> Result<(), String> {
            let _ = config;
            Ok(())
        }
    }

    impl Request {
        /// The claims with this name, from any provenance.
        pub fn claims<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Claim> + 'a {
            self.claims.iter().filter(move |c| c.name == name)
        }

        /// Permit every requested scope.
        pub fn permit_requested(&self) -> Decision {
            Decision::Permit(self.permission.requested_scopes.clone())
        }

        /// Permit the requested scopes that `allowed` says yes to.
        pub fn permit_where(&self, allowed: impl Fn(&str) -> bool) -> Decision {
            Decision::Permit(
                self.permission
                    .requested_scopes
                    .iter()
                    .filter(|s| allowed(s))
                    .cloned()
                    .collect(),
            )
        }
    }

    /// A required claim with just a name.
    pub fn require(name: &str) -> RequiredClaim {
        RequiredClaim {
            name: name.to_string(),
            friendly_name: None,
            claim_type: None,
            claim_token_formats: Vec::new(),
            issuers: Vec::new(),
        }
    }

    /// Parse a configuration document for `P`.
    pub fn parse_config<P: Policy>(config: &str) -> Result<P::Config, String> {
        serde_json::from_str(config).map_err(|e| format!("invalid configuration: {e}"))
    }

    #[doc(hidden)]
    pub fn __evaluate<P: Policy>(request: Request) -> Decision {
        match parse_config::<P>(&request.config) {
            Ok(config) => P::evaluate(&request, &config),
            // The host validated the config when the policy was created; failing closed here
            // covers a module whose validation and evaluation disagree.
            Err(e) => Decision::Deny(e),
        }
    }

    #[doc(hidden)]
    pub fn __validate<P: Policy>(config: &str) -> Result<(), String> {
        P::validate(&parse_config::<P>(config)?)
    }
}

/// Export a [`policy::Policy`] implementation as the component's `evaluator`.
///
/// A panic's message reaches the owner with the failed evaluation (`trap: … (panicked at …)`),
/// through the `log` import. `export_policy!(MyPolicy, without_panic_messages)` leaves that out:
/// a panic is then a bare trap, and a component that does not log imports nothing, which saves
/// two small core instances (an adapter shim and its fixup) on every evaluation, about 1 µs.
/// The built-in policies are built that way: they are on every hot path, and a panic there still
/// fails closed (a denial), only without its message.
#[macro_export]
macro_rules! export_policy {
    ($ty:ty, without_panic_messages) => {
        #[doc(hidden)]
        pub struct __UmaPolicyExport;

        impl $crate::policy::bindings::exports::uma::policy::evaluator::Guest for __UmaPolicyExport {
            fn evaluate(request: $crate::policy::Request) -> $crate::policy::Decision {
                $crate::policy::__evaluate::<$ty>(request)
            }

            fn validate_config(config: String) -> Result<(), String> {
                $crate::policy::__validate::<$ty>(&config)
            }
        }

        $crate::policy::bindings::__export_policy_world!(__UmaPolicyExport with_types_in $crate::policy::bindings);
    };
    ($ty:ty) => {
        $crate::export_policy!($ty, without_panic_messages);
        $crate::__report_panics!();
    };
}

/// The `claims` world: verify claim tokens and gather claims interactively.
pub mod claims {
    /// The raw bindings generated from the WIT contract.
    #[allow(missing_docs)]
    pub mod bindings {
        wit_bindgen::generate!({
            world: "claims",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_claims_world",
            default_bindings_module: "uma_policy_sdk::claims::bindings",
            generate_all,
        });
    }

    pub use bindings::exports::uma::policy::gatherer::{
        Answer, Field, FieldKind, Form, GatheredClaim, Guest as ClaimsPlugin, Interaction, Step,
    };
    pub use bindings::uma::policy::types::{RequiredClaim, ServerContext};

    impl GatheredClaim {
        /// A claim whose value is a JSON string.
        pub fn string(name: &str, value: &str) -> Self {
            GatheredClaim {
                name: name.to_string(),
                value: serde_json::Value::String(value.to_string()).to_string(),
            }
        }
    }

    /// The answer named `name`, if given.
    pub fn answer<'a>(answers: &'a [Answer], name: &str) -> Option<&'a str> {
        answers
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// Export a [`claims::ClaimsPlugin`] implementation as the component's `gatherer`; panic
/// messages as for [`export_policy!`], and `without_panic_messages` likewise.
#[macro_export]
macro_rules! export_claims {
    ($ty:ident, without_panic_messages) => {
        $crate::claims::bindings::__export_claims_world!($ty with_types_in $crate::claims::bindings);
    };
    ($ty:ident) => {
        $crate::export_claims!($ty, without_panic_messages);
        $crate::__report_panics!();
    };
}

/// A plugin has no environment (the host grants none), so `getenv` answers "unset" here.
/// Rust's standard library reads `RUST_BACKTRACE` in its panic hook, and wasi-libc's `getenv`
/// would pull in its environment code: an eager `wasi:cli/environment` import that returns a
/// list, which needs an adapter shim and its fixup module in every component, two more core
/// instances on every instantiation. Defined here, wasi-libc's copy is never linked.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[doc(hidden)]
#[unsafe(no_mangle)]
pub extern "C" fn getenv(_name: *const core::ffi::c_char) -> *mut core::ffi::c_char {
    core::ptr::null_mut()
}

/// Rust's standard library writes stdout and stderr (the panic hook's message among them) through
/// libc's `write`. wasi-libc's `write` brings its descriptor table and with it eleven
/// `wasi:cli/std*`, `wasi:cli/terminal-*` and `wasi:io` imports, whose lowering needs an adapter
/// shim and its fixup module: more core instances and canonical lowerings on every
/// instantiation, about a third of a small policy's instantiate + evaluate. Defined here,
/// wasi-libc's copy is never linked and the component imports no WASI. What is printed to stdout
/// is dropped (log with [`log`]); stderr is kept in a small buffer for the panic report of
/// [`export_policy!`].
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[doc(hidden)]
pub mod __stdio {
    use core::cell::UnsafeCell;

    /// Enough for a panic message and its location; the rest is cut.
    const CAP: usize = 1024;
    struct Stderr(UnsafeCell<([u8; CAP], usize)>);
    // SAFETY: a plugin is single-threaded.
    unsafe impl Sync for Stderr {}
    static STDERR: Stderr = Stderr(UnsafeCell::new(([0; CAP], 0)));

    #[unsafe(no_mangle)]
    unsafe extern "C" fn write(fd: i32, buf: *const u8, count: usize) -> isize {
        if fd == 2 {
            // SAFETY: single-threaded; `buf` holds `count` bytes (libc's `write` contract).
            let (data, len) = unsafe { &mut *STDERR.0.get() };
            let n = count.min(CAP - *len);
            unsafe { core::ptr::copy_nonoverlapping(buf, data.as_mut_ptr().add(*len), n) };
            *len += n;
        }
        count as isize
    }

    /// Hand what was written to stderr (the panic hook's message) to the host's log at `error`
    /// level, then trap.
    pub fn report_and_trap() -> ! {
        // SAFETY: single-threaded, and nothing of the plugin runs after this.
        let (data, len) = unsafe { &*STDERR.0.get() };
        let bytes = &data[..*len];
        let text = match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        };
        let text = text.trim();
        if !text.is_empty() {
            // Allocates nothing, so it works after an allocation failure too.
            crate::policy::bindings::uma::policy::log::log(crate::log::Level::Error, text, &[]);
        }
        core::arch::wasm32::unreachable()
    }
}

/// Replaces libc's `abort`, which a panic ends in, with one that reports the panic first.
#[doc(hidden)]
#[macro_export]
macro_rules! __report_panics {
    () => {
        #[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn abort() -> ! {
            $crate::__stdio::report_and_trap()
        }
    };
}
