//! RR-*: resource registration.

use reqwest::Method;
use serde_json::{Value, json};
use uma_integration_tests::*;

#[tokio::test]
async fn rr_10_create_returns_201_location_and_id() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let r = s
        .http
        .post(s.url("/resource_set"))
        .bearer_auth(&pat)
        .json(&json!({"resource_scopes": ["view", "http://ex.com/scopes/print"], "name": "photo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let (_, v) = status_json(r).await;
    let id = v["_id"].as_str().unwrap();
    assert!(!id.is_empty());
    assert!(loc.ends_with(id), "{loc}");
    // The Location URL is readable.
    let r = s.http.get(&loc).bearer_auth(&pat).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rr_3_to_rr_7_rr_9_rr_11_members_round_trip_through_read() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let desc = json!({
        "resource_scopes": ["view", "http://unresolvable.invalid/s"],
        "description": "Holiday photos",
        "description#fr": "Photos de vacances",
        "icon_uri": "http://www.example.com/icons/sharesocial.png",
        "name": "Photo Album",
        "name#ja-Jpan-JP": "写真アルバム",
        "type": "http://www.example.com/rsrcs/photoalbum",
    });
    let id = s.create_resource(&pat, desc.clone()).await;
    let (st, v) = s
        .pat_call(Method::GET, &format!("/resource_set/{id}"), &pat, None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["_id"], id.as_str());
    for (k, val) in desc.as_object().unwrap() {
        assert_eq!(&v[k], val, "{k}");
    }
}

#[tokio::test]
async fn rr_8_unknown_members_are_ignored() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let (st, v) = s
        .pat_call(
            Method::POST,
            "/resource_set",
            &pat,
            Some(json!({"resource_scopes": ["view"], "x_ext": 1, "owner": "bob"})),
        )
        .await;
    assert_eq!(st, 201);
    let id = v["_id"].as_str().unwrap();
    let (_, v) = s
        .pat_call(Method::GET, &format!("/resource_set/{id}"), &pat, None)
        .await;
    assert!(v.get("x_ext").is_none());
}

#[tokio::test]
async fn rr_12_update_is_a_full_replacement() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let id = s
        .create_resource(
            &pat,
            json!({"resource_scopes": ["view", "edit"], "description": "d", "name": "n"}),
        )
        .await;
    let (st, v) = s
        .pat_call(
            Method::PUT,
            &format!("/resource_set/{id}"),
            &pat,
            Some(json!({"resource_scopes": ["print"], "name": "n2"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["_id"], id.as_str());
    let (_, v) = s
        .pat_call(Method::GET, &format!("/resource_set/{id}"), &pat, None)
        .await;
    assert!(v.get("description").is_none());
    assert_eq!(v["resource_scopes"], json!(["print"]));
    assert_eq!(v["name"], "n2");
    // RR-22: a PUT without resource_scopes is 400.
    let (st, v) = s
        .pat_call(
            Method::PUT,
            &format!("/resource_set/{id}"),
            &pat,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn rr_13_rr_14_delete_then_gone_from_read_list_and_permission() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let a = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    let b = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    let (st, v) = s.pat_call(Method::GET, "/resource_set", &pat, None).await;
    assert_eq!(st, 200);
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()) && ids.len() == 2);
    let r = s
        .http
        .delete(s.url(&format!("/resource_set/{a}")))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 204);
    let (st, v) = s
        .pat_call(Method::GET, &format!("/resource_set/{a}"), &pat, None)
        .await;
    assert_eq!((st.as_u16(), v["error"].as_str()), (404, Some("not_found")));
    let (st, _) = s
        .pat_call(Method::DELETE, &format!("/resource_set/{a}"), &pat, None)
        .await;
    assert_eq!(st, 404);
    let (_, v) = s.pat_call(Method::GET, "/resource_set", &pat, None).await;
    assert_eq!(v, json!([b]));
    let (st, v) = status_json(
        s.permission(&pat, json!({"resource_id": a, "resource_scopes": []}))
            .await,
    )
    .await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_resource_id"))
    );
}

#[tokio::test]
async fn rr_16_id_in_create_read_update_bodies() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let (_, c) = s
        .pat_call(
            Method::POST,
            "/resource_set",
            &pat,
            Some(json!({"resource_scopes": []})),
        )
        .await;
    let id = c["_id"].as_str().unwrap();
    let (_, r) = s
        .pat_call(Method::GET, &format!("/resource_set/{id}"), &pat, None)
        .await;
    let (_, u) = s
        .pat_call(
            Method::PUT,
            &format!("/resource_set/{id}"),
            &pat,
            Some(json!({"resource_scopes": []})),
        )
        .await;
    assert_eq!(r["_id"], id);
    assert_eq!(u["_id"], id);
}

