//! One regression test per rule of `security-lessons.md` that needs the plugin runtime itself
//! (S1-S7, S15, S18), named after the rule. The rules about HTTP, tokens and the store are proved
//! over real HTTP in `tests/tests/security_lessons.rs` and beside the code they guard.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use uma_host::plugins::{self, fixtures};
use uma_host::runtime::*;

const NOW_MS: u64 = 1_767_268_800_000; // 2026-01-01T12:00:00Z, a Thursday

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("runtime"))
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("fixture built by host/build.rs")
}

fn load(path: &str) -> Arc<Module> {
    runtime()
        .ingest(&fixture(path))
        .expect("fixture passes ingest")
}

fn input(config: serde_json::Value, claims: Vec<Claim>) -> PolicyInput {
    PolicyInput {
        permission: Permission {
            resource_id: "lab-report-1".into(),
            owner: "patient".into(),
            resource_server: "lab-rs".into(),
            resource_type: None,
            resource_name: None,
            registered_scopes: vec!["view".into()],
            requested_scopes: vec!["view".into()],
        },
        context: ServerContext {
            now_ms: NOW_MS,
            client_id: "doctor-app".into(),
            issuer: "https://as.example".into(),
        },
        claims,
        config: config.to_string(),
    }
}

fn failure_of(rt: &Runtime, path: &str, config: serde_json::Value) -> Failure {
    let m = rt.ingest(&fixture(path)).expect("fixture passes ingest");
    let out = rt.evaluate_policy_blocking(&m, &input(config, vec![]));
    match (&out.failure, &out.decision) {
        (Some(f), Decision::Deny { reason }) => {
            assert_eq!(reason, &f.to_string());
            f.clone()
        }
        _ => panic!("{path}: expected a denial by failure, got {out:?}"),
    }
}

fn healthy(rt: &Runtime) {
    let m = rt
        .ingest(plugins::builtin("allow-list").unwrap().bytes)
        .unwrap();
    let out =
        rt.evaluate_policy_blocking(&m, &input(json!({"client_ids": ["doctor-app"]}), vec![]));
    assert_eq!(
        out.decision,
        Decision::Permit {
            scopes: vec!["view".into()]
        }
    );
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn s1_code_enters_only_through_the_one_ingest_function() {
    // Structural: outside the runtime no code compiles, deserializes or links Wasm, so every
    // path (upload, built-ins, restart) must call `Runtime::ingest`.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let forbidden = [
        "Component::new",
        "Component::from_",
        "Component::deserialize",
        "precompile_component",
        "Module::new",
        "Linker::new",
        "instantiate_pre",
    ];
    let mut deserialize_sites = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let in_runtime = file.starts_with(src.join("runtime"));
        for needle in forbidden {
            if !in_runtime {
                assert!(
                    !text.contains(needle),
                    "{} uses {needle}: code must enter through Runtime::ingest",
                    file.display()
                );
            }
        }
        if file.ends_with("runtime/mod.rs") {
            deserialize_sites += text.matches("Component::deserialize").count();
        }
    }
    assert!(files.len() > 20, "scanned {} files", files.len());
    assert_eq!(
        deserialize_sites, 2,
        "the cache load and the fresh artifact are the only deserializations"
    );

    // Behavioural: built-ins get no side door either; a runtime whose size cap they exceed
    // refuses them like any upload.
    let strict = Runtime::new(RuntimeConfig {
        max_module_bytes: 4096,
        ..RuntimeConfig::default()
    })
    .unwrap();
    for b in plugins::BUILTINS {
        assert!(matches!(
            strict.ingest(b.bytes),
            Err(IngestError::TooLarge { .. })
        ));
    }
}

#[test]
fn s2_no_ambient_authority() {
    // Nothing is reachable through the WASI it may import.
    let m = load(fixtures::FX_READ_FILE);
    let out = runtime().evaluate_policy_blocking(&m, &input(json!({}), vec![]));
    assert_eq!(
        out.decision,
        Decision::Deny {
            reason: "no file, directory, environment or argument was reachable".into()
        }
    );
    // Sockets are linked deny-by-construction (CPython imports them): nothing connects.
    assert_no_socket_connects();
    // Imports outside our worlds are refused at upload, not stubbed as traps.
    let err = runtime()
        .ingest(&fixture(fixtures::FX_BAD_IMPORT))
        .unwrap_err();
    assert_eq!(
        err,
        IngestError::ForbiddenImport("evil:fixture/exfiltrate".into())
    );
    // The clock a plugin can read is the request's server time, not the host's.
    let tw = runtime()
        .ingest(plugins::builtin("time-window").unwrap().bytes)
        .unwrap();
    let out = runtime().evaluate_policy_blocking(&tw, &input(json!({"hours": [11, 13]}), vec![]));
    assert!(matches!(out.decision, Decision::Permit { .. }), "{out:?}");
}

