//! The claims interaction endpoint walked through like a browser (Grant §3.3.2-§3.3.3): the
//! requesting party logs in, answers a claims plugin's two forms, and is sent back to the
//! client with a new ticket; plus every redirect-URI and CSRF rule (CI-*, S-7, S-8, S-17).

use reqwest::StatusCode;
use serde_json::{Value, json};
use uma_host::config::ClientConfig;
use uma_integration_tests::*;

const UMA: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";
const CC: (&str, &str) = ("cc", "cc-secret-0123456789abcd");
const CC_DONE: &str = "https://client.example/claims-done?x=1";
const CC2: (&str, &str) = ("cc2", "cc2-secret-0123456789abc");
const C3: (&str, &str) = ("c3", "c3-secret-0123456789abcd");

fn client(id: (&str, &str), redirect: &[&str], claims: &[&str]) -> ClientConfig {
    ClientConfig {
        client_id: id.0.into(),
        client_secret: Some(id.1.into()),
        redirect_uris: redirect.iter().map(|s| s.to_string()).collect(),
        claims_redirect_uris: claims.iter().map(|s| s.to_string()).collect(),
        scopes: vec![],
        grant_types: None,
        name: None,
    }
}

struct Setup {
    s: TestServer,
    pat: String,
    rid: String,
}

