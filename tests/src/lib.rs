//! Black-box test harness: starts the real uma-host server in-process on `127.0.0.1:0` with a
//! temporary data directory and talks to it over loopback HTTP.
//!
//! The standard fixture (spec §5) is declared through the config file path
//! (`Config::clients` / `Config::users`): resource servers `rs1`, `rs2` (confidential, with a
//! redirect URI for the owner login), a client `c1` with a pre-registered `read` scope, a
//! public client `pub1`, and users `alice`, `bob`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uma_host::Config;
use uma_host::config::{ClientConfig, UserConfig};

pub use reqwest;
pub use serde_json;

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
pub const RS1: (&str, &str) = ("rs1", "rs1-secret-0123456789");
pub const RS2: (&str, &str) = ("rs2", "rs2-secret-0123456789");
pub const C1: (&str, &str) = ("c1", "c1-secret-0123456789ab");
pub const PUB1: &str = "pub1";
pub const ALICE: (&str, &str) = ("alice", "alice-password");
pub const BOB: (&str, &str) = ("bob", "bob-password-x");
pub const RS_REDIRECT: &str = "http://127.0.0.1:9/callback";
/// An owner portal: a confidential client pre-registered for `uma_policy`, through which owners
/// get tokens for the owner policy API.
pub const PORTAL: (&str, &str) = ("portal", "portal-secret-0123456789");

fn client(id: &str, secret: Option<&str>, scopes: &[&str]) -> ClientConfig {
    ClientConfig {
        client_id: id.into(),
        client_secret: secret.map(Into::into),
        redirect_uris: vec![RS_REDIRECT.into()],
        claims_redirect_uris: vec![],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        grant_types: None,
        name: None,
    }
}

/// The issuer of [`TestIdp`]'s tokens.
pub const IDP: &str = "https://idp.example";

/// A test identity provider: a fresh ES256 key whose tokens a server accepts once `jwks` is
/// configured for the trusted issuer [`IDP`].
pub struct TestIdp {
    key: jsonwebtoken::EncodingKey,
    pub jwks: Value,
}

impl TestIdp {
    pub fn new() -> TestIdp {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "idp-1", "use": "sig",
            "alg": "ES256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}]});
        TestIdp {
            key: jsonwebtoken::EncodingKey::from_ec_der(doc.as_ref()),
            jwks,
        }
    }

    /// `claims` signed as a JWT with the provider's key.
    pub fn token(&self, claims: Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("idp-1".into());
        jsonwebtoken::encode(&h, &claims, &self.key).unwrap()
    }

    /// An ID token for `email`, issued to `aud`, valid for five minutes.
    pub fn id_token(&self, sub: &str, email: &str, aud: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.token(json!({"iss": IDP, "sub": sub, "aud": aud, "email": email,
            "iat": now, "exp": now + 300}))
    }
}

impl Default for TestIdp {
    fn default() -> Self {
        Self::new()
    }
}

/// The §5 fixture as config.
pub fn fixture_config(config: &mut Config) {
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.clients = vec![
        client(RS1.0, Some(RS1.1), &[]),
        client(RS2.0, Some(RS2.1), &[]),
        client(C1.0, Some(C1.1), &["read"]),
        client(PUB1, None, &[]),
        client(PORTAL.0, Some(PORTAL.1), &["uma_policy"]),
    ];
    config.users = [ALICE, BOB]
        .iter()
        .map(|(u, p)| UserConfig {
            username: u.to_string(),
            password: p.to_string(),
            claims: [("email".to_string(), json!(format!("{u}@example.com")))].into(),
        })
        .collect();
}

/// A running server.
pub struct TestServer {
    /// The issuer (also the base URL of every endpoint).
    pub issuer: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// HTTP client that does not follow redirects.
    pub http: reqwest::Client,
}

