//! The real `uma-host` binary: `serve` with a config file and flags, the `admin` subcommands
//! against the running server, graceful shutdown on SIGTERM, and data surviving a restart of
//! the process. (In this package so that cargo builds the binary for the test.)

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_uma-host");
const ADMIN: &str = "binary-test-admin-token-0123";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(config: &Path, data: &Path, port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .env("UMA_HOST_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn uma-host");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz"))
            .is_ok_and(|r| r.status().is_success())
        {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("uma-host did not come up");
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "graceful shutdown exits 0, got {s}");
            return;
        }
        assert!(Instant::now() < deadline, "uma-host did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn admin(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("admin")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("UMA_HOST_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap()
}

fn admin_json(config: &Path, args: &[&str]) -> Value {
    let out = admin(config, args);
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("admin prints JSON")
}

#[test]
fn binary_serve_admin_cli_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("uma-host.toml");
    // The file names another listen address and data dir: the flags win.
    std::fs::write(
        &config,
        format!(
            r#"issuer = "{issuer}"
listen = "127.0.0.1:1"
data_dir = "/nonexistent/never-used"

[[clients]]
client_id = "photoz-rs"
client_secret = "s3cret-of-at-least-16-chars"
redirect_uris = ["http://127.0.0.1:9000/callback"]
claims_redirect_uris = ["http://127.0.0.1:9000/claims-done"]

[[users]]
username = "alice"
password = "alice-password"
claims = {{ email = "alice@example.com", name = "Alice" }}
"#
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let child = start(&config, &data, port);

    // Admin CLI: create a client and a user, list them.
    let created = admin_json(
        &config,
        &[
            "clients",
            "create",
            "--id",
            "rs-cli",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
        ],
    );
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let users = admin_json(
        &config,
        &[
            "users",
            "create",
            "bob",
            "--password",
            "bob-password",
            "--claim",
            "email=bob@example.com",
        ],
    );
    assert_eq!(users["claims"]["email"], "bob@example.com");
    let clients = admin_json(&config, &["clients", "list"]);
    let ids: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"rs-cli") && ids.contains(&"photoz-rs"));
    // A failing admin call exits non-zero.
    let out = admin(&config, &["clients", "get", "nope"]);
    assert!(!out.status.success());

    // A PAT from the config-file client and one from the CLI-created client.
    let http = reqwest::blocking::Client::new();
    let pat = |id: &str, secret: &str| -> String {
        let v: Value = http
            .post(format!("{issuer}/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    };
    let photoz = pat("photoz-rs", "s3cret-of-at-least-16-chars");
    let cli_pat = pat("rs-cli", &secret);
    let r = http
        .post(format!("{issuer}/resource_set"))
        .bearer_auth(&photoz)
        .json(&json!({"resource_scopes": ["view"], "name": "album"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().unwrap()["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = admin_json(&config, &["keys", "rotate"]);
    assert!(rotated["kid"].is_string());
    stop(child);

    // A new process on the same data directory.
    let child = start(&config, &data, port);
    let r = http
        .get(format!("{issuer}/resource_set/{id}"))
        .bearer_auth(&photoz)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "PAT from before the restart still works");
    assert_eq!(r.json::<Value>().unwrap()["name"], "album");
    let r = http
        .get(format!("{issuer}/resource_set"))
        .bearer_auth(&cli_pat)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = pat("rs-cli", &secret);
    let users = admin_json(&config, &["users", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 2);
    let keys = admin_json(&config, &["keys", "list"]);
    assert_eq!(
        keys.as_array().unwrap().len(),
        2,
        "retired key kept while its tokens live"
    );
    stop(child);
}

/// The binary's built-in jemalloc options are in force (one arena per CPU, thread caches of
/// small objects only, see `main.rs`), and the operator's `_RJEM_MALLOC_CONF` still overrides
/// them, option by option. jemalloc prints its options at exit when asked to with `stats_print`.
#[test]
#[cfg(not(target_env = "msvc"))]
fn jemalloc_runs_with_its_built_in_options_unless_the_operator_says_otherwise() {
    let options = |conf: &str| {
        let out = Command::new(BIN)
            .arg("--version")
            .env(
                "_RJEM_MALLOC_CONF",
                format!("stats_print:true,stats_print_opts:mdablxeh{conf}"),
            )
            .output()
            .unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("Invalid conf"), "{err}");
        err
    };
    let built_in = options("");
    assert!(
        built_in.contains(r#"opt.percpu_arena: "percpu""#),
        "{built_in}"
    );
    assert!(built_in.contains("opt.tcache_max: 4096\n"), "{built_in}");
    let overridden = options(",percpu_arena:disabled");
    assert!(
        overridden.contains(r#"opt.percpu_arena: "disabled""#),
        "{overridden}"
    );
    assert!(
        overridden.contains("opt.tcache_max: 4096\n"),
        "{overridden}"
    );
    let overridden = options(",tcache_max:32768");
    assert!(
        overridden.contains("opt.tcache_max: 32768\n"),
        "{overridden}"
    );
    assert!(
        overridden.contains(r#"opt.percpu_arena: "percpu""#),
        "{overridden}"
    );
}
