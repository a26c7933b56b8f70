//! Crash safety: the real `uma-host` binary under a mixed write load (register, update and
//! delete resources, upload modules, approve requests), killed with SIGKILL at random moments,
//! restarted on the same data directory. After every restart, every acknowledged write must be
//! there and consistent, every acknowledged delete must have stayed deleted, and nothing
//! half-written may be visible: no resource, module or approval that no request created, no
//! module whose bytes are missing, no approval in a state nobody put it in.
//!
//! `crash_cycles_short` (20 cycles) runs with the suite; `crash_cycles_long` (200 cycles) is
//! `#[ignore]`d: `cargo test -p uma-host --test crash -- --ignored`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{free_port, start};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const RS: (&str, &str) = ("crash-rs", "crash-rs-secret-0123456789");
const C1: (&str, &str) = ("crash-client", "crash-client-secret-012345");
const UMA: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";
const WORKERS: usize = 3;

/// What a resource must look like after a restart.
#[derive(Debug, Clone, Default)]
struct ResourceState {
    /// Names it may have: the acknowledged one plus any sent in an update that got no answer.
    names: Vec<String>,
    /// A delete was acknowledged.
    deleted: bool,
    /// A delete was sent and got no answer.
    maybe_deleted: bool,
    /// Written to since the last verification: read back in full.
    touched: bool,
}

#[derive(Debug, Default)]
struct Ledger {
    resources: HashMap<String, ResourceState>,
    /// Names of resources whose registration got no answer: they may or may not exist.
    maybe_created: HashSet<String>,
    /// Modules acknowledged, and those whose upload got no answer.
    modules: HashSet<String>,
    maybe_modules: HashSet<String>,
    /// Approvals acknowledged as approved (id → polling ticket), and approvals whose decision
    /// got no answer.
    approved: HashMap<String, String>,
    maybe_approved: HashSet<String>,
    acked_writes: usize,
}

struct Env {
    base: String,
    http: Client,
    pat: String,
    approval_rid: String,
}

impl Env {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }
}

/// Sends a request; `None` when the server died under it (no answer: outcome unknown).
fn send(r: reqwest::blocking::RequestBuilder) -> Option<(StatusCode, Value)> {
    let resp = r.send().ok()?;
    let status = resp.status();
    let text = resp.text().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn pat(http: &Client, base: &str) -> String {
    let (st, v) = send(
        http.post(format!("{base}/token"))
            .basic_auth(RS.0, Some(RS.1))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "uma_protection"),
            ]),
    )
    .unwrap();
    assert_eq!(st, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

const MODULE: &[u8] = uma_host::plugins::BUILTINS[0].bytes;

/// One worker's load until the server dies or `stop` is set. Worker 0 also approves requests.
fn work(env: &Env, worker: usize, cycle: usize, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let mut rng = rand::rng();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let tag = format!("w{worker}-c{cycle}-{n}");
        let pick = rng.random_range(0..100);
        let alive = if pick < 30 {
            // Register.
            ledger.lock().unwrap().maybe_created.insert(tag.clone());
            let body = json!({"name": tag, "resource_scopes": ["view", "edit"], "type": "crash"});
            match send(
                env.http
                    .post(env.url("/resource_set"))
                    .bearer_auth(&env.pat)
                    .json(&body),
            ) {
                Some((StatusCode::CREATED, v)) => {
                    let mut l = ledger.lock().unwrap();
                    l.maybe_created.remove(&tag);
                    l.resources.insert(
                        v["_id"].as_str().unwrap().to_owned(),
                        ResourceState {
                            names: vec![tag.clone()],
                            touched: true,
                            ..Default::default()
                        },
                    );
                    l.acked_writes += 1;
                    true
                }
                Some((st, v)) => panic!("register: {st} {v}"),
                None => false,
            }
        } else if pick < 75 {
            // Update or delete one of this worker's live resources.
            let target = {
                let l = ledger.lock().unwrap();
                l.resources
                    .iter()
                    .filter(|(_, r)| {
                        !r.deleted
                            && !r.maybe_deleted
                            && r.names.len() == 1
                            && r.names[0].starts_with(&format!("w{worker}-"))
                    })
                    .map(|(id, _)| id.clone())
                    .next()
            };
            let Some(id) = target else { continue };
            if pick < 50 {
                let new = format!("{tag}-renamed");
                {
                    let mut l = ledger.lock().unwrap();
                    let r = l.resources.get_mut(&id).unwrap();
                    r.names.push(new.clone());
                    r.touched = true;
                }
                let body = json!({"name": new, "resource_scopes": ["view"], "type": "crash"});
                match send(
                    env.http
                        .put(env.url(&format!("/resource_set/{id}")))
                        .bearer_auth(&env.pat)
                        .json(&body),
                ) {
                    Some((StatusCode::OK, _)) => {
                        let mut l = ledger.lock().unwrap();
                        l.resources.get_mut(&id).unwrap().names = vec![new];
                        l.acked_writes += 1;
                        true
                    }
                    Some((st, v)) => panic!("update: {st} {v}"),
                    None => false,
                }
            } else {
                ledger
                    .lock()
                    .unwrap()
                    .resources
                    .get_mut(&id)
                    .unwrap()
                    .maybe_deleted = true;
                match send(
                    env.http
                        .delete(env.url(&format!("/resource_set/{id}")))
                        .bearer_auth(&env.pat),
                ) {
                    Some((StatusCode::NO_CONTENT, _)) => {
                        let mut l = ledger.lock().unwrap();
                        let r = l.resources.get_mut(&id).unwrap();
                        r.deleted = true;
                        r.maybe_deleted = false;
                        l.acked_writes += 1;
                        true
                    }
                    Some((st, v)) => panic!("delete: {st} {v}"),
                    None => false,
                }
            }
        } else if pick < 85 {
            // Upload a module (the same bytes under a new name: shared blob, new record).
            let name = format!("m-{tag}");
            ledger.lock().unwrap().maybe_modules.insert(name.clone());
            match send(
                env.http
                    .post(env.url(&format!("/owner/modules/{name}")))
                    .bearer_auth(&env.pat)
                    .header("content-type", "application/wasm")
                    .body(MODULE.to_vec()),
            ) {
                Some((StatusCode::CREATED, _)) => {
                    let mut l = ledger.lock().unwrap();
                    l.maybe_modules.remove(&name);
                    l.modules.insert(name);
                    l.acked_writes += 1;
                    true
                }
                Some((st, v)) => panic!("upload: {st} {v}"),
                None => false,
            }
        } else if worker == 0 {
            approve_one(env, ledger)
        } else {
            true
        };
        if !alive {
            return;
        }
    }
}

