//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz) and for their stable smoke run in
//! `host/tests/fuzz_smoke.rs`. Not an API: each is a thin wrapper over the real code path, with
//! the property it must keep.
//!
//! - [`Harness::token_request`]: the token endpoint, the whole way through the router (form
//!   parsing, client authentication, grant dispatch, error mapping): never a 5xx, always a JSON
//!   answer that must not be cached.
//! - [`Harness::claim_token`]: claim-token verification against a trusted issuer: nothing a
//!   fuzzer can build verifies (it holds no trusted key), and nothing panics.
//! - [`resource_description`]: the resource description parser and validator: what validates
//!   survives a round trip unchanged.
//! - [`plugin_output`]: the host's handling of a plugin's answer (see
//!   [`crate::runtime::fuzzing`]).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tower::ServiceExt;

use crate::config::{ClientConfig, TrustedIssuer};
use crate::http::AppState;
use crate::http::extract::parse_strict;
use crate::uma::resources::ResourceInput;

pub use crate::runtime::fuzzing::plugin_output;

/// The trusted issuer of the harness; the fuzzer never gets its private key.
pub const ISSUER: &str = "https://idp.fuzz.example";
/// The confidential client of the harness.
pub const CLIENT: (&str, &str) = ("fuzz-client", "fuzz-client-secret-0123");

/// A server state on a temporary data directory, and a runtime to drive it.
pub struct Harness {
    rt: tokio::runtime::Runtime,
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = crate::Config::new(
            "http://127.0.0.1:9",
            "127.0.0.1:9".parse().unwrap(),
            dir.path(),
        );
        let client = |id: &str, secret: Option<&str>| ClientConfig {
            client_id: id.into(),
            client_secret: secret.map(Into::into),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            claims_redirect_uris: vec![],
            scopes: vec!["read".into()],
            grant_types: None,
            name: None,
        };
        config.clients = vec![
            client(CLIENT.0, Some(CLIENT.1)),
            client("fuzz-public", None),
        ];
        // The issuer's public key only: an EC P-256 key nobody holds the private half of here.
        let (x, y) = public_point();
        config.trusted_issuers = vec![TrustedIssuer {
            issuer: ISSUER.into(),
            jwks: Some(
                serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
                "alg": "ES256", "use": "sig", "x": x, "y": y}]}),
            ),
            jwks_uri: None,
        }];
        config.validate().expect("valid harness config");
        let state = rt.block_on(AppState::open(config)).expect("harness state");
        Harness {
            rt,
            state,
            _dir: dir,
        }
    }

    /// POST /token with a body and headers taken from `data`.
    ///
    /// Layout: byte 0 picks the credentials (none, Basic of the next field, Basic of the real
    /// client with the next field as secret, Bearer), byte 1 the content type; then a field (one
    /// length byte), and the rest is the body.
    pub fn token_request(&self, data: &[u8]) {
        let (&auth, rest) = data.split_first().unwrap_or((&0, &[]));
        let (&ct, rest) = rest.split_first().unwrap_or((&0, &[]));
        let (&len, rest) = rest.split_first().unwrap_or((&0, &[]));
        let (field, body) = rest.split_at((len as usize).min(rest.len()));
        let mut req = Request::post("/token");
        let field_text = String::from_utf8_lossy(field);
        match auth % 4 {
            1 => {
                req = req.header(
                    header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(field)),
                )
            }
            2 => {
                let creds = format!("{}:{field_text}", CLIENT.0);
                req = req.header(
                    header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(creds)),
                );
            }
            3 => {
                if let Ok(v) = axum::http::HeaderValue::from_bytes(field) {
                    req = req.header(header::AUTHORIZATION, v);
                }
            }
            _ => {}
        }
        let content_type = match ct % 4 {
            0 => "application/x-www-form-urlencoded",
            1 => "application/x-www-form-urlencoded; charset=utf-8",
            2 => "application/json",
            _ => "text/plain",
        };
        let req = req
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_vec()))
            .unwrap();
        let app = crate::http::router(self.state.clone());
        let (status, headers, bytes) = self.rt.block_on(async move {
            let r = app.oneshot(req).await.unwrap();
            let status = r.status();
            let headers = r.headers().clone();
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            (status, headers, bytes)
        });
        assert!(!status.is_server_error(), "{status}: {bytes:?}");
        if status != StatusCode::METHOD_NOT_ALLOWED {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
            assert!(
                v.get("error").is_some() || v.get("access_token").is_some(),
                "{status}: {v}"
            );
            assert_eq!(
                headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()),
                Some(&b"no-store"[..]),
                "token responses are never cached"
            );
        }
    }

    /// Verify `data` as a claim token (ID-token format) for the harness client. If `data` is a
    /// JSON object, it is taken as the claims and signed with a key the issuer does not own, and
    /// also as HS256 keyed with the issuer's public key (the algorithm-confusion attack).
    pub fn claim_token(&self, data: &[u8]) {
        let text = String::from_utf8_lossy(data).into_owned();
        let mut tokens = vec![text.clone()];
        if let Ok(claims @ serde_json::Value::Object(_)) = serde_json::from_slice(data) {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
            let body = URL_SAFE_NO_PAD.encode(claims.to_string());
            tokens.push(format!("{header}.{body}."));
            let (x, y) = public_point();
            let public = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = Some("k1".into());
            if let Ok(key) = jsonwebtoken::EncodingKey::from_secret(public.as_bytes())
                && let Ok(t) = jsonwebtoken::encode(&h, &claims, &key)
            {
                tokens.push(t);
            }
        }
        for token in tokens {
            for format in crate::uma::claim_token::FORMATS {
                let state = self.state.clone();
                let t = token.clone();
                let verdict = self.rt.block_on(async move {
                    crate::uma::claim_token::verify(&state, format, &t, CLIENT.0).await
                });
                assert!(
                    verdict.is_err(),
                    "a token no trusted key signed verified: {token}"
                );
            }
        }
    }
}

/// Parse and validate `data` as a resource description (Fed §3.1), as POST and PUT do.
pub fn resource_description(data: &[u8]) {
    let Ok(input) = parse_strict::<ResourceInput>(data) else {
        return;
    };
    let Ok(description) = input.validate() else {
        return;
    };
    let again = serde_json::to_vec(&description).unwrap();
    let reparsed = parse_strict::<ResourceInput>(&again)
        .and_then(ResourceInput::validate)
        .unwrap_or_else(|e| panic!("a valid description does not validate again: {e}"));
    assert_eq!(
        serde_json::to_value(&reparsed).unwrap(),
        serde_json::to_value(&description).unwrap()
    );
}

/// The harness issuer's public key: a P-256 key generated once per process whose private half
/// is dropped at once, so no token can verify.
fn public_point() -> (String, String) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    static POINT: std::sync::OnceLock<Arc<(String, String)>> = std::sync::OnceLock::new();
    let p = POINT.get_or_init(|| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        Arc::new((
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..65]),
        ))
    });
    (p.0.clone(), p.1.clone())
}
