//! `uma-host owner …` against a real server process: log in through the loopback redirect
//! (the test plays the browser), upload a plugin built from `plugins/`, create and bind a
//! policy, dry-run permit and deny, read the audit of real UMA grants, and the failures a user
//! meets (bad JSON, unknown policy, missing file, no login, unreachable server) with their exit
//! codes and messages.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

const RS: (&str, &str) = ("photoz-rs", "photoz-secret-0123456789");
const RP: (&str, &str) = ("rp-app", "rp-app-secret-0123456789");
const OTHER_RP: (&str, &str) = ("other-app", "other-app-secret-012345");
const CLI_CLIENT: &str = "owner-cli";
/// A confidential client for the same purpose (an owner tool that has a secret).
const CONFIDENTIAL_CLI: (&str, &str) = ("owner-tool", "owner-tool-secret-0123456789");
const ALICE: (&str, &str) = ("alice", "alice-password");
const RS_REDIRECT: &str = "http://127.0.0.1:9/cb";
const UMA: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";

fn config(issuer: &str, callback_port: u16) -> String {
    format!(
        r#"issuer = "{issuer}"

[[clients]]
client_id = "{rs}"
client_secret = "{rs_secret}"
redirect_uris = ["{RS_REDIRECT}"]

[[clients]]
client_id = "{rp}"
client_secret = "{rp_secret}"

[[clients]]
client_id = "{other}"
client_secret = "{other_secret}"

# The owner CLI: a public client (PKCE, no secret) registered for the owner policy API, with
# the CLI's loopback callback as redirect URI.
[[clients]]
client_id = "{CLI_CLIENT}"
redirect_uris = ["http://127.0.0.1:{callback_port}/callback"]
scopes = ["uma_policy"]

[[clients]]
client_id = "{conf}"
client_secret = "{conf_secret}"
redirect_uris = ["http://127.0.0.1:{callback_port}/callback"]
scopes = ["uma_policy"]

[[users]]
username = "alice"
password = "alice-password"
claims = {{ email = "alice@example.com" }}
"#,
        rs = RS.0,
        rs_secret = RS.1,
        rp = RP.0,
        rp_secret = RP.1,
        other = OTHER_RP.0,
        other_secret = OTHER_RP.1,
        conf = CONFIDENTIAL_CLI.0,
        conf_secret = CONFIDENTIAL_CLI.1,
    )
}

/// `uma-host owner --credentials CREDS ARGS…`.
fn owner(creds: &Path, args: &[&str]) -> Output {
    let mut all = vec!["owner", "--credentials", creds.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, &[])
}

fn owner_ok(creds: &Path, args: &[&str]) -> Value {
    let out = owner(creds, args);
    assert!(
        out.status.success(),
        "owner {args:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_json(&out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `owner login` and plays the browser: reads the printed authorization URL, first sends
/// a forged redirect with another state (which the CLI must ignore), then logs in and follows
/// the server's redirect to the CLI's callback.
fn login(issuer: &str, callback_port: u16, creds: &Path) -> Value {
    login_as_client(issuer, callback_port, creds, (CLI_CLIENT, None))
}

fn login_as_client(
    issuer: &str,
    callback_port: u16,
    creds: &Path,
    (client_id, secret): (&str, Option<&str>),
) -> Value {
    let http = http();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "owner",
        "login",
        "--url",
        issuer,
        "--client-id",
        client_id,
        "--port",
        &callback_port.to_string(),
        "--timeout",
        "60",
        "--credentials",
    ])
    .arg(creds)
    .env_remove("UMA_OWNER_TOKEN")
    .env_remove("UMA_OWNER_CLIENT_SECRET");
    if let Some(s) = secret {
        cmd.env("UMA_OWNER_CLIENT_SECRET", s);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let authorize_url = loop {
        let line = lines
            .next()
            .expect("the CLI printed no authorization URL")
            .unwrap();
        if let Some(u) = line.trim().strip_prefix(&format!("{issuer}/authorize?")) {
            break format!("{issuer}/authorize?{u}");
        }
    };
    let auth = url::Url::parse(&authorize_url).unwrap();
    let q: std::collections::HashMap<_, _> = auth.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], client_id);
    assert_eq!(q["scope"], "uma_policy");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(
        q["redirect_uri"],
        format!("http://127.0.0.1:{callback_port}/callback")
    );

    // A redirect that does not carry our state is refused and does not end the login.
    let forged = http
        .get(format!(
            "http://127.0.0.1:{callback_port}/callback?code=stolen&state=not-ours"
        ))
        .send()
        .unwrap();
    assert_eq!(forged.status(), 400);

    let back = log_in_at(&http, &authorize_url, ALICE);
    assert!(
        back.as_str()
            .starts_with(&format!("http://127.0.0.1:{callback_port}/callback?"))
    );
    let page = http.get(back.as_str()).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("Logged in"));

    // Drain the rest of stderr so the CLI never blocks on a full pipe, then collect stdout.
    std::thread::spawn(move || for _ in lines {});
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "login exited {:?}", out.status.code());
    stdout_json(&out)
}

