//! Per-client rate limiting: a client over its rate gets `429` in the OAuth error shape with
//! `Retry-After`, and other clients are not affected.

use reqwest::StatusCode;
use uma_integration_tests::*;

#[tokio::test]
async fn a_client_over_its_rate_is_told_to_retry_and_others_are_not_affected() {
    let s = TestServer::start_with(|c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let cc = [("grant_type", "client_credentials")];
    for i in 0..3 {
        let r = s.token_basic(RS1.0, RS1.1, &cc).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "request {i} is within the burst"
        );
    }
    let r = s.token_basic(RS1.0, RS1.1, &cc).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");

    // Another client has its own allowance.
    let r = s.token_basic(RS2.0, RS2.1, &cc).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Unauthenticated requests count against the peer address (the harness's own start-up
    // checks came from the same address, so only the shape is asserted).
    let url = s.url("/.well-known/uma2-configuration");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(reqwest::get(&url).await.unwrap().status());
    }
    assert_eq!(statuses[0], StatusCode::OK, "{statuses:?}");
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn rate_limiting_can_be_turned_off() {
    let s = TestServer::start_with(|c| c.rate_limit_per_sec = 0).await;
    for _ in 0..50 {
        let r = s
            .token_basic(RS1.0, RS1.1, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}
