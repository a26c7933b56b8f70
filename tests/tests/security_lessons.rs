//! One regression test per rule of `security-lessons.md` that is visible over HTTP, named after
//! the rule (S8, S11-S13, S16, S20-S22). The runtime's rules (S1-S7, S15, S18) are in
//! `host/tests/security_lessons.rs`; S9, S14, S17, S19, S23 live beside the features they guard.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uma_host::config::{ClientConfig, TrustedIssuer};
use uma_integration_tests::*;

const UMA: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";
const ID_TOKEN: &str = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken";
const C2: (&str, &str) = ("c2", "c2-secret-0123456789ab");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn start(idp: &TestIdp) -> TestServer {
    let jwks = idp.jwks.clone();
    TestServer::start_with(move |c| {
        c.clients.push(ClientConfig {
            client_id: C2.0.into(),
            client_secret: Some(C2.1.into()),
            redirect_uris: vec![],
            claims_redirect_uris: vec![],
            scopes: vec![],
            grant_types: None,
            name: None,
        });
        c.trusted_issuers.push(TrustedIssuer {
            issuer: IDP.into(),
            jwks: Some(jwks),
            jwks_uri: None,
        });
    })
    .await
}

/// Binds policies made from built-ins to resource `rid` of the owner.
async fn bind(s: &TestServer, owner: &str, rid: &str, policies: &[(&str, Value)]) {
    let mut bindings = Vec::new();
    for (module, config) in policies {
        let (st, p) = call(
            s,
            owner,
            Method::POST,
            "/owner/policies",
            Some(json!({"name": format!("{module}-{}", rand_id()), "module": {"library": "builtin", "name": module}, "config": config})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{p}");
        bindings.push(json!({"policy": p["id"]}));
    }
    let (st, b) = call(
        s,
        owner,
        Method::PUT,
        &format!("/owner/resources/rs1/{rid}/policy"),
        Some(json!({ "bindings": bindings })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

fn rand_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn ticket(s: &TestServer, pat: &str, rid: &str, scopes: &[&str]) -> String {
    let (st, v) = status_json(
        s.permission(pat, json!({"resource_id": rid, "resource_scopes": scopes}))
            .await,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["ticket"].as_str().unwrap().to_owned()
}

async fn grant(
    s: &TestServer,
    client: (&str, &str),
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", UMA)];
    form.extend_from_slice(params);
    status_json(s.token_basic(client.0, client.1, &form).await).await
}

fn permission_ids(introspection: &Value) -> Vec<String> {
    introspection["permissions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["resource_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn s8_every_object_a_request_names_is_authorized() {
    let s = TestServer::start().await;
    let (alice_pat, _) = s.user_pat(RS1, ALICE).await;
    let (bob_pat, _) = s.user_pat(RS1, BOB).await;
    let rs2_pat = s.client_token(RS2, Some("uma_protection")).await;
    let alice1 = s
        .create_resource(&alice_pat, json!({"resource_scopes": ["view"]}))
        .await;
    let bob1 = s
        .create_resource(&bob_pat, json!({"resource_scopes": ["view"]}))
        .await;
    let other_rs = s
        .create_resource(&rs2_pat, json!({"resource_scopes": ["view"]}))
        .await;
    // Alice's resource first, then someone else's: the whole request fails, not just the second.
    for foreign in [&bob1, &other_rs] {
        let (st, e) = status_json(
            s.permission(
                &alice_pat,
                json!([
                    {"resource_id": alice1, "resource_scopes": ["view"]},
                    {"resource_id": foreign, "resource_scopes": ["view"]},
                ]),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"], "invalid_resource_id", "{e}");
        assert!(e.get("ticket").is_none());
    }
    // And a scope not registered on the second of two own resources.
    let alice2 = s
        .create_resource(&alice_pat, json!({"resource_scopes": ["view"]}))
        .await;
    let (st, e) = status_json(
        s.permission(
            &alice_pat,
            json!([
                {"resource_id": alice1, "resource_scopes": ["view"]},
                {"resource_id": alice2, "resource_scopes": ["delete"]},
            ]),
        )
        .await,
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{e}"
    );
}

#[tokio::test]
async fn s11_policies_and_modules_are_owner_scoped_no_wildcards() {
    let s = TestServer::start().await;
    let alice = s.owner_token(ALICE).await;
    let bob = s.owner_token(BOB).await;
    let (bob_pat, _) = s.user_pat(RS1, BOB).await;
    let bob_rid = s
        .create_resource(&bob_pat, json!({"resource_scopes": ["view"]}))
        .await;
    // Alice's module cannot be named by Bob, not even by exact name and version.
    let r = s
        .http
        .post(s.url("/owner/modules/shared-name"))
        .bearer_auth(&alice)
        .header("content-type", "application/wasm")
        .body(
            uma_host::plugins::builtin("allow-list")
                .unwrap()
                .bytes
                .to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (st, e) = call(
        &s,
        &bob,
        Method::POST,
        "/owner/policies",
        Some(
            json!({"name": "x", "module": {"library": "owned", "name": "shared-name", "version": 1},
            "config": {"client_ids": ["c1"]}}),
        ),
    )
    .await;
    assert!(st.is_client_error(), "{st} {e}");
    // There is no binding wider than one resource of the caller: a wildcard id or a resource
    // type in the path binds nothing.
    for path in [
        "/owner/resources/rs1/*/policy".to_string(),
        "/owner/resources/*/*/policy".to_string(),
        "/owner/resources/rs1/%2A/policy".to_string(),
    ] {
        let (st, _) = call(
            &s,
            &alice,
            Method::PUT,
            &path,
            Some(json!({"bindings": []})),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    // So Bob's resource still grants nothing to anyone (S14 default deny) after Alice's calls.
    let t = ticket(&s, &bob_pat, &bob_rid, &["view"]).await;
    let (st, e) = grant(&s, C1, &[("ticket", &t)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
}

#[tokio::test]
async fn s12_resources_are_never_resolved_by_display_name() {
    let s = TestServer::start().await;
    let (alice_pat, _) = s.user_pat(RS1, ALICE).await;
    let (bob_pat, _) = s.user_pat(RS1, BOB).await;
    let alice = s.owner_token(ALICE).await;
    let rid = s
        .create_resource(
            &alice_pat,
            json!({"name": "Holiday album", "resource_scopes": ["view"]}),
        )
        .await;
    bind(
        &s,
        &alice,
        &rid,
        &[("allow-list", json!({"client_ids": ["c1"]}))],
    )
    .await;
    // Bob (or Alice's RS itself) naming the resource by its display name gets nothing.
    for pat in [&bob_pat, &alice_pat] {
        let (st, e) = status_json(
            s.permission(
                pat,
                json!({"resource_id": "Holiday album", "resource_scopes": ["view"]}),
            )
            .await,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"], "invalid_resource_id");
    }
    // Bob registering the same display name gets his own resource, not access to Alice's.
    let bob_rid = s
        .create_resource(
            &bob_pat,
            json!({"name": "Holiday album", "resource_scopes": ["view"]}),
        )
        .await;
    assert_ne!(bob_rid, rid);
    let t = ticket(&s, &bob_pat, &bob_rid, &["view"]).await;
    let (st, _) = grant(&s, C1, &[("ticket", &t)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "Bob's resource has no policy");
    // The only way to an RPT is through the policy: Alice's own resource via a ticket.
    let t = ticket(&s, &alice_pat, &rid, &["view"]).await;
    let (st, v) = grant(&s, C1, &[("ticket", &t)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn s13_every_protection_route_demands_a_pat_with_uma_protection() {
    let s = TestServer::start().await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let rid = s
        .create_resource(&pat, json!({"name": "kept", "resource_scopes": ["view"]}))
        .await;
    let client_token = s.client_token(C1, Some("read")).await;
    let owner = s.owner_token(ALICE).await;
    let body = json!({"name": "changed", "resource_scopes": ["view"]});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/resource_set".into(), None),
        (Method::POST, "/resource_set".into(), Some(body.clone())),
        (Method::GET, format!("/resource_set/{rid}"), None),
        (
            Method::PUT,
            format!("/resource_set/{rid}"),
            Some(body.clone()),
        ),
        (Method::DELETE, format!("/resource_set/{rid}"), None),
        (
            Method::POST,
            "/permission".into(),
            Some(json!({"resource_id": rid, "resource_scopes": ["view"]})),
        ),
    ];
    for token in ["", "garbage", client_token.as_str(), owner.as_str()] {
        for (method, path, body) in &routes {
            let (st, e) = call(&s, token, method.clone(), path, body.clone()).await;
            assert!(
                st == StatusCode::UNAUTHORIZED || st == StatusCode::FORBIDDEN,
                "{method} {path} with {token:.12}: {st} {e}"
            );
        }
    }
    // Nothing changed.
    let (st, v) = call(&s, &pat, Method::GET, &format!("/resource_set/{rid}"), None).await;
    assert_eq!((st, v["name"].as_str()), (StatusCode::OK, Some("kept")));
    // One validation for every write: what POST refuses, PUT refuses too.
    for bad in [
        json!({"resource_scopes": ["has space"]}),
        json!({"resource_scopes": ["view", "view"]}),
        json!({"resource_scopes": ["view"], "icon_uri": "not a uri"}),
    ] {
        let (post, _) = call(&s, &pat, Method::POST, "/resource_set", Some(bad.clone())).await;
        let (put, _) = call(
            &s,
            &pat,
            Method::PUT,
            &format!("/resource_set/{rid}"),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(post, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(put, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn s16_claim_tokens_are_bound_verified_and_never_alg_confused() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let alice = s.owner_token(ALICE).await;
    let rid = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    bind(
        &s,
        &alice,
        &rid,
        &[(
            "claim-match",
            json!({"claim": "email", "domain": "clinic.example", "issuer": IDP}),
        )],
    )
    .await;
    let n = now();
    let claims = |extra: Value| {
        let mut c = json!({"iss": IDP, "sub": "dr", "email": "dr@clinic.example", "iat": n, "exp": n + 120});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // HS256 keyed with the issuer's public JWK (the classic confusion), and alg none.
    let public_jwk = idp.jwks["keys"][0].to_string();
    let hmac = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("idp-1".into());
        let key = EncodingKey::from_secret(public_jwk.as_bytes()).unwrap();
        jsonwebtoken::encode(&h, &claims(json!({"aud": "c1"})), &key).unwrap()
    };
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT","kid":"idp-1"}"#),
        B64.encode(claims(json!({"aud": "c1"})).to_string())
    );
    let cases = [
        ("alg none", none),
        ("HMAC with the public key", hmac),
        ("issued to c2", idp.token(claims(json!({"aud": "c2"})))),
        (
            "azp c2",
            idp.token(claims(json!({"aud": ["c1", "c2"], "azp": "c2"}))),
        ),
        ("no audience", idp.token(claims(json!({})))),
        (
            "expired",
            idp.token(claims(json!({"aud": "c1", "exp": n - 120}))),
        ),
        (
            "not yet valid",
            idp.token(claims(json!({"aud": "c1", "nbf": n + 3600}))),
        ),
        (
            "wrong issuer",
            idp.token(claims(json!({"aud": "c1", "iss": "https://evil.example"}))),
        ),
    ];
    for (what, token) in cases {
        let t = ticket(&s, &pat, &rid, &["view"]).await;
        let (st, e) = grant(
            &s,
            C1,
            &[
                ("ticket", &t),
                ("claim_token", &token),
                ("claim_token_format", ID_TOKEN),
            ],
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{what}: {e}");
        assert_eq!(e["error"], "need_info", "{what}: {e}");
    }
    // Control: the same token, properly bound to c1, is accepted.
    let t = ticket(&s, &pat, &rid, &["view"]).await;
    let good = idp.token(claims(json!({"aud": "c1"})));
    let (st, v) = grant(
        &s,
        C1,
        &[
            ("ticket", &t),
            ("claim_token", &good),
            ("claim_token_format", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // ... but not when c2 presents it.
    let t = ticket(&s, &pat, &rid, &["view"]).await;
    let (st, _) = grant(
        &s,
        C2,
        &[
            ("ticket", &t),
            ("claim_token", &good),
            ("claim_token_format", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn s20_rpt_scopes_are_bounded_and_upgrades_re_evaluated_after_policy_change() {
    let s = TestServer::start().await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let alice = s.owner_token(ALICE).await;
    let r1 = s
        .create_resource(&pat, json!({"resource_scopes": ["view", "edit"]}))
        .await;
    let r2 = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    // The policy would grant more than registered or requested; the RPT holds only view.
    bind(
        &s,
        &alice,
        &r1,
        &[(
            "allow-list",
            json!({"client_ids": ["c1"], "scopes": ["view", "edit", "admin"]}),
        )],
    )
    .await;
    bind(
        &s,
        &alice,
        &r2,
        &[("allow-list", json!({"client_ids": ["c1"]}))],
    )
    .await;
    let t = ticket(&s, &pat, &r1, &["view"]).await;
    let (st, v) = grant(&s, C1, &[("ticket", &t)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let rpt = v["access_token"].as_str().unwrap().to_owned();
    let (_, i) = status_json(s.introspect_with_pat(&pat, &rpt).await).await;
    let scopes = &i["permissions"][0]["resource_scopes"];
    assert!(
        scopes
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == "view" || s == "edit"),
        "never `admin`, which is not registered: {i}"
    );

    // The owner withdraws r1's policy; an upgrade for r2 must not carry r1 over.
    let (st, _) = call(
        &s,
        &alice,
        Method::DELETE,
        &format!("/owner/resources/rs1/{r1}/policy"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let t = ticket(&s, &pat, &r2, &["view"]).await;
    let (st, v) = grant(&s, C1, &[("ticket", &t), ("rpt", &rpt)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, i) = status_json(
        s.introspect_with_pat(&pat, v["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(permission_ids(&i), vec![r2.clone()], "{i}");
}

#[tokio::test]
async fn s21_pcts_are_bound_to_the_client_and_carry_no_readable_claims() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let alice = s.owner_token(ALICE).await;
    let rid = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    bind(
        &s,
        &alice,
        &rid,
        &[(
            "claim-match",
            json!({"claim": "email", "domain": "clinic.example", "provenance": ["verified-token", "pct"]}),
        )],
    )
    .await;
    let n = now();
    let token = idp.token(json!({"iss": IDP, "sub": "dr-secret-subject", "aud": "c1",
        "email": "dr@clinic.example", "iat": n, "exp": n + 120}));
    let t = ticket(&s, &pat, &rid, &["view"]).await;
    let (st, v) = grant(
        &s,
        C1,
        &[
            ("ticket", &t),
            ("claim_token", &token),
            ("claim_token_format", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let pct = v["pct"].as_str().unwrap().to_owned();
    for part in std::iter::once(pct.as_str()).chain(pct.split('.')) {
        for decoded in [
            B64.decode(part).unwrap_or_default(),
            part.as_bytes().to_vec(),
        ] {
            let text = String::from_utf8_lossy(&decoded);
            assert!(
                !text.contains("clinic.example") && !text.contains("dr-secret-subject"),
                "the PCT discloses a claim"
            );
        }
    }
    // The client that got it may use it; another client may not.
    let t = ticket(&s, &pat, &rid, &["view"]).await;
    let (st, v) = grant(&s, C1, &[("ticket", &t), ("pct", &pct)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let t = ticket(&s, &pat, &rid, &["view"]).await;
    let (st, e) = grant(&s, C2, &[("ticket", &t), ("pct", &pct)]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"], "invalid_grant");
    // Introspection of a PCT by the resource server tells nothing either.
    let (_, i) = status_json(s.introspect_with_pat(&pat, &pct).await).await;
    assert!(
        !i.to_string().contains("clinic.example") && !i.to_string().contains("dr-secret-subject"),
        "{i}"
    );
}

#[tokio::test]
async fn s22_secrets_are_hashed_and_client_auth_failures_are_indistinguishable() {
    let s = TestServer::start().await;
    // A client created over the admin API, beside the configured ones.
    let secret = "freshly-made-secret-0123456789";
    let r = s
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"client_id": "made", "client_secret": secret})),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let body = r.text().await.unwrap();
    let (_, listed) = status_json(s.admin(Method::GET, "/clients/made", None).await).await;
    assert!(!listed.to_string().contains(secret), "{listed}");
    let _ = body;

    // Failures: wrong secret, unknown client, missing secret, secret of another client, and
    // the right secret in the wrong field. All answer the same, byte for byte.
    let form = [("grant_type", "client_credentials")];
    let mut answers = Vec::new();
    for (id, pw) in [
        (C1.0, Some("wrong-secret-0123456789")),
        ("no-such-client", Some(C1.1)),
        (C1.0, None),
        (C1.0, Some(RS1.1)),
        ("made", Some("freshly-made-secret-012345678")),
    ] {
        let r = s
            .http
            .post(s.url("/token"))
            .basic_auth(id, pw)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let challenge = www_authenticate(&r);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{id}: {body}");
        answers.push((status, challenge, body));
    }
    for a in &answers[1..] {
        assert_eq!(a, &answers[0]);
    }
    // The right secret works (control).
    let r = s.token_basic("made", secret, &form).await;
    assert_eq!(r.status(), StatusCode::OK);

    // No secret is stored in clear: stop the server and search the data directory.
    let dir = s.data_dir.clone();
    let _keep = s.stop().await;
    let mut files = vec![dir.clone()];
    let mut scanned = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        scanned += bytes.len();
        for needle in [secret, C1.1, RS1.1, ALICE.1] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in clear in {}",
                p.display()
            );
        }
    }
    assert!(scanned > 0);
}
