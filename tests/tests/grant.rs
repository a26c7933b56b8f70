//! The UMA grant over real HTTP (Grant §3.3): tickets to RPTs through the owner's Wasm
//! policies, need_info with claim tokens, request_submitted with owner approval, scope
//! calculation, RPT upgrade, PCTs, concurrency, and the lab-report story.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uma_host::config::{ClientConfig, TrustedIssuer};
use uma_integration_tests::*;

const UMA: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";
const ID_TOKEN: &str = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken";
/// A second requesting-party client, registered for nothing extra.
const C2: (&str, &str) = ("c2", "c2-secret-0123456789ab");
const INSURER: (&str, &str) = ("insurer", "insurer-secret-01234567");

fn client(id: &str, secret: &str, scopes: &[&str]) -> ClientConfig {
    ClientConfig {
        client_id: id.into(),
        client_secret: Some(secret.into()),
        redirect_uris: vec![],
        claims_redirect_uris: vec![],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        grant_types: None,
        name: None,
    }
}

async fn start(idp: &TestIdp) -> TestServer {
    let jwks = idp.jwks.clone();
    TestServer::start_with(move |c| {
        c.clients.push(client(C2.0, C2.1, &[]));
        c.clients.push(client(INSURER.0, INSURER.1, &[]));
        c.trusted_issuers.push(TrustedIssuer {
            issuer: IDP.into(),
            jwks: Some(jwks),
            jwks_uri: None,
        });
    })
    .await
}

/// Alice's world: an owner token, a PAT at rs1, and a resource with view/edit/read.
struct World {
    owner: String,
    pat: String,
    rid: String,
}

async fn world(s: &TestServer, scopes: Value) -> World {
    let owner = s.owner_token(ALICE).await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let rid = s
        .create_resource(
            &pat,
            json!({"name": "Lab report", "resource_scopes": scopes}),
        )
        .await;
    World { owner, pat, rid }
}

