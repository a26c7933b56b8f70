//! The engine's own configuration refuses what ingest refuses (security-lessons S7), so a
//! module that slipped past ingest's validator still could not use a proposal we do not harden.

use wasmtime::component::Component;

use super::{Engine, RuntimeConfig, engine_config};
use crate::plugins::{self, fixtures};

#[test]
fn s7_engine_refuses_the_proposals_we_do_not_use() {
    let engine = Engine::new(&engine_config(&RuntimeConfig::default())).unwrap();
    // Control: an ordinary plugin compiles on this engine.
    let good = plugins::builtin("allow-list").unwrap().bytes;
    Component::new(&engine, good).expect("a built-in compiles");
    for (path, feature) in [
        (fixtures::FX_FEATURE_THREADS, "threads"),
        (fixtures::FX_FEATURE_MEMORY64, "memory64"),
        (fixtures::FX_FEATURE_GC, "gc"),
        (fixtures::FX_FEATURE_EXCEPTIONS, "exceptions"),
    ] {
        let bytes = std::fs::read(path).unwrap();
        let err = match Component::new(&engine, &bytes) {
            Ok(_) => panic!("the engine compiled a module using {feature}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("enabled") || err.contains("not supported"),
            "{feature}: {err}"
        );
    }
}

#[test]
fn s7_cranelift_on_x86_64_with_the_proposals_off() {
    // The sandbox is hardened and measured on x86_64 only.
    #[cfg(not(target_arch = "x86_64"))]
    compile_error!("uma-host's sandbox is hardened and measured on x86_64 only (S7)");
    // `Config` has no getters; its Debug output shows what the engine was built with.
    let config = format!("{:?}", engine_config(&RuntimeConfig::default()));
    assert!(config.contains("Cranelift"), "{config}");
    assert!(!config.contains("Winch"), "{config}");
    for off in [
        "wasm_threads: false",
        "wasm_shared_everything_threads: false",
        "wasm_memory64: false",
        "wasm_gc: false",
        "wasm_exceptions: false",
        "wasm_stack_switching: false",
        "wasm_relaxed_simd: false",
        "wasm_cm_async: false",
        "wasm_cm_threading: false",
    ] {
        assert!(config.contains(off), "{off}: {config}");
    }
    assert!(config.contains("consume_fuel: true"), "{config}");
    assert!(config.contains("epoch_interruption: true"), "{config}");
}
