//! Per-client rate limiting (GCRA, `governor`), in front of every handler.
//!
//! A request is counted against the client it names: the client id of HTTP Basic credentials,
//! else its bearer token (a PAT or owner token stands for one client), else the peer address.
//! Counting happens before any work (no hashing of secrets, no store access), so a flood costs
//! the server a map lookup per request. Over the limit the answer is `429` with the OAuth error
//! shape and `Retry-After`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// The shared limiter; `None` when rate limiting is off.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<DefaultKeyedRateLimiter<String>>,
}

impl Limiter {
    /// `per_second` requests per second per client on average, bursts up to `burst`.
    pub fn new(per_second: u32, burst: u32) -> Option<Limiter> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        Some(Limiter {
            inner: Arc::new(governor::RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            )),
        })
    }

    /// Forgets clients that are back to a full bucket, so the map does not grow without bound.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// `Err(wait)` when `key` is over its limit.
    fn check(&self, key: String) -> Result<(), Duration> {
        self.inner
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Who a request counts against (see the module documentation).
fn client_key(req: &Request) -> String {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some((scheme, rest)) = auth.split_once(' ') {
        if scheme.eq_ignore_ascii_case("basic")
            && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest.trim())
            && let Some(id) = raw.split(|b| *b == b':').next()
        {
            return format!("client:{}", String::from_utf8_lossy(id));
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(rest.trim().as_bytes());
            return format!("token:{}", hex::encode(&digest[..12]));
        }
    }
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
        None => "ip:unknown".into(),
    }
}

pub async fn limit(
    axum::extract::State(limiter): axum::extract::State<Option<Limiter>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(limiter) = limiter else {
        return next.run(req).await;
    };
    match limiter.check(client_key(&req)) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({
                    "error": "too_many_requests",
                    "error_description": format!("rate limit exceeded; retry in {secs} s"),
                })),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
    }
}
