//! `GET /openapi.json`: the OpenAPI 3 description generated from the code describes every route
//! the router serves, with its methods, and real responses validate against the documented
//! schemas.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uma_host::plugins::builtin;
use uma_integration_tests::*;

/// Every route of the router (relative to the issuer), with its methods. The description, the
/// router's source and the running server are each compared with this one list, so a route
/// added to the router without documentation fails a test.
const ROUTES: &[(&str, &[&str])] = &[
    ("/healthz", &["get"]),
    ("/openapi.json", &["get"]),
    ("/.well-known/uma2-configuration", &["get"]),
    ("/.well-known/oauth-authorization-server", &["get"]),
    ("/jwks", &["get"]),
    ("/authorize", &["get", "post"]),
    ("/token", &["post"]),
    ("/revoke", &["post"]),
    ("/introspect", &["post"]),
    ("/resource_set", &["get", "post"]),
    ("/resource_set/{id}", &["get", "put", "delete"]),
    ("/permission", &["post"]),
    ("/claims", &["get", "post"]),
    ("/register", &["post"]),
    ("/admin/clients", &["get", "post"]),
    ("/admin/clients/{id}", &["get", "delete"]),
    ("/admin/users", &["get", "post"]),
    ("/admin/users/{name}", &["get", "delete"]),
    ("/admin/keys", &["get"]),
    ("/admin/keys/rotate", &["post"]),
    ("/owner/modules", &["get"]),
    ("/owner/modules/{name}", &["post"]),
    ("/owner/modules/{name}/{version}", &["get", "delete"]),
    ("/owner/policies", &["get", "post"]),
    ("/owner/policies/{id}", &["get", "delete"]),
    (
        "/owner/resources/{rs}/{id}/policy",
        &["get", "put", "delete"],
    ),
    ("/owner/resources/{rs}/{id}/dry-run", &["post"]),
    ("/owner/audit", &["get"]),
    ("/owner/approvals", &["get"]),
    ("/owner/approvals/{id}", &["get", "post"]),
    ("/owner/grants", &["get"]),
    ("/owner/grants/{jti}", &["delete"]),
];

const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

fn routes() -> BTreeMap<String, BTreeSet<String>> {
    ROUTES
        .iter()
        .map(|(p, ms)| (p.to_string(), ms.iter().map(|m| m.to_string()).collect()))
        .collect()
}

async fn fetch_doc(s: &TestServer) -> Value {
    let r = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    r.json().await.unwrap()
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_description_of_this_server() {
    let s = TestServer::start().await;
    let doc = fetch_doc(&s).await;
    // `OPENAPI_DUMP=path` keeps a copy, e.g. for tools that read the description offline.
    if let Ok(path) = std::env::var("OPENAPI_DUMP") {
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "uma-host");
    assert_eq!(doc["servers"][0]["url"], s.issuer.as_str());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (name, scheme) in [
        ("pat", "bearer"),
        ("owner_token", "bearer"),
        ("admin_token", "bearer"),
        ("client_secret_basic", "basic"),
    ] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], scheme, "{name}");
    }
    // The shared OAuth error object.
    let e = &doc["components"]["schemas"]["OAuthError"];
    assert_eq!(e["required"], json!(["error"]));
    for m in ["error", "error_description", "error_uri"] {
        assert!(e["properties"].get(m).is_some(), "{m}");
    }
    // Every reference resolves, and every security requirement names a defined scheme.
    let d = Doc(doc.clone());
    assert!(d.valid("OAuthError", &json!({"error": "invalid_request"})));
    assert!(!d.valid("OAuthError", &json!({"error": 5})));
    assert!(!d.valid("OAuthError", &json!({"error_description": "x"})));
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            for req in op["security"].as_array().into_iter().flatten() {
                for name in req.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path}: {name}");
                }
            }
        }
    }
    // The owner API's module upload takes the three documented content types.
    let upload = &doc["paths"]["/owner/modules/{name}"]["post"]["requestBody"]["content"];
    for ct in [
        "application/wasm",
        "application/octet-stream",
        "multipart/form-data",
    ] {
        assert!(upload.get(ct).is_some(), "{ct}");
    }
    // The token endpoint takes a form and documents the UMA 403 bodies.
    let token = &doc["paths"]["/token"]["post"];
    assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert_eq!(
        token["responses"]["403"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/UmaTokenError"
    );
    let forbidden = doc["components"]["schemas"]["UmaTokenError"]["oneOf"].to_string();
    for schema in [
        "NeedInfoError",
        "RequestSubmittedError",
        "RequestDeniedError",
    ] {
        assert!(forbidden.contains(schema), "{schema}: {forbidden}");
    }

    // Served under the issuer's path too.
    let dir = tempfile::tempdir().unwrap();
    let s2 = TestServer::start_in(dir.path(), "/realms/x", fixture_config).await;
    let doc2 = fetch_doc(&s2).await;
    assert_eq!(doc2["servers"][0]["url"], s2.issuer.as_str());
    assert_eq!(doc2["paths"], doc["paths"]);
    s2.stop().await;
}