impl TestServer {
    /// Fresh data directory, standard fixture.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Fresh data directory, standard fixture, then `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let mut s = Self::start_in(&path, "", tweak).await;
        s._dir = Some(dir);
        s
    }

    /// Starts on `data_dir` with issuer path `issuer_path` (e.g. `""` or `/realms/x`).
    pub async fn start_in(
        data_dir: &Path,
        issuer_path: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, data_dir, issuer_path, tweak).await
    }

    /// Stops the server and starts a new one on the same address and data directory (so the
    /// issuer is the same string and tokens issued before stay valid).
    pub async fn restart(self) -> TestServer {
        let addr = self.addr;
        let data_dir = self.data_dir.clone();
        let issuer_path = self.issuer[format!("http://{addr}").len()..].to_owned();
        let dir = self.stop().await;
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        let mut s =
            Self::start_on(listener.expect("rebind"), &data_dir, &issuer_path, |_| {}).await;
        s._dir = dir;
        s
    }

    async fn start_on(
        listener: tokio::net::TcpListener,
        data_dir: &Path,
        issuer_path: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}{issuer_path}");
        let mut config = Config::new(issuer.clone(), addr, data_dir);
        fixture_config(&mut config);
        tweak(&mut config);
        config.validate().expect("valid test config");
        let issuer = config.issuer.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(uma_host::serve(config, listener, async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let s = TestServer {
            issuer,
            addr,
            data_dir: data_dir.to_path_buf(),
            _dir: None,
            shutdown: Some(tx),
            handle: Some(handle),
            http,
        };
        // Wait until the state is open and the router answers.
        // Generous: CI runs many test binaries at once on 2 cores.
        for _ in 0..1200 {
            if let Ok(r) = s.http.get(s.url("/healthz")).send().await
                && r.status() == StatusCode::OK
            {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("server did not come up");
    }

    /// Graceful shutdown; returns the temp dir (if owned) so the data can be reopened.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server result");
        }
        self._dir.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    // --- admin API ---

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, self.url(&format!("/admin{path}")))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    // --- tokens ---

    /// POST to the token endpoint with Basic client authentication.
    pub async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A client_credentials token (PAT when `scope` is None or `uma_protection`).
    pub async fn client_token(&self, (id, secret): (&str, &str), scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let r = self.token_basic(id, secret, &form).await;
        assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `GET /authorize` with `params` (and nothing else).
    pub async fn authorize(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url("/authorize"))
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// The login page of a valid code request by `client_id` with PKCE challenge of
    /// `verifier`, plus `extra` parameters.
    pub async fn login_page(
        &self,
        client_id: &str,
        verifier: &str,
        extra: &[(&str, &str)],
    ) -> LoginForm {
        let challenge = pkce_challenge(verifier);
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        let page = self.authorize(&params).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        LoginForm::read(page).await
    }

    /// Posts the login form with `fields` (plus its `login_id`), sending the anti-CSRF cookie
    /// only if `with_cookie`.
    pub async fn submit_login(
        &self,
        form: &LoginForm,
        with_cookie: bool,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all = vec![("login_id", form.login_id.as_str())];
        all.extend_from_slice(fields);
        let mut r = self.http.post(self.url("/authorize")).form(&all);
        if with_cookie {
            r = r.header("cookie", &form.cookie);
        }
        r.send().await.unwrap()
    }

    /// Runs the login page flow for `user` at `rs` and returns the authorization code.
    pub async fn login_code(&self, rs: &str, user: (&str, &str), verifier: &str) -> String {
        let form = self
            .login_page(
                rs,
                verifier,
                &[
                    ("redirect_uri", RS_REDIRECT),
                    ("scope", "uma_protection"),
                    ("state", "st-1"),
                ],
            )
            .await;
        let r = self
            .submit_login(
                &form,
                true,
                &[
                    ("username", user.0),
                    ("password", user.1),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(loc.as_str().starts_with(RS_REDIRECT));
        let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
        q["code"].clone()
    }

    /// An owner token (scope `uma_policy`) for `user`, through the portal's login with PKCE.
    pub async fn owner_token(&self, user: (&str, &str)) -> String {
        let verifier = "w".repeat(43);
        let page = self
            .http
            .get(self.url("/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", PORTAL.0),
                ("redirect_uri", RS_REDIRECT),
                ("scope", "uma_policy"),
                ("code_challenge", &pkce_challenge(&verifier)),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let cookie = csrf_cookie(&page);
        let html = page.text().await.unwrap();
        let login_id = hidden_field(&html, "login_id");
        let r = self
            .http
            .post(self.url("/authorize"))
            .header("cookie", cookie)
            .form(&[
                ("login_id", login_id.as_str()),
                ("username", user.0),
                ("password", user.1),
                ("decision", "allow"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let code = loc
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let r = self
            .token_basic(
                PORTAL.0,
                PORTAL.1,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", RS_REDIRECT),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A PAT representing `user` at resource server `rs` (authorization code + PKCE), plus the
    /// refresh token.
    pub async fn user_pat(&self, rs: (&str, &str), user: (&str, &str)) -> (String, String) {
        let verifier = "v".repeat(43);
        let code = self.login_code(rs.0, user, &verifier).await;
        let r = self
            .token_basic(
                rs.0,
                rs.1,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", RS_REDIRECT),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        (
            v["access_token"].as_str().unwrap().to_owned(),
            v["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    // --- protection API ---

    pub async fn create_resource(&self, pat: &str, body: Value) -> String {
        let r = self
            .http
            .post(self.url("/resource_set"))
            .bearer_auth(pat)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A Protection API call with `pat`: status and JSON body (Null when empty).
    pub async fn pat_call(
        &self,
        method: reqwest::Method,
        path: &str,
        pat: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.http.request(method, self.url(path)).bearer_auth(pat);
        if let Some(b) = body {
            r = r.json(&b);
        }
        status_json(r.send().await.unwrap()).await
    }

    pub async fn permission(&self, pat: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/permission"))
            .bearer_auth(pat)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// RFC 7009 revocation by `client` (Basic authentication).
    pub async fn revoke(&self, (id, secret): (&str, &str), token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    /// Introspection authorized by `client`'s credentials (Basic authentication).
    pub async fn introspect_with_client(
        &self,
        (id, secret): (&str, &str),
        token: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    pub async fn introspect_with_pat(&self, pat: &str, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/introspect"))
            .bearer_auth(pat)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }
}

/// The login form of a page: its anti-CSRF cookie, pending-login id and HTML.
pub struct LoginForm {
    pub cookie: String,
    pub login_id: String,
    pub html: String,
}

impl LoginForm {
    pub async fn read(page: reqwest::Response) -> LoginForm {
        let cookie = csrf_cookie(&page);
        let html = page.text().await.unwrap();
        LoginForm {
            cookie,
            login_id: hidden_field(&html, "login_id"),
            html,
        }
    }
}

/// BASE64URL(SHA256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// `name=value` of the login form's anti-CSRF cookie.
pub fn csrf_cookie(r: &reqwest::Response) -> String {
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Value of `<input type="hidden" name="NAME" value="…">` in our HTML.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// Decoded JSON of a JWT's header and payload (no verification: tests verify through the
/// server or against the JWKS).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let h = B64.decode(it.next().unwrap()).unwrap();
    let p = B64.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&p).unwrap(),
    )
}

/// The `WWW-Authenticate` header as a string ("" when absent).
pub fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Status and parsed JSON body (Null when empty or not JSON).
/// `method path` with `token` as the bearer (a PAT or an owner token): status and JSON body.
/// The free-function form of [`TestServer::pat_call`] the suites call as `call(&s, …)`.
pub async fn call(
    s: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    s.pat_call(method, path, token, body).await
}

pub async fn status_json(r: reqwest::Response) -> (StatusCode, Value) {
    let s = r.status();
    let t = r.text().await.unwrap();
    (s, serde_json::from_str(&t).unwrap_or(Value::Null))
}
