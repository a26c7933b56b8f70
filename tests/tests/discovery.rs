//! D-*: the discovery documents and the JWKS.

use serde_json::Value;
use uma_integration_tests::{TestServer, status_json};

async fn doc(s: &TestServer) -> (reqwest::StatusCode, Value, String) {
    // D-2 / X-2: the URL is the issuer with the well-known string concatenated.
    let r = s
        .http
        .get(format!("{}/.well-known/uma2-configuration", s.issuer))
        .send()
        .await
        .unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    let (st, v) = status_json(r).await;
    (st, v, ct)
}

#[tokio::test]
async fn d_1_d_2_d_3_d_4_document_at_concatenated_url_with_identical_issuer() {
    let s = TestServer::start().await;
    let (st, v, ct) = doc(&s).await;
    assert_eq!(st, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(v.is_object());
    assert_eq!(
        v["issuer"].as_str().unwrap().as_bytes(),
        s.issuer.as_bytes()
    );
}

#[tokio::test]
async fn d_5_no_member_is_an_empty_array() {
    let s = TestServer::start().await;
    let (_, v, _) = doc(&s).await;
    for (k, m) in v.as_object().unwrap() {
        assert!(!m.as_array().is_some_and(|a| a.is_empty()), "{k} is empty");
        assert!(!m.is_null(), "{k} is null");
    }
}

#[tokio::test]
async fn d_7_get_works_and_other_methods_get_405_with_allow() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/.well-known/uma2-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("GET"));
    let (_, v) = status_json(r).await;
    assert_eq!(v["error"], "unsupported_method_type");
}

#[tokio::test]
async fn d_10_to_d_13_in_1_protection_api_endpoints_declared_as_absolute_urls() {
    let s = TestServer::start().await;
    let (_, v, _) = doc(&s).await;
    for f in [
        "permission_endpoint",
        "resource_registration_endpoint",
        "introspection_endpoint",
    ] {
        let u = url::Url::parse(v[f].as_str().unwrap()).unwrap();
        assert!(u.as_str().starts_with(&s.issuer), "{f}");
    }
    // D-12: a POST to the introspection endpoint works (with a PAT).
    let pat = s.client_token(uma_integration_tests::RS1, None).await;
    let r = s.introspect_with_pat(&pat, &pat).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn d_20_to_d_28_oauth_metadata_fields() {
    let s = TestServer::start().await;
    let (_, v, _) = doc(&s).await;
    let issuer = v["issuer"].as_str().unwrap();
    assert!(!issuer.contains('?') && !issuer.contains('#'));
    for f in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "revocation_endpoint",
    ] {
        url::Url::parse(v[f].as_str().unwrap()).unwrap();
    }
    let has = |f: &str, x: &str| v[f].as_array().unwrap().iter().any(|e| e == x);
    assert!(has("scopes_supported", "uma_protection"));
    assert!(has("response_types_supported", "code"));
    for g in ["authorization_code", "client_credentials", "refresh_token"] {
        assert!(has("grant_types_supported", g), "{g}");
    }
    for m in ["client_secret_basic", "client_secret_post"] {
        assert!(has("token_endpoint_auth_methods_supported", m));
        assert!(has("introspection_endpoint_auth_methods_supported", m));
    }
    assert!(has("code_challenge_methods_supported", "S256"));
}

#[tokio::test]
async fn d_rfc8414_document_and_trailing_slash_answer_without_redirect() {
    let s = TestServer::start().await;
    let (_, uma, _) = doc(&s).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/",
        "/.well-known/uma2-configuration/",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let (_, v) = status_json(r).await;
        assert_eq!(v, uma, "{path}");
    }
}

#[tokio::test]
async fn d_2_x_2_issuer_with_path_uses_concatenation() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), "/realms/x", |_| {}).await;
    assert!(s.issuer.ends_with("/realms/x"));
    let (st, v, _) = doc(&s).await;
    assert_eq!(st, 200);
    assert_eq!(v["issuer"], s.issuer.as_str());
    assert_eq!(v["token_endpoint"], format!("{}/token", s.issuer));
    // RFC 8414 insertion form is served too.
    let root = format!("http://{}", s.addr);
    let r = s
        .http
        .get(format!(
            "{root}/.well-known/oauth-authorization-server/realms/x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The endpoints advertised under the path work.
    let pat = s.client_token(uma_integration_tests::RS1, None).await;
    let id = s
        .create_resource(&pat, serde_json::json!({"resource_scopes": ["view"]}))
        .await;
    assert!(!id.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn d_23_jwks_keys_have_kty_kid_use_alg_and_tokens_name_their_kid() {
    let s = TestServer::start().await;
    let (_, v, _) = doc(&s).await;
    let r = s
        .http
        .get(v["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, jwks) = status_json(r).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        for f in ["kty", "kid", "use", "alg"] {
            assert!(k[f].is_string(), "{f} missing in {k}");
        }
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["use"], "sig");
    }
    let pat = s.client_token(uma_integration_tests::RS1, None).await;
    let (h, _) = uma_integration_tests::jwt_parts(&pat);
    assert!(keys.iter().any(|k| k["kid"] == h["kid"]));
}
