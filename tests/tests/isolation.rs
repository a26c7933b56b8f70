//! Owner and resource-server isolation (RR-30 … RR-32, PE-20, PE-21, PAT-9, S8 … S12): a PAT
//! only ever reaches the resources of its own (owner, resource server).

use reqwest::Method;
use serde_json::json;
use uma_integration_tests::*;

struct World {
    s: TestServer,
    alice_rs1: String,
    bob_rs1: String,
    alice_rs2: String,
    bob_doc: String,
}

async fn world() -> World {
    let s = TestServer::start().await;
    let (alice_rs1, _) = s.user_pat(RS1, ALICE).await;
    let (bob_rs1, _) = s.user_pat(RS1, BOB).await;
    let (alice_rs2, _) = s.user_pat(RS2, ALICE).await;
    let bob_doc = s
        .create_resource(
            &bob_rs1,
            json!({"resource_scopes": ["view"], "name": "bobdoc", "description": "bob's"}),
        )
        .await;
    World {
        s,
        alice_rs1,
        bob_rs1,
        alice_rs2,
        bob_doc,
    }
}

async fn assert_untouched(w: &World) {
    let (st, v) =
        w.s.pat_call(
            Method::GET,
            &format!("/resource_set/{}", w.bob_doc),
            &w.bob_rs1,
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["description"], "bob's");
    assert_eq!(v["resource_scopes"], json!(["view"]));
}

#[tokio::test]
async fn rr_30_lists_hold_only_the_callers_own_resources() {
    let w = world().await;
    let mine =
        w.s.create_resource(&w.alice_rs1, json!({"resource_scopes": []}))
            .await;
    let (_, v) =
        w.s.pat_call(Method::GET, "/resource_set", &w.alice_rs1, None)
            .await;
    assert_eq!(v, json!([mine]));
    // Filters cannot widen the scope either.
    let (_, v) =
        w.s.pat_call(Method::GET, "/resource_set?name=bobdoc", &w.alice_rs1, None)
            .await;
    assert_eq!(v, json!([]));
}

#[tokio::test]
async fn rr_31_another_owners_resource_is_404_for_read_update_delete() {
    let w = world().await;
    let path = format!("/resource_set/{}", w.bob_doc);
    for (m, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"resource_scopes": ["hijack"]}))),
        (Method::DELETE, None),
    ] {
        let (st, v) = w.s.pat_call(m.clone(), &path, &w.alice_rs1, body).await;
        assert_eq!(st, 404, "{m}");
        assert_eq!(v["error"], "not_found");
    }
    assert_untouched(&w).await;
}

#[tokio::test]
async fn rr_32_same_owner_other_resource_server_cannot_read_or_change() {
    let w = world().await;
    let id =
        w.s.create_resource(&w.alice_rs1, json!({"resource_scopes": ["view"]}))
            .await;
    let path = format!("/resource_set/{id}");
    for (m, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"resource_scopes": []}))),
        (Method::DELETE, None),
    ] {
        let (st, _) = w.s.pat_call(m.clone(), &path, &w.alice_rs2, body).await;
        assert_eq!(st, 404, "{m}");
    }
    // Recorded behaviour: RS2's list does not show RS1's resources.
    let (_, v) =
        w.s.pat_call(Method::GET, "/resource_set", &w.alice_rs2, None)
            .await;
    assert_eq!(v, json!([]));
    let (st, _) = w.s.pat_call(Method::GET, &path, &w.alice_rs1, None).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn rr_31_the_resource_servers_own_pat_is_a_different_owner_than_its_users() {
    let w = world().await;
    let rs_pat = w.s.client_token(RS1, None).await;
    let (st, _) =
        w.s.pat_call(
            Method::GET,
            &format!("/resource_set/{}", w.bob_doc),
            &rs_pat,
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (_, v) =
        w.s.pat_call(Method::GET, "/resource_set", &rs_pat, None)
            .await;
    assert_eq!(v, json!([]));
}

#[tokio::test]
async fn pe_20_s8_no_ticket_for_another_owners_resource_even_in_a_mixed_array() {
    let w = world().await;
    let mine =
        w.s.create_resource(&w.alice_rs1, json!({"resource_scopes": ["view"]}))
            .await;
    for body in [
        json!({"resource_id": w.bob_doc, "resource_scopes": ["view"]}),
        // S8: the first resource is the caller's own, the second is not.
        json!([
            {"resource_id": mine, "resource_scopes": ["view"]},
            {"resource_id": w.bob_doc, "resource_scopes": ["view"]},
        ]),
    ] {
        let (st, v) = status_json(w.s.permission(&w.alice_rs1, body).await).await;
        assert_eq!(st, 400);
        assert_eq!(v["error"], "invalid_resource_id");
    }
}

#[tokio::test]
async fn pe_21_other_resource_server_of_the_same_owner_gets_invalid_resource_id() {
    let w = world().await;
    let id =
        w.s.create_resource(&w.alice_rs1, json!({"resource_scopes": ["view"]}))
            .await;
    let (st, v) = status_json(
        w.s.permission(
            &w.alice_rs2,
            json!({"resource_id": id, "resource_scopes": ["view"]}),
        )
        .await,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"], "invalid_resource_id");
}

#[tokio::test]
async fn s9_ids_in_a_body_never_override_the_callers_identity() {
    let w = world().await;
    // Owner-ish members in the body are ignored: the resource belongs to the PAT's owner.
    let id =
        w.s.create_resource(
            &w.alice_rs1,
            json!({"resource_scopes": ["view"], "owner": "bob", "resource_owner": "user:bob",
                   "client_id": "rs2", "_id": w.bob_doc}),
        )
        .await;
    assert_ne!(id, w.bob_doc);
    let (_, v) =
        w.s.pat_call(Method::GET, "/resource_set", &w.bob_rs1, None)
            .await;
    assert_eq!(v, json!([w.bob_doc]));
    let (st, _) =
        w.s.pat_call(
            Method::GET,
            &format!("/resource_set/{id}"),
            &w.alice_rs1,
            None,
        )
        .await;
    assert_eq!(st, 200);
    // An `_id` in a PUT body does not redirect the update to another resource.
    let (st, _) =
        w.s.pat_call(
            Method::PUT,
            &format!("/resource_set/{id}"),
            &w.alice_rs1,
            Some(json!({"resource_scopes": ["hijack"], "_id": w.bob_doc})),
        )
        .await;
    assert_eq!(st, 200);
    assert_untouched(&w).await;
}

#[tokio::test]
async fn rr_33_a_pat_from_another_authorization_server_is_refused() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    // Same client id and secret on both servers, different signing keys and issuers.
    let pat_from_a = a.client_token(RS1, None).await;
    let r = b
        .http
        .get(b.url("/resource_set"))
        .bearer_auth(&pat_from_a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("invalid_token"));
}
