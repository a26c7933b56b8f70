//! The pieces of the UMA grant, each through the crate's real public functions against a real
//! sled store in a temporary directory (the same `AppState::open` the server runs):
//!
//! - `client_auth/*`: authenticating a confidential client by `client_id`/secret with
//!   [`client_auth::authenticate`] (`client_secret_basic`: header parsing, the client's store
//!   read and the HMAC-SHA256 check), on success and with a wrong secret; `hmac-verify` is the
//!   keyed hash alone ([`SecretHasher::verify`]).
//! - `ticket/*`: permission tickets issued with [`permission::request_ticket`] (as the
//!   permission endpoint does: a one-permission ticket is sealed, no store write) and consumed
//!   with [`ticket::take`] (as the token endpoint does: the ticket's spending is a durable
//!   write). See each function's doc for which store flushes (fsync) are inside the timing.
//! - `rpt/*`: building RPT claims ([`AccessTokenClaims::rpt`]) and signing them as a JWS ES256
//!   with the server's key set ([`AccessTokenClaims::sign`] → [`uma_host::keys::Keys::sign`]).
//! - `introspect/*`: [`access_token::validate`] (signature or verified-token cache, then the
//!   revocation lookups) and [`introspect::introspect`] (validate plus the RFC 7662 response),
//!   each with a cache hit (the same token every iteration) and a miss (a fresh token every
//!   iteration); plus [`pat::authenticate`] of a cached PAT, the other half of an
//!   introspection request.
//!
//! Policy evaluation per built-in plugin is in `benches/runtime.rs`, not here.
//!
//! Every benchmark checks once, outside the timing, that its operation really succeeded.
//!
//! `cargo bench -p uma-host --bench grant_pieces`
//! (quicker: `cargo bench -p uma-host --bench grant_pieces -- --warm-up-time 1 --measurement-time 3`)

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::Runtime;
use uma_host::config::{ClientConfig, Config};
use uma_host::error::Error;
use uma_host::http::AppState;
use uma_host::http::extract::FormParams;
use uma_host::oauth::UMA_PROTECTION;
use uma_host::oauth::access_token::{self, AccessTokenClaims};
use uma_host::oauth::client_auth::{self, AuthMethod};
use uma_host::oauth::clients::SecretHasher;
use uma_host::store::{self, Owner, Permission};
use uma_host::uma::introspect::{self, Caller};
use uma_host::uma::pat::{self, Pat};
use uma_host::uma::permission::{self, PermissionInput};
use uma_host::uma::resources;
use uma_host::uma::ticket;

/// The resource server (and, through its own PAT, the resource owner).
const RS: (&str, &str) = ("bench-rs", "bench-rs-secret-0123456789abcdef");
/// The client asking for access.
const CLIENT: (&str, &str) = ("bench-client", "bench-client-secret-0123456789abc");

/// A server state on a temporary data directory, with a registered resource and the resource
/// server's PAT.
struct Fixture {
    rt: Runtime,
    state: AppState,
    pat: Pat,
    resource_id: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config::new(
            "http://127.0.0.1:9",
            "127.0.0.1:9".parse().unwrap(),
            dir.path(),
        );
        config.clients = [RS, CLIENT]
            .iter()
            .map(|(id, secret)| ClientConfig {
                client_id: (*id).into(),
                client_secret: Some((*secret).into()),
                redirect_uris: vec![],
                claims_redirect_uris: vec![],
                scopes: vec![],
                grant_types: None,
                name: None,
            })
            .collect();
        config.validate().expect("valid config");
        let state = rt.block_on(AppState::open(config)).expect("server state");
        // The PAT the resource server gets for itself with client credentials.
        let pat_token = AccessTokenClaims::new(
            &state,
            &Owner::Client(RS.0.into()),
            RS.0,
            &state.config.issuer,
            &[UMA_PROTECTION.to_owned()],
            3600,
        )
        .unwrap()
        .sign(&state)
        .unwrap();
        let pat = rt
            .block_on(pat::authenticate(&state, &pat_token))
            .expect("PAT");
        let input = serde_json::from_value(json!({
            "name": "Holiday album",
            "resource_scopes": ["view", "edit"],
        }))
        .unwrap();
        let resource_id = rt
            .block_on(resources::create(&state, &pat, input))
            .expect("resource registered");
        Fixture {
            rt,
            state,
            pat,
            resource_id,
            _dir: dir,
        }
    }

    fn permissions(&self) -> Vec<Permission> {
        vec![Permission {
            resource_id: self.resource_id.clone(),
            resource_scopes: vec!["view".into()],
        }]
    }

    /// Issues a ticket through the permission endpoint's function (sealed: nothing written).
    async fn issue_ticket(&self) -> String {
        let asked = vec![PermissionInput {
            resource_id: self.resource_id.clone(),
            resource_scopes: vec!["view".into()],
        }];
        permission::request_ticket(&self.state, &self.pat, asked)
            .await
            .expect("ticket issued")
    }

    /// Consumes a ticket as the token endpoint does: inside `store::one_sync`, which flushes
    /// once at the end because the take recorded the ticket as spent.
    async fn take_ticket(&self, ticket: &str) -> Option<store::Ticket> {
        store::one_sync(&*self.state.store, ticket::take(&self.state, ticket))
            .await
            .expect("store")
    }

    /// The claims of an RPT as the grant builds them: `bench-client` for the resource server's
    /// own resources.
    fn rpt_claims(&self) -> AccessTokenClaims {
        AccessTokenClaims::rpt(
            &self.state,
            &Owner::Client(CLIENT.0.into()),
            CLIENT.0,
            &Owner::Client(RS.0.into()),
            RS.0,
            self.permissions(),
            self.state.config.rpt_lifetime_secs,
        )
        .unwrap()
    }

    fn rpt(&self) -> String {
        self.rpt_claims().sign(&self.state).unwrap()
    }
}