fn pending_ids(env: &Env) -> Option<HashSet<String>> {
    let (st, v) = send(
        env.http
            .get(env.url("/owner/approvals"))
            .bearer_auth(&env.pat),
    )?;
    assert_eq!(st, StatusCode::OK, "{v}");
    Some(
        v.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "pending")
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect(),
    )
}

/// A client asks for access to the approval resource, and the owner approves.
fn approve_one(env: &Env, ledger: &Mutex<Ledger>) -> bool {
    let Some(before) = pending_ids(env) else {
        return false;
    };
    let Some((st, t)) = send(
        env.http
            .post(env.url("/permission"))
            .bearer_auth(&env.pat)
            .json(&json!({"resource_id": env.approval_rid, "resource_scopes": ["view"]})),
    ) else {
        return false;
    };
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let Some((st, e)) = send(
        env.http
            .post(env.url("/token"))
            .basic_auth(C1.0, Some(C1.1))
            .form(&[
                ("grant_type", UMA),
                ("ticket", t["ticket"].as_str().unwrap()),
            ]),
    ) else {
        return false;
    };
    assert_eq!(e["error"], "request_submitted", "{st} {e}");
    let polling = e["ticket"].as_str().unwrap().to_owned();
    let Some(after) = pending_ids(env) else {
        return false;
    };
    let mut new = after.difference(&before);
    let Some(id) = new.next().cloned() else {
        panic!("the submitted request is not pending")
    };
    ledger.lock().unwrap().maybe_approved.insert(id.clone());
    match send(
        env.http
            .post(env.url(&format!("/owner/approvals/{id}")))
            .bearer_auth(&env.pat)
            .json(&json!({"decision": "approve"})),
    ) {
        Some((StatusCode::OK, _)) => {
            let mut l = ledger.lock().unwrap();
            l.maybe_approved.remove(&id);
            l.approved.insert(id, polling);
            l.acked_writes += 1;
            true
        }
        Some((st, v)) => panic!("approve: {st} {v}"),
        None => false,
    }
}