#[test]
fn owner_cli_login_upload_policy_bind_dry_run_audit_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (server, issuer, callback_port) = start_server(dir.path());
    let http = http();
    let creds = dir.path().join("home").join("owner.json");

    // --- Login ---------------------------------------------------------------------------
    let logged = login(&issuer, callback_port, &creds);
    assert_eq!(logged["logged_in"], true);
    assert_eq!(logged["url"], issuer);
    assert_eq!(logged["scope"], "uma_policy");
    assert_eq!(logged["refreshable"], true);
    let saved: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    assert_eq!(saved["url"], issuer);
    assert_eq!(saved["client_id"], CLI_CLIENT);
    assert!(saved["access_token"].as_str().unwrap().len() > 20);
    assert!(saved["refresh_token"].is_string());
    assert!(saved["expires_at"].as_u64().unwrap() > 0);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials are private to the user");
    }

    // Alice's resource at photoz-rs, registered through the protection API with a PAT that
    // represents her.
    let pat = user_pat(&http, &issuer, RS, RS_REDIRECT, ALICE);
    let rid = create_resource(
        &http,
        &issuer,
        &pat,
        &json!({"name": "Blood test", "resource_scopes": ["view", "edit"]}),
    );

    // --- Upload a plugin built from plugins/ --------------------------------------------------
    let wasm = dir.path().join("allow-list.wasm");
    let bytes = uma_host::plugins::builtin("allow-list").unwrap().bytes;
    std::fs::write(&wasm, bytes).unwrap();
    let out = owner(
        &creds,
        &["modules", "upload", "doctors", wasm.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let module = stdout_json(&out);
    assert_eq!(module["name"], "doctors");
    assert_eq!(module["version"], 1);
    assert_eq!(module["world"], "policy");
    assert_eq!(module["size"], bytes.len());
    assert_eq!(module["digest"], uma_host::runtime::digest(bytes));
    // Not a terminal: one final line instead of a progress bar.
    let err = stderr(&out);
    assert!(
        err.contains(&format!("({} bytes) as doctors@1", bytes.len())),
        "{err}"
    );

    let list = owner_ok(&creds, &["modules", "list"]);
    assert_eq!(list["owned"][0]["name"], "doctors");
    assert!(
        list["builtin"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "allow-list")
    );
    let shown = owner_ok(&creds, &["modules", "show", "doctors", "1"]);
    assert_eq!(shown["digest"], module["digest"]);

    // --- Policy, binding ----------------------------------------------------------------------
    let cfg = dir.path().join("doctors.json");
    std::fs::write(
        &cfg,
        r#"{"emails": ["dr@clinic.example"], "client_ids": ["rp-app"], "scopes": ["view"]}"#,
    )
    .unwrap();
    let cfg_arg = format!("@{}", cfg.display());
    let policy = owner_ok(
        &creds,
        &[
            "policies",
            "create",
            "--name",
            "my doctor",
            "--module",
            "doctors",
            "--version",
            "1",
            "--config",
            &cfg_arg,
        ],
    );
    assert_eq!(policy["name"], "my doctor");
    assert_eq!(
        policy["module"],
        json!({"library": "owned", "name": "doctors", "version": 1})
    );
    let pid = policy["id"].as_str().unwrap().to_owned();
    let listed = owner_ok(&creds, &["policies", "list"]);
    assert_eq!(listed[0]["id"], pid);

    let bound = owner_ok(
        &creds,
        &[
            "bind",
            RS.0,
            &rid,
            "--policy",
            &format!("{pid}:view"),
            "--strategy",
            "affirmative",
        ],
    );
    assert_eq!(
        bound,
        json!({"strategy": "affirmative", "bindings": [{"policy": pid, "scopes": ["view"]}]})
    );
    assert_eq!(owner_ok(&creds, &["bindings", RS.0, &rid]), bound);

    // --- Dry-runs -----------------------------------------------------------------------------
    let permit = owner_ok(
        &creds,
        &[
            "dry-run",
            RS.0,
            &rid,
            "--client",
            "some-app",
            "--scope",
            "view",
            "--claim",
            "email=dr@clinic.example",
        ],
    );
    assert_eq!(permit["decision"], "permit", "{permit}");
    assert_eq!(permit["granted_scopes"], json!(["view"]));
    assert_eq!(permit["strategy"], "affirmative");
    assert_eq!(permit["policies"][0]["policy_name"], "my doctor");
    assert_eq!(permit["policies"][0]["module"], "doctors@1");
    assert_eq!(permit["policies"][0]["decision"]["outcome"], "permit");
    assert!(permit["policies"][0]["fuel_used"].as_u64().unwrap() > 0);

    let deny = owner_ok(
        &creds,
        &[
            "dry-run",
            RS.0,
            &rid,
            "--client",
            "some-app",
            "--scope",
            "view",
            "--claims",
            r#"[{"name": "email", "value": "sister@home.example"}]"#,
        ],
    );
    assert_eq!(deny["decision"], "deny", "{deny}");
    assert_eq!(deny["granted_scopes"], json!([]));
    assert_eq!(
        deny["policies"][0]["decision"]["reason"],
        "the requesting party is not on the allow-list"
    );

    // --- Real grants, then the audit ----------------------------------------------------------
    let rs_pat = pat.clone();
    let ticket = || -> String {
        let r = http
            .post(format!("{issuer}/permission"))
            .bearer_auth(&rs_pat)
            .json(&json!({"resource_id": rid, "resource_scopes": ["view"]}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["ticket"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let r = http
        .post(format!("{issuer}/token"))
        .basic_auth(RP.0, Some(RP.1))
        .form(&[("grant_type", UMA), ("ticket", &ticket())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "rp-app is on the allow-list");
    let r = http
        .post(format!("{issuer}/token"))
        .basic_auth(OTHER_RP.0, Some(OTHER_RP.1))
        .form(&[("grant_type", UMA), ("ticket", &ticket())])
        .send()
        .unwrap();
    assert_ne!(r.status(), 200, "other-app is not");

    let audit = owner_ok(&creds, &["audit"]);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        2,
        "dry-runs are not audited, grants are: {audit}"
    );
    assert_eq!(entries[0]["client_id"], RP.0);
    assert_eq!(entries[0]["outcome"], "permit");
    assert_eq!(entries[0]["resource_id"], rid.as_str());
    assert_eq!(entries[0]["policies"][0]["policy_name"], "my doctor");
    assert_eq!(entries[1]["client_id"], OTHER_RP.0);
    assert_ne!(entries[1]["outcome"], "permit");
    let only_permits = owner_ok(&creds, &["audit", "--outcome", "permit"]);
    assert_eq!(only_permits["entries"].as_array().unwrap().len(), 1);
    let by_client = owner_ok(&creds, &["audit", "--client", OTHER_RP.0, "--limit", "5"]);
    assert_eq!(by_client["entries"][0]["client_id"], OTHER_RP.0);
    let first_page = owner_ok(&creds, &["audit", "--limit", "1"]);
    let cursor = first_page["next_after"].to_string();
    let second_page = owner_ok(&creds, &["audit", "--after", &cursor]);
    assert_eq!(second_page["entries"].as_array().unwrap().len(), 1);
    assert_eq!(second_page["entries"][0]["client_id"], OTHER_RP.0);
    let grants = owner_ok(&creds, &["grants", "list"]);
    assert_eq!(grants.as_array().unwrap().len(), 1, "{grants}");

    // --- Errors -------------------------------------------------------------------------------
    // Bad JSON in --config: refused locally, exit 2, nothing sent.
    let out = owner(
        &creds,
        &[
            "policies",
            "create",
            "--name",
            "x",
            "--builtin",
            "allow-list",
            "--config",
            "{\"emails\": [",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--config is not valid JSON"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    // A configuration the module refuses: the server's OAuth error JSON, exit 1.
    let out = owner(
        &creds,
        &[
            "policies",
            "create",
            "--name",
            "x",
            "--builtin",
            "allow-list",
            "--config",
            r#"{"emails": [], "bogus": 1}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).expect("stderr is the server's JSON");
    assert_eq!(e["error"], "invalid_request");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("builtin:allow-list"),
        "{e}"
    );
    // An unknown policy: 404 from the server.
    let out = owner(&creds, &["policies", "show", "no-such-policy"]);
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "not_found", "{e}");
    let out = owner(&creds, &["bind", RS.0, &rid, "--policy", "no-such-policy"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A missing file: exit 2 and the path in the message.
    let missing = dir.path().join("nope.wasm");
    let out = owner(
        &creds,
        &["modules", "upload", "doctors", missing.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("cannot read {}", missing.display())),
        "{}",
        stderr(&out)
    );
    let out = owner(
        &creds,
        &[
            "policies",
            "create",
            "--name",
            "x",
            "--builtin",
            "allow-list",
            "--config",
            "@/nonexistent/cfg.json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/cfg.json"));
    // Not a component: the runtime's message.
    let out = owner(
        &creds,
        &["modules", "upload", "junk", cfg.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component"),
        "{e}"
    );
    // A server that refuses an upload before reading it: its own answer, not a broken pipe.
    let large = dir.path().join("large.wasm");
    std::fs::write(&large, vec![0u8; 8 << 20]).unwrap();
    let out = run(
        &[
            "owner",
            "--url",
            &issuer,
            "--token",
            "garbage",
            "modules",
            "upload",
            "big",
            large.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "invalid_token");
    let over = dir.path().join("over.wasm");
    std::fs::write(&over, vec![0u8; (32 << 20) + 1]).unwrap();
    let out = owner(
        &creds,
        &["modules", "upload", "big", over.to_str().unwrap()],
    );
    let err = stderr(&out);
    match out.status.code() {
        // The server's 413 arrived before the connection was cut…
        Some(1) => assert!(err.contains("too large"), "{err}"),
        // …or it was lost with the connection, and the CLI says what the server refuses.
        Some(3) => assert!(err.contains("size limit"), "{err}"),
        other => panic!("exit {other:?}: {err}"),
    }

    // A bound module cannot be deleted.
    let out = owner(&creds, &["modules", "delete", "doctors", "1"]);
    assert_eq!(out.status.code(), Some(1));
    // Bad usage is clap's exit 2.
    let out = owner(
        &creds,
        &[
            "bind",
            RS.0,
            &rid,
            "--policy",
            "p",
            "--strategy",
            "majority",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    // No login: exit 4, with what to do.
    let out = owner(&dir.path().join("nobody.json"), &["modules", "list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("owner login"), "{}", stderr(&out));
    // A token given directly works without a saved login; a bad one is the server's 401.
    let token = saved["access_token"].as_str().unwrap();
    let out = run(
        &[
            "owner",
            "--credentials",
            "/nonexistent/x.json",
            "policies",
            "list",
        ],
        &[("UMA_OWNER_TOKEN", token), ("UMA_OWNER_URL", &issuer)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)[0]["id"], pid);
    let out = run(
        &[
            "owner", "--url", &issuer, "--token", "garbage", "policies", "list",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "invalid_token");

    // --- Unbind ------------------------------------------------------------------------------
    assert_eq!(
        owner_ok(&creds, &["unbind", RS.0, &rid]),
        json!({"status": 204})
    );
    assert_eq!(
        owner_ok(&creds, &["bindings", RS.0, &rid])["bindings"],
        json!([])
    );
    assert_eq!(
        owner_ok(&creds, &["modules", "show", "doctors", "1"])["name"],
        "doctors"
    );

    // --- An expired saved login is refreshed with its refresh token ----------------------------
    let mut expired = saved.clone();
    expired["expires_at"] = json!(1);
    std::fs::write(&creds, serde_json::to_vec(&expired).unwrap()).unwrap();
    let listed = owner_ok(&creds, &["policies", "list"]);
    assert_eq!(listed[0]["id"], pid);
    let refreshed: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    assert_ne!(refreshed["access_token"], saved["access_token"]);
    assert_ne!(
        refreshed["refresh_token"], saved["refresh_token"],
        "the rotated refresh token is saved"
    );
    assert!(refreshed["expires_at"].as_u64().unwrap() > 1);
    // The old refresh token is spent: a file holding it cannot refresh any more.
    std::fs::write(&creds, serde_json::to_vec(&expired).unwrap()).unwrap();
    let out = owner(&creds, &["policies", "list"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("could not be refreshed"));

    // Log in again; logout revokes the refresh token at the server and forgets the login.
    login(&issuer, callback_port, &creds);
    assert_eq!(owner_ok(&creds, &["policies", "list"])[0]["id"], pid);
    let saved: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    let out = owner_ok(&creds, &["logout"]);
    assert_eq!(out["logged_out"], true);
    assert_eq!(out["revoked"], true);
    assert!(!creds.exists());
    assert_eq!(owner(&creds, &["modules", "list"]).status.code(), Some(4));
    let r = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", saved["refresh_token"].as_str().unwrap()),
            ("client_id", CLI_CLIENT),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "the refresh token was revoked");

    stop(server);

    // The server is gone: exit 3.
    let out = run(
        &["owner", "--url", &issuer, "--token", "t", "modules", "list"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("Connection refused"),
        "{}",
        stderr(&out)
    );
}

/// Starts a server with the test's config; returns it with its issuer, callback port and data.
fn start_server(dir: &Path) -> (Server, String, u16) {
    let port = free_port();
    let callback_port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let config_file = dir.join("uma-host.toml");
    std::fs::write(&config_file, config(&issuer, callback_port)).unwrap();
    (
        start(&config_file, &dir.join("data"), port),
        issuer,
        callback_port,
    )
}

/// A UMA grant request by `client` with `ticket`: status and JSON.
fn uma_grant(
    http: &reqwest::blocking::Client,
    issuer: &str,
    client: (&str, &str),
    ticket: &str,
) -> (u16, Value) {
    let r = http
        .post(format!("{issuer}/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", UMA), ("ticket", ticket)])
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

#[test]
fn owner_cli_approves_denies_and_revokes_grants() {
    let dir = tempfile::tempdir().unwrap();
    let (server, issuer, callback_port) = start_server(dir.path());
    let http = http();
    let creds = dir.path().join("owner.json");
    // This time through a confidential client: its secret (from UMA_OWNER_CLIENT_SECRET) is
    // saved with the tokens, because refreshing needs it.
    let logged = login_as_client(
        &issuer,
        callback_port,
        &creds,
        (CONFIDENTIAL_CLI.0, Some(CONFIDENTIAL_CLI.1)),
    );
    assert_eq!(logged["client_id"], CONFIDENTIAL_CLI.0);
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    assert_eq!(saved["client_secret"], CONFIDENTIAL_CLI.1);
    saved["expires_at"] = json!(1);
    std::fs::write(&creds, serde_json::to_vec(&saved).unwrap()).unwrap();
    let pat = user_pat(&http, &issuer, RS, RS_REDIRECT, ALICE);
    let rid = create_resource(
        &http,
        &issuer,
        &pat,
        &json!({"name": "Lab reports", "resource_scopes": ["view", "edit"]}),
    );
    let ask = owner_ok(
        &creds,
        &[
            "policies",
            "create",
            "--name",
            "ask me",
            "--builtin",
            "owner-approval",
            "--config",
            r#"{"message": "rp-app asks for your lab reports"}"#,
        ],
    );
    let pid = ask["id"].as_str().unwrap();
    let refreshed: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    assert!(
        refreshed["expires_at"].as_u64().unwrap() > 1,
        "the expired login was refreshed with the client's secret"
    );
    // A claims plugin with a configuration it refuses: its own message, nothing bound.
    let out = owner(
        &creds,
        &[
            "bind",
            RS.0,
            &rid,
            "--policy",
            pid,
            "--claims-builtin",
            "terms-purpose",
            "--claims-config",
            r#"{"purposes": ["treatment"]}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("builtin:terms-purpose"),
        "{e}"
    );
    let out = owner(
        &creds,
        &["bind", RS.0, &rid, "--policy", pid, "--claims-config", "{}"],
    );
    assert_eq!(out.status.code(), Some(2));
    let bound = owner_ok(
        &creds,
        &[
            "bind",
            RS.0,
            &rid,
            "--policy",
            pid,
            "--claims-builtin",
            "terms-purpose",
            "--claims-config",
            r#"{"terms": "For treatment only.", "purposes": ["treatment"]}"#,
        ],
    );
    assert_eq!(
        bound["claims"],
        json!({"module": {"library": "builtin", "name": "terms-purpose"},
               "config": {"terms": "For treatment only.", "purposes": ["treatment"]}})
    );
    assert_eq!(owner_ok(&creds, &["bindings", RS.0, &rid]), bound);
    let ticket = || -> String {
        let r = http
            .post(format!("{issuer}/permission"))
            .bearer_auth(&pat)
            .json(&json!({"resource_id": rid, "resource_scopes": ["view", "edit"]}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["ticket"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // The policy defers to the owner: the client is told to wait.
    let (st, e) = uma_grant(&http, &issuer, RP, &ticket());
    assert_eq!((st, e["error"].as_str()), (403, Some("request_submitted")));
    let waiting = e["ticket"].as_str().unwrap().to_owned();

    let pending = owner_ok(&creds, &["approvals", "list"]);
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    let request = &pending[0];
    assert_eq!(request["status"], "pending");
    assert_eq!(request["client_id"], RP.0);
    assert_eq!(
        request["permissions"],
        json!([{"resource_id": rid, "resource_scopes": ["view", "edit"]}])
    );
    assert!(request["messages"].to_string().contains("rp-app asks"));
    let aid = request["id"].as_str().unwrap().to_owned();
    assert_eq!(owner_ok(&creds, &["approvals", "show", &aid])["id"], aid);

    // Only what was asked can be approved; a malformed --scope never leaves the machine.
    let out = owner(
        &creds,
        &[
            "approvals",
            "approve",
            &aid,
            "--scope",
            &format!("{rid}:delete"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "invalid_request");
    assert!(e["error_description"].as_str().unwrap().contains("delete"));
    let out = owner(&creds, &["approvals", "approve", &aid, "--scope", "view"]);
    assert_eq!(out.status.code(), Some(2));

    // Approve view only; the client's next poll gets an RPT for view.
    let approved = owner_ok(
        &creds,
        &[
            "approvals",
            "approve",
            &aid,
            "--scope",
            &format!("{rid}:view"),
        ],
    );
    assert_eq!(approved["status"], "approved");
    assert_eq!(
        approved["granted"],
        json!([{"resource_id": rid, "resource_scopes": ["view"]}])
    );
    let (st, v) = uma_grant(&http, &issuer, RP, &waiting);
    assert_eq!(st, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap().to_owned();

    // The owner sees the grant and revokes it: introspection then answers inactive.
    let grants = owner_ok(&creds, &["grants", "list"]);
    assert_eq!(grants.as_array().unwrap().len(), 1, "{grants}");
    assert_eq!(grants[0]["client_id"], RP.0);
    assert_eq!(
        grants[0]["permissions"][0]["resource_scopes"],
        json!(["view"])
    );
    let jti = grants[0]["jti"].as_str().unwrap();
    let introspect = |token: &str| -> Value {
        http.post(format!("{issuer}/introspect"))
            .bearer_auth(&pat)
            .form(&[("token", token)])
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(introspect(&rpt)["active"], true);
    assert_eq!(
        owner_ok(&creds, &["grants", "revoke", jti]),
        json!({"status": 204})
    );
    assert_eq!(introspect(&rpt)["active"], false);
    assert_eq!(
        owner(&creds, &["grants", "revoke", jti]).status.code(),
        Some(1)
    );

    // A second request, denied by the owner: the client is told so.
    let (_, e) = uma_grant(&http, &issuer, RP, &ticket());
    let waiting = e["ticket"].as_str().unwrap().to_owned();
    let pending = owner_ok(&creds, &["approvals", "list"]);
    let second = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "pending")
        .expect("a pending request, listed first");
    assert_eq!(pending[0]["id"], second["id"]);
    let denied = owner_ok(
        &creds,
        &["approvals", "deny", second["id"].as_str().unwrap()],
    );
    assert_eq!(denied["status"], "denied");
    let (st, e) = uma_grant(&http, &issuer, RP, &waiting);
    assert_eq!((st, e["error"].as_str()), (403, Some("request_denied")));

    stop(server);
}
