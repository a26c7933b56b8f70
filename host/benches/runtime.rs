//! Plugin runtime benchmarks: instantiate + evaluate for each built-in policy, a call on a
//! reused instance, compiling a component, and loading it from the compiled cache.
//!
//! `cargo bench -p uma-host --bench runtime`

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

fn evaluate(c: &mut Criterion) {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
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
            input(json!({"subjects": ["alice", "bob"]}), vec![sub.clone()]),
        ),
        (
            "claim-match",
            input(
                json!({"claim": "email", "domain": "clinic.example", "issuer": "https://idp"}),
                vec![email],
            ),
        ),
        (
            "time-window",
            input(json!({"weekdays": ["thu"], "hours": [9, 17]}), vec![]),
        ),
        ("owner-approval", input(json!({}), vec![])),
    ];
    let mut group = c.benchmark_group("instantiate+evaluate");
    for (name, input) in &cases {
        let module = rt.ingest(plugins::builtin(name).unwrap().bytes).unwrap();
        let out = rt.evaluate_policy_blocking(&module, input);
        assert!(out.failure.is_none(), "{name}: {out:?}");
        group.bench_function(*name, |b| {
            b.iter(|| rt.evaluate_policy_blocking(&module, input))
        });
    }
    group.finish();

    let module = rt
        .ingest(plugins::builtin("allow-list").unwrap().bytes)
        .unwrap();
    c.bench_function("reused-instance/allow-list", |b| {
        rt.bench_reused_instance(&module, &cases[0].1, |call| b.iter(call))
    });
}

fn compile(c: &mut Criterion) {
    let bytes = plugins::builtin("claim-match").unwrap().bytes;
    let mut group = c.benchmark_group("ingest");
    group.sample_size(20);
    group.bench_function(format!("compile {} KB", bytes.len() / 1024), |b| {
        b.iter_with_setup(
            || Runtime::new(RuntimeConfig::default()).unwrap(),
            |rt| rt.ingest(bytes).unwrap(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    Runtime::new(config.clone()).unwrap().ingest(bytes).unwrap();
    group.bench_function(format!("load cached {} KB", bytes.len() / 1024), |b| {
        b.iter_with_setup(
            || Runtime::new(config.clone()).unwrap(),
            |rt| {
                let m = rt.ingest(bytes).unwrap();
                assert!(m.from_cache);
                m
            },
        )
    });
    group.finish();
}

criterion_group!(benches, evaluate, compile);
criterion_main!(benches);