/// After a restart: everything acknowledged is there, nothing else is, and the unknown
/// outcomes are resolved to what the server kept.
fn verify(env: &Env, ledger: &mut Ledger) -> usize {
    let mut checked = 0;
    // Resources: the listing (every page) and the reads agree with the ledger. Resources
    // written since the last check are read back in full, and a sample of the others.
    let mut listed = HashSet::new();
    loop {
        let (st, ids) = send(
            env.http
                .get(env.url(&format!("/resource_set?first={}&max=1000", listed.len())))
                .bearer_auth(&env.pat),
        )
        .unwrap();
        assert_eq!(st, StatusCode::OK);
        let page = ids.as_array().unwrap();
        listed.extend(page.iter().map(|v| v.as_str().unwrap().to_owned()));
        if page.len() < 1000 {
            break;
        }
    }
    let mut rng = rand::rng();
    for id in &listed {
        if *id == env.approval_rid {
            continue;
        }
        let known = ledger.resources.get(id);
        if known.is_some_and(|r| !r.touched && !r.maybe_deleted && r.names.len() == 1)
            && rng.random_range(0..100) >= 10
        {
            continue;
        }
        let (st, r) = send(
            env.http
                .get(env.url(&format!("/resource_set/{id}")))
                .bearer_auth(&env.pat),
        )
        .unwrap();
        assert_eq!(
            st,
            StatusCode::OK,
            "listed resource {id} cannot be read: {r}"
        );
        let name = r["name"].as_str().expect("a name").to_owned();
        assert_eq!(r["type"], "crash", "half-written resource {r}");
        let scopes = r["resource_scopes"].as_array().unwrap();
        assert!(!scopes.is_empty(), "half-written resource {r}");
        match ledger.resources.get_mut(id) {
            Some(state) => {
                assert!(!state.deleted, "acknowledged delete of {id} undone: {r}");
                assert!(
                    state.names.contains(&name),
                    "resource {id} is {name:?}, expected one of {:?}",
                    state.names
                );
                // The scopes match the write the name came from.
                let renamed = name.ends_with("-renamed");
                assert_eq!(scopes.len(), if renamed { 1 } else { 2 }, "{r}");
                state.names = vec![name];
                state.maybe_deleted = false;
                state.touched = false;
            }
            None => {
                assert!(
                    ledger.maybe_created.remove(&name),
                    "resource {id} ({name}) was never registered"
                );
                ledger
                    .resources
                    .insert(id.clone(), ResourceState::default());
                ledger.resources.get_mut(id).unwrap().names = vec![name];
            }
        }
        checked += 1;
    }
    for (id, state) in ledger.resources.iter_mut() {
        if listed.contains(id) {
            continue;
        }
        assert!(
            state.deleted || state.maybe_deleted,
            "acknowledged resource {id} ({:?}) lost",
            state.names
        );
        let (st, _) = send(
            env.http
                .get(env.url(&format!("/resource_set/{id}")))
                .bearer_auth(&env.pat),
        )
        .unwrap();
        assert_eq!(st, StatusCode::NOT_FOUND);
        state.deleted = true;
        state.maybe_deleted = false;
        checked += 1;
    }
    ledger.resources.retain(|_, s| !s.deleted);
    ledger.maybe_created.clear();

    // Modules: exactly the acknowledged ones plus some of the unanswered ones, each whole.
    let (st, m) = send(
        env.http
            .get(env.url("/owner/modules"))
            .bearer_auth(&env.pat),
    )
    .unwrap();
    assert_eq!(st, StatusCode::OK);
    let digest = uma_host::runtime::digest(MODULE);
    let owned: HashSet<String> = m["owned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["digest"], digest.as_str(), "{m}");
            m["name"].as_str().unwrap().to_owned()
        })
        .collect();
    for name in &ledger.modules {
        assert!(owned.contains(name), "acknowledged module {name} lost");
    }
    for name in &owned {
        assert!(
            ledger.modules.contains(name) || ledger.maybe_modules.contains(name),
            "module {name} was never uploaded"
        );
    }
    ledger.modules = owned;
    ledger.maybe_modules.clear();
    // The bytes are there: a module is loaded from the store and runs.
    if let Some(name) = ledger.modules.iter().next() {
        let (st, p) = send(
            env.http
                .post(env.url("/owner/policies"))
                .bearer_auth(&env.pat)
                .json(
                    &json!({"name": format!("check-{}", rand::rng().random::<u64>()),
                    "module": {"library": "owned", "name": name, "version": 1},
                    "config": {"client_ids": ["x"]}}),
                ),
        )
        .unwrap();
        assert_eq!(st, StatusCode::CREATED, "module {name} does not load: {p}");
        let (st, _) = send(
            env.http
                .delete(env.url(&format!("/owner/policies/{}", p["id"].as_str().unwrap())))
                .bearer_auth(&env.pat),
        )
        .unwrap();
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    checked += ledger.modules.len();

    // Approvals: acknowledged approvals stay approved; nothing is in a state nobody set.
    let (st, a) = send(
        env.http
            .get(env.url("/owner/approvals"))
            .bearer_auth(&env.pat),
    )
    .unwrap();
    assert_eq!(st, StatusCode::OK);
    let status: HashMap<String, String> = a
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (id, s) in &status {
        assert!(
            s == "pending"
                || (s == "approved"
                    && (ledger.approved.contains_key(id) || ledger.maybe_approved.contains(id))),
            "approval {id} is {s}"
        );
    }
    for id in ledger.approved.keys() {
        assert_eq!(
            status.get(id).map(String::as_str),
            Some("approved"),
            "acknowledged approval {id} lost"
        );
        checked += 1;
    }
    for id in ledger.maybe_approved.drain() {
        if status.get(&id).map(String::as_str) == Some("approved") {
            ledger.approved.insert(id, String::new());
        }
    }
    checked
}

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("uma-host.toml");
    std::fs::write(
        &path,
        format!(
            r#"issuer = "http://127.0.0.1:{port}"
approval_poll_interval_secs = 0

[policy]
max_modules_per_owner = 100000
max_module_bytes_per_owner = 100000000000
max_policies_per_owner = 100000

[[clients]]
client_id = "{}"
client_secret = "{}"

[[clients]]
client_id = "{}"
client_secret = "{}"
"#,
            RS.0, RS.1, C1.0, C1.1
        ),
    )
    .unwrap();
    path
}

