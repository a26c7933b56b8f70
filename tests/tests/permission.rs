//! PE-*: the permission endpoint.

use reqwest::Method;
use serde_json::json;
use uma_integration_tests::*;

async fn setup(s: &TestServer) -> (String, String, String) {
    let pat = s.client_token(RS1, None).await;
    let album = s
        .create_resource(
            &pat,
            json!({"resource_scopes": ["view", "edit", "download"], "name": "album"}),
        )
        .await;
    let photo = s
        .create_resource(
            &pat,
            json!({"resource_scopes": ["view", "print"], "name": "photo1"}),
        )
        .await;
    (pat, album, photo)
}

fn ticket(v: &serde_json::Value) -> String {
    v["ticket"].as_str().expect("ticket string").to_owned()
}

#[tokio::test]
async fn pe_1_pe_4_single_object_gives_201_and_one_ticket() {
    let s = TestServer::start().await;
    let (pat, album, _) = setup(&s).await;
    let r = s
        .permission(
            &pat,
            json!({"resource_id": album, "resource_scopes": ["view"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let (_, v) = status_json(r).await;
    assert!(!ticket(&v).is_empty());
    assert_eq!(v.as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn pe_4_array_of_three_gives_exactly_one_ticket() {
    let s = TestServer::start().await;
    let (pat, album, photo) = setup(&s).await;
    let r = s
        .permission(
            &pat,
            json!([
                {"resource_id": album, "resource_scopes": ["view"]},
                {"resource_id": photo, "resource_scopes": ["print"]},
                {"resource_id": album, "resource_scopes": ["edit"]},
            ]),
        )
        .await;
    assert_eq!(r.status(), 201);
    let (_, v) = status_json(r).await;
    assert!(v["ticket"].is_string());
}

#[tokio::test]
async fn pe_3_zero_scopes_is_allowed() {
    let s = TestServer::start().await;
    let (pat, album, _) = setup(&s).await;
    let r = s
        .permission(&pat, json!({"resource_id": album, "resource_scopes": []}))
        .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn pe_1_get_is_405() {
    let s = TestServer::start().await;
    let (pat, _, _) = setup(&s).await;
    let r = s
        .http
        .get(s.url("/permission"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn pe_10_pe_11_unknown_deleted_or_one_of_three_unknown_is_invalid_resource_id() {
    let s = TestServer::start().await;
    let (pat, album, photo) = setup(&s).await;
    let gone = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    let r = s
        .http
        .delete(s.url(&format!("/resource_set/{gone}")))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for body in [
        json!({"resource_id": "unknown", "resource_scopes": []}),
        json!({"resource_id": gone, "resource_scopes": []}),
        json!([
            {"resource_id": album, "resource_scopes": ["view"]},
            {"resource_id": "unknown", "resource_scopes": []},
            {"resource_id": photo, "resource_scopes": ["view"]},
        ]),
    ] {
        let (st, v) = status_json(s.permission(&pat, body.clone()).await).await;
        assert_eq!(st, 400, "{body}");
        assert_eq!(v["error"], "invalid_resource_id", "{body}");
        assert!(v.get("ticket").is_none());
    }
}

#[tokio::test]
async fn pe_12_unregistered_foreign_or_removed_scope_is_invalid_scope() {
    let s = TestServer::start().await;
    let (pat, album, photo) = setup(&s).await;
    // Never registered.
    let (st, v) = status_json(
        s.permission(
            &pat,
            json!({"resource_id": album, "resource_scopes": ["fly"]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // Registered on another resource only.
    let (_, v) = status_json(
        s.permission(
            &pat,
            json!({"resource_id": album, "resource_scopes": ["print"]}),
        )
        .await,
    )
    .await;
    assert_eq!(v["error"], "invalid_scope");
    // Removed by a PUT.
    let r = s
        .http
        .put(s.url(&format!("/resource_set/{photo}")))
        .bearer_auth(&pat)
        .json(&json!({"resource_scopes": ["view"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, v) = status_json(
        s.permission(
            &pat,
            json!({"resource_id": photo, "resource_scopes": ["print"]}),
        )
        .await,
    )
    .await;
    assert_eq!(v["error"], "invalid_scope");
}

#[tokio::test]
async fn pe_13_malformed_requests_are_400() {
    let s = TestServer::start().await;
    let (pat, album, _) = setup(&s).await;
    for body in [
        json!({"resource_scopes": []}),
        json!({"resource_id": album}),
        json!({"resource_id": album, "resource_scopes": "view"}),
        json!([]),
        json!("x"),
        json!({"resource_id": 7, "resource_scopes": []}),
    ] {
        let (st, v) = status_json(s.permission(&pat, body.clone()).await).await;
        assert_eq!(st, 400, "{body}");
        assert_eq!(v["error"], "invalid_request", "{body}");
    }
    let r = s
        .http
        .post(s.url("/permission"))
        .bearer_auth(&pat)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn pe_22_t_1_tickets_are_distinct_and_long() {
    let s = TestServer::start().await;
    let (pat, album, _) = setup(&s).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        let (st, v) = status_json(
            s.permission(
                &pat,
                json!({"resource_id": album, "resource_scopes": ["view"]}),
            )
            .await,
        )
        .await;
        assert_eq!(st, 201);
        let t = ticket(&v);
        // base64url, at least 43 characters: a stored ticket is 32 random bytes; a sealed one
        // (uma::ticket) is longer, its 128-bit random id and an AES-GCM tag under a server key.
        assert!(t.len() >= 43, "{t}");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(seen.insert(t));
    }
}

#[tokio::test]
async fn pe_14_errors_are_json_objects_with_error() {
    let s = TestServer::start().await;
    let (pat, _, _) = setup(&s).await;
    let r = s
        .permission(&pat, json!({"resource_id": "nope", "resource_scopes": []}))
        .await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let (_, v) = status_json(r).await;
    assert!(v["error"].is_string());
    assert!(v["error_description"].is_string());
    let _ = Method::GET;
}
