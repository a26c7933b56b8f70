//! Compiles the plugins in `plugins/` (built-ins and the adversarial test fixtures) to
//! `wasm32-wasip2` components, embeds the built-ins in the server so `cargo run` needs no extra
//! step, and hands the fixtures' paths to tests as constants (as wasmtime's test-programs do).

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins shipped with the server: (crate name, one-line description).
const BUILTINS: &[(&str, &str)] = &[
    (
        "allow-list",
        "Permits listed subjects, e-mail addresses and client ids",
    ),
    (
        "claim-match",
        "Permits when a claim equals a value, is one of several, or is an address in a domain, optionally from a given issuer",
    ),
    (
        "time-window",
        "Permits only within dates, weekdays and hours, by the server's clock",
    ),
    (
        "owner-approval",
        "Defers the request to the resource owner for approval",
    ),
    (
        "terms-purpose",
        "Claims plugin: the requesting party accepts terms, then states a purpose",
    ),
    (
        "hmac-token",
        "Claims plugin: verifies HS256 claim tokens signed with a secret the owner shares with a partner",
    ),
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    for watched in ["plugins", "sdk/src", "sdk/wit", "sdk/Cargo.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");

    // A build under another toolchain (the fuzz targets build the host with nightly) names the
    // cargo for the plugins in UMA_HOST_PLUGINS_CARGO, usually the rustup proxy `cargo`, which
    // then takes the toolchain pinned in rust-toolchain.toml, the one with wasm32-wasip2.
    println!("cargo:rerun-if-env-changed=UMA_HOST_PLUGINS_CARGO");
    let other_cargo = env::var("UMA_HOST_PLUGINS_CARGO").ok();
    let cargo = other_cargo
        .clone()
        .unwrap_or_else(|| env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let mut cmd = Command::new(cargo);
    if other_cargo.is_some() {
        for var in [
            "RUSTUP_TOOLCHAIN",
            "RUSTC",
            "RUSTDOC",
            "RUSTC_WRAPPER",
            "CARGO",
        ] {
            cmd.env_remove(var);
        }
    }
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--locked",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings are for the host, not for Wasm guests; clippy's wrapper
    // would lint the guests on every `cargo clippy`.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the plugins in {} failed; is the target installed? `rustup target add wasm32-wasip2`",
            plugins.display()
        );
    }

    let out = target_dir.join("wasm32-wasip2/release");
    let mut code = String::new();
    code.push_str("/// Plugins shipped with the server, compiled by `host/build.rs`.\n");
    code.push_str("pub const BUILTINS: &[Builtin] = &[\n");
    for (name, description) in BUILTINS {
        let file = wasm(&out, name);
        writeln!(
            code,
            "    Builtin {{ name: {name:?}, description: {description:?}, bytes: include_bytes!({file:?}) }},",
            file = file.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");

    let mut fixtures = String::new();
    fixtures.push_str("/// Paths of the adversarial fixtures in `plugins/fixtures/`, compiled by `host/build.rs`.\n");
    let mut names: Vec<String> = std::fs::read_dir(plugins.join("fixtures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let file = wasm(&out, name);
        let constant = name.to_uppercase().replace('-', "_");
        writeln!(
            fixtures,
            "pub const {constant}: &str = {:?};",
            file.display().to_string()
        )
        .unwrap();
    }
    let dest = PathBuf::from(env::var("OUT_DIR").unwrap());
    let hostile = hand_written(&root, &dest.join("hand-written"));
    for (name, file) in &hostile {
        writeln!(
            fixtures,
            "pub const {}: &str = {:?};",
            name.to_uppercase().replace('-', "_"),
            file.display().to_string()
        )
        .unwrap();
    }
    names.extend(hostile.iter().map(|(n, _)| n.clone()));
    fixtures.push_str("/// Every fixture, by name.\npub const ALL: &[(&str, &str)] = &[\n");
    for name in &names {
        writeln!(
            fixtures,
            "    ({name:?}, {}),",
            name.to_uppercase().replace('-', "_")
        )
        .unwrap();
    }
    fixtures.push_str("];\n");

    std::fs::write(dest.join("builtins.rs"), code).unwrap();
    std::fs::write(dest.join("fixtures.rs"), fixtures).unwrap();
}

/// A cdylib `foo-bar` becomes `foo_bar.wasm`; a binary keeps its dashes.
fn wasm(out: &Path, name: &str) -> PathBuf {
    let lib = out.join(format!("{}.wasm", name.replace('-', "_")));
    if lib.exists() {
        lib
    } else {
        out.join(format!("{name}.wasm"))
    }
}

/// The core module every hand-written fixture starts from: a bump allocator for the canonical
/// ABI, a `validate-config` that accepts anything, and `$deny`, which answers
/// `deny("hand-written fixture")`. `{evaluate}` is the body of `evaluate` (it returns the address
/// of the answer); `{extra}` adds module fields.
const CORE: &str = r#"
(module
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (data (i32.const 64) "hand-written fixture")
  (func (export "uma:policy/evaluator@0.1.0#validate-config") (param i32 i32) (result i32)
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.const 16))
  (func $deny (result i32)
    (i32.store8 (i32.const 0) (i32.const 1))
    (i32.store (i32.const 4) (i32.const 64))
    (i32.store (i32.const 8) (i32.const 20))
    (i32.const 0))
  (func (export "uma:policy/evaluator@0.1.0#evaluate") (param i32) (result i32)
    {evaluate})
  {extra}
)
"#;

/// Hostile policies no Rust toolchain would emit, as core-module WAT wrapped into components of
/// the `policy` world (so they pass ingest and reach the sandbox): (name, path).
fn hand_written(root: &Path, out: &Path) -> Vec<(String, PathBuf)> {
    std::fs::create_dir_all(out).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(root.join("wit/v0.1.0")).unwrap();
    let world = resolve.select_world(&[package], Some("policy")).unwrap();

    // A compile bomb: every function pushes thousands of values before adding them up, so the
    // register allocator has thousands of live values at once. Small to upload, slow to compile.
    let mut bomb = String::new();
    for _ in 0..16 {
        bomb.push_str("(func (result i32)\n");
        bomb.push_str(&"i32.const 1\n".repeat(12_000));
        bomb.push_str(&"i32.add\n".repeat(11_999));
        bomb.push_str(")\n");
    }
    let fixtures: Vec<(&str, String, String)> = vec![
        // Grows its table by 1,000 elements at a time, forever.
        (
            "fx-table-growth",
            "(loop $grow (drop (table.grow $t (ref.null func) (i32.const 1000))) (br $grow)) (call $deny)".into(),
            "(table $t 1 funcref)".into(),
        ),
        // A core-module start function that never returns: runs at instantiation, before any
        // export is called.
        (
            "fx-start-loop",
            "(call $deny)".into(),
            "(func $spin (loop $l (br $l))) (start $spin)".into(),
        ),
        // Answers a variant case that does not exist.
        (
            "fx-bad-discriminant",
            "(i32.store8 (i32.const 0) (i32.const 7)) (i32.const 0)".into(),
            String::new(),
        ),
        // Answers `deny` with a reason that points outside its memory.
        (
            "fx-bad-pointer",
            "(i32.store8 (i32.const 0) (i32.const 1)) (i32.store (i32.const 4) (i32.const -256)) (i32.store (i32.const 8) (i32.const 100)) (i32.const 0)".into(),
            String::new(),
        ),
        // 100,001 empty functions: over `max_functions`.
        (
            "fx-many-functions",
            "(call $deny)".into(),
            "(func)\n".repeat(100_001),
        ),
        ("fx-compile-bomb", "(call $deny)".into(), bomb),
        // Wasm features the engine does not enable (security-lessons S7): each must be refused
        // at ingest, and the engine must refuse it too.
        (
            "fx-feature-threads",
            "(call $deny)".into(),
            "(func (param i32) (result i32) (i32.atomic.load (local.get 0)))".into(),
        ),
        (
            "fx-feature-memory64",
            "(call $deny)".into(),
            "(memory $wide i64 1)".into(),
        ),
        (
            "fx-feature-gc",
            "(call $deny)".into(),
            "(type $point (struct (field i32))) (func (result (ref null $point)) (ref.null $point))".into(),
        ),
        (
            "fx-feature-exceptions",
            "(call $deny)".into(),
            "(tag $oops) (func (throw $oops))".into(),
        ),
    ];
    fixtures
        .into_iter()
        .map(|(name, evaluate, extra)| {
            let text = CORE
                .replace("{evaluate}", &evaluate)
                .replace("{extra}", &extra);
            let mut module = wat::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            wit_component::embed_component_metadata(
                &mut module,
                &resolve,
                world,
                wit_component::StringEncoding::UTF8,
            )
            .unwrap();
            let component = wit_component::ComponentEncoder::default()
                .module(&module)
                .and_then(|e| e.validate(true).encode())
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let path = out.join(format!("{name}.wasm"));
            std::fs::write(&path, component).unwrap();
            (name.to_string(), path)
        })
        .collect()
}