async fn setup() -> Setup {
    let s = TestServer::start_with(|c| {
        c.clients.push(client(CC, &[], &[CC_DONE]));
        c.clients.push(client(
            CC2,
            &[],
            &["https://a.example/cb", "https://b.example/cb"],
        ));
        c.clients
            .push(client(C3, &["https://c.example/oauth"], &[]));
    })
    .await;
    let owner = s.owner_token(ALICE).await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let rid = s
        .create_resource(&pat, json!({"name": "Scan", "resource_scopes": ["view"]}))
        .await;
    let mut ids = Vec::new();
    for (name, module, config) in [
        ("bob", "allow-list", json!({"subjects": ["bob"]})),
        (
            "purpose",
            "claim-match",
            json!({"claim": "purpose", "one_of": ["treatment"], "provenance": ["interactive"]}),
        ),
    ] {
        let r = s
            .http
            .post(s.url("/owner/policies"))
            .bearer_auth(&owner)
            .json(&json!({"name": name, "module": {"library": "builtin", "name": module}, "config": config}))
            .send()
            .await
            .unwrap();
        let (st, p) = status_json(r).await;
        assert_eq!(st, StatusCode::CREATED, "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let r = s
        .http
        .put(s.url(&format!("/owner/resources/rs1/{rid}/policy")))
        .bearer_auth(&owner)
        .json(&json!({
            "bindings": [{"policy": ids[0]}, {"policy": ids[1]}],
            "claims": {"module": {"library": "builtin", "name": "terms-purpose"},
                       "config": {"terms": "For treatment only.", "purposes": ["treatment", "research"]}}
        }))
        .send()
        .await
        .unwrap();
    let (st, b) = status_json(r).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    Setup { s, pat, rid }
}

async fn ticket(x: &Setup) -> String {
    let r =
        x.s.permission(
            &x.pat,
            json!({"resource_id": x.rid, "resource_scopes": ["view"]}),
        )
        .await;
    status_json(r).await.1["ticket"]
        .as_str()
        .unwrap()
        .to_owned()
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

fn location(r: &reqwest::Response) -> url::Url {
    url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(u: &url::Url) -> std::collections::HashMap<String, String> {
    u.query_pairs().into_owned().collect()
}

fn cookie_of(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("uma_claims_csrf="))
        .expect("csrf cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// A browser: keeps the CSRF cookie and the hidden fields, posts forms.
struct Browser<'a> {
    s: &'a TestServer,
    cookie: String,
    html: String,
}

impl Browser<'_> {
    async fn post(&mut self, fields: &[(&str, &str)]) -> reqwest::Response {
        let session = hidden_field(&self.html, "session");
        let csrf = hidden_field(&self.html, "csrf");
        let mut form = vec![("session", session.as_str()), ("csrf", csrf.as_str())];
        form.extend_from_slice(fields);

        self.s
            .http
            .post(self.s.url("/claims"))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn ci_9_ci_4_t_3_t_5_login_and_two_plugin_steps_then_back_with_a_new_ticket() {
    let x = setup().await;
    let s = &x.s;
    let t1 = ticket(&x).await;
    let (st, e) = grant(s, CC, &[("ticket", &t1)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(e["error"], "need_info");
    let t2 = e["ticket"].as_str().unwrap().to_owned();
    let redirect_user = e["redirect_user"]
        .as_str()
        .expect("redirect_user offered")
        .to_owned();
    assert_eq!(redirect_user, s.url("/claims"));

    // The client sends the requesting party to the claims endpoint.
    let page = s
        .http
        .get(&redirect_user)
        .query(&[
            ("client_id", CC.0),
            ("ticket", &t2),
            ("claims_redirect_uri", CC_DONE),
            ("state", "st-42"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY", "CI-12");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let cookie = cookie_of(&page);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in"));
    // T-3: visiting the claims endpoint spent the ticket.
    assert_eq!(
        grant(s, CC, &[("ticket", &t2)]).await.1["error"],
        "invalid_grant"
    );

    let mut b = Browser { s, cookie, html };
    let r = b
        .post(&[
            ("username", BOB.0),
            ("password", "wrong"),
            ("action", "continue"),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    b.html = r.text().await.unwrap();
    assert!(b.html.contains("Wrong username or password"));

    let r = b
        .post(&[
            ("username", BOB.0),
            ("password", BOB.1),
            ("action", "continue"),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    b.html = r.text().await.unwrap();
    assert!(
        b.html.contains("Terms of access") && b.html.contains("For treatment only."),
        "{}",
        b.html
    );
    assert!(b.html.contains("type=\"checkbox\""));

    let r = b.post(&[("accept", "true"), ("action", "continue")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    b.html = r.text().await.unwrap();
    assert!(b.html.contains("<select name=\"purpose\""), "{}", b.html);

    let r = b
        .post(&[("purpose", "treatment"), ("action", "continue")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = location(&r);
    assert!(
        loc.as_str()
            .starts_with("https://client.example/claims-done?x=1&"),
        "CI-4: {loc}"
    );
    let q = query(&loc);
    assert_eq!(q["state"], "st-42");
    let t3 = q["ticket"].clone();
    assert_ne!(t3, t2, "T-5");
    assert_eq!(q.len(), 3, "only x, ticket and state (X-1, PCT-5): {q:?}");

    // The final POST cannot be replayed for a second ticket.
    let r = b
        .post(&[("purpose", "treatment"), ("action", "continue")])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let (st, v) = grant(s, CC, &[("ticket", &t3)]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["pct"].is_string());
    let i = status_json(
        s.introspect_with_pat(&x.pat, v["access_token"].as_str().unwrap())
            .await,
    )
    .await
    .1;
    assert_eq!(i["sub"], "bob");
    assert_eq!(i["permissions"][0]["resource_id"], x.rid);
}

#[tokio::test]
async fn ci_14_claims_interaction_first_and_wrong_answer_is_refused_by_policy() {
    let x = setup().await;
    let s = &x.s;
    let t = ticket(&x).await;
    // CI-3: the single registered URI is used when the parameter is absent.
    let page = s
        .http
        .get(s.url("/claims"))
        .query(&[("client_id", CC.0), ("ticket", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = cookie_of(&page);
    let html = page.text().await.unwrap();
    let mut b = Browser { s, cookie, html };
    b.html = b
        .post(&[("username", BOB.0), ("password", BOB.1)])
        .await
        .text()
        .await
        .unwrap();
    b.html = b.post(&[("accept", "true")]).await.text().await.unwrap();
    let r = b.post(&[("purpose", "research")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let q = query(&location(&r));
    assert!(
        !q.contains_key("state"),
        "CI-9: no state when none was sent"
    );
    let (st, e) = grant(s, CC, &[("ticket", &q["ticket"])]).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("request_denied")),
        "{e}"
    );
}

#[tokio::test]
async fn ci_1_ci_3_ci_5_ci_6_ci_7_ci_10_bad_client_or_uri_never_redirects() {
    let x = setup().await;
    let s = &x.s;
    let t = ticket(&x).await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("ticket", &t)],
        vec![
            ("client_id", "nobody"),
            ("ticket", &t),
            ("claims_redirect_uri", CC_DONE),
        ],
        vec![("client_id", CC2.0), ("ticket", &t)],
        vec![
            ("client_id", C3.0),
            ("ticket", &t),
            ("claims_redirect_uri", "https://c.example/oauth"),
        ],
        vec![
            ("client_id", PUB1),
            ("ticket", &t),
            ("claims_redirect_uri", "https://evil.example/"),
        ],
        vec![
            ("client_id", CC.0),
            ("ticket", &t),
            (
                "claims_redirect_uri",
                "https://client.example/claims-done?x=1/",
            ),
        ],
        vec![
            ("client_id", CC.0),
            ("ticket", &t),
            (
                "claims_redirect_uri",
                "https://CLIENT.example/claims-done?x=1",
            ),
        ],
        vec![
            ("client_id", CC.0),
            ("ticket", &t),
            ("claims_redirect_uri", "https://client.example/claims-done"),
        ],
        vec![
            ("client_id", CC.0),
            ("ticket", &t),
            (
                "claims_redirect_uri",
                "https://client.example/claims-done?x=1#f",
            ),
        ],
    ];
    for q in cases {
        let r = s.http.get(s.url("/claims")).query(&q).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q:?}");
        assert!(r.headers().get("location").is_none());
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("http-equiv") && !body.contains("<script"),
            "{body}"
        );
    }
    // None of these spent the ticket: it still works at the token endpoint... once.
    let (st, _) = grant(s, CC, &[("ticket", &t)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ci_11_s_17_unknown_ticket_redirects_with_error_and_escaped_state() {
    let x = setup().await;
    let s = &x.s;
    let r = s
        .http
        .get(s.url("/claims"))
        .query(&[
            ("client_id", CC.0),
            ("ticket", "nope"),
            ("state", "<script>alert(1)</script>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let raw = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(!raw.contains('<'), "state is URL-encoded: {raw}");
    let q = query(&location(&r));
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "<script>alert(1)</script>");
}

#[tokio::test]
async fn ci_12_s23_posts_need_the_csrf_cookie_and_cancel_is_access_denied() {
    let x = setup().await;
    let s = &x.s;
    let t = ticket(&x).await;
    let page = s
        .http
        .get(s.url("/claims"))
        .query(&[("client_id", CC.0), ("ticket", &t), ("state", "s1")])
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&page);
    let html = page.text().await.unwrap();
    // Without the cookie (a cross-site form post): refused.
    let forged = Browser {
        s,
        cookie: "uma_claims_csrf=forged".into(),
        html: html.clone(),
    }
    .post(&[("username", BOB.0), ("password", BOB.1)])
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let mut b = Browser { s, cookie, html };
    let r = b.post(&[("action", "cancel")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let q = query(&location(&r));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "s1");
}
