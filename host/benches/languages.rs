//! The same policies in Rust, Python, JavaScript and C: instantiate + evaluate (what every
//! decision costs: a fresh instance per evaluation) and a call on a reused instance (the
//! policy's own work). Needs `scripts/build-lang-plugins` first.
//!
//! `cargo bench -p uma-host --bench languages`

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use uma_host::plugins;
use uma_host::runtime::*;

fn input(config: serde_json::Value, claims: Vec<Claim>) -> PolicyInput {
    PolicyInput {
        permission: Permission {
            resource_id: "r1".into(),
            owner: "alice".into(),
            resource_server: "rs".into(),
            resource_type: None,
            resource_name: Some("photo".into()),
            registered_scopes: vec!["view".into(), "edit".into()],
            requested_scopes: vec!["view".into()],
        },
        context: ServerContext {
            now_ms: 1_767_268_800_000,
            client_id: "client".into(),
            issuer: "https://as.example".into(),
        },
        claims,
        config: config.to_string(),
    }
}

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/lang-plugins")
}

fn component(language: &str, policy: &str) -> Vec<u8> {
    // UMA_BENCH_RUST_DIR compares another build of the Rust plugins (a directory of
    // `allow_list.wasm`, `claim_match.wasm`) with the built-ins.
    let path = match (language, std::env::var_os("UMA_BENCH_RUST_DIR")) {
        ("rust", None) => return plugins::builtin(policy).unwrap().bytes.to_vec(),
        ("rust", Some(dir)) => {
            PathBuf::from(dir).join(format!("{}.wasm", policy.replace('-', "_")))
        }
        _ => artifacts().join(language).join(format!("{policy}.wasm")),
    };
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-lang-plugins", path.display()))
}

fn languages(c: &mut Criterion) {
    // UMA_BENCH_KEEP_RESIDENT (bytes) tries another `keep_resident_bytes`, the pool's reset
    // strategy, which matters for the interpreters' larger memories.
    let defaults = RuntimeConfig::default();
    let keep_resident_bytes = std::env::var("UMA_BENCH_KEEP_RESIDENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(defaults.keep_resident_bytes);
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: std::time::Duration::from_secs(600),
        cache_dir: Some(artifacts().join("compiled")),
        keep_resident_bytes,
        ..defaults
    })
    .unwrap();
    let sub = Claim {
        name: "sub".into(),
        value: json!("bob"),
        provenance: Provenance::Server,
    };
    let email = Claim {
        name: "email".into(),
        value: json!("bob@clinic.example"),
        provenance: Provenance::VerifiedToken {
            issuer: "https://idp".into(),
            format: "jwt".into(),
        },
    };
    let cases = [
        (
            "allow-list",
            input(json!({"subjects": ["alice", "bob"]}), vec![sub]),
        ),
        (
            "claim-match",
            input(
                json!({"claim": "email", "domain": "clinic.example", "issuer": "https://idp"}),
                vec![email],
            ),
        ),
    ];
    for (policy, input) in &cases {
        let mut fresh = c.benchmark_group(format!("instantiate+evaluate/{policy}"));
        for language in ["rust", "c", "js", "python"] {
            let module = rt.ingest(&component(language, policy)).unwrap();
            let out = rt.evaluate_policy_blocking(&module, input);
            assert!(
                matches!(out.decision, Decision::Permit { .. }),
                "{language} {policy}: {out:?}"
            );
            eprintln!(
                "{language} {policy}: {} bytes, fuel {} per fresh call, peak memory {} bytes, compiled in {:?}{}",
                module.size,
                out.usage.fuel_used,
                out.usage.memory_bytes,
                module.load_time,
                if module.from_cache {
                    " (from the cache)"
                } else {
                    ""
                }
            );
            fresh.bench_function(language, |b| {
                b.iter(|| rt.evaluate_policy_blocking(&module, input))
            });
        }
        fresh.finish();
        let mut reused = c.benchmark_group(format!("reused-instance/{policy}"));
        for language in ["rust", "c", "js", "python"] {
            let module = rt.ingest(&component(language, policy)).unwrap();
            reused.bench_function(language, |b| {
                rt.bench_reused_instance(&module, input, |call| b.iter(call))
            });
        }
        reused.finish();
    }
}

criterion_group!(benches, languages);
criterion_main!(benches);