fn basic(id: &str, secret: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {creds}")).unwrap(),
    );
    h
}

/// Client authentication: `client_secret_basic` through `client_auth::authenticate` (the token,
/// revocation and introspection endpoints' path), and the HMAC check alone.
fn client_authentication(c: &mut Criterion, f: &Fixture) {
    let state = &f.state;
    let params = FormParams::parse(
        b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Auma-ticket&ticket=t",
    )
    .unwrap();
    let good = basic(CLIENT.0, CLIENT.1);
    let bad = basic(CLIENT.0, "bench-client-secret-0123456789abX");
    let auth = |h: &HeaderMap| f.rt.block_on(client_auth::authenticate(state, h, &params));

    match auth(&good) {
        Ok(Some((client, AuthMethod::ClientSecretBasic))) => assert_eq!(client.client_id, CLIENT.0),
        other => panic!("the right secret must authenticate: {other:?}"),
    }
    assert!(
        matches!(auth(&bad), Err(Error::InvalidClient { basic: true })),
        "a wrong secret must be refused"
    );

    let mut group = c.benchmark_group("client_auth");
    group.bench_function("basic/success", |b| b.iter(|| auth(&good)));
    group.bench_function("basic/wrong-secret", |b| b.iter(|| auth(&bad)));

    let hasher: &SecretHasher = &state.secrets;
    let stored =
        f.rt.block_on(state.store.get_client(CLIENT.0))
            .unwrap()
            .unwrap()
            .secret_hash
            .unwrap();
    assert!(hasher.verify(CLIENT.1, &stored));
    assert!(!hasher.verify("bench-client-secret-0123456789abX", &stored));
    group.bench_function("hmac-verify", |b| {
        b.iter(|| hasher.verify(std::hint::black_box(CLIENT.1), &stored))
    });
    group.finish();
}

