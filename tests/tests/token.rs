//! The token endpoint, login page, refresh and revocation (PAT-4, G-11, G-E6, G-E7, G-E8, G-E9,
//! RFC 9068, RFC 7009) and the interoperability rules of issue 3.

use serde_json::Value;
use uma_integration_tests::*;

#[tokio::test]
async fn pat_4_client_credentials_issues_rfc9068_pat_with_g_11_headers() {
    let s = TestServer::start().await;
    let r = s
        .token_basic(
            RS1.0,
            RS1.1,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "uma_protection"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let (_, v) = status_json(r).await;
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    assert_eq!(v["scope"], "uma_protection");
    assert!(v.get("refresh_token").is_none());
    let (h, c) = jwt_parts(v["access_token"].as_str().unwrap());
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "ES256");
    assert!(h["kid"].is_string());
    assert_eq!(c["iss"].as_str().unwrap().as_bytes(), s.issuer.as_bytes());
    for f in ["sub", "aud", "client_id", "jti", "scope"] {
        assert!(c[f].is_string(), "{f}");
    }
    for f in ["iat", "exp"] {
        assert!(c[f].is_u64(), "{f}");
    }
    assert_eq!(c["sub"], "rs1");
    assert_eq!(c["client_id"], "rs1");
}

#[tokio::test]
async fn pat_4_default_scope_is_uma_protection_and_client_scopes_are_grantable() {
    let s = TestServer::start().await;
    let (_, v) = status_json(
        s.token_basic(RS1.0, RS1.1, &[("grant_type", "client_credentials")])
            .await,
    )
    .await;
    assert_eq!(v["scope"], "uma_protection");
    let (st, v) = status_json(
        s.token_basic(
            C1.0,
            C1.1,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["scope"], "read");
    let (st, v) = status_json(
        s.token_basic(
            RS1.0,
            RS1.1,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"], "invalid_scope");
}

#[tokio::test]
async fn g_e6_wrong_secret_with_basic_is_401_with_basic_challenge() {
    let s = TestServer::start().await;
    let r = s
        .token_basic(
            RS1.0,
            "wrong-secret-0123456789",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        www_authenticate(&r).starts_with("Basic"),
        "{}",
        www_authenticate(&r)
    );
    let (_, v) = status_json(r).await;
    assert_eq!(v["error"], "invalid_client");
    // Unknown client: same answer, no hint.
    let r = s
        .token_basic(
            "nobody",
            "wrong-secret-0123456789",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status(), 401);
    let (_, w) = status_json(r).await;
    assert_eq!(v, w);
}

#[tokio::test]
async fn g_e6_wrong_secret_with_client_secret_post_is_invalid_client() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", RS1.0),
            ("client_secret", "wrong-secret-0123456789"),
        ])
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert!(st == 400 || st == 401);
    assert_eq!(v["error"], "invalid_client");
    // The right secret by client_secret_post works.
    let r = s
        .http
        .post(s.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", RS1.0),
            ("client_secret", RS1.1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn g_e7_missing_repeated_and_two_method_requests_are_invalid_request() {
    let s = TestServer::start().await;
    // Missing grant_type.
    let (st, v) = status_json(
        s.token_basic(RS1.0, RS1.1, &[("scope", "uma_protection")])
            .await,
    )
    .await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Repeated parameter.
    let (st, v) = status_json(
        s.token_basic(
            RS1.0,
            RS1.1,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Basic plus client_secret in the body: two methods.
    let (st, v) = status_json(
        s.token_basic(
            RS1.0,
            RS1.1,
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", RS1.1),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn g_e9_unknown_grant_type_and_g_e8_unauthorized_client() {
    let s = TestServer::start().await;
    for g in [
        "urn:ietf:params:oauth:grant-type:uma-ticketX",
        "password",
        "implicit",
    ] {
        let (st, v) = status_json(s.token_basic(RS1.0, RS1.1, &[("grant_type", g)]).await).await;
        assert_eq!(st, 400, "{g}");
        assert_eq!(v["error"], "unsupported_grant_type", "{g}");
    }
    // A client registered without client_credentials.
    let r = s
        .admin(
            reqwest::Method::POST,
            "/clients",
            Some(serde_json::json!({"client_id": "only-code", "client_secret": "only-code-secret-0123",
                 "grant_types": ["authorization_code"], "redirect_uris": [RS_REDIRECT]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let (st, v) = status_json(
        s.token_basic(
            "only-code",
            "only-code-secret-0123",
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"], "unauthorized_client");
}

#[tokio::test]
async fn interop_basic_credentials_are_form_url_decoded() {
    let s = TestServer::start().await;
    let secret = "p@ss:w+rd/%&=secret";
    let r = s
        .admin(
            reqwest::Method::POST,
            "/clients",
            Some(serde_json::json!({"client_id": "odd", "client_secret": secret})),
        )
        .await;
    assert_eq!(r.status(), 201);
    // RFC 6749 §2.3.1: form-url-encode before Base64.
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let r = s
        .token_basic("odd", &encoded, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn interop_charset_parameter_empty_and_unknown_parameters() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(RS1.0, Some(RS1.1))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body("grant_type=client_credentials&scope=&foo=bar")
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200, "{v}");
    // An empty scope is treated as absent: the default scope applies.
    assert_eq!(v["scope"], "uma_protection");
}

#[tokio::test]
async fn interop_bearer_header_plus_body_credentials_is_not_two_methods() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/token"))
        .bearer_auth("some-token")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", RS1.0),
            ("client_secret", RS1.1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn authorization_code_with_pkce_gives_a_pat_for_the_owner_and_a_refresh_token() {
    let s = TestServer::start().await;
    let (pat, refresh) = s.user_pat(RS1, ALICE).await;
    let (_, c) = jwt_parts(&pat);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["client_id"], "rs1");
    assert_eq!(c["scope"], "uma_protection");
    // The PAT works at the Protection API.
    let id = s
        .create_resource(&pat, serde_json::json!({"resource_scopes": ["view"]}))
        .await;
    // Refresh rotates: the new refresh token works, the old one is spent.
    let r = s
        .token_basic(
            RS1.0,
            RS1.1,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (_, v) = status_json(r).await;
    let pat2 = v["access_token"].as_str().unwrap();
    assert_ne!(v["refresh_token"].as_str().unwrap(), refresh);
    assert_eq!(jwt_parts(pat2).1["sub"], "alice");
    let r = s
        .http
        .get(s.url(&format!("/resource_set/{id}")))
        .bearer_auth(pat2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a refreshed PAT sees the same owner's resources"
    );
    let (st, v) = status_json(
        s.token_basic(
            RS1.0,
            RS1.1,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn authorization_code_is_single_use_and_bound_to_verifier_client_and_redirect() {
    let s = TestServer::start().await;
    let verifier = "a".repeat(50);
    let token = |code: String,
                 client: (&'static str, &'static str),
                 verifier: String,
                 redirect: &'static str| {
        let s = &s;
        async move {
            status_json(
                s.token_basic(
                    client.0,
                    client.1,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", redirect),
                        ("code_verifier", &verifier),
                    ],
                )
                .await,
            )
            .await
        }
    };
    // Wrong verifier.
    let code = s.login_code(RS1.0, ALICE, &verifier).await;
    let (st, v) = token(code, RS1, "b".repeat(50), RS_REDIRECT).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Another client.
    let code = s.login_code(RS1.0, ALICE, &verifier).await;
    let (_, v) = token(code, RS2, verifier.clone(), RS_REDIRECT).await;
    assert_eq!(v["error"], "invalid_grant");
    // Other redirect URI.
    let code = s.login_code(RS1.0, ALICE, &verifier).await;
    let (_, v) = token(code, RS1, verifier.clone(), "http://127.0.0.1:9/other").await;
    assert_eq!(v["error"], "invalid_grant");
    // Reuse.
    let code = s.login_code(RS1.0, ALICE, &verifier).await;
    let (st, _) = token(code.clone(), RS1, verifier.clone(), RS_REDIRECT).await;
    assert_eq!(st, 200);
    let (_, v) = token(code, RS1, verifier.clone(), RS_REDIRECT).await;
    assert_eq!(v["error"], "invalid_grant");
}

#[tokio::test]
async fn public_client_uses_pkce_without_secret() {
    let s = TestServer::start().await;
    let verifier = "p".repeat(60);
    let code = s.login_code(PUB1, BOB, &verifier).await;
    let r = s
        .http
        .post(s.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", PUB1),
            ("code", &code),
            ("redirect_uri", RS_REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200, "{v}");
    // A public client cannot use client_credentials.
    let r = s
        .http
        .post(s.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", PUB1)])
        .send()
        .await
        .unwrap();
    let (st, _) = status_json(r).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn login_page_refuses_unregistered_redirect_and_missing_pkce() {
    let s = TestServer::start().await;
    let challenge = pkce_challenge(&"v".repeat(43));
    // Unregistered redirect URI: an error page, never a redirect (RFC 6749 §4.1.2.1).
    for redirect in [
        "https://evil.example/cb",
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:9/callback?x=1",
    ] {
        let r = s
            .authorize(&[
                ("response_type", "code"),
                ("client_id", RS1.0),
                ("redirect_uri", redirect),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .await;
        assert_eq!(r.status(), 400, "{redirect}");
        assert!(r.headers().get("location").is_none());
    }
    // Missing PKCE: redirect back with invalid_request and the state echoed.
    let r = s
        .authorize(&[
            ("response_type", "code"),
            ("client_id", RS1.0),
            ("state", "<script>"),
        ])
        .await;
    assert_eq!(r.status(), 303);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "<script>");
    assert!(!r.headers()["location"].to_str().unwrap().contains('<'));
}

#[tokio::test]
async fn s23_login_post_without_the_csrf_cookie_is_refused() {
    let s = TestServer::start().await;
    let form = s.login_page(RS1.0, &"v".repeat(43), &[]).await;
    let r = s
        .submit_login(
            &form,
            false,
            &[
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn wrong_password_shows_the_form_again_and_deny_redirects_access_denied() {
    let s = TestServer::start().await;
    let form = s
        .login_page(RS1.0, &"v".repeat(43), &[("state", "s")])
        .await;
    let r = s
        .submit_login(
            &form,
            true,
            &[
                ("username", ALICE.0),
                ("password", "wrong-password"),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let form = LoginForm::read(r).await;
    assert!(form.html.contains("Wrong username or password"));
    let r = s.submit_login(&form, true, &[("decision", "deny")]).await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with(RS_REDIRECT)
            && loc.contains("error=access_denied")
            && loc.contains("state=s"),
        "{loc}"
    );
}

#[tokio::test]
async fn rfc7009_revoked_access_and_refresh_tokens_stop_working() {
    let s = TestServer::start().await;
    let (pat, refresh) = s.user_pat(RS1, ALICE).await;
    // Another client cannot revoke it (answered 200, token keeps working).
    let r = s.revoke(RS2, &pat).await;
    assert_eq!(r.status(), 200);
    let (_, v) = status_json(s.introspect_with_pat(&pat, &pat).await).await;
    assert_eq!(v["active"], true);
    for t in [&pat, &refresh] {
        let r = s.revoke(RS1, t).await;
        assert_eq!(r.status(), 200);
    }
    let r = s
        .http
        .get(s.url("/resource_set"))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("invalid_token"));
    let (_, v) = status_json(
        s.token_basic(
            RS1.0,
            RS1.1,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(v["error"], "invalid_grant");
    // Garbage is fine too.
    let r = s.revoke(RS1, "garbage").await;
    assert_eq!(r.status(), 200);
    let _: Value = r.json().await.unwrap();
}

#[tokio::test]
async fn login_gives_up_after_repeated_wrong_passwords() {
    let s = TestServer::start().await;
    let mut form = s.login_page(RS1.0, &"v".repeat(43), &[]).await;
    let mut last = reqwest::StatusCode::OK;
    for _ in 0..5 {
        let r = s
            .submit_login(
                &form,
                true,
                &[
                    ("username", ALICE.0),
                    ("password", "guess-guess"),
                    ("decision", "allow"),
                ],
            )
            .await;
        last = r.status();
        if last != 200 {
            break;
        }
        form = LoginForm::read(r).await;
    }
    assert_eq!(last, 403);
}

#[tokio::test]
async fn s_14_error_responses_are_not_cached_either() {
    let s = TestServer::start().await;
    let r = s
        .token_basic(
            RS1.0,
            "wrong-secret-0123456789",
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
}

async fn resource_list_status(s: &TestServer, pat: &str) -> u16 {
    s.http
        .get(s.url("/resource_set"))
        .bearer_auth(pat)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn rfc6749_4_1_2_a_replayed_code_revokes_the_tokens_issued_from_it() {
    let s = TestServer::start().await;
    let verifier = "r".repeat(43);
    let code = s.login_code(RS1.0, ALICE, &verifier).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", RS_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let (st, v) = status_json(s.token_basic(RS1.0, RS1.1, &form).await).await;
    assert_eq!(st, 200);
    let pat = v["access_token"].as_str().unwrap().to_owned();
    let refresh = v["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(resource_list_status(&s, &pat).await, 200);
    let (st, v) = status_json(s.token_basic(RS1.0, RS1.1, &form).await).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(resource_list_status(&s, &pat).await, 401);
    let (_, v) = status_json(
        s.token_basic(
            RS1.0,
            RS1.1,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await,
    )
    .await;
    assert_eq!(v["error"], "invalid_grant");
}

#[tokio::test]
async fn a_replayed_refresh_token_revokes_its_whole_grant() {
    let s = TestServer::start().await;
    let (_pat, refresh1) = s.user_pat(RS1, ALICE).await;
    let refresh = |t: String| {
        let s = &s;
        async move {
            status_json(
                s.token_basic(
                    RS1.0,
                    RS1.1,
                    &[("grant_type", "refresh_token"), ("refresh_token", &t)],
                )
                .await,
            )
            .await
        }
    };
    let (st, v) = refresh(refresh1.clone()).await;
    assert_eq!(st, 200);
    let pat2 = v["access_token"].as_str().unwrap().to_owned();
    let refresh2 = v["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(resource_list_status(&s, &pat2).await, 200);
    // The rotated-out token comes back: someone copied it.
    let (st, v) = refresh(refresh1).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(resource_list_status(&s, &pat2).await, 401);
    let (_, v) = refresh(refresh2).await;
    assert_eq!(v["error"], "invalid_grant");
    // Other grants of the same owner are unaffected.
    let (pat3, _) = s.user_pat(RS1, ALICE).await;
    assert_eq!(resource_list_status(&s, &pat3).await, 200);
}

#[tokio::test]
async fn rfc7009_2_1_revoking_a_refresh_token_revokes_the_access_tokens_of_its_grant() {
    let s = TestServer::start().await;
    let (pat, refresh) = s.user_pat(RS1, ALICE).await;
    let r = s
        .http
        .post(s.url("/revoke"))
        .basic_auth(RS1.0, Some(RS1.1))
        .form(&[
            ("token", refresh.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(resource_list_status(&s, &pat).await, 401);
}