#[tokio::test]
async fn rr_20_unknown_ids_are_404_not_found() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    for m in [Method::GET, Method::PUT, Method::DELETE] {
        let body = (m == Method::PUT).then(|| json!({"resource_scopes": []}));
        let (st, v) = s
            .pat_call(m.clone(), "/resource_set/does-not-exist", &pat, body)
            .await;
        assert_eq!(st, 404, "{m}");
        assert_eq!(v["error"], "not_found");
    }
    // A PUT never creates a resource under a caller-chosen id.
    let (st, _) = s
        .pat_call(Method::GET, "/resource_set/does-not-exist", &pat, None)
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn rr_21_unsupported_methods_are_405_with_allow() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let id = s
        .create_resource(&pat, json!({"resource_scopes": []}))
        .await;
    for (m, p) in [
        (Method::PATCH, format!("/resource_set/{id}")),
        (Method::POST, format!("/resource_set/{id}")),
        (Method::DELETE, "/resource_set".to_string()),
        (Method::PUT, "/resource_set".to_string()),
        (Method::DELETE, "/resource_set/".to_string()),
    ] {
        let r = s
            .http
            .request(m.clone(), s.url(&p))
            .bearer_auth(&pat)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{m} {p}");
        assert!(r.headers().contains_key("allow"), "{m} {p}");
        let (_, v) = status_json(r).await;
        assert_eq!(v["error"], "unsupported_method_type");
    }
}

#[tokio::test]
async fn rr_22_bad_requests_are_400_invalid_request() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let post_raw = |ct: &'static str, body: &'static str| {
        let s = &s;
        let pat = pat.clone();
        async move {
            status_json(
                s.http
                    .post(s.url("/resource_set"))
                    .bearer_auth(pat)
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let cases = [
        ("application/json", r#"{"name":"x"}"#),
        ("application/json", r#"{"resource_scopes":"view"}"#),
        ("application/json", r#"{"resource_scopes":["view",1]}"#),
        ("application/json", r#"{"resource_scopes":[],"name":5}"#),
        (
            "application/json",
            r#"{"resource_scopes":[],"icon_uri":"not a uri"}"#,
        ),
        ("application/json", r#"{"resource_scopes":["a b"]}"#),
        ("application/json", r#"{"resource_scopes":["v","v"]}"#),
        (
            "application/json",
            r#"{"resource_scopes":[], "name#fr": 3}"#,
        ),
        ("application/json", r#"{"resource_scopes":[]"#),
        ("application/json", r#"[]"#),
        (
            "application/json",
            r#"{"resource_scopes":[],"resource_scopes":[]}"#,
        ),
        ("text/plain", r#"{"resource_scopes":[]}"#),
        ("application/x-www-form-urlencoded", "resource_scopes=view"),
    ];
    for (ct, body) in cases {
        let (st, v) = post_raw(ct, body).await;
        assert_eq!(st, 400, "{ct} {body}");
        assert_eq!(v["error"], "invalid_request", "{ct} {body}");
        assert!(v["error_description"].is_string(), "{ct} {body}");
    }
    // A missing Content-Type.
    let r = s
        .http
        .post(s.url("/resource_set"))
        .bearer_auth(&pat)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn rr_list_supports_paging_and_filters() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let mut ids = Vec::new();
    for (name, ty, scopes) in [
        ("album-2024", "album", vec!["view"]),
        ("album-2025", "album", vec!["view", "edit"]),
        ("photo-1", "photo", vec!["print"]),
    ] {
        ids.push(
            s.create_resource(
                &pat,
                json!({"resource_scopes": scopes, "name": name, "type": ty}),
            )
            .await,
        );
    }
    let list = |q: &'static str| {
        let s = &s;
        let pat = pat.clone();
        async move {
            s.pat_call(Method::GET, &format!("/resource_set?{q}"), &pat, None)
                .await
        }
    };
    let (_, v) = list("name=album-2024").await;
    assert_eq!(v, json!([ids[0]]));
    let (_, v) = list("name=album&exactName=false").await;
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (_, v) = list("type=photo").await;
    assert_eq!(v, json!([ids[2]]));
    let (_, v) = list("scope=edit").await;
    assert_eq!(v, json!([ids[1]]));
    let (_, all) = list("").await;
    let (_, v) = list("first=1&max=1").await;
    assert_eq!(v, json!([all[1]]));
    let (st, v) = list("max=abc").await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn rr_1_five_operations_at_the_advertised_url_with_and_without_slash() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    let (_, doc) = status_json(
        s.http
            .get(s.url("/.well-known/uma2-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let rreg = doc["resource_registration_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    for base in [rreg.clone(), format!("{rreg}/")] {
        let r = s
            .http
            .post(&base)
            .bearer_auth(&pat)
            .json(&json!({"resource_scopes": ["view"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{base}");
        let id = r.json::<Value>().await.unwrap()["_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let list: Value = s
            .http
            .get(&base)
            .bearer_auth(&pat)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(list.as_array().unwrap().contains(&json!(id)), "{base}");
        let item = format!("{}/{id}", base.trim_end_matches('/'));
        for u in [item.clone(), format!("{item}/")] {
            let r = s.http.get(&u).bearer_auth(&pat).send().await.unwrap();
            assert_eq!(r.status(), 200, "{u}");
            let r = s
                .http
                .put(&u)
                .bearer_auth(&pat)
                .json(&json!({"resource_scopes": ["edit"]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{u}");
        }
        let r = s
            .http
            .delete(format!("{item}/"))
            .bearer_auth(&pat)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{item}");
    }
    let pe = doc["permission_endpoint"].as_str().unwrap().to_owned();
    let r = s
        .create_resource(&pat, json!({"resource_scopes": []}))
        .await;
    for u in [pe.clone(), format!("{pe}/")] {
        let resp = s
            .http
            .post(&u)
            .bearer_auth(&pat)
            .json(&json!({"resource_id": r, "resource_scopes": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{u}");
    }
}
