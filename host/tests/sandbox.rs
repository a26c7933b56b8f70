//! The plugin runtime against the built-in plugins and every adversarial fixture: each hostile
//! guest fails closed with a precise reason, and a well-behaved plugin still works right after.

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

fn builtin(name: &str) -> Arc<Module> {
    runtime()
        .ingest(plugins::builtin(name).expect("builtin").bytes)
        .expect("built-in plugins pass ingest")
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("fixture built by host/build.rs")
}

fn claim(name: &str, value: serde_json::Value, provenance: Provenance) -> Claim {
    Claim {
        name: name.into(),
        value,
        provenance,
    }
}

fn verified(issuer: &str) -> Provenance {
    Provenance::VerifiedToken {
        issuer: issuer.into(),
        format: "http://openid.net/specs/openid-connect-core-1_0.html#IDToken".into(),
    }
}

fn input(config: serde_json::Value, claims: Vec<Claim>) -> PolicyInput {
    PolicyInput {
        permission: Permission {
            resource_id: "lab-report-1".into(),
            owner: "patient".into(),
            resource_server: "lab-rs".into(),
            resource_type: Some("https://lab.example/report".into()),
            resource_name: Some("Blood test".into()),
            registered_scopes: vec!["view".into(), "edit".into()],
            requested_scopes: vec!["view".into(), "edit".into()],
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

fn evaluate(module: &Module, input: &PolicyInput) -> PolicyOutcome {
    runtime().evaluate_policy_blocking(module, input)
}

fn permit(scopes: &[&str]) -> Decision {
    Decision::Permit {
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

/// After any hostile guest, a good one must still work in the same process.
fn assert_healthy() {
    let m = builtin("allow-list");
    let out = evaluate(
        &m,
        &input(
            json!({"subjects": ["alice"]}),
            vec![claim("sub", json!("alice"), Provenance::Server)],
        ),
    );
    assert_eq!(out.decision, permit(&["view", "edit"]), "{out:?}");
}

#[test]
fn builtins_all_pass_ingest_with_the_expected_world() {
    for b in plugins::BUILTINS {
        let m = runtime()
            .ingest(b.bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        let expected = if ["terms-purpose", "hmac-token"].contains(&b.name) {
            World::Claims
        } else {
            World::Policy
        };
        assert_eq!(m.world, expected, "{}", b.name);
        assert_eq!(m.digest, digest(b.bytes));
        assert!(
            m.imports.iter().all(|i| !i.starts_with("wasi:sockets")),
            "{:?}",
            m.imports
        );
    }
}

#[test]
fn allow_list_permits_listed_subjects_and_asks_for_identity() {
    let m = builtin("allow-list");
    let config = json!({"emails": ["doctor@clinic.example"], "scopes": ["view"]});
    let ok = evaluate(
        &m,
        &input(
            config.clone(),
            vec![claim(
                "email",
                json!("doctor@clinic.example"),
                verified("https://idp"),
            )],
        ),
    );
    assert_eq!(ok.decision, permit(&["view"]), "{ok:?}");
    assert!(ok.usage.fuel_used > 0);

    let stranger = evaluate(
        &m,
        &input(
            config.clone(),
            vec![claim(
                "email",
                json!("family@home.example"),
                verified("https://idp"),
            )],
        ),
    );
    assert!(
        matches!(stranger.decision, Decision::Deny { .. }),
        "{stranger:?}"
    );

    // A claim pushed by the resource server is not verified: it does not identify anyone.
    let pushed = evaluate(
        &m,
        &input(
            config,
            vec![claim(
                "email",
                json!("doctor@clinic.example"),
                Provenance::ResourceServer,
            )],
        ),
    );
    match pushed.decision {
        Decision::NeedInfo { required } => assert_eq!(required[0].name, "email"),
        other => panic!("expected need-info, got {other:?}"),
    }

    let by_client = evaluate(&m, &input(json!({"client_ids": ["doctor-app"]}), vec![]));
    assert_eq!(by_client.decision, permit(&["view", "edit"]));
}

#[test]
fn claim_match_requires_the_configured_issuer() {
    let m = builtin("claim-match");
    let config = json!({"claim": "email", "domain": "clinic.example", "issuer": "https://idp"});
    let good = evaluate(
        &m,
        &input(
            config.clone(),
            vec![claim(
                "email",
                json!("dr@clinic.example"),
                verified("https://idp"),
            )],
        ),
    );
    assert_eq!(good.decision, permit(&["view", "edit"]));

    // Same value from another issuer: ignored, so the claim is still required from the right one.
    let other = evaluate(
        &m,
        &input(
            config.clone(),
            vec![claim(
                "email",
                json!("dr@clinic.example"),
                verified("https://evil"),
            )],
        ),
    );
    match other.decision {
        Decision::NeedInfo { required } => {
            assert_eq!(required[0].issuers, vec!["https://idp".to_string()])
        }
        d => panic!("expected need-info, got {d:?}"),
    }

    let wrong = evaluate(
        &m,
        &input(
            config,
            vec![claim(
                "email",
                json!("dr@evil.example"),
                verified("https://idp"),
            )],
        ),
    );
    assert!(matches!(wrong.decision, Decision::Deny { .. }));
}

#[test]
fn time_window_uses_server_time_only() {
    let m = builtin("time-window");
    // NOW_MS is 12:00 UTC on a Thursday.
    let open = evaluate(
        &m,
        &input(json!({"weekdays": ["thu"], "hours": [9, 17]}), vec![]),
    );
    assert_eq!(open.decision, permit(&["view", "edit"]));
    let closed = evaluate(&m, &input(json!({"hours": [13, 17]}), vec![]));
    assert!(matches!(closed.decision, Decision::Deny { .. }));
    // A pushed claim named like the clock changes nothing (security-lessons S15).
    let spoofed = evaluate(
        &m,
        &input(
            json!({"hours": [13, 17]}),
            vec![claim(
                "now_ms",
                json!(NOW_MS + 3_600_000),
                Provenance::ResourceServer,
            )],
        ),
    );
    assert!(matches!(spoofed.decision, Decision::Deny { .. }));
}

#[test]
fn owner_approval_defers_to_the_owner() {
    let m = builtin("owner-approval");
    let out = evaluate(&m, &input(json!({"message": "insurer asks"}), vec![]));
    assert_eq!(
        out.decision,
        Decision::DeferToOwner {
            message: "insurer asks".into()
        }
    );
    let only_edit = evaluate(&m, &input(json!({"scopes": ["delete"]}), vec![]));
    assert_eq!(only_edit.decision, permit(&["view", "edit"]));
}

#[test]
fn permit_is_cut_to_the_requested_scopes() {
    // allow-list grants `scopes` ∩ requested; a plugin cannot widen a grant.
    let m = builtin("allow-list");
    let mut i = input(
        json!({"client_ids": ["doctor-app"], "scopes": ["view", "admin"]}),
        vec![],
    );
    i.permission.requested_scopes = vec!["view".into()];
    assert_eq!(evaluate(&m, &i).decision, permit(&["view"]));
}

#[test]
fn validate_config_rejects_with_the_modules_own_message() {
    let rt = runtime();
    let m = builtin("claim-match");
    let err = rt
        .validate_config(
            &m,
            r#"{"claim": "email", "equals": "a", "domain": "b"}"#,
            NOW_MS,
        )
        .expect("module answered");
    assert_eq!(
        err,
        Err("give exactly one of `equals`, `one_of`, `domain`".to_string())
    );
    let parse = rt
        .validate_config(&m, "{not json", NOW_MS)
        .expect("module answered");
    assert!(parse.unwrap_err().starts_with("invalid configuration"));
    assert_eq!(
        rt.validate_config(
            &m,
            r#"{"claim": "email", "domain": "clinic.example"}"#,
            NOW_MS
        ),
        Ok(Ok(()))
    );
    let tw = builtin("time-window");
    assert!(
        rt.validate_config(&tw, r#"{"weekdays": ["funday"]}"#, NOW_MS)
            .unwrap()
            .unwrap_err()
            .contains("funday")
    );
}

/// A claims plugin runs under its module's own limits (an upload's `?fuel=`), like a policy.
#[test]
fn claims_plugins_run_under_their_modules_limits() {
    let rt = runtime();
    let m = builtin("terms-purpose");
    let defaults = rt.config().default_limits();
    let (ok, used) = rt.call_claims_limited(&m, &ClaimsCall::TokenFormats, NOW_MS, defaults);
    assert!(ok.is_ok(), "{ok:?}");
    assert!(used.fuel_used > 0);
    let tight = Limits {
        fuel: used.fuel_used / 2,
        ..defaults
    };
    let (out, _) = rt.call_claims_limited(&m, &ClaimsCall::TokenFormats, NOW_MS, tight);
    assert_eq!(out.unwrap_err(), Failure::OutOfFuel { fuel: tight.fuel });
}

#[test]
fn claims_plugin_walks_two_steps() {
    let rt = runtime();
    let m = builtin("terms-purpose");
    let interaction = InteractionInput {
        context: ServerContext {
            now_ms: NOW_MS,
            client_id: "doctor-app".into(),
            issuer: "https://as.example".into(),
        },
        required: vec![],
        config: json!({"terms": "Treatment only.", "purposes": ["treatment", "research"]})
            .to_string(),
    };
    let (first, _) = rt.call_claims_blocking(&m, &ClaimsCall::Start(interaction.clone()), NOW_MS);
    let ClaimsAnswer::Step(Step::Ask { form }) = first.unwrap() else {
        panic!("expected a form")
    };
    assert_eq!(form.prompt, "Treatment only.");
    assert_eq!(form.fields[0].kind, FieldKind::Checkbox);

    let submit = |state: &str, answers: &[(&str, &str)]| {
        rt.call_claims_blocking(
            &m,
            &ClaimsCall::Submit {
                interaction: interaction.clone(),
                state: state.into(),
                answers: answers
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            },
            NOW_MS,
        )
        .0
        .unwrap()
    };
    let ClaimsAnswer::Step(Step::Ask { form }) = submit(&form.state, &[("accept", "true")]) else {
        panic!("expected the purpose form")
    };
    assert!(matches!(form.fields[0].kind, FieldKind::Choice { .. }));
    let done = submit(&form.state, &[("purpose", "treatment")]);
    assert_eq!(
        done,
        ClaimsAnswer::Step(Step::Done {
            claims: vec![
                GatheredClaim {
                    name: "terms_accepted".into(),
                    value: json!(true)
                },
                GatheredClaim {
                    name: "purpose".into(),
                    value: json!("treatment")
                },
            ]
        })
    );
    assert!(matches!(
        submit("terms", &[("accept", "false")]),
        ClaimsAnswer::Step(Step::Fail { .. })
    ));
    // A policy module cannot be driven as a claims plugin, and vice versa.
    let (wrong, _) =
        rt.call_claims_blocking(&builtin("allow-list"), &ClaimsCall::TokenFormats, NOW_MS);
    assert!(matches!(wrong, Err(Failure::Instantiation { .. })));
}

fn hostile(path: &str, config: serde_json::Value) -> PolicyOutcome {
    let m = runtime()
        .ingest(&fixture(path))
        .expect("fixture passes ingest");
    evaluate(&m, &input(config, vec![]))
}

fn assert_denied_by(out: &PolicyOutcome, check: impl Fn(&Failure) -> bool) {
    let failure = out
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure: {out:?}"));
    assert!(check(failure), "unexpected failure: {failure:?}");
    match &out.decision {
        Decision::Deny { reason } => assert_eq!(reason, &failure.to_string()),
        d => panic!("a failure must deny, got {d:?}"),
    }
    assert_healthy();
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let out = hostile(fixtures::FX_LOOP, json!({}));
    assert_denied_by(&out, |f| matches!(f, Failure::OutOfFuel { .. }));
    assert!(out.decision_reason().starts_with("out of fuel"));
}

#[test]
fn infinite_loop_hits_the_deadline_when_fuel_is_plentiful() {
    let rt = Runtime::new(RuntimeConfig {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(50),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let m = rt.ingest(&fixture(fixtures::FX_LOOP)).unwrap();
    let out = rt.evaluate_policy_blocking(&m, &input(json!({}), vec![]));
    assert!(
        matches!(out.failure, Some(Failure::Deadline { millis: 50 })),
        "{out:?}"
    );
    assert!(
        out.usage.elapsed >= Duration::from_millis(45),
        "{:?}",
        out.usage.elapsed
    );
    assert!(
        out.usage.elapsed < Duration::from_secs(2),
        "{:?}",
        out.usage.elapsed
    );
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let out = hostile(fixtures::FX_MEMORY_BOMB, json!({}));
    assert_denied_by(
        &out,
        |f| matches!(f, Failure::MemoryLimit { limit_bytes } if *limit_bytes == 64 << 20),
    );
    assert!(out.usage.memory_bytes <= 64 << 20);
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let out = hostile(fixtures::FX_RECURSION, json!({}));
    assert_denied_by(&out, |f| matches!(f, Failure::StackOverflow));
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let out = hostile(fixtures::FX_TRAP, json!({}));
    assert_denied_by(
        &out,
        |f| matches!(f, Failure::Trap { message } if message.contains("fixture panics on purpose for lab-report-1")),
    );
}

/// A component's top-level imports and how many core modules it embeds.
fn shape(bytes: &[u8]) -> (Vec<String>, usize) {
    use wasmparser::Payload;
    let (mut imports, mut modules, mut depth) = (Vec::new(), 0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.expect("a valid component") {
            Payload::ModuleSection { .. } => {
                modules += usize::from(depth == 0);
                depth += 1;
            }
            Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import.expect("an import").name.name.to_string());
                }
            }
            _ => {}
        }
    }
    (imports, modules)
}

/// The SDK keeps WASI stdio out of Rust components (its own `write`): a built-in is one core
/// module that imports nothing to lower, one core instance per evaluation, where wasi-libc's
/// stdio brought eleven WASI imports, an adapter shim and its fixup. A plugin built with the
/// SDK's defaults imports `log` as well, for its panic messages, and still no WASI.
#[test]
fn sdk_components_import_no_wasi() {
    for builtin in plugins::BUILTINS {
        let (imports, modules) = shape(builtin.bytes);
        assert!(
            imports.iter().all(|i| i.starts_with("uma:policy/types@")),
            "{}: {imports:?}",
            builtin.name
        );
        assert_eq!(modules, 1, "{}", builtin.name);
    }
    let (imports, _) = shape(&fixture(fixtures::FX_TRAP));
    assert!(
        imports.iter().any(|i| i.starts_with("uma:policy/log@")),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:")),
        "{imports:?}"
    );
}

#[test]
fn huge_string_output_is_refused() {
    let out = hostile(fixtures::FX_HUGE_OUTPUT, json!({"kind": "string"}));
    assert_denied_by(&out, |f| matches!(f, Failure::OutputTooLarge { .. }));
}

#[test]
fn huge_list_output_is_refused() {
    let out = hostile(fixtures::FX_HUGE_OUTPUT, json!({"kind": "list"}));
    assert_denied_by(&out, |f| {
        matches!(
            f,
            Failure::OutputTooLarge { .. } | Failure::MemoryLimit { .. }
        )
    });
}

#[test]
fn file_system_environment_and_arguments_are_empty() {
    let out = hostile(fixtures::FX_READ_FILE, json!({}));
    assert_eq!(
        out.decision,
        Decision::Deny {
            reason: "no file, directory, environment or argument was reachable".into()
        },
        "{out:?}"
    );
    assert!(out.failure.is_none());
    assert_healthy();
}

#[test]
fn socket_connect_is_refused_by_the_sandbox() {
    // wasi:sockets is linked deny-by-construction (CPython imports it whatever a policy does):
    // the fixture's connect to a listening port on this machine gets access denied.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let m = runtime()
        .ingest(&fixture(fixtures::FX_SOCKET))
        .expect("sockets are linked, refusing everything");
    assert!(m.imports.iter().any(|i| i.starts_with("wasi:sockets/")));
    let out = evaluate(&m, &input(json!({"port": port}), vec![]));
    assert!(out.failure.is_none(), "{out:?}");
    match &out.decision {
        Decision::Deny { reason } => assert!(
            reason.to_lowercase().contains("denied"),
            "the connect must be refused as access denied: {reason}"
        ),
        d => panic!("a socket must never connect: {d:?}"),
    }
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing may reach the listener");
    assert_healthy();
}

#[test]
fn unknown_interface_import_is_refused_and_named() {
    let err = runtime()
        .ingest(&fixture(fixtures::FX_BAD_IMPORT))
        .unwrap_err();
    assert_eq!(
        err,
        IngestError::ForbiddenImport("evil:fixture/exfiltrate".into())
    );
    assert!(
        err.to_string()
            .starts_with("import `evil:fixture/exfiltrate` is not allowed")
    );
}

#[test]
fn wrong_world_is_refused_and_explained() {
    let err = runtime()
        .ingest(&fixture(fixtures::FX_WRONG_WORLD))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, IngestError::WrongWorld { .. }), "{text}");
    assert!(text.contains("wasi:cli/run"), "{text}");
    assert!(text.contains("uma:policy/evaluator@0.1.0"), "{text}");
}

#[test]
fn slow_loop_just_under_the_budget_still_decides() {
    // Calibrate: fuel per iteration of this fixture, from two short runs.
    let m = runtime()
        .ingest(&fixture(fixtures::FX_SLOW_LOOP))
        .expect("fixture passes ingest");
    let run = |n: u64| evaluate(&m, &input(json!({ "iterations": n }), vec![]));
    let small = run(10_000);
    let large = run(110_000);
    assert_eq!(large.decision, permit(&["view", "edit"]), "{large:?}");
    let per_iteration = (large.usage.fuel_used - small.usage.fuel_used) as f64 / 100_000.0;
    let fixed = small.usage.fuel_used as f64 - 10_000.0 * per_iteration;
    let budget = RuntimeConfig::default().fuel as f64;

    // 95% of the budget: it must finish and be heard, within the wall-clock deadline too.
    let n = ((budget * 0.95 - fixed) / per_iteration) as u64;
    let out = run(n);
    assert_eq!(out.decision, permit(&["view", "edit"]), "{out:?}");
    assert!(out.failure.is_none());
    let used = out.usage.fuel_used as f64 / budget;
    assert!((0.90..1.0).contains(&used), "used {used} of the budget");
    assert!(
        out.usage.elapsed < RuntimeConfig::default().deadline,
        "{:?}",
        out.usage.elapsed
    );

    // 5% over: out of fuel, not a late answer.
    let over = run(((budget * 1.05 - fixed) / per_iteration) as u64);
    assert_denied_by(&over, |f| matches!(f, Failure::OutOfFuel { .. }));
}

#[test]
fn table_growth_hits_the_table_limit() {
    let out = hostile(fixtures::FX_TABLE_GROWTH, json!({}));
    assert_denied_by(
        &out,
        |f| matches!(f, Failure::TableLimit { limit_elements } if *limit_elements == 20_000),
    );
    assert!(
        out.decision_reason()
            .starts_with("table limit exceeded: the plugin tried to grow its tables past 20000")
    );
}

#[test]
fn log_flood_through_the_log_call_is_stopped_and_named() {
    let out = hostile(
        fixtures::FX_LOG_SPAM,
        json!({"lines": 1_000_000, "bytes": 1000, "via": "log"}),
    );
    assert_denied_by(
        &out,
        |f| matches!(f, Failure::LogLimit { limit_calls } if *limit_calls == 1_000),
    );
    assert!(out.decision_reason().starts_with("log limit exceeded"));
    // What was kept is bounded by lines and bytes.
    assert_eq!(out.usage.logs.len(), 16, "16 KiB of 1000-byte lines");
    assert!(out.usage.logs_dropped >= 984, "{}", out.usage.logs_dropped);
    // Stopped at the 1,001st call, long before fuel or the deadline.
    assert!(out.usage.elapsed < Duration::from_millis(250));
}

#[test]
fn moderate_logging_is_kept_up_to_the_cap_and_the_plugin_decides() {
    let out = hostile(
        fixtures::FX_LOG_SPAM,
        json!({"lines": 200, "bytes": 10, "via": "log"}),
    );
    assert_eq!(out.decision, permit(&["view", "edit"]), "{out:?}");
    assert_eq!(out.usage.logs.len(), 64);
    assert_eq!(out.usage.logs_dropped, 136);
}

#[test]
fn stdout_flood_is_cut_at_the_log_byte_cap() {
    let out = hostile(
        fixtures::FX_LOG_SPAM,
        json!({"lines": 2_000, "bytes": 100, "via": "stdout"}),
    );
    // 200 KB offered; the pipe closes at 16 KiB and the plugin still answers.
    assert_eq!(out.decision, permit(&["view", "edit"]), "{out:?}");
    let kept: usize = out.usage.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 16 << 10, "{kept}");
    assert!(out.usage.logs.len() <= 64);
    assert!(out.usage.logs.iter().all(|l| l.level == "stdout"));
    assert_healthy();
}

#[test]
fn start_function_that_loops_is_stopped_at_instantiation() {
    let m = runtime()
        .ingest(&fixture(fixtures::FX_START_LOOP))
        .expect("a start function is legal Wasm: it passes ingest");
    let out = evaluate(&m, &input(json!({}), vec![]));
    assert_denied_by(&out, |f| matches!(f, Failure::OutOfFuel { .. }));
    // Creating a policy runs validate-config, which instantiates too: it fails, never hangs.
    let err = runtime().validate_config(&m, "{}", NOW_MS).unwrap_err();
    assert!(matches!(err, Failure::OutOfFuel { .. }), "{err}");

    // With fuel to spare, the deadline stops it.
    let rt = Runtime::new(RuntimeConfig {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(50),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let m = rt.ingest(&fixture(fixtures::FX_START_LOOP)).unwrap();
    let out = rt.evaluate_policy_blocking(&m, &input(json!({}), vec![]));
    assert!(
        matches!(out.failure, Some(Failure::Deadline { millis: 50 })),
        "{out:?}"
    );
    assert!(out.usage.elapsed < Duration::from_secs(2));
}

#[test]
fn malformed_answers_are_traps_never_decisions() {
    for (file, needle) in [
        (fixtures::FX_BAD_DISCRIMINANT, "discriminant"),
        (fixtures::FX_BAD_POINTER, "out of bounds"),
    ] {
        let out = hostile(file, json!({}));
        assert_denied_by(
            &out,
            |f| matches!(f, Failure::Trap { message } if message.contains(needle)),
        );
    }
}

#[test]
fn compile_bomb_of_many_functions_is_refused_before_compiling() {
    let bytes = fixture(fixtures::FX_MANY_FUNCTIONS);
    assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
    let started = std::time::Instant::now();
    let err = runtime().ingest(&bytes).unwrap_err();
    assert!(
        matches!(err, IngestError::TooManyFunctions { limit: 100_000, count } if count > 100_000),
        "{err}"
    );
    assert!(err.to_string().contains("the limit is 100000"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_healthy();
}

#[test]
fn compile_bomb_of_huge_functions_times_out_and_keeps_its_slot() {
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: Duration::from_millis(20),
        max_concurrent_compiles: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let bytes = fixture(fixtures::FX_COMPILE_BOMB);
    assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
    let started = std::time::Instant::now();
    let err = rt.ingest(&bytes).unwrap_err();
    assert_eq!(err, IngestError::CompileTimeout(20));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The abandoned compilation still holds the only slot: the next upload is told to wait
    // rather than start another one.
    let good = plugins::builtin("time-window").unwrap().bytes;
    assert_eq!(rt.ingest(good).unwrap_err(), IngestError::Busy);
}

#[test]
fn corrupt_and_truncated_uploads_are_refused() {
    let rt = runtime();
    assert!(matches!(
        rt.ingest(b"GIF89a not wasm at all"),
        Err(IngestError::NotAComponent(_))
    ));
    let good = plugins::builtin("allow-list").unwrap().bytes;
    let truncated = &good[..good.len() / 2];
    assert!(matches!(rt.ingest(truncated), Err(IngestError::Invalid(_))));
    let mut flipped = good.to_vec();
    let mid = flipped.len() / 3;
    for b in &mut flipped[mid..mid + 64] {
        *b = !*b;
    }
    let err = rt.ingest(&flipped).unwrap_err();
    assert!(
        matches!(err, IngestError::Invalid(_) | IngestError::Compile(_)),
        "{err}"
    );
    assert_healthy();
}

#[test]
fn oversized_upload_is_refused_before_parsing() {
    let rt = Runtime::new(RuntimeConfig {
        max_module_bytes: 1024,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let err = rt
        .ingest(plugins::builtin("allow-list").unwrap().bytes)
        .unwrap_err();
    assert!(
        matches!(err, IngestError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[test]
fn compiled_artifacts_are_cached_by_digest_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let bytes = plugins::builtin("time-window").unwrap().bytes;
    let first = Runtime::new(config.clone()).unwrap().ingest(bytes).unwrap();
    assert!(!first.from_cache);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);

    // A new runtime is a restart: it loads the artifact instead of compiling.
    let rt = Runtime::new(config).unwrap();
    let again = rt.ingest(bytes).unwrap();
    assert!(again.from_cache);
    let out = rt.evaluate_policy_blocking(&again, &input(json!({"weekdays": ["thu"]}), vec![]));
    assert_eq!(out.decision, permit(&["view", "edit"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_evaluation_runs_on_the_pool() {
    let rt = runtime().clone();
    let m = builtin("allow-list");
    let mut handles = Vec::new();
    for i in 0..32 {
        let rt = rt.clone();
        let m = m.clone();
        handles.push(tokio::spawn(async move {
            let sub = if i % 2 == 0 { "alice" } else { "mallory" };
            let out = rt
                .evaluate_policy(
                    m,
                    input(
                        json!({"subjects": ["alice"]}),
                        vec![claim("sub", json!(sub), Provenance::Server)],
                    ),
                )
                .await;
            (i, out.decision)
        }));
    }
    for h in handles {
        let (i, d) = h.await.unwrap();
        if i % 2 == 0 {
            assert_eq!(d, permit(&["view", "edit"]));
        } else {
            assert!(matches!(d, Decision::Deny { .. }));
        }
    }
}

trait Reason {
    fn decision_reason(&self) -> &str;
}

impl Reason for PolicyOutcome {
    fn decision_reason(&self) -> &str {
        match &self.decision {
            Decision::Deny { reason } => reason,
            _ => "",
        }
    }
}

/// Beyond `max_loaded_modules` the least recently used module is dropped from memory, and it
/// is simply loaded again (here: recompiled; with a cache directory, from the artifact).
#[test]
fn loaded_modules_are_bounded_least_recently_used_first() {
    let rt = Runtime::new(RuntimeConfig {
        max_loaded_modules: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let bytes = |n: &str| plugins::builtin(n).unwrap().bytes;
    let allow = rt.ingest(bytes("allow-list")).unwrap();
    let window = rt.ingest(bytes("time-window")).unwrap();
    assert!(rt.loaded(&allow.digest).is_some(), "touch allow-list");
    rt.ingest(bytes("claim-match")).unwrap();
    assert_eq!(rt.loaded_count(), 2);
    assert!(
        rt.loaded(&window.digest).is_none(),
        "least recently used went"
    );
    assert!(rt.loaded(&allow.digest).is_some());
    let again = rt.ingest(bytes("time-window")).unwrap();
    let out = rt.evaluate_policy_blocking(&again, &input(json!({"weekdays": ["thu"]}), vec![]));
    assert_eq!(out.decision, permit(&["view", "edit"]));
    assert_eq!(rt.loaded_count(), 2);
}

/// An upload's ingest checks and compiles like any other but keeps nothing loaded: uploads
/// do not fill memory with modules nothing uses; the first real use loads it.
#[test]
fn an_uploaded_module_is_not_kept_loaded_until_it_is_used() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let bytes = plugins::builtin("allow-list").unwrap().bytes;
    let uploaded = rt.ingest_unloaded(bytes).unwrap();
    assert_eq!(rt.loaded_count(), 0);
    assert!(rt.loaded(&uploaded.digest).is_none());
    assert!(
        rt.ingest_unloaded(b"\0asm not a component").is_err(),
        "the same checks"
    );
    let used = rt.ingest(bytes).unwrap();
    assert_eq!(rt.loaded_count(), 1);
    assert_eq!(used.digest, uploaded.digest);
    // Already loaded: an upload of the same bytes finds it and leaves it loaded.
    rt.ingest_unloaded(bytes).unwrap();
    assert_eq!(rt.loaded_count(), 1);
}

/// A module that runs out of fuel on three evaluations in a row is suspended: the fourth is
/// refused without running (still a denial, with the reason), for that owner only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_keeps_exhausting_its_budget_is_suspended() {
    let rt = Runtime::new(RuntimeConfig {
        fuel: 1_000_000,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let spin = rt.ingest(&fixture(fixtures::FX_LOOP)).unwrap();
    let as_owner = |owner: &str| {
        let mut x = input(json!({}), vec![]);
        x.permission.owner = owner.into();
        x
    };
    for _ in 0..3 {
        let out = rt.evaluate_policy(spin.clone(), as_owner("mallory")).await;
        assert!(
            matches!(out.failure, Some(Failure::OutOfFuel { .. })),
            "{out:?}"
        );
    }
    let out = rt.evaluate_policy(spin.clone(), as_owner("mallory")).await;
    assert!(
        matches!(out.failure, Some(Failure::Suspended { seconds: 29 | 30 })),
        "{out:?}"
    );
    assert_eq!(out.usage.fuel_used, 0, "a suspended module does not run");
    assert!(matches!(&out.decision, Decision::Deny { reason } if reason.starts_with("suspended")));
    // Another owner who uploaded the same bytes is not affected.
    let out = rt.evaluate_policy(spin, as_owner("alice")).await;
    assert!(
        matches!(out.failure, Some(Failure::OutOfFuel { .. })),
        "{out:?}"
    );
}

/// An owner whose policy spins to its deadline on every call holds at most their own slots:
/// another owner's evaluation does not wait behind the attacker's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owners_spinning_policy_does_not_queue_other_owners() {
    let rt = Runtime::new(RuntimeConfig {
        max_concurrent_evaluations: 4,
        max_concurrent_evaluations_per_owner: 2,
        deadline: Duration::from_millis(800),
        fuel: u64::MAX / 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let spin = rt.ingest(&fixture(fixtures::FX_LOOP)).unwrap();
    let good = rt
        .ingest(plugins::builtin("allow-list").unwrap().bytes)
        .unwrap();
    let attacker = |i: usize| {
        let rt = rt.clone();
        let spin = spin.clone();
        tokio::spawn(async move {
            let mut x = input(json!({}), vec![]);
            x.permission.owner = "mallory".into();
            x.permission.resource_id = format!("r{i}");
            rt.evaluate_policy(spin, x).await
        })
    };
    // 6 attacker evaluations, more than the pool's 4 slots: without per-owner slots they would
    // fill the pool and the other owner would wait a whole deadline (800 ms).
    let attacks: Vec<_> = (0..6).map(attacker).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let out = rt
        .evaluate_policy(
            good,
            input(
                json!({"subjects": ["alice"]}),
                vec![claim("sub", json!("alice"), Provenance::Server)],
            ),
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(out.decision, permit(&["view", "edit"]));
    assert!(
        waited < Duration::from_millis(400),
        "another owner's evaluation waited {waited:?} behind the attacker"
    );
    for a in attacks {
        let o = a.await.unwrap();
        assert!(o.failure.is_some(), "the spinning policy fails closed");
    }
}

/// A request's evaluations handed over together come back in their order, across hand-off
/// runs and owners, each decided on its own input, and a module suspended midway is refused for
/// the rest of the batch without running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_evaluations_answer_in_order_and_stop_at_a_suspension() {
    let rt = Runtime::new(RuntimeConfig {
        fuel: 1_000_000,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let allow = rt
        .ingest(plugins::builtin("allow-list").unwrap().bytes)
        .unwrap();
    let limits = RuntimeConfig {
        fuel: 1_000_000,
        ..RuntimeConfig::default()
    }
    .default_limits();
    let config = json!({"emails": ["doctor@clinic.example"], "scopes": ["view"]});
    // 3 hand-off runs' worth, alternating a listed and an unlisted subject, two owners.
    let n = 2 * EVALUATIONS_PER_HANDOFF + 7;
    let jobs = (0..n)
        .map(|i| {
            let email = if i % 3 == 0 {
                "doctor@clinic.example"
            } else {
                "stranger@example.org"
            };
            let mut x = input(
                config.clone(),
                vec![claim("email", json!(email), verified("https://idp"))],
            );
            x.permission.resource_id = format!("r{i}");
            x.permission.owner = if i < n / 2 { "alice" } else { "bob" }.into();
            PolicyJob {
                module: allow.clone(),
                input: x,
                limits,
            }
        })
        .collect();
    let outcomes = rt.evaluate_policies_with(jobs).await;
    assert_eq!(outcomes.len(), n);
    for (i, out) in outcomes.iter().enumerate() {
        assert!(out.failure.is_none(), "{i}: {out:?}");
        if i % 3 == 0 {
            assert_eq!(out.decision, permit(&["view"]), "{i}");
        } else {
            assert!(
                matches!(out.decision, Decision::Deny { .. }),
                "{i}: {out:?}"
            );
        }
    }

    let spin = rt.ingest(&fixture(fixtures::FX_LOOP)).unwrap();
    let jobs = (0..6)
        .map(|_| PolicyJob {
            module: spin.clone(),
            input: input(json!({}), vec![]),
            limits,
        })
        .collect();
    let outcomes = rt.evaluate_policies_with(jobs).await;
    for out in &outcomes[..3] {
        assert!(
            matches!(out.failure, Some(Failure::OutOfFuel { .. })),
            "{out:?}"
        );
    }
    for out in &outcomes[3..] {
        assert!(
            matches!(out.failure, Some(Failure::Suspended { .. })),
            "{out:?}"
        );
        assert_eq!(out.usage.fuel_used, 0, "a suspended module does not run");
    }
}

/// Every guest call waits for an evaluation thread, so none finds the engine's instance slots
/// all taken. With one slot held by a policy spinning to its deadline, a configuration check
/// called directly on another thread fails to instantiate (what the server's configuration
/// checks and claims plugins did while they ran on tokio's blocking pool); the same check
/// through [`Runtime::sandboxed`] waits for the thread and gets the module's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_calls_wait_for_an_evaluation_thread_instead_of_failing_on_a_full_pool() {
    let rt = Runtime::new(RuntimeConfig {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(300),
        max_concurrent_evaluations: 1,
        max_concurrent_evaluations_per_owner: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let spin = rt.ingest(&fixture(fixtures::FX_LOOP)).unwrap();
    let check = rt
        .ingest(plugins::builtin("claim-match").unwrap().bytes)
        .unwrap();
    let spinning = tokio::spawn({
        let rt = rt.clone();
        async move { rt.evaluate_policy(spin, input(json!({}), vec![])).await }
    });
    // Until the spinning evaluation holds the only thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rt.evaluation_threads().0 == 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    let bad = r#"{"claim": "email", "equals": "a", "domain": "b"}"#;
    let direct = tokio::task::spawn_blocking({
        let (rt, check) = (rt.clone(), check.clone());
        move || rt.validate_config(&check, bad, NOW_MS)
    })
    .await
    .unwrap();
    assert!(
        matches!(&direct, Err(Failure::Trap { message }) if message.contains("concurrent limit")),
        "outside the evaluation threads the pool is full: {direct:?}"
    );

    let waited = rt
        .sandboxed(move |rt| rt.validate_config(&check, bad, NOW_MS))
        .await
        .unwrap();
    assert_eq!(
        waited,
        Ok(Err(
            "give exactly one of `equals`, `one_of`, `domain`".to_string()
        ))
    );
    let spun = spinning.await.unwrap();
    assert!(
        matches!(spun.failure, Some(Failure::Deadline { .. })),
        "{spun:?}"
    );
    assert_eq!(rt.evaluation_threads(), (1, 1));
}
