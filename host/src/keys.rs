//! ES256 signing keys: generated on first start, persisted in the store, published as a JWKS,
//! rotated on demand while old public keys stay published until every token they signed has
//! expired.
//!
//! Every JWT we sign carries the `kid` of its key; verification only accepts ES256 and only
//! keys we published (no `alg: none`, no key from the token itself).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::store::{KeyRecord, Store, unix_now};

/// `typ` header of RFC 9068 JWT access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `n` bytes from the OS CSPRNG, base64url without padding. 32 bytes (256 bits) for tickets,
/// codes, refresh tokens and generated secrets: well above RFC 6749 §10.10's 2^-128.
///
/// Values never start with `-` or `_`: ids (resources, policies, approvals) are typed on
/// command lines, where a leading `-` reads as an option. Drawing again costs under 0.05 bits.
pub fn random_token(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    loop {
        aws_lc_rs::rand::fill(&mut buf).map_err(|_| Error::internal("CSPRNG failure"))?;
        let token = B64.encode(&buf);
        if token.starts_with(|c: char| c.is_ascii_alphanumeric()) || n == 0 {
            return Ok(token);
        }
    }
}

struct ActiveKey {
    /// The parsed key pair, kept: parsing a PKCS#8 key checks it by deriving the public point,
    /// which cost as much as the signature itself when `jsonwebtoken::encode` did it per token.
    pair: EcdsaKeyPair,
    /// `base64url({"typ":"at+jwt","alg":"ES256","kid":…})`, the same for every token.
    header: String,
}

struct KeySet {
    kid: String,
    active: ActiveKey,
    verify: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
}

/// The signing keys in memory, reloaded from the store after every rotation.
pub struct Keys {
    store: Arc<dyn Store>,
    /// How long a retired key stays published (the longest token lifetime).
    publish_window: u64,
    set: RwLock<Arc<KeySet>>,
    /// Held for a whole rotation. Two rotations interleaving would both retire the old key and
    /// each add a fresh one (two signing keys, both callers told the same `kid`), and the slower
    /// one would install a key set built before the other's key existed, so tokens that key
    /// signed in between would stop verifying.
    rotating: tokio::sync::Mutex<()>,
    /// Tokens already verified, by SHA-256 of the whole token: a resource server presents the
    /// same PAT and introspects the same RPT many times, and the ECDSA verification was most
    /// of the cost of a request (about 65 µs of 160 µs each for introspection's two tokens).
    /// RPTs go in when they are signed ([`Keys::sign_remembered`]). A hit still
    /// checks expiry; revocation is checked by the caller on every use anyway.
    verified: quick_cache::sync::Cache<[u8; 32], Verified, TokenBytes>,
}

/// How much verified-token text is remembered: 4 MiB, about 6,000 PATs or one-permission RPTs,
/// or 100 RPTs of 500 permissions; their parsed claims take about as much again. Bounded by
/// bytes, not by count: 16,384 tokens of any size let RPTs of 500 permissions (~40 KB each)
/// hold tens of MB (the server's RSS rose from 108 to 122 MB over 300 such grants). Trade-off:
/// a token that fell out is verified again (a ~65 µs miss), never accepted unverified.
const VERIFIED_TOKEN_BYTES: u64 = 4 << 20;

/// Tokens longer than this are verified on every use, never remembered: 16 KiB, an RPT of
/// about 200 permissions. A remembered RPT of 500 permissions is ~1,500 small allocations of
/// parsed claims; a hundred of them filled the cache, and evicting them one by one left holes
/// all over the allocator's pages (the server's RSS rose by ~10 MB more than the claims
/// weigh). Trade-off: such a token costs an ECDSA verification and a parse per use (~0.2 ms,
/// against the ~10 ms a grant over 500 resources takes); PATs and ordinary RPTs are far
/// smaller and still remembered.
const MAX_REMEMBERED_TOKEN: usize = 16 << 10;

#[derive(Clone)]
struct Verified {
    exp: u64,
    claims: Arc<dyn std::any::Any + Send + Sync>,
    /// The token's length plus a little for the entry: what it weighs in the cache.
    weight: u64,
}

impl Verified {
    fn new<T: Send + Sync + 'static>(token: &str, exp: u64, claims: T) -> Verified {
        Verified {
            exp,
            claims: Arc::new(claims),
            weight: token.len() as u64 + 64,
        }
    }
}

#[derive(Clone)]
struct TokenBytes;