#[tokio::test]
async fn the_description_lists_every_route_with_its_methods() {
    let s = TestServer::start().await;
    let doc = fetch_doc(&s).await;
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()) || *k == "head" || *k == "options")
                .cloned()
                .collect();
            (p.clone(), methods)
        })
        .collect();
    assert_eq!(documented, routes());
}

/// The `.route(…)` calls of the router's source, as (path, methods).
fn source_routes(
    file: &str,
    prefix: &str,
    consts: &BTreeMap<String, String>,
) -> Vec<(String, BTreeSet<String>)> {
    let path = format!("{}/../host/src/http/{file}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        // The call's arguments, up to the matching parenthesis.
        let mut depth = 1;
        let mut end = 0;
        for (j, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = j;
                break;
            }
        }
        let call = &rest[..end];
        let mut depth = 0;
        let comma = call
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                c == ',' && depth == 0
            })
            .unwrap()
            .0;
        let (first, handlers) = (call[..comma].trim(), &call[comma + 1..]);
        let route = if let Some(lit) = first.strip_prefix('"') {
            lit.trim_end_matches('"').to_owned()
        } else if let Some(c) = consts.get(first) {
            c.clone()
        } else if first.contains("{base}") {
            // The RFC 8414 metadata outside a non-empty issuer path: described in the info text.
            continue;
        } else if let Some(args) = first
            .strip_prefix("&format!(\"{}/{{id}}\", ")
            .and_then(|a| a.strip_suffix(')'))
        {
            format!("{}/{{id}}", consts[args])
        } else {
            panic!("{file}: cannot read the route path {first}");
        };
        let methods = METHODS
            .iter()
            .filter(|m| {
                handlers.match_indices(&format!("{m}(")).any(|(k, _)| {
                    k == 0 || {
                        let b = handlers.as_bytes()[k - 1];
                        !(b.is_ascii_alphanumeric() || b == b'_')
                    }
                })
            })
            .map(|m| m.to_string())
            .collect();
        out.push((format!("{prefix}{route}"), methods));
    }
    out
}

