//! Restart: resources, clients, users and keys survive a process restart; tokens issued before
//! it still validate after it. Key rotation keeps old keys published.

use reqwest::Method;
use serde_json::json;
use uma_integration_tests::*;

#[tokio::test]
async fn restart_keeps_resources_clients_users_keys_and_token_validity() {
    let s = TestServer::start().await;
    // An admin-created client and user (not in the config file).
    let r = s
        .admin(Method::POST, "/clients", Some(json!({"client_id": "rs-live", "client_secret": "rs-live-secret-012345", "redirect_uris": [RS_REDIRECT]})))
        .await;
    assert_eq!(r.status(), 201);
    let r = s
        .admin(Method::POST, "/users", Some(json!({"username": "carol", "password": "carol-password", "claims": {"email": "c@example.com"}})))
        .await;
    assert_eq!(r.status(), 201);
    let live = ("rs-live", "rs-live-secret-012345");
    let pat = s.client_token(live, None).await;
    let (carol_pat, carol_refresh) = s.user_pat(live, ("carol", "carol-password")).await;
    let id = s
        .create_resource(&pat, json!({"resource_scopes": ["view"], "name": "kept"}))
        .await;
    let carol_res = s
        .create_resource(&carol_pat, json!({"resource_scopes": ["edit"]}))
        .await;
    let (_, jwks_before) = status_json(s.http.get(s.url("/jwks")).send().await.unwrap()).await;
    let s = s.restart().await;
    let (_, jwks_after) = status_json(s.http.get(s.url("/jwks")).send().await.unwrap()).await;
    assert_eq!(jwks_before, jwks_after, "keys survive the restart");
    let base = s.issuer.clone();
    // The PATs from before the restart still work.
    let r = s
        .http
        .get(format!("{base}/resource_set/{id}"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, v) = status_json(r).await;
    assert_eq!(v["name"], "kept");
    let r = s
        .http
        .get(format!("{base}/resource_set"))
        .bearer_auth(&carol_pat)
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1, json!([carol_res]));
    // The client secret and the user's password still work; the refresh token too.
    let r = s
        .http
        .post(format!("{base}/token"))
        .basic_auth(live.0, Some(live.1))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", carol_refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .post(format!("{base}/token"))
        .basic_auth(live.0, Some(live.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.admin(Method::GET, "/users/carol", None).await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_and_old_keys_published() {
    let s = TestServer::start().await;
    let old_pat = s.client_token(RS1, None).await;
    let (old_h, _) = jwt_parts(&old_pat);
    let r = s.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(r.status(), 200);
    let (_, v) = status_json(r).await;
    let new_kid = v["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_h["kid"].as_str().unwrap());
    let new_pat = s.client_token(RS1, None).await;
    assert_eq!(jwt_parts(&new_pat).0["kid"], new_kid.as_str());
    let (_, jwks) = status_json(s.http.get(s.url("/jwks")).send().await.unwrap()).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&new_kid.as_str()) && kids.contains(&old_h["kid"].as_str().unwrap()));
    for pat in [&old_pat, &new_pat] {
        let r = s
            .http
            .get(s.url("/resource_set"))
            .bearer_auth(pat)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn retired_keys_are_dropped_once_their_tokens_expired() {
    let dir = tempfile::tempdir().unwrap();
    // Keys stay published as long as any token they signed can live: access tokens and RPTs.
    let short = |c: &mut uma_host::Config| {
        c.access_token_lifetime_secs = 1;
        c.rpt_lifetime_secs = 1;
    };
    let s = TestServer::start_in(dir.path(), "", short).await;
    let old = s.client_token(RS1, None).await;
    let r = s.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(r.status(), 200);
    s.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let s = TestServer::start_in(dir.path(), "", short).await;
    let (_, jwks) = status_json(s.http.get(s.url("/jwks")).send().await.unwrap()).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 1);
    assert!(!kids.contains(&jwt_parts(&old).0["kid"].as_str().unwrap()));
    s.stop().await;
}