impl quick_cache::Weighter<[u8; 32], Verified> for TokenBytes {
    fn weight(&self, _: &[u8; 32], v: &Verified) -> u64 {
        v.weight
    }
}

/// The verified-token cache's key: SHA-256 of the issuer and the whole token.
fn verified_key(token: &str, issuer: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(issuer.as_bytes());
    h.update([0]);
    h.update(token.as_bytes());
    h.finalize().into()
}

/// Public JWK of a P-256 key plus its RFC 7638 thumbprint (used as `kid`).
fn public_jwk(pkcs8: &[u8]) -> Result<(String, String, String)> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|e| Error::internal(format_args!("stored signing key rejected: {e}")))?;
    let point = pair.public_key().as_ref();
    if point.len() != 65 || point[0] != 4 {
        return Err(Error::internal("unexpected P-256 public key encoding"));
    }
    let x = B64.encode(&point[1..33]);
    let y = B64.encode(&point[33..]);
    let thumb_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    use sha2::Digest;
    let kid = B64.encode(sha2::Sha256::digest(thumb_input.as_bytes()));
    Ok((kid, x, y))
}

fn generate() -> Result<KeyRecord> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| Error::internal("key generation failed"))?;
    let (kid, _, _) = public_jwk(doc.as_ref())?;
    Ok(KeyRecord {
        kid,
        pkcs8: B64.encode(doc.as_ref()),
        created_at: unix_now(),
        retired_at: None,
    })
}

impl Keys {
    /// Loads the keys, generating the first one if the store has none and dropping retired keys
    /// whose tokens have all expired.
    pub async fn load(store: Arc<dyn Store>, publish_window: u64) -> Result<Keys> {
        let set = Self::build(&store, publish_window).await?;
        Ok(Keys {
            store,
            publish_window,
            set: RwLock::new(Arc::new(set)),
            rotating: tokio::sync::Mutex::new(()),
            verified: quick_cache::sync::Cache::with_weighter(
                8_192,
                VERIFIED_TOKEN_BYTES,
                TokenBytes,
            ),
        })
    }

