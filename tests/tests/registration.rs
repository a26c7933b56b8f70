//! RFC 7591 dynamic client registration with UMA `claims_redirect_uris` (D-16, D-24).

use serde_json::{Value, json};
use uma_integration_tests::*;

async fn register(
    s: &TestServer,
    token: Option<&str>,
    body: Value,
) -> (reqwest::StatusCode, Value) {
    let mut r = s.http.post(s.url("/register")).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    status_json(r.send().await.unwrap()).await
}

#[tokio::test]
async fn d_16_d_24_registration_keeps_claims_redirect_uris_and_issues_working_credentials() {
    let s = TestServer::start().await;
    let (_, doc) = status_json(
        s.http
            .get(s.url("/.well-known/uma2-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doc["registration_endpoint"], s.url("/register"));
    let (st, v) = register(
        &s,
        Some(ADMIN_TOKEN),
        json!({
            "redirect_uris": ["https://c/oauth"],
            "claims_redirect_uris": ["https://c/cb"],
            "client_name": "Photo printer",
            "scope": "download print",
            "x_unknown": true,
        }),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["claims_redirect_uris"], json!(["https://c/cb"]));
    assert_eq!(v["redirect_uris"], json!(["https://c/oauth"]));
    assert_eq!(v["scope"], "download print");
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
    let id = v["client_id"].as_str().unwrap();
    let secret = v["client_secret"].as_str().unwrap();
    // The registration is kept and the credentials work.
    let (_, c) = status_json(
        s.admin(reqwest::Method::GET, &format!("/clients/{id}"), None)
            .await,
    )
    .await;
    assert_eq!(c["claims_redirect_uris"], json!(["https://c/cb"]));
    assert_eq!(c["scopes"], json!(["download", "print"]));
    let (st, _) = status_json(
        s.token_basic(
            id,
            secret,
            &[("grant_type", "client_credentials"), ("scope", "download")],
        )
        .await,
    )
    .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn registration_needs_the_initial_access_token_unless_open() {
    let s = TestServer::start().await;
    let (st, _) = register(&s, None, json!({"redirect_uris": ["https://c/cb"]})).await;
    assert_eq!(st, 401);
    let (st, _) = register(&s, Some("not-the-admin-token-0000"), json!({})).await;
    assert_eq!(st, 401);
    let open = TestServer::start_with(|c| c.open_registration = true).await;
    let (st, v) = register(
        &open,
        None,
        json!({"token_endpoint_auth_method": "none", "redirect_uris": ["https://c/cb"]}),
    )
    .await;
    assert_eq!(st, 201);
    assert!(v.get("client_secret").is_none());
    assert!(
        !v["grant_types"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials"))
    );
}

#[tokio::test]
async fn registration_is_absent_without_admin_credential_or_open_registration() {
    let s = TestServer::start_with(|c| c.admin_token = None).await;
    let (_, doc) = status_json(
        s.http
            .get(s.url("/.well-known/uma2-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(doc.get("registration_endpoint").is_none());
    let (st, _) = register(&s, None, json!({})).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn registration_errors_are_rfc7591_codes() {
    let s = TestServer::start().await;
    for (body, code) in [
        (
            json!({"redirect_uris": ["https://c/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"claims_redirect_uris": ["relative/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (json!({"redirect_uris": "https://c/cb"}), "invalid_request"),
    ] {
        let (st, v) = register(&s, Some(ADMIN_TOKEN), body.clone()).await;
        assert_eq!(st, 400, "{body}");
        assert_eq!(v["error"], code, "{body}");
    }
}
