//! The one way code enters the server (security-lessons S1): every module, built-in or uploaded,
//! passes through [`Runtime::ingest`](super::Runtime::ingest) before anything runs it.
//!
//! Order matters: the cheap checks come first so a hostile upload costs little. Size cap, then
//! validation with exactly the Wasm features we enable, then the component's imports and exports
//! against our worlds, then compilation (bounded in time and concurrency, cached by content),
//! then linking, which type-checks every import and export.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use super::v0_1;

/// The Wasm features a module may use. Threads, shared memory, memory64, GC, exceptions,
/// relaxed SIMD, stack switching and component-model async are refused (security-lessons S7);
/// the engine is configured to match.
pub const FEATURES: WasmFeatures = WasmFeatures::WASM2
    .union(WasmFeatures::COMPONENT_MODEL)
    .union(WasmFeatures::EXTENDED_CONST)
    .union(WasmFeatures::TAIL_CALL)
    .union(WasmFeatures::MULTI_MEMORY);

/// WASI interfaces a component may import. The host links them to a context that grants
/// nothing: no preopened directories, no sockets, empty environment and arguments, empty stdin,
/// stdout and stderr captured into the bounded log, clocks frozen at the request's server time,
/// a fixed-seed random generator. Ordinary toolchains import these even for pure functions.
///
/// `wasi:sockets` is here deny-by-construction: the sandbox's context refuses every socket
/// (TCP, UDP and name lookup are switched off and no address passes its address check), so a
/// guest that tries gets `access-denied` and nothing leaves the machine. It is allowed because
/// CPython as componentize-py builds it imports the sockets interfaces whatever the policy does;
/// refusing them would refuse every Python policy. `wasi:http` and anything else are not here:
/// a component that imports them is refused and the import named.
pub const WASI_ALLOWED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

/// Which world a component implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `uma:policy/policy@0.1.0`
    Policy,
    /// `uma:policy/claims@0.1.0`
    Claims,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Policy => "uma:policy/policy@0.1.0",
            World::Claims => "uma:policy/claims@0.1.0",
        }
    }
}

/// Why a module was refused. Each message is shown to the uploader as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    #[error("module is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    #[error(
        "import `{0}` is not allowed: plugins may import only uma:policy/log, uma:policy/types and the WASI interfaces {wasi}",
        wasi = WASI_ALLOWED.join(", ")
    )]
    ForbiddenImport(String),
    #[error("wrong world: the component exports {found}, but a plugin must export {expected}")]
    WrongWorld { found: String, expected: String },
    #[error("the component exports both {0} and {1}; upload one world per module")]
    BothWorlds(&'static str, &'static str),
    #[error("the component defines {count} functions, the limit is {limit}")]
    TooManyFunctions { count: usize, limit: usize },
    #[error("compilation took longer than {0} ms")]
    CompileTimeout(u128),
    #[error("too many compilations in progress; try again shortly")]
    Busy,
    #[error("compilation failed: {0}")]
    Compile(String),
    #[error("the component does not fit the sandbox: {0}")]
    Resources(String),
    #[error("linking failed: {0}")]
    Link(String),
}

/// What a component declares, read without compiling it.
#[derive(Clone, Debug)]
pub struct Surface {
    pub world: World,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// The hex SHA-256 of a module's bytes: its content address.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Validate `bytes` with our feature set and read the component's top-level imports and
/// exports, checking them against the allow-list and our worlds. A component defining more than
/// `max_functions` functions (over all its core modules) is refused before it is compiled.
pub fn inspect(
    bytes: &[u8],
    max_bytes: usize,
    max_functions: usize,
) -> Result<Surface, IngestError> {
    if bytes.len() > max_bytes {
        return Err(IngestError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(IngestError::NotAComponent(
            if wasmparser::Parser::is_core_wasm(bytes) {
                "this is a core Wasm module; wrap it with `wasm-tools component new` or build for wasm32-wasip2".into()
            } else {
                "the bytes do not start with the Wasm magic number and component version".into()
            },
        ));
    }
    Validator::new_with_features(FEATURES)
        .validate_all(bytes)
        .map_err(|e| IngestError::Invalid(e.to_string()))?;

    let mut imports = BTreeSet::new();
    let mut exports = BTreeSet::new();
    let mut depth = 0usize;
    let mut functions = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| IngestError::Invalid(e.to_string()))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::FunctionSection(reader) => {
                functions = functions.saturating_add(reader.count() as usize);
                if functions > max_functions {
                    return Err(IngestError::TooManyFunctions {
                        count: functions,
                        limit: max_functions,
                    });
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| IngestError::Invalid(e.to_string()))?;
                    imports.insert(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| IngestError::Invalid(e.to_string()))?;
                    exports.insert(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }

    for import in &imports {
        if !import_allowed(import) {
            return Err(IngestError::ForbiddenImport(import.clone()));
        }
    }
    let policy = exports.contains(v0_1::POLICY_EXPORT);
    let claims = exports.contains(v0_1::CLAIMS_EXPORT);
    let world = match (policy, claims) {
        (true, false) => World::Policy,
        (false, true) => World::Claims,
        (true, true) => {
            return Err(IngestError::BothWorlds(
                v0_1::POLICY_EXPORT,
                v0_1::CLAIMS_EXPORT,
            ));
        }
        (false, false) => {
            return Err(IngestError::WrongWorld {
                found: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.iter().cloned().collect::<Vec<_>>().join(", ")
                },
                expected: format!(
                    "{} (world policy) or {} (world claims)",
                    v0_1::POLICY_EXPORT,
                    v0_1::CLAIMS_EXPORT
                ),
            });
        }
    };
    Ok(Surface {
        world,
        imports: imports.into_iter().collect(),
        exports: exports.into_iter().collect(),
    })
}

/// Whether an import name is one we link: our own interfaces at a version we serve, or an
/// allow-listed WASI interface of the 0.2 line.
fn import_allowed(name: &str) -> bool {
    if v0_1::OWN_IMPORTS.contains(&name) {
        return true;
    }
    match name.split_once('@') {
        Some((interface, version)) => {
            WASI_ALLOWED.contains(&interface) && version.starts_with("0.2.")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_imports_are_matched_by_interface_and_version_line() {
        assert!(import_allowed("wasi:io/streams@0.2.6"));
        assert!(import_allowed("uma:policy/log@0.1.0"));
        assert!(!import_allowed("uma:policy/log@0.2.0"));
        assert!(!import_allowed("wasi:io/streams"));
        assert!(!import_allowed("wasi:io/streams@0.3.0"));
        // Linked to a context that refuses every socket (see WASI_ALLOWED).
        assert!(import_allowed("wasi:sockets/tcp@0.2.6"));
        assert!(!import_allowed("wasi:sockets/tcp@0.3.0"));
        assert!(!import_allowed("wasi:http/outgoing-handler@0.2.6"));
        assert!(!import_allowed("wasi:filesystem/typesx@0.2.6"));
    }

    #[test]
    fn garbage_is_not_a_component() {
        let err = inspect(b"definitely not wasm", 1 << 20, 10).unwrap_err();
        assert!(matches!(err, IngestError::NotAComponent(_)), "{err}");
        let err = inspect(&[0u8; 2048], 1024, 10).unwrap_err();
        assert_eq!(
            err,
            IngestError::TooLarge {
                size: 2048,
                limit: 1024
            }
        );
        // A core module (magic + version 1) is named as such.
        let core = b"\0asm\x01\0\0\0";
        let err = inspect(core, 1 << 20, 10).unwrap_err();
        assert!(err.to_string().contains("core Wasm module"), "{err}");
    }
}