#[test]
fn s3_every_limit_holds_on_every_evaluation() {
    let rt = runtime();
    let fuel = failure_of(rt, fixtures::FX_LOOP, json!({}));
    assert_eq!(fuel, Failure::OutOfFuel { fuel: 20_000_000 });
    let deadline_rt = Runtime::new(RuntimeConfig {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(30),
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert_eq!(
        failure_of(&deadline_rt, fixtures::FX_LOOP, json!({})),
        Failure::Deadline { millis: 30 }
    );
    assert_eq!(
        failure_of(rt, fixtures::FX_MEMORY_BOMB, json!({})),
        Failure::MemoryLimit {
            limit_bytes: 64 << 20
        }
    );
    assert_eq!(
        failure_of(rt, fixtures::FX_TABLE_GROWTH, json!({})),
        Failure::TableLimit {
            limit_elements: 20_000
        }
    );
    assert_eq!(
        failure_of(rt, fixtures::FX_RECURSION, json!({})),
        Failure::StackOverflow
    );
    // Bytes lifted from the guest in one host call (hostcall fuel): one 1 MiB log line.
    let lifted = failure_of(
        rt,
        fixtures::FX_LOG_SPAM,
        json!({"lines": 1, "bytes": 1 << 20, "via": "log"}),
    );
    assert!(
        matches!(lifted, Failure::OutputTooLarge { limit_bytes, .. } if limit_bytes == 64 << 10),
        "{lifted:?}"
    );
    assert!(matches!(
        failure_of(rt, fixtures::FX_HUGE_OUTPUT, json!({"kind": "string"})),
        Failure::OutputTooLarge { .. }
    ));
    // The host never noticed.
    healthy(rt);
    healthy(&deadline_rt);
}

#[test]
fn s4_compilation_is_bounded_in_size_features_functions_time_and_concurrency() {
    let rt = Runtime::new(RuntimeConfig {
        max_module_bytes: 1 << 20,
        compile_timeout: Duration::from_millis(20),
        max_concurrent_compiles: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert!(matches!(
        rt.ingest(&vec![0u8; 2 << 20]),
        Err(IngestError::TooLarge { .. })
    ));
    let err = rt
        .ingest(&fixture(fixtures::FX_FEATURE_THREADS))
        .unwrap_err();
    assert!(
        matches!(&err, IngestError::Invalid(m) if m.contains("threads")),
        "{err}"
    );
    assert!(matches!(
        rt.ingest(&fixture(fixtures::FX_MANY_FUNCTIONS)),
        Err(IngestError::TooManyFunctions { .. })
    ));
    assert_eq!(
        rt.ingest(&fixture(fixtures::FX_COMPILE_BOMB)).unwrap_err(),
        IngestError::CompileTimeout(20)
    );
    // The bomb still holds the only compile slot.
    assert_eq!(
        rt.ingest(plugins::builtin("claim-match").unwrap().bytes)
            .unwrap_err(),
        IngestError::Busy
    );
}

#[test]
fn s5_only_our_own_artifacts_are_deserialized() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let tw = plugins::builtin("time-window").unwrap().bytes;
    Runtime::new(config.clone()).unwrap().ingest(tw).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    // Keyed by content digest AND engine compatibility hash.
    let (key, ext) = names[0].rsplit_once('.').unwrap();
    assert_eq!(ext, "cwasm");
    let (d, compat) = key.split_once('-').unwrap();
    assert_eq!(d, digest(tw));
    assert_eq!(compat.len(), 16);

    // Planted bytes under the right name are not trusted into running: they fail to load, are
    // discarded, and the module is compiled afresh.
    let al = plugins::builtin("allow-list").unwrap().bytes;
    let planted = dir.path().join(format!("{}-{compat}.cwasm", digest(al)));
    std::fs::write(&planted, b"\x7fELF not really an artifact").unwrap();
    // An artifact of another engine build is never even looked at.
    let foreign = dir
        .path()
        .join(format!("{}-0123456789abcdef.cwasm", digest(al)));
    std::fs::write(&foreign, b"garbage").unwrap();
    let rt = Runtime::new(config).unwrap();
    let m = rt.ingest(al).unwrap();
    assert!(!m.from_cache);
    assert_ne!(
        std::fs::read(&planted).unwrap(),
        b"\x7fELF not really an artifact"
    );
    assert_eq!(std::fs::read(&foreign).unwrap(), b"garbage");
    healthy(&rt);
}

#[test]
fn s6_fresh_instance_per_evaluation() {
    let m = load(fixtures::FX_STATEFUL);
    let mut first = input(json!({}), vec![]);
    first.permission.resource_id = "alice-secret".into();
    let mut second = input(json!({}), vec![]);
    second.permission.resource_id = "bob-resource".into();
    for i in [&first, &second, &first] {
        let out = runtime().evaluate_policy_blocking(&m, i);
        assert_eq!(
            out.decision,
            Decision::Deny {
                reason: "call 1, previous resource ``".into()
            }
        );
    }
    // Never reused after a trap either: a trap, then the same module works from scratch.
    let trap = load(fixtures::FX_TRAP);
    assert!(
        runtime()
            .evaluate_policy_blocking(&trap, &first)
            .failure
            .is_some()
    );
    let out = runtime().evaluate_policy_blocking(&m, &second);
    assert_eq!(
        out.decision,
        Decision::Deny {
            reason: "call 1, previous resource ``".into()
        }
    );
}

#[test]
fn s15_pushed_claims_never_shadow_server_context() {
    let rt = runtime();
    let pushed = |name: &str, value: serde_json::Value| {
        [
            Provenance::ResourceServer,
            Provenance::VerifiedToken {
                issuer: "https://idp".into(),
                format: "jwt".into(),
            },
            Provenance::Pct,
        ]
        .into_iter()
        .map(|provenance| Claim {
            name: name.into(),
            value: value.clone(),
            provenance,
        })
        .collect::<Vec<_>>()
    };
    // The clock: 12:00 server time; claims saying 14:00 change nothing.
    let tw = rt
        .ingest(plugins::builtin("time-window").unwrap().bytes)
        .unwrap();
    let mut claims = pushed("now_ms", json!(NOW_MS + 2 * 3_600_000));
    claims.extend(pushed("now-ms", json!(NOW_MS + 2 * 3_600_000)));
    claims.extend(pushed("time", json!("2026-01-01T14:00:00Z")));
    let out = rt.evaluate_policy_blocking(&tw, &input(json!({"hours": [13, 17]}), claims));
    assert!(matches!(out.decision, Decision::Deny { .. }), "{out:?}");

    // The client id: the presenting client is another one; claims naming the allowed client
    // do not make it so.
    let al = rt
        .ingest(plugins::builtin("allow-list").unwrap().bytes)
        .unwrap();
    let mut i = input(
        json!({"client_ids": ["doctor-app"]}),
        pushed("client_id", json!("doctor-app")),
    );
    i.context.client_id = "other-app".into();
    let out = rt.evaluate_policy_blocking(&al, &i);
    assert!(!matches!(out.decision, Decision::Permit { .. }), "{out:?}");
}

/// fx-socket tries to connect to a listener on loopback: the connect must be denied and nothing
/// may reach the listener.
fn assert_no_socket_connects() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let m = load(fixtures::FX_SOCKET);
    let out = runtime().evaluate_policy_blocking(&m, &input(json!({ "port": port }), vec![]));
    match &out.decision {
        Decision::Deny { reason } => assert!(reason.to_lowercase().contains("denied"), "{reason}"),
        d => panic!("a socket must never connect: {d:?}"),
    }
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing may reach the listener");
}

#[test]
fn s18_plugins_get_no_outbound_network_at_all() {
    // There is no per-plugin network capability yet: no HTTP interface can be imported, and the
    // sockets interfaces (which CPython imports) refuse every operation.
    for i in WASI_ALLOWED {
        assert!(!i.starts_with("wasi:http"), "{i}");
    }
    assert_no_socket_connects();
    // Every module that does pass ingest has no network import.
    for b in plugins::BUILTINS {
        let m = runtime().ingest(b.bytes).unwrap();
        assert!(
            m.imports.iter().all(|i| !i.starts_with("wasi:http")),
            "{}: {:?}",
            b.name,
            m.imports
        );
    }
}
