//! Exactly-once outcomes under concurrency, over real HTTP: one approval decided once when the
//! owner approves and denies at the same time, module deletion racing policy creation and
//! binding, and key rotation racing token issue and verification. (Concurrent ticket redemption
//! is `t_10_sixty_four_concurrent_redemptions_yield_one_rpt` in grant.rs and the store's s19.)

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uma_integration_tests::*;

const UMA: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";

async fn ticket(s: &TestServer, pat: &str, rid: &str) -> String {
    let (st, v) = status_json(
        s.permission(
            pat,
            json!({"resource_id": rid, "resource_scopes": ["view"]}),
        )
        .await,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["ticket"].as_str().unwrap().to_owned()
}

async fn grant(s: &TestServer, ticket: &str) -> (StatusCode, Value) {
    status_json(
        s.token_basic(C1.0, C1.1, &[("grant_type", UMA), ("ticket", ticket)])
            .await,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_approval_and_denial_of_one_request_decide_it_once() {
    let s = Arc::new(TestServer::start().await);
    let owner = s.owner_token(ALICE).await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let rid = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    let (st, p) = call(
        &s,
        &owner,
        Method::POST,
        "/owner/policies",
        Some(
            json!({"name": "ask me", "module": {"library": "builtin", "name": "owner-approval"},
            "config": {"message": "may I?"}}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let (st, _) = call(
        &s,
        &owner,
        Method::PUT,
        &format!("/owner/resources/rs1/{rid}/policy"),
        Some(json!({"bindings": [{"policy": p["id"]}]})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);

    let mut winners = HashSet::new();
    for round in 0..6 {
        let t = ticket(&s, &pat, &rid).await;
        let (st, e) = grant(&s, &t).await;
        assert_eq!(e["error"], "request_submitted", "{st} {e}");
        let polling = e["ticket"].as_str().unwrap().to_owned();
        let (_, approvals) = call(&s, &owner, Method::GET, "/owner/approvals", None).await;
        let id = approvals
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["status"] == "pending")
            .expect("one pending request")["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // 16 decisions at once, approve and deny interleaved.
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (s, owner, id) = (s.clone(), owner.clone(), id.clone());
            let decision = if (i + round) % 2 == 0 {
                "approve"
            } else {
                "deny"
            };
            tasks.push(tokio::spawn(async move {
                let (st, v) = call(
                    &s,
                    &owner,
                    Method::POST,
                    &format!("/owner/approvals/{id}"),
                    Some(json!({ "decision": decision })),
                )
                .await;
                (decision, st, v)
            }));
        }
        let mut ok = Vec::new();
        for t in tasks {
            let (decision, st, v) = t.await.unwrap();
            match st {
                StatusCode::OK => ok.push((decision, v)),
                StatusCode::CONFLICT => {}
                other => panic!("unexpected {other}: {v}"),
            }
        }
        assert_eq!(ok.len(), 1, "exactly one decision wins: {ok:?}");
        let (decision, decided) = &ok[0];
        winners.insert(*decision);
        // The stored state is the winner's, and the client sees exactly that.
        let (_, shown) = call(
            &s,
            &owner,
            Method::GET,
            &format!("/owner/approvals/{id}"),
            None,
        )
        .await;
        assert_eq!(shown["status"], decided["status"], "{shown}");
        let (st, v) = grant(&s, &polling).await;
        if *decision == "approve" {
            assert_eq!(shown["status"], "approved");
            assert_eq!(st, StatusCode::OK, "{v}");
        } else {
            assert_eq!(shown["status"], "denied");
            assert_eq!(v["error"], "request_denied", "{v}");
        }
    }
    assert!(!winners.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_module_deletion_and_binding_never_leave_a_dangling_policy() {
    let s = Arc::new(TestServer::start().await);
    let owner = s.owner_token(ALICE).await;
    let (pat, _) = s.user_pat(RS1, ALICE).await;
    let rid = s
        .create_resource(&pat, json!({"resource_scopes": ["view"]}))
        .await;
    let bytes = uma_host::plugins::builtin("allow-list").unwrap().bytes;
    let mut outcomes = HashSet::new();
    for round in 0..12 {
        let name = format!("m{round}");
        let r = s
            .http
            .post(s.url(&format!("/owner/modules/{name}")))
            .bearer_auth(&owner)
            .header("content-type", "application/wasm")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);

        let deleter = {
            let (s, owner, name) = (s.clone(), owner.clone(), name.clone());
            tokio::spawn(async move {
                if round % 2 == 0 {
                    tokio::task::yield_now().await;
                }
                call(
                    &s,
                    &owner,
                    Method::DELETE,
                    &format!("/owner/modules/{name}/1"),
                    None,
                )
                .await
                .0
            })
        };
        let binder = {
            let (s, owner, name, rid) = (s.clone(), owner.clone(), name.clone(), rid.clone());
            tokio::spawn(async move {
                let (st, p) = call(
                    &s,
                    &owner,
                    Method::POST,
                    "/owner/policies",
                    Some(json!({"name": format!("p-{name}"),
                        "module": {"library": "owned", "name": name, "version": 1},
                        "config": {"client_ids": ["c1"]}})),
                )
                .await;
                if st != StatusCode::CREATED {
                    return (st, None);
                }
                let (st, b) = call(
                    &s,
                    &owner,
                    Method::PUT,
                    &format!("/owner/resources/rs1/{rid}/policy"),
                    Some(json!({"bindings": [{"policy": p["id"]}]})),
                )
                .await;
                assert_eq!(st, StatusCode::OK, "{b}");
                (
                    StatusCode::CREATED,
                    Some(p["id"].as_str().unwrap().to_owned()),
                )
            })
        };
        let deleted = deleter.await.unwrap();
        let (created, policy) = binder.await.unwrap();
        let (module_st, _) = call(
            &s,
            &owner,
            Method::GET,
            &format!("/owner/modules/{name}/1"),
            None,
        )
        .await;
        match (deleted, created) {
            // Deletion first: the policy could not be made, the module is gone.
            (StatusCode::NO_CONTENT, st) if st != StatusCode::CREATED => {
                assert!(st.is_client_error(), "{st}");
                assert_eq!(module_st, StatusCode::NOT_FOUND);
                outcomes.insert("deleted");
            }
            // Policy first: deletion refused, the module stays and the binding works.
            (StatusCode::CONFLICT, StatusCode::CREATED) => {
                assert_eq!(module_st, StatusCode::OK);
                let (st, out) = call(
                    &s,
                    &owner,
                    Method::POST,
                    &format!("/owner/resources/rs1/{rid}/dry-run"),
                    Some(json!({"client_id": "c1", "scopes": ["view"]})),
                )
                .await;
                assert_eq!(st, StatusCode::OK);
                assert_eq!(out["decision"], "permit", "{out}");
                // Unbind and delete the policy so the next round starts clean.
                let (st, _) = call(
                    &s,
                    &owner,
                    Method::DELETE,
                    &format!("/owner/resources/rs1/{rid}/policy"),
                    None,
                )
                .await;
                assert_eq!(st, StatusCode::NO_CONTENT);
                let (st, _) = call(
                    &s,
                    &owner,
                    Method::DELETE,
                    &format!("/owner/policies/{}", policy.unwrap()),
                    None,
                )
                .await;
                assert_eq!(st, StatusCode::NO_CONTENT);
                outcomes.insert("bound");
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        }
        // Never a policy whose module is gone.
        let (_, policies) = call(&s, &owner, Method::GET, "/owner/policies", None).await;
        for p in policies.as_array().unwrap() {
            if let Some(m) = p["module"]["name"].as_str() {
                let v = p["module"]["version"].as_u64().unwrap_or(1);
                let (st, _) = call(
                    &s,
                    &owner,
                    Method::GET,
                    &format!("/owner/modules/{m}/{v}"),
                    None,
                )
                .await;
                assert_eq!(st, StatusCode::OK, "dangling policy {p}");
            }
        }
    }
    assert!(!outcomes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_key_rotation_and_token_verification_lose_no_token() {
    let s = Arc::new(TestServer::start().await);
    let before = s.client_token(RS1, Some("uma_protection")).await;

    let rotations: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let (st, v) = status_json(s.admin(Method::POST, "/keys/rotate", None).await).await;
                assert_eq!(st, StatusCode::OK, "{v}");
                v["kid"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let users: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let before = before.clone();
            tokio::spawn(async move {
                let mut issued = Vec::new();
                for _ in 0..6 {
                    let t = s.client_token(RS1, Some("uma_protection")).await;
                    for token in [&t, &before] {
                        let (st, v) = call(&s, token, Method::GET, "/resource_set", None).await;
                        assert_eq!(st, StatusCode::OK, "a token failed mid-rotation: {v}");
                    }
                    issued.push(t);
                }
                issued
            })
        })
        .collect();
    let mut kids = HashSet::new();
    for r in rotations {
        assert!(
            kids.insert(r.await.unwrap()),
            "two rotations made the same key"
        );
    }
    let mut issued = vec![before];
    for u in users {
        issued.extend(u.await.unwrap());
    }
    // Every token issued before, during or after the storm still verifies, and its key is
    // published; exactly one key signs afterwards.
    let (_, jwks) = status_json(s.http.get(s.url("/jwks")).send().await.unwrap()).await;
    let published: HashSet<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    for t in &issued {
        let (header, _) = jwt_parts(t);
        let kid = header["kid"].as_str().unwrap();
        assert!(
            published.contains(kid),
            "kid {kid} of an issued token is not published"
        );
        let (st, v) = call(&s, t, Method::GET, "/resource_set", None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (_, keys) = status_json(s.admin(Method::GET, "/keys", None).await).await;
    let active: Vec<&Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["retired_at"].is_null())
        .collect();
    assert_eq!(active.len(), 1, "{keys}");
    let fresh = s.client_token(RS1, Some("uma_protection")).await;
    assert_eq!(jwt_parts(&fresh).0["kid"], active[0]["kid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uploads_wait_for_a_compile_slot_instead_of_failing() {
    // More uploads of a not-yet-compiled module than there are compile slots (2): each waits for
    // a slot; none is told its well-formed module is invalid.
    let s = Arc::new(TestServer::start().await);
    let owner = s.owner_token(ALICE).await;
    let bytes = std::fs::read(uma_host::plugins::fixtures::FX_STATEFUL).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (s, owner, bytes) = (s.clone(), owner.clone(), bytes.clone());
            tokio::spawn(async move {
                let r = s
                    .http
                    .post(s.url(&format!("/owner/modules/same-{i}")))
                    .bearer_auth(&owner)
                    .header("content-type", "application/wasm")
                    .body(bytes)
                    .send()
                    .await
                    .unwrap();
                status_json(r).await
            })
        })
        .collect();
    for t in tasks {
        let (st, v) = t.await.unwrap();
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
}
