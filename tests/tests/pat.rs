//! PAT-2 … PAT-8, RR-23, PE-15, IN-3, IN-4: every Protection API route refuses missing, bad,
//! expired, revoked and non-`uma_protection` tokens the RFC 6750 way.

use reqwest::Method;
use serde_json::json;
use uma_integration_tests::*;

/// (method, path, JSON body?) of every Protection API operation.
fn routes(id: &str) -> Vec<(Method, String, Option<serde_json::Value>)> {
    let desc = json!({"resource_scopes": ["view"]});
    vec![
        (Method::GET, "/resource_set".into(), None),
        (Method::POST, "/resource_set".into(), Some(desc.clone())),
        (Method::GET, format!("/resource_set/{id}"), None),
        (Method::PUT, format!("/resource_set/{id}"), Some(desc)),
        (
            Method::POST,
            "/permission".into(),
            Some(json!({"resource_id": id, "resource_scopes": []})),
        ),
        (Method::DELETE, format!("/resource_set/{id}"), None),
    ]
}

async fn call(
    s: &TestServer,
    m: &Method,
    path: &str,
    body: &Option<serde_json::Value>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = s.http.request(m.clone(), s.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap()
}

async fn introspect(s: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut r = s.http.post(s.url("/introspect")).form(&[("token", "x")]);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn pat_3_bearer_pat_is_accepted_on_every_protection_endpoint() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let id = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    for (m, p, b) in routes(&id) {
        let r = call(&s, &m, &p, &b, Some(&pat)).await;
        assert!(r.status().is_success(), "{m} {p}: {}", r.status());
    }
    assert_eq!(introspect(&s, Some(&pat)).await.status(), 200);
}

#[tokio::test]
async fn pat_5_rr_23_pe_15_in_3_no_credentials_is_401_bare_bearer_challenge() {
    let s = TestServer::start().await;
    for (m, p, b) in routes("does-not-exist") {
        let r = call(&s, &m, &p, &b, None).await;
        assert_eq!(r.status(), 401, "{m} {p}");
        let w = www_authenticate(&r);
        assert!(w.starts_with("Bearer"), "{w}");
        assert!(!w.contains("error="), "{w}");
    }
    let r = introspect(&s, None).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).starts_with("Bearer"));
}

#[tokio::test]
async fn pat_6_in_4_garbage_expired_and_revoked_pats_are_invalid_token() {
    let s = TestServer::start_with(|c| c.access_token_lifetime_secs = 1).await;
    let expired = s.client_token(RS1, None).await;
    let revoked = s.client_token(RS1, None).await;
    let r = s.revoke(RS1, &revoked).await;
    assert_eq!(r.status(), 200);
    // Tampered signature.
    let mut tampered = s.client_token(RS1, None).await;
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for t in [
        "garbage",
        expired.as_str(),
        revoked.as_str(),
        tampered.as_str(),
    ] {
        for (m, p, b) in routes("x") {
            let r = call(&s, &m, &p, &b, Some(t)).await;
            assert_eq!(r.status(), 401, "{m} {p}");
            assert!(
                www_authenticate(&r).contains("error=\"invalid_token\""),
                "{}",
                www_authenticate(&r)
            );
        }
        let r = introspect(&s, Some(t)).await;
        assert_eq!(r.status(), 401);
        assert!(www_authenticate(&r).contains("invalid_token"));
    }
}

#[tokio::test]
async fn pat_7_token_without_uma_protection_is_403_insufficient_scope() {
    let s = TestServer::start().await;
    let plain = s.client_token(C1, Some("read")).await;
    for (m, p, b) in routes("x") {
        let r = call(&s, &m, &p, &b, Some(&plain)).await;
        assert_eq!(r.status(), 403, "{m} {p}");
        let w = www_authenticate(&r);
        assert!(
            w.contains("error=\"insufficient_scope\"") && w.contains("uma_protection"),
            "{w}"
        );
    }
    let r = introspect(&s, Some(&plain)).await;
    assert!(r.status() == 401 || r.status() == 403);
}

#[tokio::test]
async fn pat_8_token_in_header_and_body_or_query_is_400() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let r = s
        .http
        .post(s.url("/introspect"))
        .bearer_auth(&pat)
        .form(&[("token", pat.as_str()), ("access_token", pat.as_str())])
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let r = s
        .http
        .get(s.url("/resource_set"))
        .query(&[("access_token", pat.as_str())])
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn pat_2_deleted_resource_server_client_invalidates_its_pats() {
    let s = TestServer::start().await;
    let r = s
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"client_id": "tmp-rs", "client_secret": "tmp-rs-secret-012345"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let pat = s
        .client_token(("tmp-rs", "tmp-rs-secret-012345"), None)
        .await;
    assert_eq!(
        s.http
            .get(s.url("/resource_set"))
            .bearer_auth(&pat)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.admin(Method::DELETE, "/clients/tmp-rs", None)
            .await
            .status(),
        204
    );
    let r = s
        .http
        .get(s.url("/resource_set"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn pat_10_errors_after_authentication_are_json_objects_with_error() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let cases: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (Method::GET, "/resource_set/nope", None),
        (
            Method::PUT,
            "/resource_set/nope",
            Some(json!({"resource_scopes": []})),
        ),
        (Method::DELETE, "/resource_set/nope", None),
        (
            Method::POST,
            "/resource_set",
            Some(json!({"name": "no scopes"})),
        ),
        (Method::PATCH, "/resource_set/nope", None),
        (
            Method::POST,
            "/permission",
            Some(json!({"resource_id": "nope", "resource_scopes": []})),
        ),
        (Method::POST, "/permission", Some(json!([]))),
        (Method::GET, "/resource_set?max=-1", None),
    ];
    for (m, p, b) in cases {
        let r = call(&s, &m, p, &b, Some(&pat)).await;
        assert!(r.status().is_client_error(), "{m} {p}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{m} {p}"
        );
        let (_, v) = status_json(r).await;
        assert!(v["error"].is_string(), "{m} {p}: {v}");
    }
}