async fn owner_call(
    s: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = s.http.request(method, s.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    status_json(r.send().await.unwrap()).await
}

/// Create policies from built-ins and bind them (unanimous unless `strategy`).
async fn bind(s: &TestServer, w: &World, policies: &[(&str, Value, Option<&[&str]>)]) {
    let mut bindings = Vec::new();
    for (i, (module, config, scopes)) in policies.iter().enumerate() {
        let name = format!("p{i}-{}", rand_suffix());
        let (st, p) = owner_call(
            s,
            &w.owner,
            reqwest::Method::POST,
            "/owner/policies",
            Some(json!({"name": name, "module": {"library": "builtin", "name": module}, "config": config})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{p}");
        let mut b = json!({"policy": p["id"]});
        if let Some(sc) = scopes {
            b["scopes"] = json!(sc);
        }
        bindings.push(b);
    }
    let (st, b) = owner_call(
        s,
        &w.owner,
        reqwest::Method::PUT,
        &format!("/owner/resources/rs1/{}/policy", w.rid),
        Some(json!({"bindings": bindings})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

async fn ticket(s: &TestServer, pat: &str, rid: &str, scopes: &[&str]) -> String {
    let r = s
        .permission(pat, json!({"resource_id": rid, "resource_scopes": scopes}))
        .await;
    let (st, v) = status_json(r).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["ticket"].as_str().unwrap().to_owned()
}

async fn grant(s: &TestServer, client: (&str, &str), params: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", UMA)];
    form.extend_from_slice(params);
    s.token_basic(client.0, client.1, &form).await
}

async fn grant_json(
    s: &TestServer,
    client: (&str, &str),
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    status_json(grant(s, client, params).await).await
}

async fn introspect(s: &TestServer, pat: &str, token: &str) -> Value {
    let (st, v) = status_json(s.introspect_with_pat(pat, token).await).await;
    assert_eq!(st, StatusCode::OK);
    v
}

#[tokio::test]
async fn g_10_g_11_g_12_a_6_full_grant_issues_an_introspectable_rpt() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view", "edit"])).await;
    bind(
        &s,
        &w,
        &[("allow-list", json!({"client_ids": ["c1"]}), None)],
    )
    .await;
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;

    let r = grant(&s, C1, &[("ticket", &t)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let v: Value = r.json().await.unwrap();
    assert!(v["access_token"].is_string());
    assert!(
        v["token_type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("bearer")
    );
    assert!(v["expires_in"].is_u64());
    assert!(
        v.get("scope").is_none(),
        "G-12: no scope in the UMA success response"
    );

    let rpt = v["access_token"].as_str().unwrap();
    let i = introspect(&s, &w.pat, rpt).await;
    assert_eq!(i["active"], true);
    assert!(i.get("scope").is_none(), "IN-6");
    assert_eq!(
        i["permissions"],
        json!([{"resource_id": w.rid, "resource_scopes": ["view"]}])
    );
    assert_eq!(i["client_id"], "c1", "RPT-1");

    // T-2: the ticket was single-use.
    let (st, e) = grant_json(&s, C1, &[("ticket", &t)]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], "invalid_grant");
    assert!(e.get("ticket").is_none(), "T-7");
}

#[tokio::test]
async fn g_e1_g_2_g_3_g_e9_bad_parameters() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    let (st, e) = grant_json(&s, C1, &[("ticket", "no-such-ticket")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (st, e) = grant_json(&s, C1, &[]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (st, e) = grant_json(&s, C1, &[("ticket", "")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, e) = grant_json(&s, C1, &[("ticket", &t), ("claim_token", "abc")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // G-8: a repeated parameter.
    let (st, e) = grant_json(&s, C1, &[("ticket", &t), ("ticket", &t)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let r = s
        .token_basic(
            C1.0,
            C1.1,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:uma-ticketX"),
                ("ticket", &t),
            ],
        )
        .await;
    let (st, e) = status_json(r).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    // G-9: a confidential client without credentials.
    let r = s
        .http
        .post(s.url("/token"))
        .form(&[
            ("grant_type", UMA),
            ("ticket", t.as_str()),
            ("client_id", "c1"),
        ])
        .send()
        .await
        .unwrap();
    let (st, e) = status_json(r).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn a_8_s14_g_e4_no_policy_is_request_denied_without_challenge() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let r = grant(&s, C1, &[("ticket", &t)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("www-authenticate").is_none());
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "request_denied");
    assert!(e.get("ticket").is_none());
}

#[tokio::test]
async fn g_e3_pct_1_pct_2_pct_4_need_info_then_claim_token_then_pct() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    // The owner accepts the e-mail from a verified token or from a PCT that persisted one.
    bind(
        &s,
        &w,
        &[(
            "claim-match",
            json!({"claim": "email", "domain": "clinic.example",
        "provenance": ["verified-token", "pct"]}),
            None,
        )],
    )
    .await;
    let t1 = ticket(&s, &w.pat, &w.rid, &["view"]).await;

    let r = grant(&s, C1, &[("ticket", &t1)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("www-authenticate").is_none());
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "need_info");
    let t2 = e["ticket"].as_str().unwrap().to_owned();
    assert_ne!(t2, t1, "T-5");
    let rc = &e["required_claims"][0];
    assert_eq!(rc["name"], "email");
    assert!(
        rc["claim_token_format"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == ID_TOKEN)
    );

    // T-6: the old ticket is spent, the new one works.
    assert_eq!(
        grant_json(&s, C1, &[("ticket", &t1)]).await.1["error"],
        "invalid_grant"
    );
    let token = idp.id_token("dr-who", "dr@clinic.example", "c1");
    let (st, v) = grant_json(
        &s,
        C1,
        &[
            ("ticket", &t2),
            ("claim_token", &token),
            ("claim_token_format", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let pct = v["pct"]
        .as_str()
        .expect("a PCT for the gathered claims")
        .to_owned();
    assert!(pct.len() >= 22, "PCT-1");
    // PCT-2: the PCT discloses no claims.
    for part in pct.split('.') {
        let decoded = B64.decode(part).unwrap_or_default();
        let text = String::from_utf8_lossy(&decoded);
        assert!(!text.contains("clinic.example") && !text.contains("dr-who"));
    }
    assert!(!pct.contains("clinic"));
    let i = introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await;
    assert_eq!(
        i["sub"], "dr-who",
        "the RPT names the verified requesting party"
    );

    // PCT-4: a new ticket with only the PCT succeeds.
    let t3 = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, v) = grant_json(&s, C1, &[("ticket", &t3), ("pct", &pct)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // PCT-3: another client cannot use it.
    let t4 = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, e) = grant_json(&s, C2, &[("ticket", &t4), ("pct", &pct)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // PCT-6: revoked, it no longer works.
    let r = s
        .http
        .post(s.url("/revoke"))
        .basic_auth(C1.0, Some(C1.1))
        .form(&[("token", pct.as_str()), ("token_type_hint", "pct")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t5 = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, _) = grant_json(&s, C1, &[("ticket", &t5), ("pct", &pct)]).await;
    assert_ne!(st, StatusCode::OK);
}

#[tokio::test]
async fn g_e3d_s11_s16_bad_claim_tokens_ask_again() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    bind(
        &s,
        &w,
        &[(
            "claim-match",
            json!({"claim": "email", "domain": "clinic.example"}),
            None,
        )],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let other_idp = TestIdp::new();
    let mut none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    none_header.push('.');
    none_header.push_str(&B64.encode(
        json!({"iss": IDP, "aud": "c1", "email": "x@clinic.example", "exp": now + 60}).to_string(),
    ));
    none_header.push('.');
    let cases = [
        ("garbage", "not-a-jwt".to_string()),
        ("expired", idp.token(json!({"iss": IDP, "aud": "c1", "email": "x@clinic.example", "iat": now - 600, "exp": now - 300}))),
        ("issued to another client", idp.id_token("x", "x@clinic.example", "c2")),
        ("azp of another client", idp.token(json!({"iss": IDP, "aud": ["c1", "c2"], "azp": "c2", "email": "x@clinic.example", "exp": now + 60}))),
        ("untrusted issuer", other_idp.token(json!({"iss": "https://evil.example", "aud": "c1", "email": "x@clinic.example", "exp": now + 60}))),
        ("signed by a stranger's key", other_idp.id_token("x", "x@clinic.example", "c1")),
        ("alg none", none_header),
    ];
    for (what, token) in cases {
        let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
        let (st, e) = grant_json(
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
        assert_eq!(e["error"], "need_info", "{what}");
        assert!(e["ticket"].is_string());
    }
}

#[tokio::test]
async fn g_e5_t_9_request_submitted_then_owner_approves_or_denies() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view", "edit"])).await;
    bind(
        &s,
        &w,
        &[(
            "owner-approval",
            json!({"message": "the insurer asks"}),
            None,
        )],
    )
    .await;

    let t1 = ticket(&s, &w.pat, &w.rid, &["view", "edit"]).await;
    let (st, e) = grant_json(&s, INSURER, &[("ticket", &t1)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(e["error"], "request_submitted");
    let t2 = e["ticket"].as_str().unwrap().to_owned();
    assert_ne!(t2, t1);
    assert!(e["interval"].is_u64());

    // Polling before the owner answers: submitted again, with yet another ticket.
    let (_, e) = grant_json(&s, INSURER, &[("ticket", &t2)]).await;
    assert_eq!(e["error"], "request_submitted");
    let t3 = e["ticket"].as_str().unwrap().to_owned();
    assert_ne!(t3, t2);
    // Only the client the ticket was rotated to may poll with it (the attempt spends it).
    let (st, e) = grant_json(&s, C1, &[("ticket", &t3)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let t = ticket(&s, &w.pat, &w.rid, &["view", "edit"]).await;
    let (_, e) = grant_json(&s, INSURER, &[("ticket", &t)]).await;
    let t4 = e["ticket"].as_str().unwrap().to_owned();

    let (_, approvals) =
        owner_call(&s, &w.owner, reqwest::Method::GET, "/owner/approvals", None).await;
    let pending: Vec<&Value> = approvals
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0]["messages"], json!(["the insurer asks"]));
    assert_eq!(pending[0]["client_id"], "insurer");
    // Approve both, view only.
    for a in &pending {
        let id = a["id"].as_str().unwrap();
        let (st, d) = owner_call(&s, &w.owner, reqwest::Method::POST, &format!("/owner/approvals/{id}"),
            Some(json!({"decision": "approve", "permissions": [{"resource_id": w.rid, "resource_scopes": ["view"]}]}))).await;
        assert_eq!(st, StatusCode::OK, "{d}");
        // Exactly once: a second decision conflicts.
        let (st, _) = owner_call(
            &s,
            &w.owner,
            reqwest::Method::POST,
            &format!("/owner/approvals/{id}"),
            Some(json!({"decision": "deny"})),
        )
        .await;
        assert_eq!(st, StatusCode::CONFLICT);
    }
    // Approving what was not asked is refused.
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (_, e) = grant_json(&s, INSURER, &[("ticket", &t)]).await;
    let t5 = e["ticket"].as_str().unwrap().to_owned();
    let (_, approvals) =
        owner_call(&s, &w.owner, reqwest::Method::GET, "/owner/approvals", None).await;
    let id = approvals[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(approvals[0]["status"], "pending");
    let (st, _) = owner_call(&s, &w.owner, reqwest::Method::POST, &format!("/owner/approvals/{id}"),
        Some(json!({"decision": "approve", "permissions": [{"resource_id": w.rid, "resource_scopes": ["edit"]}]}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, v) = grant_json(&s, INSURER, &[("ticket", &t4)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let i = introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await;
    assert_eq!(i["permissions"][0]["resource_scopes"], json!(["view"]));

    // Denied by the owner → request_denied on the next poll.
    owner_call(
        &s,
        &w.owner,
        reqwest::Method::POST,
        &format!("/owner/approvals/{id}"),
        Some(json!({"decision": "deny"})),
    )
    .await;
    let (st, e) = grant_json(&s, INSURER, &[("ticket", &t5)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("request_denied"))
    );
}

#[tokio::test]
async fn a_2_a_3_a_4_g_e2_scope_calculation() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    // c1 is pre-registered for `read`.
    let w = world(&s, json!(["view", "edit", "read"])).await;
    bind(
        &s,
        &w,
        &[("allow-list", json!({"client_ids": ["c1", "c2"]}), None)],
    )
    .await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let other = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;

    // RequestedScopes(resource) = TicketScopes ∪ (Registered ∩ Requested), where available.
    let r = s
        .permission(&w.pat, json!([{"resource_id": w.rid, "resource_scopes": ["view"]}, {"resource_id": other, "resource_scopes": ["view"]}]))
        .await;
    let t = status_json(r).await.1["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    // `read` is added only where available (A-4); `other` has no policy, so the grant is
    // partial (A-7): only w.rid, with view and read.
    let (st, v) = grant_json(&s, C1, &[("ticket", &t), ("scope", "read")]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let i = introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await;
    assert_eq!(i["permissions"].as_array().unwrap().len(), 1, "{i}");
    assert_eq!(i["permissions"][0]["resource_id"], w.rid);

    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (_, v) = grant_json(&s, C1, &[("ticket", &t), ("scope", "read")]).await;
    let i = introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await;
    let mut scopes: Vec<String> =
        serde_json::from_value(i["permissions"][0]["resource_scopes"].clone()).unwrap();
    scopes.sort();
    assert_eq!(scopes, ["read", "view"], "A-2");

    // A-3 / G-E2: a scope the client is not registered for.
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, e) = grant_json(&s, C2, &[("ticket", &t), ("scope", "read")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn rpt_2_rpt_5_rpt_7_upgrade_merges_re_evaluated_permissions() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    bind(
        &s,
        &w,
        &[("allow-list", json!({"client_ids": ["c1", "c2"]}), None)],
    )
    .await;
    let r2 = s
        .create_resource(&w.pat, json!({"resource_scopes": ["view"]}))
        .await;
    let w2 = World {
        owner: w.owner.clone(),
        pat: w.pat.clone(),
        rid: r2.clone(),
    };
    bind(
        &s,
        &w2,
        &[("allow-list", json!({"client_ids": ["c1", "c2"]}), None)],
    )
    .await;

    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let rpt1 = grant_json(&s, C1, &[("ticket", &t)]).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = ticket(&s, &w.pat, &r2, &["view"]).await;
    let (st, v) = grant_json(&s, C1, &[("ticket", &t), ("rpt", &rpt1)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["upgraded"], true);
    let rpt2 = v["access_token"].as_str().unwrap();
    let i = introspect(&s, &w.pat, rpt2).await;
    let ids: Vec<&str> = i["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["resource_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&w.rid.as_str()) && ids.contains(&r2.as_str()),
        "{i}"
    );
    assert_eq!(
        introspect(&s, &w.pat, &rpt1).await,
        json!({"active": false}),
        "RPT-5"
    );

    // RPT-7: another client's RPT is refused.
    let t = ticket(&s, &w.pat, &r2, &["view"]).await;
    let (st, e) = grant_json(&s, C2, &[("ticket", &t), ("rpt", rpt2)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // An ordinary access token of the same client as `rpt` means "no RPT yet".
    let plain = s.client_token(C1, Some("read")).await;
    let t = ticket(&s, &w.pat, &r2, &["view"]).await;
    let (st, v) = grant_json(&s, C1, &[("ticket", &t), ("rpt", &plain)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v.get("upgraded").is_none());

    // S20: after the policy changes, an upgrade does not carry the old permission over.
    let (st, _) = owner_call(
        &s,
        &w.owner,
        reqwest::Method::DELETE,
        &format!("/owner/resources/rs1/{}/policy", w.rid),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let t = ticket(&s, &w.pat, &r2, &["view"]).await;
    let (_, v) = grant_json(&s, C1, &[("ticket", &t), ("rpt", rpt2)]).await;
    let i = introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await;
    let ids: Vec<&str> = i["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [r2.as_str()]);
}

#[tokio::test]
async fn t_10_sixty_four_concurrent_redemptions_yield_one_rpt() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    bind(
        &s,
        &w,
        &[("allow-list", json!({"client_ids": ["c1"]}), None)],
    )
    .await;
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let rpts = redeem_concurrently(&s, &t, 64).await;
    assert_eq!(rpts.len(), 1);
}

/// `n` simultaneous redemptions of one ticket by c1: the RPTs issued; every other answer must
/// be `invalid_grant`.
async fn redeem_concurrently(s: &TestServer, ticket: &str, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let http = s.http.clone();
            let url = s.url("/token");
            let t = ticket.to_owned();
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .basic_auth(C1.0, Some(C1.1))
                    .form(&[("grant_type", UMA), ("ticket", t.as_str())])
                    .send()
                    .await
                    .unwrap();
                status_json(r).await
            })
        })
        .collect();
    let mut rpts = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (StatusCode::OK, v) => rpts.push(v["access_token"].as_str().unwrap().to_owned()),
            (StatusCode::BAD_REQUEST, e) => assert_eq!(e["error"], "invalid_grant"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    rpts
}

/// A ticket for many resources is too large to seal into the ticket itself (`uma::ticket`), so it
/// is stored instead: the same single use under concurrent redemption (T-2, T-10), the same
/// RPT; and a small ticket is sealed (longer than the 43 characters of a stored one).
#[tokio::test]
async fn t_2_t_10_a_ticket_too_large_to_seal_is_stored_and_single_use_too() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    bind(
        &s,
        &w,
        &[("allow-list", json!({"client_ids": ["c1"]}), None)],
    )
    .await;
    let sealed = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    assert!(sealed.len() > 43, "{sealed}");
    let (_, policy) = owner_call(
        &s,
        &w.owner,
        reqwest::Method::GET,
        &format!("/owner/resources/rs1/{}/policy", w.rid),
        None,
    )
    .await;
    let mut asked = vec![json!({"resource_id": w.rid, "resource_scopes": ["view"]})];
    for i in 0..24 {
        let rid = s
            .create_resource(
                &w.pat,
                json!({"name": format!("report {i}"), "resource_scopes": ["view"]}),
            )
            .await;
        let (st, b) = owner_call(
            &s,
            &w.owner,
            reqwest::Method::PUT,
            &format!("/owner/resources/rs1/{rid}/policy"),
            Some(policy.clone()),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        asked.push(json!({"resource_id": rid, "resource_scopes": ["view"]}));
    }
    let (st, v) = status_json(s.permission(&w.pat, json!(asked)).await).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let stored = v["ticket"].as_str().unwrap().to_owned();
    assert_eq!(stored.len(), 43, "stored, not sealed: {stored}");

    let rpts = redeem_concurrently(&s, &stored, 16).await;
    assert_eq!(rpts.len(), 1);
    let i = introspect(&s, &w.pat, &rpts[0]).await;
    assert_eq!(i["permissions"].as_array().unwrap().len(), 25, "{i}");
    let (st, e) = grant_json(&s, C1, &[("ticket", &stored)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn lab_reports_doctor_views_insurer_after_approval_family_denied() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    // The patient (alice) registers her lab reports.
    let w = world(&s, json!(["view", "edit"])).await;
    // The doctor, identified by a verified clinic e-mail, may view but not edit; the insurer's
    // client needs the patient's approval.
    bind(
        &s,
        &w,
        &[
            ("allow-list", json!({"emails": ["dr@clinic.example"], "client_ids": [], "scopes": ["view"], "issuers": [IDP]}), None),
        ],
    )
    .await;
    // Affirmative: the doctor's allow-list or the patient's approval.
    let (_, ask) = owner_call(
        &s,
        &w.owner,
        reqwest::Method::POST,
        "/owner/policies",
        Some(
            json!({"name": "insurer", "module": {"library": "builtin", "name": "owner-approval"},
                    "config": {"message": "an insurer asks for your lab reports"}}),
        ),
    )
    .await;
    let (_, current) = owner_call(
        &s,
        &w.owner,
        reqwest::Method::GET,
        &format!("/owner/resources/rs1/{}/policy", w.rid),
        None,
    )
    .await;
    let mut bindings = current["bindings"].as_array().unwrap().clone();
    bindings.push(json!({"policy": ask["id"], "scopes": ["view"]}));
    owner_call(
        &s,
        &w.owner,
        reqwest::Method::PUT,
        &format!("/owner/resources/rs1/{}/policy", w.rid),
        Some(json!({"strategy": "affirmative", "bindings": bindings})),
    )
    .await;

    // Doctor: view granted, edit not.
    let t = ticket(&s, &w.pat, &w.rid, &["view", "edit"]).await;
    let token = idp.id_token("doctor", "dr@clinic.example", "c1");
    let (st, v) = grant_json(
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
    let i = introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await;
    assert_eq!(i["permissions"][0]["resource_scopes"], json!(["view"]));

    // Insurer (its agent identified, not a doctor): submitted, approved by the patient, RPT.
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let token = idp.id_token("agent-7", "agent@insurer.example", "insurer");
    let (_, e) = grant_json(
        &s,
        INSURER,
        &[
            ("ticket", &t),
            ("claim_token", &token),
            ("claim_token_format", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(e["error"], "request_submitted", "{e}");
    let next = e["ticket"].as_str().unwrap().to_owned();
    let (_, approvals) =
        owner_call(&s, &w.owner, reqwest::Method::GET, "/owner/approvals", None).await;
    let id = approvals[0]["id"].as_str().unwrap();
    assert_eq!(approvals[0]["client_id"], "insurer");
    owner_call(
        &s,
        &w.owner,
        reqwest::Method::POST,
        &format!("/owner/approvals/{id}"),
        Some(json!({"decision": "approve"})),
    )
    .await;
    let (st, v) = grant_json(&s, INSURER, &[("ticket", &next)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Family member (bob, with a verified non-clinic address): not the doctor; the owner
    // denies the request.
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let token = idp.id_token("bob", "bob@home.example", "c2");
    let (_, e) = grant_json(
        &s,
        C2,
        &[
            ("ticket", &t),
            ("claim_token", &token),
            ("claim_token_format", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(e["error"], "request_submitted");
    let next = e["ticket"].as_str().unwrap().to_owned();
    let (_, approvals) =
        owner_call(&s, &w.owner, reqwest::Method::GET, "/owner/approvals", None).await;
    let pending = approvals
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "pending")
        .unwrap();
    assert_eq!(pending["requesting_party"], "bob");
    let id = pending["id"].as_str().unwrap();
    owner_call(
        &s,
        &w.owner,
        reqwest::Method::POST,
        &format!("/owner/approvals/{id}"),
        Some(json!({"decision": "deny"})),
    )
    .await;
    let (st, e) = grant_json(&s, C2, &[("ticket", &next)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("request_denied"))
    );

    // The patient sees every decision in the audit log, and can revoke the doctor's RPT.
    let (_, audit) = owner_call(&s, &w.owner, reqwest::Method::GET, "/owner/audit", None).await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.len() >= 3, "{audit}");
    assert!(entries.iter().any(|e| e["client_id"] == "c1"
        && e["requesting_party"] == "doctor"
        && e["outcome"] == "partial"));
    let (_, filtered) = owner_call(
        &s,
        &w.owner,
        reqwest::Method::GET,
        "/owner/audit?client_id=insurer&limit=1",
        None,
    )
    .await;
    assert_eq!(filtered["entries"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["entries"][0]["client_id"], "insurer");
    let bob = s.owner_token(BOB).await;
    let (_, theirs) = owner_call(&s, &bob, reqwest::Method::GET, "/owner/audit", None).await;
    assert_eq!(
        theirs["entries"],
        json!([]),
        "S17: another owner sees nothing"
    );

    let (_, grants) = owner_call(&s, &w.owner, reqwest::Method::GET, "/owner/grants", None).await;
    let doctor = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["client_id"] == "c1")
        .unwrap();
    let jti = doctor["jti"].as_str().unwrap();
    let (st, _) = owner_call(
        &s,
        &w.owner,
        reqwest::Method::DELETE,
        &format!("/owner/grants/{jti}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let i = introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await;
    assert_eq!(i["active"], true, "the insurer's RPT is untouched");
}

/// Sign an HS256 compact JWS (a partner's token for the `hmac-token` claims plugin).
fn hs256(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn g_4_other_claim_token_formats_go_to_the_owners_claims_plugin() {
    const FORMAT: &str = "urn:uma-host:claim-token:hs256-jwt";
    const SECRET: &str = "a-secret-shared-with-the-partner-0123456789";
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    let (st, p) = owner_call(&s, &w.owner, reqwest::Method::POST, "/owner/policies",
        Some(json!({"name": "partner", "module": {"library": "builtin", "name": "claim-match"},
                    "config": {"claim": "partner_id", "one_of": ["p-17"], "provenance": ["verified-token"]}}))).await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let (st, b) = owner_call(&s, &w.owner, reqwest::Method::PUT, &format!("/owner/resources/rs1/{}/policy", w.rid),
        Some(json!({"bindings": [{"policy": p["id"]}],
                    "claims": {"module": {"library": "builtin", "name": "hmac-token"},
                               "config": {"secret": SECRET, "issuer": "https://partner.example"}}}))).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = hs256(
        SECRET,
        json!({"iss": "https://partner.example", "aud": "c1", "partner_id": "p-17", "exp": now + 60}),
    );
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, v) = grant_json(
        &s,
        C1,
        &[
            ("ticket", &t),
            ("claim_token", &good),
            ("claim_token_format", FORMAT),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // A token signed with another secret, or for another client, asks again.
    for bad in [
        hs256(
            "another-secret-of-sufficient-length-000000",
            json!({"iss": "https://partner.example", "partner_id": "p-17", "exp": now + 60}),
        ),
        hs256(
            SECRET,
            json!({"iss": "https://partner.example", "aud": "c2", "partner_id": "p-17", "exp": now + 60}),
        ),
        hs256(
            SECRET,
            json!({"iss": "https://partner.example", "partner_id": "p-17", "exp": now - 1}),
        ),
    ] {
        let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
        let (st, e) = grant_json(
            &s,
            C1,
            &[
                ("ticket", &t),
                ("claim_token", &bad),
                ("claim_token_format", FORMAT),
            ],
        )
        .await;
        assert_eq!(
            (st, e["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("need_info")),
            "{e}"
        );
    }
    // A format nobody handles.
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (_, e) = grant_json(
        &s,
        C1,
        &[
            ("ticket", &t),
            ("claim_token", &good),
            ("claim_token_format", "urn:example:saml"),
        ],
    )
    .await;
    assert_eq!(e["error"], "need_info");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("unsupported claim_token_format")
    );
    // The host itself never takes HS256 from a trusted issuer (alg confusion, S16).
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let confused = hs256(
        SECRET,
        json!({"iss": IDP, "aud": "c1", "partner_id": "p-17", "exp": now + 60}),
    );
    let (_, e) = grant_json(
        &s,
        C1,
        &[
            ("ticket", &t),
            ("claim_token", &confused),
            ("claim_token_format", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(e["error"], "need_info");
}

#[tokio::test]
async fn t_4_rpt_6_rpt_11_in_12_expiry_and_revocation() {
    let idp = TestIdp::new();
    let jwks = idp.jwks.clone();
    let s = TestServer::start_with(move |c| {
        c.ticket_lifetime_secs = 1;
        c.rpt_lifetime_secs = 1;
        c.clients.push(client(C2.0, C2.1, &[]));
        c.trusted_issuers.push(TrustedIssuer {
            issuer: IDP.into(),
            jwks: Some(jwks),
            jwks_uri: None,
        });
    })
    .await;
    let w = world(&s, json!(["view"])).await;
    bind(
        &s,
        &w,
        &[("allow-list", json!({"client_ids": ["c1"]}), None)],
    )
    .await;
    let r2 = s
        .create_resource(&w.pat, json!({"resource_scopes": ["view"]}))
        .await;
    let w2 = World {
        owner: w.owner.clone(),
        pat: w.pat.clone(),
        rid: r2.clone(),
    };
    bind(
        &s,
        &w2,
        &[("allow-list", json!({"client_ids": ["c1"]}), None)],
    )
    .await;

    // T-4: an expired ticket is invalid_grant.
    let stale = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let rpt = grant_json(&s, C1, &[("ticket", &t)]).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (st, e) = grant_json(&s, C1, &[("ticket", &stale)]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // IN-12: the expired RPT is inactive, and nothing else is said about it.
    assert_eq!(introspect(&s, &w.pat, &rpt).await, json!({"active": false}));
    // RPT-6: an expired RPT may still be upgraded.
    let t = ticket(&s, &w.pat, &r2, &["view"]).await;
    let (st, v) = grant_json(&s, C1, &[("ticket", &t), ("rpt", &rpt)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["upgraded"], true);
    let upgraded = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        introspect(&s, &w.pat, &upgraded).await["permissions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // RPT-11: the client revokes its RPT; introspection turns inactive and it is not merged
    // into a later upgrade.
    let r = s
        .http
        .post(s.url("/revoke"))
        .basic_auth(C1.0, Some(C1.1))
        .form(&[
            ("token", upgraded.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        introspect(&s, &w.pat, &upgraded).await,
        json!({"active": false})
    );
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, v) = grant_json(&s, C1, &[("ticket", &t), ("rpt", &upgraded)]).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v.get("upgraded").is_none(),
        "a revoked RPT is not carried over: {v}"
    );
    assert_eq!(
        introspect(&s, &w.pat, v["access_token"].as_str().unwrap()).await["permissions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // G-E10: a garbage rpt or pct is invalid_grant.
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, e) = grant_json(&s, C1, &[("ticket", &t), ("rpt", "garbage")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let (st, e) = grant_json(&s, C1, &[("ticket", &t), ("pct", "garbage")]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn s_5_in_20_rpt_for_alice_shows_nothing_to_bob() {
    let idp = TestIdp::new();
    let s = start(&idp).await;
    let w = world(&s, json!(["view"])).await;
    bind(
        &s,
        &w,
        &[("allow-list", json!({"client_ids": ["c1"]}), None)],
    )
    .await;
    let t = ticket(&s, &w.pat, &w.rid, &["view"]).await;
    let rpt = grant_json(&s, C1, &[("ticket", &t)]).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (bob_pat, _) = s.user_pat(RS1, BOB).await;
    assert_eq!(
        introspect(&s, &bob_pat, &rpt).await,
        json!({"active": false})
    );
    // A ticket minted with Bob's PAT cannot name Alice's resource (S-21, PE-20).
    let r = s
        .permission(
            &bob_pat,
            json!({"resource_id": w.rid, "resource_scopes": ["view"]}),
        )
        .await;
    let (st, e) = status_json(r).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_resource_id"))
    );
}