/// Permission tickets. `take/with-flush` consumes a ticket as the token endpoint does, inside
/// `store::one_sync`: the flush (group commit: write + `sync_file_range` of sled's log) that the
/// consumption makes necessary **is included** — in a real grant that one flush also covers the
/// audit entry and the RPT record. `take/flush-deferred` times only the take itself inside an
/// enclosing `one_sync` whose one flush falls outside the timing, so the difference is the
/// flush. Issuing (the permission endpoint; a sealed ticket, so no write and no flush) is setup
/// in both; `issue+take/one-flush` times both endpoints' work together.
fn tickets(c: &mut Criterion, f: &Fixture) {
    let state = &f.state;
    // Once, untimed: the taken ticket is the issued one, and it is single use.
    let t = f.rt.block_on(f.issue_ticket());
    let taken = f.rt.block_on(f.take_ticket(&t)).expect("the issued ticket");
    assert_eq!(taken.permissions, f.permissions());
    assert_eq!(taken.owner, Owner::Client(RS.0.into()));
    assert_eq!(taken.resource_server, RS.0);
    assert!(f.rt.block_on(f.take_ticket(&t)).is_none(), "single use");

    let mut group = c.benchmark_group("ticket");
    group.bench_function("take/with-flush", |b| {
        b.iter_batched(
            || f.rt.block_on(f.issue_ticket()),
            |t| {
                let taken = f.rt.block_on(f.take_ticket(&t));
                debug_assert!(taken.is_some());
                taken
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("take/flush-deferred", |b| {
        b.iter_custom(|iters| {
            // Issue `iters` tickets under one flush (untimed), then take them all inside one
            // `one_sync`, timing only the takes.
            let issued: Vec<String> = f.rt.block_on(async {
                store::one_sync(&*state.store, async {
                    let mut v = Vec::with_capacity(iters as usize);
                    for _ in 0..iters {
                        v.push(f.issue_ticket().await);
                    }
                    Ok(v)
                })
                .await
                .unwrap()
            });
            f.rt.block_on(store::one_sync(&*state.store, async {
                let mut elapsed = Duration::ZERO;
                let mut found = 0u64;
                for t in &issued {
                    let start = Instant::now();
                    let taken = ticket::take(state, t).await?;
                    elapsed += start.elapsed();
                    found += u64::from(taken.is_some());
                }
                assert_eq!(found, iters, "every issued ticket was taken");
                Ok(elapsed)
            }))
            .unwrap()
        })
    });
    group.bench_function("issue+take/one-flush", |b| {
        b.iter(|| {
            f.rt.block_on(async {
                let t = f.issue_ticket().await;
                let taken = f.take_ticket(&t).await;
                debug_assert!(taken.is_some());
                taken
            })
        })
    });
    group.finish();
}

/// RPT signing: the claims the grant builds and their ES256 JWS with the server's active key.
/// No store write: the grant's `record_rpt` comes after signing and, inside the token endpoint's
/// `one_sync`, shares the request's one flush (see `tickets`).
fn rpt_signing(c: &mut Criterion, f: &Fixture) {
    let state = &f.state;
    let claims = f.rpt_claims();
    let token = claims.sign(state).unwrap();
    // Once, untimed: the signature verifies with the published key set and carries the claims.
    let verified: AccessTokenClaims = state
        .keys
        .verify(&token, &state.config.issuer)
        .expect("the RPT verifies");
    assert_eq!(verified.jti, claims.jti);
    assert_eq!(verified.permissions, Some(f.permissions()));
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert!(
        state.keys.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str() && k["alg"] == "ES256"),
        "signed with a published ES256 key"
    );

    let mut group = c.benchmark_group("rpt");
    group.bench_function("sign", |b| b.iter(|| claims.sign(state).unwrap()));
    group.bench_function("claims+sign", |b| b.iter(|| f.rpt()));
    group.finish();
}

/// Introspection: `validate` (verified-token cache, then the `jti` and family revocation
/// lookups) and `introspect` (the same plus the RFC 7662 JSON response), each with a cache hit
/// and a cache miss (a fresh RPT signed in the untimed setup of every iteration; a miss pays the
/// ECDSA verification and fills the cache). `pat-authenticate` is the PAT check an
/// introspection request makes first (cached, plus two client lookups).
fn introspection(c: &mut Criterion, f: &Fixture) {
    let state = &f.state;
    let caller = Caller::Pat(f.pat.clone());
    let form = |t: &str| FormParams::parse(format!("token={t}").as_bytes()).unwrap();
    let validate = |t: &str| {
        f.rt.block_on(access_token::validate(state, t))
            .expect("store")
    };
    let introspect = |p: &FormParams| {
        f.rt.block_on(introspect::introspect(state, &caller, p))
            .expect("store")
    };

    // Once, untimed: a fresh token validates (miss), again (hit), and introspects as active
    // with its permissions.
    let claims = f.rpt_claims();
    let token = claims.sign(state).unwrap();
    for _ in 0..2 {
        let v = validate(&token).expect("the RPT is valid");
        assert_eq!(v.jti, claims.jti);
        assert_eq!(v.permissions, Some(f.permissions()));
    }
    let params = form(&token);
    let expected = json!([{ "resource_id": f.resource_id, "resource_scopes": ["view"] }]);
    for _ in 0..2 {
        let v = introspect(&params);
        assert_eq!(v["active"], true, "{v}");
        assert_eq!(v["jti"], claims.jti.as_str());
        assert_eq!(v["permissions"], expected);
    }
    let fresh = form(&f.rpt());
    assert_eq!(introspect(&fresh)["active"], true);
    assert!(
        validate("eyJhbGciOiJFUzI1NiJ9.e30.AAAA").is_err(),
        "garbage is not valid"
    );
    let pat_token = f.pat.claims.clone().sign(state).unwrap();
    let p =
        f.rt.block_on(pat::authenticate(state, &pat_token))
            .expect("PAT");
    assert_eq!(p.scope(), f.pat.scope());

    let mut group = c.benchmark_group("introspect");
    group.bench_function("validate/hit", |b| b.iter(|| validate(&token)));
    group.bench_function("validate/miss", |b| {
        b.iter_batched(|| f.rpt(), |t| validate(&t), BatchSize::SmallInput)
    });
    group.bench_function("introspect/hit", |b| b.iter(|| introspect(&params)));
    group.bench_function("introspect/miss", |b| {
        b.iter_batched(|| form(&f.rpt()), |p| introspect(&p), BatchSize::SmallInput)
    });
    group.bench_function("pat-authenticate/hit", |b| {
        b.iter(|| f.rt.block_on(pat::authenticate(state, &pat_token)).unwrap())
    });
    group.finish();
}

fn grant_pieces(c: &mut Criterion) {
    let f = Fixture::new();
    client_authentication(c, &f);
    tickets(c, &f);
    rpt_signing(c, &f);
    introspection(c, &f);
}

criterion_group!(benches, grant_pieces);
criterion_main!(benches);