/// `pub const NAME: &str = "…";` of a source file, as `qualifier::NAME` → value.
fn consts(file: &str, qualifier: &str) -> BTreeMap<String, String> {
    let path = format!("{}/../host/src/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = l.split_once(": &str = \"")?;
            Some((
                format!("{qualifier}::{name}"),
                rest.strip_suffix("\";")?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn the_list_has_every_route_of_the_router_source() {
    let mut c = consts("uma/discovery.rs", "paths");
    c.extend(consts("http/openapi.rs", "openapi"));
    assert!(c.contains_key("paths::TOKEN") && c.contains_key("openapi::PATH"));
    let mut found = BTreeMap::<String, BTreeSet<String>>::new();
    for (file, prefix) in [
        ("mod.rs", ""),
        ("admin.rs", "/admin"),
        ("owner.rs", "/owner"),
    ] {
        let rs = source_routes(file, prefix, &c);
        assert!(!rs.is_empty(), "{file}");
        for (p, ms) in rs {
            assert!(!ms.is_empty(), "{p}: no method read");
            found.entry(p).or_default().extend(ms);
        }
    }
    assert_eq!(found, routes());
}

fn concrete(path: &str) -> String {
    path.replace("{version}", "1")
        .replace("{name}", "x")
        .replace("{id}", "x")
        .replace("{rs}", "rs1")
        .replace("{jti}", "x")
}

#[tokio::test]
async fn the_server_answers_exactly_the_listed_methods() {
    let s = TestServer::start().await;
    let d = Doc(fetch_doc(&s).await);
    let unrouted = s.http.get(s.url("/no/such/route")).send().await.unwrap();
    let (st, fallback) = status_json(unrouted).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    for (path, methods) in ROUTES {
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let r = s
                .http
                .request(method, s.url(&concrete(path)))
                .send()
                .await
                .unwrap();
            let status = r.status();
            if methods.contains(m) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
                // Whatever a request without credentials or body gets is documented.
                let body = d.answer(m, path, r, None).await;
                assert!(
                    !(status == StatusCode::NOT_FOUND && body == fallback),
                    "{m} {path} is not routed"
                );
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real responses against their schemas

struct Doc(Value);

impl Doc {
    /// Whether `v` is valid under the component schema `name`.
    fn valid(&self, name: &str, v: &Value) -> bool {
        let mut root = json!({ "$ref": format!("#/components/schemas/{name}") });
        root["components"] = self.0["components"].clone();
        jsonschema::validator_for(&root).unwrap().is_valid(v)
    }

    /// Validates `body` against the schema documented for (`path`, `method`, `status`) in
    /// content type `ct`.
    fn check(&self, method: &str, path: &str, status: StatusCode, ct: &str, body: &Value) {
        let code = status.as_u16().to_string();
        let response = &self.0["paths"][path][method]["responses"][&code];
        assert!(
            response.is_object(),
            "{method} {path}: status {code} is not documented ({body})"
        );
        let schema = &response["content"][ct]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {code}: no {ct} schema documented"
        );
        let mut root = json!({ "allOf": [schema] });
        root["components"] = self.0["components"].clone();
        let v = jsonschema::validator_for(&root).expect("a valid JSON schema");
        let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {code}: {body} does not match {schema}: {errors:?}"
        );
    }

    /// Sends `req`, checks the answer has status `want` and validates its body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        req: reqwest::RequestBuilder,
        want: StatusCode,
    ) -> Value {
        self.answer(method, path, req.send().await.unwrap(), Some(want))
            .await
    }

    /// Checks that the status of `r` is documented (and is `want`, if given), and validates
    /// its body: JSON against the schema, HTML and empty bodies as documented.
    async fn answer(
        &self,
        method: &str,
        path: &str,
        r: reqwest::Response,
        want: Option<StatusCode>,
    ) -> Value {
        let status = r.status();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
        let text = r.text().await.unwrap();
        if let Some(want) = want {
            assert_eq!(status, want, "{method} {path}: {text}");
        }
        if text.is_empty() {
            let code = status.as_u16().to_string();
            let response = &self.0["paths"][path][method]["responses"][&code];
            assert!(response.is_object(), "{method} {path}: {code} undocumented");
            return Value::Null;
        }
        let ct = ct.unwrap();
        let code = status.as_u16().to_string();
        if ct == "text/html" {
            let content = &self.0["paths"][path][method]["responses"][&code]["content"];
            assert!(
                content.get("text/html").is_some(),
                "{method} {path} {code}: HTML is not documented"
            );
            return Value::String(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap();
        self.check(method, path, status, &ct, &body);
        body
    }
}

#[tokio::test]
async fn real_responses_match_their_documented_schemas() {
    let s = TestServer::start().await;
    let d = Doc(fetch_doc(&s).await);
    let h = &s.http;
    let ok = StatusCode::OK;

    // Meta and discovery.
    d.call("get", "/healthz", h.get(s.url("/healthz")), ok)
        .await;
    d.call("get", "/openapi.json", h.get(s.url("/openapi.json")), ok)
        .await;
    for p in [
        "/.well-known/uma2-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let v = d.call("get", p, h.get(s.url(p)), ok).await;
        assert_eq!(v["issuer"], s.issuer.as_str());
    }
    d.call("get", "/jwks", h.get(s.url("/jwks")), ok).await;

    // Browser pages: HTML, redirects, and the JSON of a malformed form.
    let verifier = "p".repeat(43);
    let challenge = pkce_challenge(&verifier);
    let authorize = [
        ("response_type", "code"),
        ("client_id", RS1.0),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let page = h
        .get(s.url("/authorize"))
        .query(&authorize)
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    let login_id = hidden_field(&html, "login_id");
    d.call(
        "get",
        "/authorize",
        h.get(s.url("/authorize")).query(&authorize),
        ok,
    )
    .await;
    d.call(
        "get",
        "/authorize",
        h.get(s.url("/authorize?client_id=nobody")),
        StatusCode::BAD_REQUEST,
    )
    .await;
    d.call(
        "post",
        "/authorize",
        h.post(s.url("/authorize"))
            .form(&[("login_id", login_id.as_str()), ("decision", "allow")]),
        StatusCode::FORBIDDEN,
    )
    .await;
    d.call(
        "post",
        "/authorize",
        h.post(s.url("/authorize")).body("login_id=x"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let page = h
        .get(s.url("/authorize"))
        .query(&authorize)
        .send()
        .await
        .unwrap();
    let cookie2 = csrf_cookie(&page);
    let login_id = hidden_field(&page.text().await.unwrap(), "login_id");
    d.call(
        "post",
        "/authorize",
        h.post(s.url("/authorize"))
            .header("cookie", cookie2)
            .form(&[
                ("login_id", login_id.as_str()),
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("decision", "allow"),
            ]),
        StatusCode::SEE_OTHER,
    )
    .await;
    d.call(
        "get",
        "/claims",
        h.get(s.url("/claims"))
            .query(&[("client_id", C1.0), ("ticket", "nope")]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    d.call(
        "post",
        "/claims",
        h.post(s.url("/claims"))
            .form(&[("session", "nope"), ("csrf", "nope")]),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Token endpoint: success and errors.
    let pat_form = [("grant_type", "client_credentials")];
    let v = d
        .call(
            "post",
            "/token",
            h.post(s.url("/token"))
                .basic_auth(RS1.0, Some(RS1.1))
                .form(&pat_form),
            ok,
        )
        .await;
    let rs_pat = v["access_token"].as_str().unwrap().to_owned();
    d.call(
        "post",
        "/token",
        h.post(s.url("/token"))
            .basic_auth(RS1.0, Some("wrong-secret-0123456789"))
            .form(&pat_form),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let v = d
        .call(
            "post",
            "/token",
            h.post(s.url("/token")).form(&[
                ("grant_type", "password"),
                ("client_id", C1.0),
                ("client_secret", C1.1),
            ]),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(v["error"], "unsupported_grant_type");

    // Protection API.
    let (pat, refresh) = s.user_pat(RS1, ALICE).await;
    let rid = d
        .call(
            "post",
            "/resource_set",
            h.post(s.url("/resource_set")).bearer_auth(&pat).json(
                &json!({"name": "Lab report", "name#fr": "Analyse", "type": "lab",
                    "resource_scopes": ["view", "edit"]}),
            ),
            StatusCode::CREATED,
        )
        .await["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = d
        .call(
            "get",
            "/resource_set/{id}",
            h.get(s.url(&format!("/resource_set/{rid}")))
                .bearer_auth(&pat),
            ok,
        )
        .await;
    assert_eq!(v["name#fr"], "Analyse");
    d.call(
        "put",
        "/resource_set/{id}",
        h.put(s.url(&format!("/resource_set/{rid}")))
            .bearer_auth(&pat)
            .json(&json!({"name": "Lab report", "resource_scopes": ["view", "edit"]})),
        ok,
    )
    .await;
    d.call(
        "get",
        "/resource_set",
        h.get(s.url("/resource_set?max=10")).bearer_auth(&pat),
        ok,
    )
    .await;
    d.call(
        "get",
        "/resource_set/{id}",
        h.get(s.url("/resource_set/nope")).bearer_auth(&pat),
        StatusCode::NOT_FOUND,
    )
    .await;
    d.call(
        "get",
        "/resource_set",
        h.get(s.url("/resource_set")),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    d.call(
        "get",
        "/resource_set",
        h.get(s.url("/resource_set")).bearer_auth("garbage"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    d.call(
        "post",
        "/permission",
        h.post(s.url("/permission"))
            .bearer_auth(&pat)
            .json(&json!([{"resource_id": "nope", "resource_scopes": ["view"]}])),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Introspection: active and inactive, by PAT and by client credentials.
    let v = d
        .call(
            "post",
            "/introspect",
            h.post(s.url("/introspect"))
                .bearer_auth(&pat)
                .form(&[("token", refresh.as_str())]),
            ok,
        )
        .await;
    assert_eq!(v["active"], true);
    let v = d
        .call(
            "post",
            "/introspect",
            h.post(s.url("/introspect"))
                .basic_auth(RS1.0, Some(RS1.1))
                .form(&[("token", "garbage")]),
            ok,
        )
        .await;
    assert_eq!(v, json!({"active": false}));

    // Owner API with the built-in library and an uploaded module.
    let owner = s.owner_token(ALICE).await;
    let v = d
        .call(
            "get",
            "/owner/modules",
            h.get(s.url("/owner/modules")).bearer_auth(&owner),
            ok,
        )
        .await;
    assert!(!v["builtin"].as_array().unwrap().is_empty());
    let wasm = builtin("owner-approval").unwrap().bytes;
    d.call(
        "post",
        "/owner/modules/{name}",
        h.post(s.url("/owner/modules/approval"))
            .bearer_auth(&owner)
            .header("content-type", "application/wasm")
            .body(wasm.to_vec()),
        StatusCode::CREATED,
    )
    .await;
    let boundary = "----openapi-test-boundary";
    let mut multipart = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"module\"; filename=\"m.wasm\"\r\n\
         content-type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(wasm);
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let v = d
        .call(
            "post",
            "/owner/modules/{name}",
            h.post(s.url("/owner/modules/approval"))
                .bearer_auth(&owner)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(multipart),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(v["version"], 2);
    d.call(
        "get",
        "/owner/modules/{name}/{version}",
        h.get(s.url("/owner/modules/approval/2"))
            .bearer_auth(&owner),
        ok,
    )
    .await;
    d.call(
        "post",
        "/owner/modules/{name}",
        h.post(s.url("/owner/modules/broken"))
            .bearer_auth(&owner)
            .header("content-type", "application/wasm")
            .body(b"\0asm not really".to_vec()),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let approval = d
        .call(
            "post",
            "/owner/policies",
            h.post(s.url("/owner/policies"))
                .bearer_auth(&owner)
                .json(&json!({
                "name": "ask me", "module": {"library": "owned", "name": "approval", "version": 1},
                "config": {"message": "the insurer asks"}})),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let email = d
        .call(
            "post",
            "/owner/policies",
            h.post(s.url("/owner/policies"))
                .bearer_auth(&owner)
                .json(&json!({
                "name": "clinic e-mail", "module": {"library": "builtin", "name": "claim-match"},
                "config": {"claim": "email", "domain": "clinic.example"}})),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    d.call(
        "get",
        "/owner/policies",
        h.get(s.url("/owner/policies")).bearer_auth(&owner),
        ok,
    )
    .await;
    d.call(
        "get",
        "/owner/policies/{id}",
        h.get(s.url(&format!("/owner/policies/{approval}")))
            .bearer_auth(&owner),
        ok,
    )
    .await;
    let binding = format!("/owner/resources/rs1/{rid}/policy");
    // `view` needs a clinic e-mail; `edit` needs the owner's approval.
    d.call(
        "put",
        "/owner/resources/{rs}/{id}/policy",
        h.put(s.url(&binding)).bearer_auth(&owner).json(&json!({
            "strategy": "affirmative",
            "bindings": [{"policy": email, "scopes": ["view"]}, {"policy": approval, "scopes": ["edit"]}]})),
        ok,
    )
    .await;
    d.call(
        "get",
        "/owner/resources/{rs}/{id}/policy",
        h.get(s.url(&binding)).bearer_auth(&owner),
        ok,
    )
    .await;
    let dry = format!("/owner/resources/rs1/{rid}/dry-run");
    for (claims, decision) in [
        (json!([]), "need-info"),
        (
            json!([{"name": "email", "value": "dr@clinic.example",
                "provenance": {"kind": "verified-token", "issuer": "https://idp", "format": "jwt"}}]),
            "permit",
        ),
    ] {
        let v = d
            .call(
                "post",
                "/owner/resources/{rs}/{id}/dry-run",
                h.post(s.url(&dry))
                    .bearer_auth(&owner)
                    .json(&json!({"client_id": C1.0, "scopes": ["view"], "claims": claims})),
                ok,
            )
            .await;
        assert_eq!(v["decision"], decision, "{v}");
    }
    let v = d
        .call(
            "post",
            "/owner/resources/{rs}/{id}/dry-run",
            h.post(s.url(&dry))
                .bearer_auth(&owner)
                .json(&json!({"client_id": C1.0, "scopes": ["edit"]})),
            ok,
        )
        .await;
    assert_eq!(v["decision"], "defer-to-owner", "{v}");

    // The UMA grant: need_info, request_submitted, then an RPT after the owner approves.
    let uma = "urn:ietf:params:oauth:grant-type:uma-ticket";
    let ticket = |scope: &'static str| {
        let s = &s;
        let d = &d;
        let pat = pat.clone();
        let rid = rid.clone();
        async move {
            d.call(
                "post",
                "/permission",
                s.http
                    .post(s.url("/permission"))
                    .bearer_auth(&pat)
                    .json(&json!({"resource_id": rid, "resource_scopes": [scope]})),
                StatusCode::CREATED,
            )
            .await["ticket"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let t = ticket("view").await;
    let v = d
        .call(
            "post",
            "/token",
            h.post(s.url("/token"))
                .basic_auth(C1.0, Some(C1.1))
                .form(&[("grant_type", uma), ("ticket", &t)]),
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(v["error"], "need_info", "{v}");
    let t = ticket("edit").await;
    let v = d
        .call(
            "post",
            "/token",
            h.post(s.url("/token"))
                .basic_auth(C1.0, Some(C1.1))
                .form(&[("grant_type", uma), ("ticket", &t)]),
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(v["error"], "request_submitted", "{v}");
    let polled = v["ticket"].as_str().unwrap().to_owned();
    let list = d
        .call(
            "get",
            "/owner/approvals",
            h.get(s.url("/owner/approvals")).bearer_auth(&owner),
            ok,
        )
        .await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    d.call(
        "get",
        "/owner/approvals/{id}",
        h.get(s.url(&format!("/owner/approvals/{id}")))
            .bearer_auth(&owner),
        ok,
    )
    .await;
    let v = d
        .call(
            "post",
            "/owner/approvals/{id}",
            h.post(s.url(&format!("/owner/approvals/{id}")))
                .bearer_auth(&owner)
                .json(&json!({"decision": "approve"})),
            ok,
        )
        .await;
    assert_eq!(v["status"], "approved");
    let v = d
        .call(
            "post",
            "/token",
            h.post(s.url("/token"))
                .basic_auth(C1.0, Some(C1.1))
                .form(&[("grant_type", uma), ("ticket", &polled)]),
            ok,
        )
        .await;
    let rpt = v["access_token"].as_str().unwrap().to_owned();
    let v = d
        .call(
            "post",
            "/introspect",
            h.post(s.url("/introspect"))
                .bearer_auth(&pat)
                .form(&[("token", rpt.as_str())]),
            ok,
        )
        .await;
    assert!(v["permissions"].is_array(), "{v}");
    let t = ticket("view").await;
    let v = d
        .call(
            "post",
            "/token",
            h.post(s.url("/token"))
                .basic_auth(RS2.0, Some(RS2.1))
                .form(&[("grant_type", uma), ("ticket", &t), ("scope", "nonsense")]),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(v["error"].is_string());

    // Audit and grants.
    let v = d
        .call(
            "get",
            "/owner/audit",
            h.get(s.url("/owner/audit?limit=10")).bearer_auth(&owner),
            ok,
        )
        .await;
    assert!(!v["entries"].as_array().unwrap().is_empty(), "{v}");
    let v = d
        .call(
            "get",
            "/owner/grants",
            h.get(s.url("/owner/grants")).bearer_auth(&owner),
            ok,
        )
        .await;
    let jti = v[0]["jti"].as_str().unwrap().to_owned();
    d.call(
        "delete",
        "/owner/grants/{jti}",
        h.delete(s.url(&format!("/owner/grants/{jti}")))
            .bearer_auth(&owner),
        StatusCode::NO_CONTENT,
    )
    .await;
    // A resource server's PAT for a user may not create policies.
    d.call(
        "post",
        "/owner/policies",
        h.post(s.url("/owner/policies"))
            .bearer_auth(&pat)
            .json(&json!({
            "name": "x", "module": {"library": "builtin", "name": "allow-list"}})),
        StatusCode::FORBIDDEN,
    )
    .await;
    d.call(
        "delete",
        "/owner/resources/{rs}/{id}/policy",
        h.delete(s.url(&binding)).bearer_auth(&owner),
        StatusCode::NO_CONTENT,
    )
    .await;

    d.call(
        "delete",
        "/resource_set/{id}",
        h.delete(s.url(&format!("/resource_set/{rid}")))
            .bearer_auth(&pat),
        StatusCode::NO_CONTENT,
    )
    .await;

    // Revocation (of the refresh token's whole grant, the PAT included).
    d.call(
        "post",
        "/revoke",
        h.post(s.url("/revoke"))
            .basic_auth(RS1.0, Some(RS1.1))
            .form(&[("token", refresh.as_str())]),
        ok,
    )
    .await;

    // Registration and the admin API.
    d.call(
        "post",
        "/register",
        h.post(s.url("/register"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
            "redirect_uris": ["https://app.example/cb"], "client_name": "App", "scope": "read"})),
        StatusCode::CREATED,
    )
    .await;
    d.call(
        "post",
        "/register",
        h.post(s.url("/register"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"token_endpoint_auth_method": "private_key_jwt"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let admin = |m: Method, p: &str| h.request(m, s.url(p)).bearer_auth(ADMIN_TOKEN);
    d.call(
        "get",
        "/admin/clients",
        admin(Method::GET, "/admin/clients"),
        ok,
    )
    .await;
    d.call(
        "post",
        "/admin/clients",
        admin(Method::POST, "/admin/clients")
            .json(&json!({"client_id": "app2", "scopes": ["read"]})),
        StatusCode::CREATED,
    )
    .await;
    d.call(
        "get",
        "/admin/clients/{id}",
        admin(Method::GET, "/admin/clients/app2"),
        ok,
    )
    .await;
    d.call(
        "delete",
        "/admin/clients/{id}",
        admin(Method::DELETE, "/admin/clients/app2"),
        StatusCode::NO_CONTENT,
    )
    .await;
    d.call(
        "get",
        "/admin/clients/{id}",
        admin(Method::GET, "/admin/clients/app2"),
        StatusCode::NOT_FOUND,
    )
    .await;
    d.call(
        "post",
        "/admin/users",
        admin(Method::POST, "/admin/users").json(&json!({"username": "carol",
            "password": "carol-password", "claims": {"email": "carol@example.com"}})),
        StatusCode::CREATED,
    )
    .await;
    d.call(
        "get",
        "/admin/users",
        admin(Method::GET, "/admin/users"),
        ok,
    )
    .await;
    d.call(
        "get",
        "/admin/users/{name}",
        admin(Method::GET, "/admin/users/carol"),
        ok,
    )
    .await;
    d.call(
        "delete",
        "/admin/users/{name}",
        admin(Method::DELETE, "/admin/users/carol"),
        StatusCode::NO_CONTENT,
    )
    .await;
    d.call(
        "post",
        "/admin/keys/rotate",
        admin(Method::POST, "/admin/keys/rotate"),
        ok,
    )
    .await;
    let keys = d
        .call("get", "/admin/keys", admin(Method::GET, "/admin/keys"), ok)
        .await;
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["retired_at"].is_u64())
    );
    d.call(
        "get",
        "/admin/keys",
        h.get(s.url("/admin/keys"))
            .bearer_auth("not-the-admin-token"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let _ = rs_pat;
}

/// The schemas written next to the HTTP code for the runtime's types accept what the runtime
/// really serializes.
#[tokio::test]
async fn runtime_types_match_their_documented_schemas() {
    use uma_host::runtime::{Decision, Failure, LogLine, Provenance, RequiredClaim, World};
    let s = TestServer::start().await;
    let doc = fetch_doc(&s).await;
    let check = |name: &str, v: Value| {
        let mut root = json!({ "$ref": format!("#/components/schemas/{name}") });
        root["components"] = doc["components"].clone();
        let validator = jsonschema::validator_for(&root).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {v}: {errors:?}");
    };
    let rc = RequiredClaim {
        name: "email".into(),
        friendly_name: Some("E-mail".into()),
        claim_type: None,
        claim_token_formats: vec!["jwt".into()],
        issuers: vec![],
    };
    for d in [
        Decision::Permit {
            scopes: vec!["view".into()],
        },
        Decision::Deny {
            reason: "no".into(),
        },
        Decision::NeedInfo {
            required: vec![rc.clone()],
        },
        Decision::DeferToOwner {
            message: "ask".into(),
        },
    ] {
        check("Decision", serde_json::to_value(d).unwrap());
    }
    for f in [
        Failure::OutOfFuel { fuel: 1 },
        Failure::Deadline { millis: 1 },
        Failure::MemoryLimit { limit_bytes: 1 },
        Failure::TableLimit { limit_elements: 1 },
        Failure::StackOverflow,
        Failure::OutputTooLarge {
            bytes: 2,
            limit_bytes: 1,
        },
        Failure::Trap {
            message: "t".into(),
        },
        Failure::InvalidOutput {
            message: "o".into(),
        },
        Failure::Instantiation {
            message: "i".into(),
        },
    ] {
        check("Failure", serde_json::to_value(f).unwrap());
    }
    for p in [
        Provenance::Server,
        Provenance::VerifiedToken {
            issuer: "i".into(),
            format: "jwt".into(),
        },
        Provenance::Interactive {
            source: "login".into(),
        },
        Provenance::Pct,
        Provenance::ResourceServer,
    ] {
        check("Provenance", serde_json::to_value(p).unwrap());
    }
    for w in [World::Policy, World::Claims] {
        check("World", serde_json::to_value(w).unwrap());
    }
    check("RequiredClaim", serde_json::to_value(rc).unwrap());
    check(
        "LogLine",
        serde_json::to_value(LogLine {
            level: "info".into(),
            message: "m".into(),
            fields: vec![("k".into(), "v".into())],
        })
        .unwrap(),
    );
}
