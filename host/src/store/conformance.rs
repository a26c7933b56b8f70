//! The behaviour every [`Store`] backend must show, as reusable checks: the sled backend runs
//! them in its unit tests, and a new backend (PostgreSQL) should call each of them on a fresh,
//! empty store from its own `#[cfg(test)]` module. They panic on a violation.

use std::sync::Arc;

use super::*;

/// A ticket for alice's resource `r1` at `rs1`, expiring at `exp`.
pub fn ticket(exp: u64) -> Ticket {
    Ticket {
        owner: Owner::User("alice".into()),
        resource_server: "rs1".into(),
        permissions: vec![Permission {
            resource_id: "r1".into(),
            resource_scopes: vec!["view".into()],
        }],
        iat: unix_now(),
        exp,
        client_id: None,
        claims: Vec::new(),
        approval: None,
    }
}

fn scope(owner: Owner, rs: &str) -> ResourceScope {
    ResourceScope {
        owner,
        resource_server: rs.into(),
    }
}

fn description(scopes: &[&str]) -> ResourceDescription {
    ResourceDescription {
        resource_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        description: None,
        icon_uri: None,
        name: None,
        resource_type: None,
        localized: Default::default(),
    }
}

/// S19: of many concurrent redemptions of one ticket exactly one succeeds; a rotated
/// successor is an independent single-use ticket.
pub async fn tickets_are_single_use_under_concurrency(store: Arc<dyn Store>) {
    store
        .put_ticket("t1", &ticket(unix_now() + 60))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.take_ticket("t1").await.unwrap().is_some() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one redemption wins");
    store
        .put_ticket("t2", &ticket(unix_now() + 60))
        .await
        .unwrap();
    assert!(store.take_ticket("t1").await.unwrap().is_none());
    let t2 = store.take_ticket("t2").await.unwrap().unwrap();
    assert_eq!(t2.permissions[0].resource_id, "r1");
    assert!(store.take_ticket("t2").await.unwrap().is_none());
}

/// S19 for sealed tickets: of many concurrent spends of one id exactly one succeeds, a spent id
/// stays spent, other ids are independent, and pruning forgets an id once its `exp` has come.
pub async fn sealed_tickets_are_spent_once(store: Arc<dyn Store>) {
    let exp = unix_now() + 60;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.spend_ticket("id1", exp).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one spend wins");
    assert!(!store.spend_ticket("id1", exp).await.unwrap());
    assert!(store.spend_ticket("id2", exp).await.unwrap());
    // Pruned at its expiry: by then the ticket's own `exp` refuses it.
    let now = unix_now();
    store.spend_ticket("old", now).await.unwrap();
    assert!(store.prune_expired(now).await.unwrap() >= 1);
    assert!(store.spend_ticket("old", now + 60).await.unwrap());
    assert!(
        !store.spend_ticket("id1", exp).await.unwrap(),
        "not yet expired"
    );
}

/// T-4: objects whose `exp` has come are never handed out, and pruning removes them.
pub async fn expired_objects_are_never_returned(store: &dyn Store) {
    let now = unix_now();
    store.put_ticket("old", &ticket(now)).await.unwrap();
    assert!(store.take_ticket("old").await.unwrap().is_none());
    let code = AuthCode {
        client_id: "c".into(),
        redirect_uri: None,
        code_challenge: "x".into(),
        username: "alice".into(),
        scope: vec![],
        exp: now.saturating_sub(1),
    };
    store.put_code("code", &code).await.unwrap();
    assert!(store.take_code("code").await.unwrap().is_none());
    let refresh = RefreshGrant {
        client_id: "c".into(),
        subject: Owner::User("alice".into()),
        scope: vec![],
        exp: now.saturating_sub(1),
        family: "f".into(),
    };
    store.put_refresh("r", &refresh).await.unwrap();
    assert!(store.get_refresh("r").await.unwrap().is_none());
    store
        .put_ticket("old2", &ticket(now.saturating_sub(1)))
        .await
        .unwrap();
    store.revoke_jti("j", now.saturating_sub(1)).await.unwrap();
    assert!(store.prune_expired(now).await.unwrap() >= 3);
    assert!(!store.is_revoked("j").await.unwrap());
}