    async fn build(store: &Arc<dyn Store>, publish_window: u64) -> Result<KeySet> {
        let now = unix_now();
        let mut records = store.list_keys().await?;
        if !records.iter().any(|k| k.retired_at.is_none()) {
            let k = generate()?;
            store.put_key(&k).await?;
            records.push(k);
        }
        let mut active: Option<&KeyRecord> = None;
        let mut verify = HashMap::new();
        let mut jwks = Vec::new();
        for r in &records {
            if let Some(retired) = r.retired_at
                && retired.saturating_add(publish_window) < now
            {
                store.delete_key(&r.kid).await?;
                continue;
            }
            let der = B64
                .decode(&r.pkcs8)
                .map_err(|e| Error::internal(format_args!("stored key: {e}")))?;
            let (_, x, y) = public_jwk(&der)?;
            verify.insert(
                r.kid.clone(),
                DecodingKey::from_ec_components(&x, &y).map_err(Error::internal)?,
            );
            jwks.push(serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": x, "y": y,
                "kid": r.kid, "use": "sig", "alg": "ES256",
            }));
            if r.retired_at.is_none() && active.is_none_or(|a| r.created_at > a.created_at) {
                active = Some(r);
            }
        }
        let active = active.ok_or_else(|| Error::internal("no active signing key"))?;
        let der = B64.decode(&active.pkcs8).map_err(Error::internal)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|e| Error::internal(format_args!("stored key: {e}")))?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(active.kid.clone());
        Ok(KeySet {
            kid: active.kid.clone(),
            active: ActiveKey {
                pair,
                header: B64.encode(serde_json::to_vec(&header)?),
            },
            verify,
            jwks: serde_json::json!({ "keys": jwks }),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Retires the signing key and starts signing with a fresh one. Returns the new `kid`.
    pub async fn rotate(&self) -> Result<String> {
        let _one_at_a_time = self.rotating.lock().await;
        let now = unix_now();
        for mut k in self.store.list_keys().await? {
            if k.retired_at.is_none() {
                k.retired_at = Some(now);
                self.store.put_key(&k).await?;
            }
        }
        let fresh = generate()?;
        self.store.put_key(&fresh).await?;
        let set = Self::build(&self.store, self.publish_window).await?;
        debug_assert_eq!(set.kid, fresh.kid);
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        self.verified.clear();
        Ok(fresh.kid)
    }

    /// The JWKS document (`{"keys":[…]}`), every key with `kty`, `kid`, `use`, `alg`.
    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks.clone()
    }

    /// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`, ES256, `kid`): a JWS in
    /// compact serialisation (RFC 7515 §7.1) with the fixed-width `r || s` signature ES256
    /// takes (RFC 7518 §3.4). Verified by `jsonwebtoken` like every token we accept.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String> {
        let set = self.current();
        let payload = serde_json::to_vec(claims)?;
        let mut jws = String::with_capacity(set.active.header.len() + payload.len() * 4 / 3 + 90);
        jws.push_str(&set.active.header);
        jws.push('.');
        B64.encode_string(&payload, &mut jws);
        let signature = set
            .active
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), jws.as_bytes())
            .map_err(|_| Error::internal("signing failed"))?;
        jws.push('.');
        B64.encode_string(signature.as_ref(), &mut jws);
        Ok(jws)
    }

    /// Verifies signature, `typ`, `iss` and `exp` of a token we issued and returns its claims.
    /// The error string says why, for logs and `error_description`; it never contains key
    /// material.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Result<T, String> {
        self.verify_with(token, issuer, true)
    }

    /// [`Keys::verify`], remembering the result: a token verified before is not verified again
    /// until it expires or falls out of the cache. `exp` reads the expiry from the claims.
    pub fn verify_cached<T>(
        &self,
        token: &str,
        issuer: &str,
        exp: impl Fn(&T) -> u64,
    ) -> Result<T, String>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if token.len() > MAX_REMEMBERED_TOKEN {
            return self.verify(token, issuer);
        }
        let key = verified_key(token, issuer);
        if let Some(hit) = self.verified.get(&key)
            && let Some(claims) = hit.claims.downcast_ref::<T>()
        {
            // As `verify`: not accepted on or after `exp`.
            return if hit.exp > unix_now() {
                Ok(claims.clone())
            } else {
                Err("token expired".into())
            };
        }
        let claims: T = self.verify(token, issuer)?;
        self.verified
            .insert(key, Verified::new(token, exp(&claims), claims.clone()));
        Ok(claims)
    }

    /// [`Keys::sign`], remembering the token as verified with `claims`: its first use (a
    /// resource server introspecting a fresh RPT) then skips checking the signature this
    /// server has just made (an ECDSA verification, ~63 µs, a tenth of the server's CPU per
    /// flow of ticket, RPT and introspection). Only for claims
    /// that [`Keys::verify_cached`] would accept as they are: issued by `issuer`, with the
    /// registered claims it requires.
    pub fn sign_remembered<T>(&self, claims: &T, issuer: &str, exp: u64) -> Result<String>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let token = self.sign(claims)?;
        if token.len() <= MAX_REMEMBERED_TOKEN {
            self.verified.insert(
                verified_key(&token, issuer),
                Verified::new(&token, exp, claims.clone()),
            );
        }
        Ok(token)
    }

    /// Like [`Keys::verify`] but accepting an expired token: an RPT presented for upgrade
    /// "MAY be expired" (Grant §3.3.1). Signature, algorithm, type and issuer are still checked.
    pub fn verify_allowing_expired<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<T, String> {
        self.verify_with(token, issuer, false)
    }

    fn verify_with<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        check_expiry: bool,
    ) -> Result<T, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        if header.alg != Algorithm::ES256 {
            return Err("unexpected algorithm".into());
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err("not an access token".into());
        }
        let set = self.current();
        let key = header
            .kid
            .as_deref()
            .and_then(|k| set.verify.get(k))
            .ok_or("unknown signing key")?;
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = 0;
        // RFC 7519 §4.1.4: not accepted "on or after" exp, i.e. expired when exp <= now.
        v.reject_tokens_expiring_in_less_than = if check_expiry { 1 } else { 0 };
        v.validate_exp = check_expiry;
        v.validate_aud = false;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "jti"]);
        jsonwebtoken::decode::<T>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired".to_string(),
                _ => "invalid token".to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct C {
        iss: String,
        sub: String,
        iat: u64,
        exp: u64,
        jti: String,
    }

    fn claims(exp: u64) -> C {
        C {
            iss: "https://as".into(),
            sub: "s".into(),
            iat: unix_now(),
            exp,
            jti: random_token(8).unwrap(),
        }
    }

    /// The cache only ever holds tokens that passed full verification or that this server
    /// signed itself, and a hit still expires.
    #[tokio::test]
    async fn verified_token_cache_never_accepts_what_verification_would_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let keys = Keys::load(store, 3600).await.unwrap();
        let exp_of = |c: &C| c.exp;

        let good = keys.sign(&claims(unix_now() + 2)).unwrap();
        assert!(keys.verify_cached(&good, "https://as", exp_of).is_ok());
        assert!(
            keys.verify_cached(&good, "https://as", exp_of).is_ok(),
            "hit"
        );
        // Another issuer is a different cache entry and fails verification.
        assert!(keys.verify_cached(&good, "https://other", exp_of).is_err());
        // A tampered payload, also after the genuine token was cached.
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut forged = claims(unix_now() + 600);
        forged.sub = "admin".into();
        parts[1] = B64.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = parts.join(".");
        assert!(keys.verify_cached(&tampered, "https://as", exp_of).is_err());
        assert!(keys.verify_cached(&tampered, "https://as", exp_of).is_err());
        // The cached token expires like any other.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(
            keys.verify_cached(&good, "https://as", exp_of)
                .err()
                .as_deref(),
            Some("token expired")
        );
    }

    /// A token remembered at signing answers with exactly the claims a full verification of it
    /// returns, only for its issuer, and still expires.
    #[tokio::test]
    async fn a_token_signed_here_is_remembered_as_its_verification_would_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let keys = Keys::load(store, 3600).await.unwrap();
        let exp_of = |c: &C| c.exp;

        let c = claims(unix_now() + 2);
        let token = keys.sign_remembered(&c, "https://as", c.exp).unwrap();
        let remembered = keys.verify_cached(&token, "https://as", exp_of).unwrap();
        let verified: C = keys.verify(&token, "https://as").unwrap();
        assert_eq!(remembered, verified);
        assert_eq!(remembered, c);
        assert!(keys.verify_cached(&token, "https://other", exp_of).is_err());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(
            keys.verify_cached(&token, "https://as", exp_of)
                .err()
                .as_deref(),
            Some("token expired")
        );
    }

    /// The cache is bounded by the bytes of the tokens it holds, not by their number: big RPTs
    /// (hundreds of permissions) do not grow it past its budget, and a token that fell out
    /// still verifies (the slow way).
    #[tokio::test]
    async fn verified_token_cache_is_bounded_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let keys = Keys::load(store, 3600).await.unwrap();
        let mut first = None;
        for _ in 0..600 {
            let mut c = claims(unix_now() + 600);
            c.sub = "x".repeat(10_000);
            let t = keys.sign_remembered(&c, "https://as", c.exp).unwrap();
            assert!(t.len() <= MAX_REMEMBERED_TOKEN);
            first.get_or_insert((t, c));
        }
        assert!(keys.verified.weight() <= VERIFIED_TOKEN_BYTES);
        assert!(
            (100..600).contains(&keys.verified.len()),
            "{} kept",
            keys.verified.len()
        );
        let (t, c) = first.unwrap();
        assert_eq!(
            keys.verify_cached(&t, "https://as", |c: &C| c.exp).unwrap(),
            c
        );
    }

    /// A token over 16 KiB (an RPT of hundreds of permissions) is never remembered, signed
    /// here or verified, yet verifies every time, and a tampered copy is still refused.
    #[tokio::test]
    async fn a_very_large_token_is_verified_on_every_use_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let keys = Keys::load(store, 3600).await.unwrap();
        let mut c = claims(unix_now() + 600);
        c.sub = "x".repeat(20_000);
        let t = keys.sign_remembered(&c, "https://as", c.exp).unwrap();
        assert!(t.len() > MAX_REMEMBERED_TOKEN);
        for _ in 0..2 {
            assert_eq!(
                keys.verify_cached(&t, "https://as", |c: &C| c.exp).unwrap(),
                c
            );
        }
        assert_eq!(keys.verified.len(), 0);
        let mut tampered = t.into_bytes();
        let mid = tampered.len() / 2;
        tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(
            keys.verify_cached(&tampered, "https://as", |c: &C| c.exp)
                .is_err()
        );
    }

    #[test]
    fn tokens_never_start_with_an_option_character() {
        for _ in 0..2_000 {
            let t = super::random_token(12).unwrap();
            assert!(t.starts_with(|c: char| c.is_ascii_alphanumeric()), "{t}");
            assert_eq!(t.len(), 16);
        }
    }
}