fn crash_cycles(cycles: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(dir.path(), port);
    let data = dir.path().join("data");
    let base = format!("http://127.0.0.1:{port}");
    let http = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Setup, on a server that is stopped gracefully: a resource whose policy defers to the owner.
    let mut child = start(&config, &data, port);
    let pat = pat(&http, &base);
    let (st, r) = send(
        http.post(format!("{base}/resource_set"))
            .bearer_auth(&pat)
            .json(&json!({"name": "approval", "resource_scopes": ["view"]})),
    )
    .unwrap();
    assert_eq!(st, StatusCode::CREATED);
    let approval_rid = r["_id"].as_str().unwrap().to_owned();
    let (st, p) = send(
        http.post(format!("{base}/owner/policies"))
            .bearer_auth(&pat)
            .json(&json!({"name": "ask", "module": {"library": "builtin", "name": "owner-approval"}, "config": {}})),
    )
    .unwrap();
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let (st, b) = send(
        http.put(format!(
            "{base}/owner/resources/{}/{approval_rid}/policy",
            RS.0
        ))
        .bearer_auth(&pat)
        .json(&json!({"bindings": [{"policy": p["id"]}]})),
    )
    .unwrap();
    assert_eq!(st, StatusCode::OK, "{b}");

    let env = Arc::new(Env {
        base,
        http,
        pat,
        approval_rid,
    });
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = rand::rng();
    let mut checked = 0;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (env, ledger, stop) = (env.clone(), ledger.clone(), stop.clone());
                std::thread::spawn(move || work(&env, w, cycle, &ledger, &stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        child.kill();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("worker");
        }
        child = start(&config, &data, port);
        checked += verify(&env, &mut ledger.lock().unwrap());
    }
    // The acknowledged approvals still redeem: their tickets were written too.
    let approved: Vec<String> = ledger
        .lock()
        .unwrap()
        .approved
        .values()
        .filter(|t| !t.is_empty())
        .take(3)
        .cloned()
        .collect();
    for t in approved {
        let (st, v) = send(
            env.http
                .post(env.url("/token"))
                .basic_auth(C1.0, Some(C1.1))
                .form(&[("grant_type", UMA), ("ticket", t.as_str())]),
        )
        .unwrap();
        assert_eq!(
            st,
            StatusCode::OK,
            "an approved request does not redeem: {v}"
        );
    }
    let acked = ledger.lock().unwrap().acked_writes;
    eprintln!(
        "crash harness: {cycles} SIGKILL cycles, {acked} acknowledged writes, {checked} checks, 0 lost"
    );
    assert!(acked > cycles, "the load did too little: {acked} writes");
    child.kill();
}

#[test]
fn crash_cycles_short() {
    crash_cycles(20);
}

#[test]
#[ignore = "long: 200 SIGKILL cycles"]
fn crash_cycles_long() {
    crash_cycles(200);
}