/// S10: a resource is reachable only through its own (owner, resource server); a client owner
/// and a user owner with the same id are different owners; PUT never creates.
pub async fn resources_are_scoped(store: &dyn Store) {
    let r = description(&["view"]);
    let a = scope(Owner::User("alice".into()), "rs1");
    store.create_resource(&a, "id1", &r).await.unwrap();
    for other in [
        scope(Owner::User("bob".into()), "rs1"),
        scope(Owner::User("alice".into()), "rs2"),
        scope(Owner::User("alice".into()), "rs1\0x"),
        scope(Owner::Client("alice".into()), "rs1"),
    ] {
        assert!(store.get_resource(&other, "id1").await.unwrap().is_none());
        assert!(!store.replace_resource(&other, "id1", &r).await.unwrap());
        assert!(store.get_resource(&other, "id1").await.unwrap().is_none());
        assert!(!store.delete_resource(&other, "id1").await.unwrap());
        assert!(store.list_resources(&other).await.unwrap().is_empty());
    }
    assert!(!store.replace_resource(&a, "nope", &r).await.unwrap());
    assert!(store.get_resource(&a, "nope").await.unwrap().is_none());
    let updated = description(&["edit"]);
    assert!(store.replace_resource(&a, "id1", &updated).await.unwrap());
    assert_eq!(store.get_resource(&a, "id1").await.unwrap(), Some(updated));
    store.create_resource(&a, "id0", &r).await.unwrap();
    let ids: Vec<String> = store
        .list_resources(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["id0", "id1"], "listed in id order");
    assert!(store.delete_resource(&a, "id1").await.unwrap());
    assert!(!store.delete_resource(&a, "id1").await.unwrap());
}

/// Clients and users: create refuses duplicates, put overwrites; codes, logins and refresh
/// tokens are single-use; keys and server secrets persist.
pub async fn clients_users_and_single_use_grants(store: &dyn Store) {
    let client = Client {
        client_id: "c1".into(),
        secret_hash: None,
        redirect_uris: vec![],
        claims_redirect_uris: vec![],
        scopes: vec!["read".into()],
        grant_types: vec!["authorization_code".into()],
        name: None,
        created_at: 1,
    };
    assert!(store.create_client(&client).await.unwrap());
    assert!(!store.create_client(&client).await.unwrap());
    let mut changed = client.clone();
    changed.scopes = vec!["write".into()];
    store.put_client(&changed).await.unwrap();
    assert_eq!(
        store.get_client("c1").await.unwrap().unwrap().scopes,
        ["write"]
    );
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
    assert!(store.delete_client("c1").await.unwrap());
    assert!(store.get_client("c1").await.unwrap().is_none());

    let user = User {
        username: "alice".into(),
        password_hash: "h".into(),
        claims: Default::default(),
        created_at: 1,
    };
    assert!(store.create_user(&user).await.unwrap());
    assert!(!store.create_user(&user).await.unwrap());
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    assert!(store.delete_user("alice").await.unwrap());
    assert!(!store.delete_user("alice").await.unwrap());

    let exp = unix_now() + 60;
    let code = AuthCode {
        client_id: "c1".into(),
        redirect_uri: None,
        code_challenge: "x".into(),
        username: "alice".into(),
        scope: vec![],
        exp,
    };
    store.put_code("code", &code).await.unwrap();
    assert!(store.take_code("code").await.unwrap().is_some());
    assert!(store.take_code("code").await.unwrap().is_none());
    let refresh = RefreshGrant {
        client_id: "c1".into(),
        subject: Owner::User("alice".into()),
        scope: vec![],
        exp,
        family: "f".into(),
    };
    store.put_refresh("r", &refresh).await.unwrap();
    assert!(store.get_refresh("r").await.unwrap().is_some());
    assert!(store.take_refresh("r").await.unwrap().is_some());
    assert!(store.take_refresh("r").await.unwrap().is_none());
    let login = PendingLogin {
        client_id: "c1".into(),
        redirect_to: "https://c/cb".into(),
        redirect_uri_given: false,
        state: None,
        code_challenge: "x".into(),
        scope: vec![],
        csrf: "k".into(),
        exp,
        failures: 0,
    };
    store.put_login("l", &login).await.unwrap();
    assert!(store.take_login("l").await.unwrap().is_some());
    assert!(store.take_login("l").await.unwrap().is_none());

    store.put_spent("used-code", "fam1", exp).await.unwrap();
    assert_eq!(
        store.spent_family("used-code").await.unwrap().as_deref(),
        Some("fam1")
    );
    assert!(store.spent_family("other").await.unwrap().is_none());
    assert!(!store.is_family_revoked("fam1").await.unwrap());
    store.revoke_family("fam1", exp).await.unwrap();
    assert!(store.is_family_revoked("fam1").await.unwrap());

    store.revoke_jti("jti", exp).await.unwrap();
    assert!(store.is_revoked("jti").await.unwrap());
    assert!(!store.is_revoked("other").await.unwrap());

    let key = KeyRecord {
        kid: "k1".into(),
        pkcs8: "AAAA".into(),
        created_at: 1,
        retired_at: None,
    };
    store.put_key(&key).await.unwrap();
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
    store.delete_key("k1").await.unwrap();
    assert!(store.list_keys().await.unwrap().is_empty());
    let a = store.server_secret("s").await.unwrap();
    assert_eq!(a, store.server_secret("s").await.unwrap());
    assert_ne!(a, store.server_secret("other").await.unwrap());
}

