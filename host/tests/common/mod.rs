//! Helpers shared by the tests that run the real `uma-host` binary: start and stop a server
//! process, drive the login form over HTTP like a browser would, and run CLI commands.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;
use sha2::Digest;

pub const BIN: &str = env!("CARGO_BIN_EXE_uma-host");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client that does not follow redirects (the test follows them itself).
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A running server process; killed if the test panics before stopping it.
pub struct Server(Option<Child>);

impl Server {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, as a crash would, and reap the process.
    pub fn kill(mut self) {
        let mut child = self.0.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `uma-host serve` and waits for `/healthz`; returns the process and how long it took
/// from spawn to the first 200.
pub fn start_timed(config: &Path, data: &Path, port: u16) -> (Server, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn uma-host");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return (Server(Some(child)), started.elapsed());
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("uma-host exited during startup: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("uma-host did not come up");
}

pub fn start(config: &Path, data: &Path, port: u16) -> Server {
    start_timed(config, data, port).0
}

/// SIGTERM and wait for a clean exit.
pub fn stop(mut server: Server) {
    let mut child = server.0.take().expect("running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "graceful shutdown exits 0, got {s}");
            return;
        }
        assert!(Instant::now() < deadline, "uma-host did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// BASE64URL(SHA256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Value of `<input type="hidden" name="NAME" value="…">` in the login page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// What a browser does with an authorization URL: fetch the login page, post the form with its
/// anti-CSRF cookie as `user`, and return where the server redirects to.
pub fn log_in_at(
    http: &reqwest::blocking::Client,
    authorize_url: &str,
    user: (&str, &str),
) -> url::Url {
    let page = http.get(authorize_url).send().unwrap();
    assert_eq!(page.status(), 200, "login page");
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().unwrap();
    let login_id = hidden_field(&html, "login_id");
    // The form posts back to the authorization endpoint.
    let action = authorize_url.split('?').next().unwrap();
    let r = http
        .post(action)
        .header("cookie", cookie)
        .form(&[
            ("login_id", login_id.as_str()),
            ("username", user.0),
            ("password", user.1),
            ("decision", "allow"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "login form answer");
    url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

/// A PAT that represents `user` at resource server `rs` (authorization code + PKCE through the
/// login form), for registering the user's resources.
pub fn user_pat(
    http: &reqwest::blocking::Client,
    issuer: &str,
    rs: (&str, &str),
    redirect_uri: &str,
    user: (&str, &str),
) -> String {
    let verifier = "v".repeat(43);
    let mut auth = url::Url::parse(&format!("{issuer}/authorize")).unwrap();
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", rs.0)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "uma_protection")
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let back = log_in_at(http, auth.as_str(), user);
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1
        .into_owned();
    let v: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(rs.0, Some(rs.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["access_token"].as_str().expect("PAT").to_owned()
}

/// A `client_credentials` token of a confidential client.
pub fn client_token(
    http: &reqwest::blocking::Client,
    issuer: &str,
    (id, secret): (&str, &str),
) -> String {
    let r = http
        .post(format!("{issuer}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Registers a resource with `pat`; returns its id.
pub fn create_resource(
    http: &reqwest::blocking::Client,
    issuer: &str,
    pat: &str,
    body: &Value,
) -> String {
    let r = http
        .post(format!("{issuer}/resource_set"))
        .bearer_auth(pat)
        .json(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().unwrap()["_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs `uma-host ARGS…` with `envs` and no inherited owner settings.
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("UMA_OWNER_TOKEN")
        .env_remove("UMA_OWNER_URL")
        .env_remove("UMA_OWNER_CREDENTIALS")
        .env_remove("UMA_OWNER_CLIENT_SECRET");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
