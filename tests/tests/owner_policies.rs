//! The owner policy API over real HTTP: modules, policies, bindings, strategies, dry-runs,
//! isolation between owners, hostile uploads, restart.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uma_host::plugins::{builtin, fixtures};
use uma_integration_tests::*;

async fn start() -> TestServer {
    TestServer::start().await
}

async fn owner_token(s: &TestServer, user: (&str, &str)) -> String {
    s.owner_token(user).await
}

async fn upload(s: &TestServer, token: &str, name: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let r = s
        .http
        .post(s.url(&format!("/owner/modules/{name}")))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    status_json(r).await
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    call(s, token, reqwest::Method::POST, path, Some(body)).await
}

async fn get(s: &TestServer, token: &str, path: &str) -> (StatusCode, Value) {
    call(s, token, reqwest::Method::GET, path, None).await
}

async fn put(s: &TestServer, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    call(s, token, reqwest::Method::PUT, path, Some(body)).await
}

async fn delete(s: &TestServer, token: &str, path: &str) -> StatusCode {
    call(s, token, reqwest::Method::DELETE, path, None).await.0
}

/// Alice's resource at rs1, registered with a PAT that represents her.
async fn alice_resource(s: &TestServer) -> (String, String) {
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let id = s
        .create_resource(
            &pat,
            json!({"name": "Blood test", "resource_scopes": ["view", "edit"]}),
        )
        .await;
    (pat, id)
}

fn dry(client: &str, scopes: &[&str], claims: Value) -> Value {
    json!({"client_id": client, "scopes": scopes, "claims": claims})
}