pub(crate) fn audit_entry(resource_id: &str) -> policy::AuditEntry {
    policy::AuditEntry {
        seq: 0,
        at: unix_now(),
        resource_server: "rs1".into(),
        resource_id: resource_id.into(),
        client_id: "c1".into(),
        requesting_party: None,
        requested_scopes: vec!["view".into()],
        granted_scopes: vec![],
        outcome: "deny".into(),
        policies: vec![],
    }
}

/// The audit keeps exactly the newest `keep` entries per owner, also when appends race, and
/// one owner's appends never evict another's entries.
pub async fn audit_retention_is_exact_per_owner(store: Arc<dyn Store>) {
    let alice = Owner::User("alice".into());
    let bob = Owner::User("bob".into());
    let keep = 5;
    store
        .append_audit(&bob, audit_entry("bob-1"), keep)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                store
                    .append_audit(&alice, audit_entry(&format!("r{i}")), keep)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    let all = policy::AuditQuery {
        limit: Some(500),
        ..Default::default()
    };
    let kept: Vec<u64> = store
        .query_audit(&alice, &all)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(kept, seqs[seqs.len() - keep..], "the newest {keep} remain");
    let bobs = store.query_audit(&bob, &all).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].resource_id, "bob-1");
}

/// Appending a request's entries together keeps their order, gives each its own increasing
/// `seq`, mixes correctly with single appends, and trims to `keep` like one-by-one appends.
pub async fn audit_batches_keep_order_and_retention(store: Arc<dyn Store>) {
    let alice = Owner::User("alice".into());
    let keep = 6;
    // On a fresh store: the seq returned is the one stored, even the very first one.
    let single = store
        .append_audit(&alice, audit_entry("single"), keep)
        .await
        .unwrap();
    let batch: Vec<_> = (0..4).map(|i| audit_entry(&format!("b{i}"))).collect();
    store.append_audits(&alice, batch, keep).await.unwrap();
    store.append_audits(&alice, vec![], keep).await.unwrap();
    let all = policy::AuditQuery {
        limit: Some(500),
        ..Default::default()
    };
    let entries = store.query_audit(&alice, &all).await.unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.resource_id.as_str()).collect();
    assert_eq!(ids, ["single", "b0", "b1", "b2", "b3"]);
    assert_eq!(entries[0].seq, single);
    assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));

    // A batch larger than what is kept leaves only its newest entries.
    let batch: Vec<_> = (0..10).map(|i| audit_entry(&format!("c{i}"))).collect();
    store.append_audits(&alice, batch, keep).await.unwrap();
    let entries = store.query_audit(&alice, &all).await.unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.resource_id.as_str()).collect();
    assert_eq!(ids, ["c4", "c5", "c6", "c7", "c8", "c9"]);

    // One more entry trims the front of that batch only.
    store
        .append_audit(&alice, audit_entry("d"), keep)
        .await
        .unwrap();
    let entries = store.query_audit(&alice, &all).await.unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.resource_id.as_str()).collect();
    assert_eq!(ids, ["c5", "c6", "c7", "c8", "c9", "d"]);

    // Paging: a cursor in the middle of a batch continues right after it.
    let page = |after: u64, limit: usize| policy::AuditQuery {
        after: Some(after),
        limit: Some(limit),
        ..Default::default()
    };
    let next = store
        .query_audit(&alice, &page(entries[1].seq, 2))
        .await
        .unwrap();
    let ids: Vec<&str> = next.iter().map(|e| e.resource_id.as_str()).collect();
    assert_eq!(ids, ["c7", "c8"]);
    let rest = store
        .query_audit(&alice, &page(next[1].seq, 50))
        .await
        .unwrap();
    let ids: Vec<&str> = rest.iter().map(|e| e.resource_id.as_str()).collect();
    assert_eq!(ids, ["c9", "d"]);
}
