//! The admin API: guarded by the admin credential, creates/lists/deletes clients and users.

use reqwest::Method;
use serde_json::json;
use uma_integration_tests::*;

#[tokio::test]
async fn admin_api_requires_the_admin_credential() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/admin/clients")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(s.url("/admin/clients"))
        .bearer_auth("wrong-admin-token-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A PAT is not an admin credential.
    let pat = s.client_token(RS1, None).await;
    let r = s
        .http
        .get(s.url("/admin/users"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn admin_api_is_absent_without_a_configured_credential() {
    let s = TestServer::start_with(|c| c.admin_token = None).await;
    let r = s
        .http
        .get(s.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn admin_creates_lists_and_deletes_clients_with_generated_url_safe_credentials() {
    let s = TestServer::start().await;
    let r = s
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"redirect_uris": [RS_REDIRECT], "scopes": ["read"]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (_, v) = status_json(r).await;
    let id = v["client_id"].as_str().unwrap().to_owned();
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    for x in [&id, &secret] {
        assert!(
            x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
            "{x}"
        );
    }
    assert!(secret.len() >= 43);
    assert!(v.get("secret_hash").is_none());
    // The generated credentials work.
    let _ = s.client_token((&id, &secret), None).await;
    let (_, list) = status_json(s.admin(Method::GET, "/clients", None).await).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == id.as_str())
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("client_secret").is_none() && c.get("secret_hash").is_none())
    );
    // Duplicate id: 409.
    let r = s
        .admin(Method::POST, "/clients", Some(json!({"client_id": id})))
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        s.admin(Method::DELETE, &format!("/clients/{id}"), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        s.admin(Method::GET, &format!("/clients/{id}"), None)
            .await
            .status(),
        404
    );
    let r = s
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn admin_validates_clients() {
    let s = TestServer::start().await;
    for body in [
        json!({"client_id": "has space"}),
        json!({"client_secret": "short"}),
        json!({"redirect_uris": ["https://c/cb#frag"]}),
        json!({"redirect_uris": ["/relative"]}),
        json!({"claims_redirect_uris": ["not a uri"]}),
        json!({"public": true, "client_secret": "0123456789abcdef0"}),
        json!({"public": true, "grant_types": ["client_credentials"]}),
        json!({"grant_types": ["password"]}),
        json!({"scopes": ["two words"]}),
    ] {
        let (st, v) =
            status_json(s.admin(Method::POST, "/clients", Some(body.clone())).await).await;
        assert_eq!(st, 400, "{body}");
        let uri_field = body
            .get("redirect_uris")
            .or(body.get("claims_redirect_uris"));
        let want = if uri_field.is_some() {
            "invalid_redirect_uri"
        } else {
            "invalid_request"
        };
        assert_eq!(v["error"], want, "{body}");
    }
}

#[tokio::test]
async fn admin_creates_users_whose_passwords_work_on_the_login_page() {
    let s = TestServer::start().await;
    let r = s
        .admin(Method::POST, "/users", Some(json!({"username": "dave", "password": "dave-password", "claims": {"name": "Dave"}})))
        .await;
    assert_eq!(r.status(), 201);
    let (_, v) = status_json(r).await;
    assert_eq!(v["claims"]["name"], "Dave");
    assert!(v.get("password_hash").is_none() && v.get("password").is_none());
    let (pat, _) = s.user_pat(RS1, ("dave", "dave-password")).await;
    assert_eq!(jwt_parts(&pat).1["sub"], "dave");
    let (_, list) = status_json(s.admin(Method::GET, "/users", None).await).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"dave") && names.contains(&"alice"));
    for body in [
        json!({"username": "x y", "password": "longenough"}),
        json!({"username": "eve", "password": "short"}),
    ] {
        let (st, _) = status_json(s.admin(Method::POST, "/users", Some(body)).await).await;
        assert_eq!(st, 400);
    }
    assert_eq!(
        s.admin(Method::DELETE, "/users/dave", None).await.status(),
        204
    );
    // A deleted owner's PAT stops working.
    let r = s
        .http
        .get(s.url("/resource_set"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