#[tokio::test]
async fn owner_uploads_binds_and_dry_runs_a_plugin_from_plugins() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (_, rid) = alice_resource(&s).await;

    let (st, module) = upload(&s, &alice, "doctors", builtin("allow-list").unwrap().bytes).await;
    assert_eq!(st, StatusCode::CREATED, "{module}");
    assert_eq!(module["name"], "doctors");
    assert_eq!(module["version"], 1);
    assert_eq!(module["world"], "policy");
    assert_eq!(module["library"], "owned");
    assert_eq!(
        module["digest"],
        uma_host::runtime::digest(builtin("allow-list").unwrap().bytes)
    );
    assert!(
        module["exports"]
            .to_string()
            .contains("uma:policy/evaluator@0.1.0")
    );

    let (st, policy) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({
            "name": "my doctor",
            "module": {"library": "owned", "name": "doctors", "version": 1},
            "config": {"emails": ["dr@clinic.example"], "scopes": ["view"]}
        }),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{policy}");
    let pid = policy["id"].as_str().unwrap();

    let path = format!("/owner/resources/rs1/{rid}/policy");
    let (st, b) = put(&s, &alice, &path, json!({"bindings": [{"policy": pid}]})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(get(&s, &alice, &path).await.1["strategy"], "unanimous");

    let dry_path = format!("/owner/resources/rs1/{rid}/dry-run");
    let doctor = json!([{"name": "email", "value": "dr@clinic.example",
        "provenance": {"kind": "verified-token", "issuer": "https://idp", "format": "jwt"}}]);
    let (st, out) = post(&s, &alice, &dry_path, dry("c1", &["view", "edit"], doctor)).await;
    assert_eq!(st, StatusCode::OK, "{out}");
    // The policy grants view only: a partial grant, explained per policy.
    assert_eq!(out["decision"], "partial");
    assert_eq!(out["granted_scopes"], json!(["view"]));
    assert_eq!(out["policies"][0]["policy_name"], "my doctor");
    assert_eq!(out["policies"][0]["module"], "doctors@1");
    assert_eq!(out["policies"][0]["decision"]["outcome"], "permit");
    assert!(out["policies"][0]["fuel_used"].as_u64().unwrap() > 0);
    assert!(out["policies"][0]["elapsed_us"].is_u64());

    let family = json!([{"name": "email", "value": "sister@home.example",
        "provenance": {"kind": "verified-token", "issuer": "https://idp", "format": "jwt"}}]);
    let (_, out) = post(&s, &alice, &dry_path, dry("c1", &["view"], family)).await;
    assert_eq!(out["decision"], "deny");
    assert_eq!(
        out["policies"][0]["decision"]["reason"],
        "the requesting party is not on the allow-list"
    );

    let (_, out) = post(&s, &alice, &dry_path, dry("c1", &["view"], json!([]))).await;
    assert_eq!(out["decision"], "need-info");
    assert_eq!(out["required_claims"][0]["name"], "email");

    // Publishing a new version does not change what the policy runs.
    let (st, v2) = upload(&s, &alice, "doctors", builtin("claim-match").unwrap().bytes).await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(v2["version"], 2);
    assert_eq!(
        get(&s, &alice, &format!("/owner/policies/{pid}")).await.1["module"]["version"],
        1
    );
    let (_, out) = post(&s, &alice, &dry_path, dry("c1", &["view"], json!([]))).await;
    assert_eq!(out["policies"][0]["module"], "doctors@1");

    // A bound module and a bound policy cannot be deleted.
    assert_eq!(
        delete(&s, &alice, "/owner/modules/doctors/1").await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        delete(&s, &alice, &format!("/owner/policies/{pid}")).await,
        StatusCode::CONFLICT
    );
    assert_eq!(delete(&s, &alice, &path).await, StatusCode::NO_CONTENT);
    assert_eq!(
        delete(&s, &alice, &format!("/owner/policies/{pid}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&s, &alice, "/owner/modules/doctors/1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&s, &alice, "/owner/modules/doctors/1").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn s14_resource_without_policy_grants_nothing() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (_, rid) = alice_resource(&s).await;
    let (st, out) = post(
        &s,
        &alice,
        &format!("/owner/resources/rs1/{rid}/dry-run"),
        dry("c1", &["view"], json!([{"name": "sub", "value": "bob"}])),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(out["decision"], "deny");
    assert_eq!(out["granted_scopes"], json!([]));
    assert!(
        out["explanation"]
            .as_str()
            .unwrap()
            .contains("nothing is granted")
    );
}

#[tokio::test]
async fn malformed_config_is_rejected_at_creation_with_the_modules_message() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (st, out) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "bad", "module": {"library": "builtin", "name": "claim-match"},
               "config": {"claim": "email", "equals": "a", "domain": "b"}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(out["error"], "invalid_request");
    let d = out["error_description"].as_str().unwrap();
    assert!(
        d.contains("give exactly one of `equals`, `one_of`, `domain`"),
        "{d}"
    );
    assert!(d.contains("builtin:claim-match"), "{d}");

    // A claims plugin is not a policy.
    let (st, out) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "x", "module": {"library": "builtin", "name": "terms-purpose"},
               "config": {"terms": "t"}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{out}");
    assert!(
        out["error_description"]
            .as_str()
            .unwrap()
            .contains("claims plugin")
    );
    // Unknown members of the request are refused here (this is not a UMA document).
    let (st, _) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "x", "module": {"library": "builtin", "name": "allow-list"},
               "config": {"subjects": ["a"]}, "owner": "bob"}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

async fn policy_of(s: &TestServer, t: &str, name: &str, module: &str, config: Value) -> String {
    let (st, p) = post(
        s,
        t,
        "/owner/policies",
        json!({"name": name, "module": {"library": "builtin", "name": module}, "config": config}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn decision_strategies_with_mixed_outcomes() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (_, rid) = alice_resource(&s).await;
    let permit = policy_of(
        &s,
        &alice,
        "bob ok",
        "allow-list",
        json!({"subjects": ["bob"]}),
    )
    .await;
    let deny = policy_of(&s, &alice, "never", "time-window", json!({"not_after": 1})).await;
    let ask = policy_of(
        &s,
        &alice,
        "ask me",
        "owner-approval",
        json!({"message": "ok?"}),
    )
    .await;
    let email = policy_of(
        &s,
        &alice,
        "clinic",
        "claim-match",
        json!({"claim": "email", "domain": "clinic.example"}),
    )
    .await;
    let path = format!("/owner/resources/rs1/{rid}/policy");
    let dry_path = format!("/owner/resources/rs1/{rid}/dry-run");
    let bob = json!([{"name": "sub", "value": "bob"}]);
    let case = |strategy: &'static str, ids: Vec<&String>| {
        json!({"strategy": strategy,
               "bindings": ids.iter().map(|p| json!({"policy": p})).collect::<Vec<_>>()})
    };
    let expect = [
        ("unanimous", vec![&permit, &deny], "deny"),
        ("affirmative", vec![&permit, &deny], "permit"),
        ("consensus", vec![&permit, &deny], "deny"),
        ("consensus", vec![&permit, &permit, &deny], "permit"),
        ("unanimous", vec![&permit, &ask], "defer-to-owner"),
        ("affirmative", vec![&deny, &ask], "defer-to-owner"),
        ("unanimous", vec![&permit, &email], "need-info"),
        ("affirmative", vec![&deny, &email], "need-info"),
        ("unanimous", vec![&deny, &email], "deny"),
    ];
    for (strategy, ids, outcome) in expect {
        let (st, b) = put(&s, &alice, &path, case(strategy, ids.clone())).await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let (_, out) = post(&s, &alice, &dry_path, dry("c1", &["view"], bob.clone())).await;
        assert_eq!(out["decision"], outcome, "{strategy} {ids:?}: {out}");
        assert_eq!(out["strategy"], strategy);
    }

    // Per-scope bindings: view by the allow-list, edit by the owner's approval.
    let (st, _) = put(
        &s,
        &alice,
        &path,
        json!({"bindings": [{"policy": permit, "scopes": ["view"]}, {"policy": ask, "scopes": ["edit"]}]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, out) = post(
        &s,
        &alice,
        &dry_path,
        dry("c1", &["view", "edit"], bob.clone()),
    )
    .await;
    assert_eq!(out["decision"], "defer-to-owner");
    assert_eq!(out["granted_scopes"], json!(["view"]));
    assert_eq!(out["owner_messages"], json!(["ok?"]));

    // A binding may name only scopes the resource has, and only existing policies.
    let (st, out) = put(
        &s,
        &alice,
        &path,
        json!({"bindings": [{"policy": permit, "scopes": ["print"]}]}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"], "invalid_scope");
    let (st, _) = put(&s, &alice, &path, json!({"bindings": [{"policy": "nope"}]})).await;
    assert_eq!(st, StatusCode::CONFLICT);
}

#[tokio::test]
async fn s17_second_owner_cannot_see_bind_dry_run_or_delete() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let bob = owner_token(&s, BOB).await;
    let (_, rid) = alice_resource(&s).await;
    let (st, _) = upload(&s, &alice, "mine", builtin("allow-list").unwrap().bytes).await;
    assert_eq!(st, StatusCode::CREATED);
    let pid = policy_of(
        &s,
        &alice,
        "alice only",
        "allow-list",
        json!({"subjects": ["x"]}),
    )
    .await;
    let path = format!("/owner/resources/rs1/{rid}/policy");
    assert_eq!(
        put(&s, &alice, &path, json!({"bindings": [{"policy": pid}]}))
            .await
            .0,
        StatusCode::OK
    );

    // Bob sees none of it.
    let (_, modules) = get(&s, &bob, "/owner/modules").await;
    assert_eq!(modules["owned"], json!([]));
    assert!(!modules["builtin"].as_array().unwrap().is_empty());
    assert_eq!(
        get(&s, &bob, "/owner/modules/mine/1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&s, &bob, "/owner/policies").await.1, json!([]));
    assert_eq!(
        get(&s, &bob, &format!("/owner/policies/{pid}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&s, &bob, &path).await.0, StatusCode::NOT_FOUND);
    // Bob cannot bind Alice's policy to his own resource, nor anything to Alice's resource.
    let (bob_pat, _) = s.user_pat(RS1, BOB).await;
    let bob_rid = s
        .create_resource(&bob_pat, json!({"resource_scopes": ["view"]}))
        .await;
    let (st, _) = put(
        &s,
        &bob,
        &format!("/owner/resources/rs1/{bob_rid}/policy"),
        json!({"bindings": [{"policy": pid}]}),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "alice's policy does not exist for bob"
    );
    assert_eq!(
        put(&s, &bob, &path, json!({"bindings": []})).await.0,
        StatusCode::NOT_FOUND
    );
    let (st, _) = post(
        &s,
        &bob,
        &format!("/owner/resources/rs1/{rid}/dry-run"),
        dry("c1", &["view"], json!([])),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        delete(&s, &bob, "/owner/modules/mine/1").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&s, &bob, &format!("/owner/policies/{pid}")).await,
        StatusCode::NOT_FOUND
    );
    // Alice's objects are intact.
    assert_eq!(get(&s, &alice, &path).await.1["bindings"][0]["policy"], pid);
    assert_eq!(
        get(&s, &alice, "/owner/modules/mine/1").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn pat_held_for_a_user_may_bind_but_not_upload() {
    let s = start().await;
    let (pat, rid) = alice_resource(&s).await;
    let alice = owner_token(&s, ALICE).await;
    let pid = policy_of(&s, &alice, "p", "allow-list", json!({"subjects": ["bob"]})).await;
    let (st, out) = upload(&s, &pat, "x", builtin("allow-list").unwrap().bytes).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{out}");
    assert_eq!(out["error"], "insufficient_scope");
    let path = format!("/owner/resources/rs1/{rid}/policy");
    assert_eq!(
        put(&s, &pat, &path, json!({"bindings": [{"policy": pid}]}))
            .await
            .0,
        StatusCode::OK
    );
    // The same owner's resources at another resource server are out of its reach.
    assert_eq!(
        get(&s, &pat, &format!("/owner/resources/rs2/{rid}/policy"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Without any token: a bare Bearer challenge.
    let r = s.http.get(s.url("/owner/modules")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&r).starts_with("Bearer"));
    // A plain client token (no uma_protection, no uma_policy) is refused.
    let c1 = s.client_token(C1, Some("read")).await;
    assert_eq!(
        get(&s, &c1, "/owner/modules").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn every_adversarial_fixture_is_refused_or_fails_closed() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (_, rid) = alice_resource(&s).await;
    let path = format!("/owner/resources/rs1/{rid}/policy");
    let dry_path = format!("/owner/resources/rs1/{rid}/dry-run");

    // Refused at upload, naming the problem.
    let refused = [
        (fixtures::FX_BAD_IMPORT, "evil:fixture/exfiltrate"),
        (fixtures::FX_WRONG_WORLD, "wasi:cli/run"),
        (
            fixtures::FX_MANY_FUNCTIONS,
            "functions, the limit is 100000",
        ),
    ];
    for (file, needle) in refused {
        let (st, out) = upload(&s, &alice, "hostile", &std::fs::read(file).unwrap()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{file}: {out}");
        assert_eq!(out["error"], "invalid_module");
        assert!(
            out["error_description"].as_str().unwrap().contains(needle),
            "{out}"
        );
    }
    let (st, out) = upload(&s, &alice, "hostile", b"MZ\x90\x00 not wasm").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        out["error_description"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component")
    );
    let (st, out) = upload(
        &s,
        &alice,
        "Bad Name!",
        builtin("allow-list").unwrap().bytes,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{out}");

    // Accepted, then fail closed at dry-run with the precise reason.
    let failing = [
        (fixtures::FX_LOOP, json!({}), "out of fuel"),
        (fixtures::FX_MEMORY_BOMB, json!({}), "memory limit exceeded"),
        (fixtures::FX_RECURSION, json!({}), "stack overflow"),
        (fixtures::FX_TRAP, json!({}), "fixture panics on purpose"),
        (
            fixtures::FX_HUGE_OUTPUT,
            json!({"kind": "string"}),
            "output too large",
        ),
        (fixtures::FX_TABLE_GROWTH, json!({}), "table limit exceeded"),
        (
            fixtures::FX_LOG_SPAM,
            json!({"lines": 1_000_000, "bytes": 1000, "via": "log"}),
            "log limit exceeded",
        ),
        (
            fixtures::FX_BAD_DISCRIMINANT,
            json!({}),
            "unexpected discriminant: 7",
        ),
    ];
    for (i, (file, config, reason)) in failing.into_iter().enumerate() {
        let name = format!("hostile-{i}");
        let (st, m) = upload(&s, &alice, &name, &std::fs::read(file).unwrap()).await;
        assert_eq!(st, StatusCode::CREATED, "{file}: {m}");
        let (st, p) = post(
            &s,
            &alice,
            "/owner/policies",
            json!({"name": name, "module": {"library": "owned", "name": name, "version": 1},
                   "config": config}),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{p}");
        put(
            &s,
            &alice,
            &path,
            json!({"bindings": [{"policy": p["id"]}]}),
        )
        .await;
        let (st, out) = post(&s, &alice, &dry_path, dry("c1", &["view"], json!([]))).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(out["decision"], "deny", "{file}: {out}");
        let r = out["policies"][0]["decision"]["reason"].as_str().unwrap();
        assert!(r.contains(reason), "{file}: {r}");
        assert!(out["policies"][0]["failure"].is_object());
    }

    // Sockets are linked but refuse everything: the connect fails and the policy denies.
    let (st, m) = upload(
        &s,
        &alice,
        "sockets",
        &std::fs::read(fixtures::FX_SOCKET).unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    let (st, p) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "sockets", "module": {"library": "owned", "name": "sockets", "version": 1},
               "config": {}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    put(
        &s,
        &alice,
        &path,
        json!({"bindings": [{"policy": p["id"]}]}),
    )
    .await;
    let (st, out) = post(&s, &alice, &dry_path, dry("c1", &["view"], json!([]))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(out["decision"], "deny", "{out}");
    let r = out["policies"][0]["decision"]["reason"].as_str().unwrap();
    assert!(r.to_lowercase().contains("denied"), "{r}");
}

#[tokio::test]
async fn start_function_that_loops_cannot_become_a_policy_and_a_slow_one_still_decides() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (_, rid) = alice_resource(&s).await;

    // A start function runs on every instantiation, so creating the policy (which asks the module
    // to validate its configuration) fails with the reason, in bounded time.
    let bytes = std::fs::read(fixtures::FX_START_LOOP).unwrap();
    let (st, m) = upload(&s, &alice, "spinner", &bytes).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    let started = std::time::Instant::now();
    let (st, out) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "spin", "module": {"library": "owned", "name": "spinner", "version": 1},
               "config": {}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{out}");
    let text = out["error_description"].as_str().unwrap();
    assert!(
        text.contains("failed while validating the configuration: out of fuel"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A plugin that works hard (100,000 iterations) but finishes is heard.
    let bytes = std::fs::read(fixtures::FX_SLOW_LOOP).unwrap();
    let (st, m) = upload(&s, &alice, "slow", &bytes).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    let (st, p) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "slow", "module": {"library": "owned", "name": "slow", "version": 1},
               "config": {"iterations": 100_000}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let (st, _) = put(
        &s,
        &alice,
        &format!("/owner/resources/rs1/{rid}/policy"),
        json!({"bindings": [{"policy": p["id"]}]}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, out) = post(
        &s,
        &alice,
        &format!("/owner/resources/rs1/{rid}/dry-run"),
        dry("c1", &["view"], json!([])),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(out["decision"], "permit", "{out}");
}

#[tokio::test]
async fn multipart_upload_and_quota() {
    let s = TestServer::start_with(|c| c.policy.max_modules_per_owner = 2).await;
    let alice = owner_token(&s, ALICE).await;
    let bytes = builtin("time-window").unwrap().bytes;
    let boundary = "XyZ0123";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"module\"; filename=\"p.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = s
        .http
        .post(s.url("/owner/modules/tw"))
        .bearer_auth(&alice)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (st, m) = status_json(r).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    assert_eq!(m["size"], bytes.len());
    assert_eq!(upload(&s, &alice, "tw", bytes).await.0, StatusCode::CREATED);
    let (st, out) = upload(&s, &alice, "tw", bytes).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(out["error"], "quota_exceeded");
    // Wrong content type.
    let r = s
        .http
        .post(s.url("/owner/modules/tw"))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn restart_keeps_modules_policies_and_bindings_and_reuses_compiled_code() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (_, rid) = alice_resource(&s).await;
    let bytes = builtin("allow-list").unwrap().bytes;
    let (_, m) = upload(&s, &alice, "keep", bytes).await;
    let (_, p) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "keep", "module": {"library": "owned", "name": "keep", "version": 1},
               "config": {"subjects": ["bob"]}}),
    )
    .await;
    let path = format!("/owner/resources/rs1/{rid}/policy");
    put(
        &s,
        &alice,
        &path,
        json!({"strategy": "affirmative", "bindings": [{"policy": p["id"]}]}),
    )
    .await;

    let compiled = s.data_dir.join("compiled");
    let artifact = std::fs::read_dir(&compiled)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|f| f.starts_with(m["digest"].as_str().unwrap()))
        .expect("compiled artifact cached by digest");
    let written = std::fs::metadata(compiled.join(&artifact))
        .unwrap()
        .modified()
        .unwrap();

    // A real grant attempt, so the audit has an entry to keep.
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let r = s
        .permission(
            &pat,
            json!({"resource_id": rid, "resource_scopes": ["view"]}),
        )
        .await;
    let ticket = status_json(r).await.1["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .token_basic(
            C1.0,
            C1.1,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:uma-ticket"),
                ("ticket", &ticket),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, before) = get(&s, &alice, "/owner/audit").await;
    assert_eq!(before["entries"].as_array().unwrap().len(), 1);

    let s = s.restart().await;
    let (_, after) = get(&s, &alice, "/owner/audit").await;
    assert_eq!(
        after["entries"], before["entries"],
        "the audit survives a restart"
    );
    let (_, modules) = get(&s, &alice, "/owner/modules").await;
    assert_eq!(modules["owned"][0]["digest"], m["digest"]);
    assert_eq!(
        get(
            &s,
            &alice,
            &format!("/owner/policies/{}", p["id"].as_str().unwrap())
        )
        .await
        .1["name"],
        "keep"
    );
    let (_, b) = get(&s, &alice, &path).await;
    assert_eq!(b["strategy"], "affirmative");
    let (_, out) = post(
        &s,
        &alice,
        &format!("/owner/resources/rs1/{rid}/dry-run"),
        dry("c1", &["view"], json!([{"name": "sub", "value": "bob"}])),
    )
    .await;
    assert_eq!(out["decision"], "permit", "{out}");
    // The artifact is still the one written before the restart: nothing was recompiled (a
    // compilation writes a new file and renames it over the old one).
    let now = std::fs::metadata(compiled.join(&artifact))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(now, written);
}

/// Bind a new policy on module `name`@1 to the resource and dry-run it.
async fn bind_and_dry_run(s: &TestServer, token: &str, rid: &str, name: &str) -> Value {
    let (st, p) = post(
        s,
        token,
        "/owner/policies",
        json!({"name": name, "module": {"library": "owned", "name": name, "version": 1},
               "config": {"subjects": ["alice"]}}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let path = format!("/owner/resources/rs1/{rid}/policy");
    let (st, b) = put(s, token, &path, json!({"bindings": [{"policy": p["id"]}]})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let dry_path = format!("/owner/resources/rs1/{rid}/dry-run");
    let (st, out) = post(s, token, &dry_path, dry("c1", &["view"], json!([]))).await;
    assert_eq!(st, StatusCode::OK, "{out}");
    out
}

#[tokio::test]
async fn upload_may_ask_for_its_own_limits_which_apply_and_usage_is_shown() {
    let s = start().await;
    let alice = owner_token(&s, ALICE).await;
    let (_, rid) = alice_resource(&s).await;
    let allow_list = builtin("allow-list").unwrap().bytes;

    // Outside the server's maxima, or not the two known whole numbers: refused, saying why.
    for query in [
        "fuel=1",
        "fuel=200000001",
        "memory_bytes=1024",
        "memory_bytes=300000000",
        "fuel=lots",
        "colour=red",
    ] {
        let (st, out) = upload(&s, &alice, &format!("m?{query}"), allow_list).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{query}: {out}");
        assert_eq!(out["error"], "invalid_request", "{query}: {out}");
    }
    let (_, out) = upload(&s, &alice, "m?fuel=1", allow_list).await;
    assert_eq!(
        out["error_description"],
        "fuel 1 is outside what this server allows: 10000 to 200000000"
    );

    // A budget that fits: stored, shown, applied; usage appears once it has run.
    let (st, m) = upload(&s, &alice, "roomy?fuel=30000000", allow_list).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    assert_eq!(m["requested_limits"], json!({"fuel": 30000000}));
    assert_eq!(m["limits"]["fuel"], 30000000);
    assert_eq!(m["limits"]["max_memory_bytes"], 64 << 20);
    assert_eq!(m["limits"]["max_requestable_fuel"], 200000000);
    assert!(m.get("usage").is_none(), "{m}");
    let out = bind_and_dry_run(&s, &alice, &rid, "roomy").await;
    assert_eq!(out["decision"], "need-info", "{out}");
    let (_, m) = get(&s, &alice, "/owner/modules/roomy/1").await;
    assert_eq!(m["usage"]["evaluations"], 1, "{m}");
    assert_eq!(m["usage"]["failures"], 0, "{m}");
    let fuel = m["usage"]["peak_fuel_used"].as_u64().unwrap();
    assert!(fuel > 1000 && fuel < 1_000_000, "{m}");
    assert!(
        m["usage"]["peak_memory_bytes"].as_u64().unwrap() >= 1 << 20,
        "{m}"
    );

    // A budget too small for the module: every evaluation fails closed, naming that budget.
    let (st, _) = upload(&s, &alice, "tight?fuel=10000", allow_list).await;
    assert_eq!(st, StatusCode::CREATED);
    let out = bind_and_dry_run(&s, &alice, &rid, "tight").await;
    assert_eq!(out["decision"], "deny", "{out}");
    let reason = out["policies"][0]["decision"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "out of fuel: the plugin used its whole budget of 10000 instructions"
    );
    let (_, m) = get(&s, &alice, "/owner/modules/tight/1").await;
    assert_eq!(m["usage"]["failures"], 1, "{m}");
    assert_eq!(m["usage"]["peak_fuel_used"], 10000, "{m}");

    // The memory cap is the module's own too: validating a configuration with it already
    // fails, so the policy is refused at creation with the reason.
    let (st, _) = upload(&s, &alice, "small?memory_bytes=1048576", allow_list).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, out) = post(
        &s,
        &alice,
        "/owner/policies",
        json!({"name": "small", "module": {"library": "owned", "name": "small", "version": 1},
               "config": {"subjects": ["alice"]}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(
        out["error_description"],
        "module small@1 failed while validating the configuration: memory limit exceeded: \
         the plugin tried to use more than 1048576 bytes of linear memory"
    );
}
