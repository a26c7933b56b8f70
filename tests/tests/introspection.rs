//! IN-*: token introspection (RPT-specific checks IN-6 … IN-10 need RPTs, which the UMA grant
//! issue adds).

use serde_json::json;
use uma_integration_tests::*;

#[tokio::test]
async fn in_2_in_5_in_11_in_14_in_15_active_pat_introspected_with_a_pat() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let r = s
        .http
        .post(s.url("/introspect"))
        .bearer_auth(&pat)
        .form(&[("token", pat.as_str()), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (_, v) = status_json(r).await;
    assert_eq!(v["active"], true);
    for f in ["exp", "iat"] {
        assert!(v[f].is_u64(), "{f}");
    }
    for f in ["client_id", "sub", "iss", "jti", "token_type", "scope"] {
        assert!(v[f].is_string(), "{f}");
    }
    assert!(v["aud"].is_string() || v["aud"].is_array());
    assert_eq!(v["client_id"], "rs1");
    assert_eq!(v["scope"], "uma_protection");
    assert!(v.get("permissions").is_none());
}

#[tokio::test]
async fn in_2_resource_server_client_credentials_are_accepted() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let r = s.introspect_with_client(RS1, pat.as_str()).await;
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200);
    assert_eq!(v["active"], true);
    // client_secret_post as well.
    let r = s
        .http
        .post(s.url("/introspect"))
        .form(&[
            ("token", pat.as_str()),
            ("client_id", RS1.0),
            ("client_secret", RS1.1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1["active"], true);
    // Wrong client secret: 401 invalid_client.
    let r = s
        .http
        .post(s.url("/introspect"))
        .basic_auth(RS1.0, Some("wrong-secret-0123456789"))
        .form(&[("token", pat.as_str())])
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn in_12_garbage_expired_and_revoked_tokens_are_exactly_active_false() {
    let s = TestServer::start_with(|c| c.access_token_lifetime_secs = 2).await;
    let expiring = s.client_token(RS1, None).await;
    let revoked = s.client_token(RS1, None).await;
    let r = s.revoke(RS1, &revoked).await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // Introspect with client credentials (the PATs themselves have expired).
    for t in ["garbage", expiring.as_str(), revoked.as_str()] {
        let r = s.introspect_with_client(RS1, t).await;
        let (st, v) = status_json(r).await;
        assert_eq!(st, 200);
        assert_eq!(v, json!({"active": false}));
    }
}

#[tokio::test]
async fn in_13_wrong_hint_still_finds_the_token() {
    let s = TestServer::start().await;
    let (pat, refresh) = s.user_pat(RS1, ALICE).await;
    for (t, hint) in [
        (&pat, "refresh_token"),
        (&refresh, "access_token"),
        (&pat, "nonsense"),
    ] {
        let r = s
            .http
            .post(s.url("/introspect"))
            .bearer_auth(&pat)
            .form(&[("token", t.as_str()), ("token_type_hint", hint)])
            .send()
            .await
            .unwrap();
        let (st, v) = status_json(r).await;
        assert_eq!(st, 200);
        assert_eq!(v["active"], true, "{hint}");
    }
}

#[tokio::test]
async fn in_20_tokens_of_other_owners_or_resource_servers_are_inactive() {
    let s = TestServer::start().await;
    let (alice_pat, alice_refresh) = s.user_pat(RS1, ALICE).await;
    let (bob_pat, _) = s.user_pat(RS1, BOB).await;
    let rs2_pat = s.client_token(RS2, None).await;
    // Bob's PAT (same RS) cannot see Alice's tokens; RS2 cannot see RS1's.
    for (caller, token) in [
        (&bob_pat, &alice_pat),
        (&bob_pat, &alice_refresh),
        (&rs2_pat, &alice_pat),
        (&alice_pat, &rs2_pat),
    ] {
        let (st, v) = status_json(s.introspect_with_pat(caller, token).await).await;
        assert_eq!(st, 200);
        assert_eq!(v, json!({"active": false}));
    }
    // RS2's client credentials cannot see RS1's tokens either.
    let r = s.introspect_with_client(RS2, alice_pat.as_str()).await;
    assert_eq!(status_json(r).await.1, json!({"active": false}));
}

#[tokio::test]
async fn in_2_missing_token_parameter_is_invalid_request() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let r = s
        .http
        .post(s.url("/introspect"))
        .bearer_auth(&pat)
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
}
