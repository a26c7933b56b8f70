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

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
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
    fixtures.push_str("/// Every fixture, by crate name.\npub const ALL: &[(&str, &str)] = &[\n");
    for name in &names {
        writeln!(
            fixtures,
            "    ({name:?}, {}),",
            name.to_uppercase().replace('-', "_")
        )
        .unwrap();
    }
    fixtures.push_str("];\n");

    let dest = PathBuf::from(env::var("OUT_DIR").unwrap());
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
