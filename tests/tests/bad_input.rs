//! Bad input of every kind gets a precise OAuth/UMA error in the protocol's shape, never a 500.

use reqwest::Method;
use serde_json::Value;
use uma_integration_tests::*;

async fn raw(
    s: &TestServer,
    m: Method,
    path: &str,
    pat: Option<&str>,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (reqwest::StatusCode, Value) {
    let mut r = s.http.request(m, s.url(path)).body(body);
    if let Some(p) = pat {
        r = r.bearer_auth(p);
    }
    if let Some(c) = ct {
        r = r.header("content-type", c);
    }
    status_json(r.send().await.unwrap()).await
}

#[tokio::test]
async fn oversized_bodies_are_413_invalid_request() {
    let s = TestServer::start_with(|c| c.max_body_bytes = 4096).await;
    let pat = s.client_token(RS1, None).await;
    let big = format!(
        r#"{{"resource_scopes":[],"description":"{}"}}"#,
        "x".repeat(10_000)
    );
    for (path, ct) in [
        ("/resource_set", "application/json"),
        ("/permission", "application/json"),
    ] {
        let (st, v) = raw(
            &s,
            Method::POST,
            path,
            Some(&pat),
            Some(ct),
            big.clone().into_bytes(),
        )
        .await;
        assert_eq!(st, 413, "{path}");
        assert_eq!(v["error"], "invalid_request");
    }
    let form = format!("grant_type=client_credentials&pad={}", "x".repeat(10_000));
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(RS1.0, Some(RS1.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (413, Some("invalid_request"))
    );
}

#[tokio::test]
async fn chunked_oversized_body_without_content_length_is_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| c.max_body_bytes = 4096).await;
    let pat = s.client_token(RS1, None).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /resource_set HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {pat}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("3e8\r\n{}\r\n", " ".repeat(1000));
    for _ in 0..10 {
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may stop reading once the limit is hit
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = tcp.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("invalid_request"), "{text}");
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_duplicate_keys_are_invalid_request() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    for (path, ct, body) in [
        ("/resource_set", Some("application/json"), "{"),
        ("/resource_set", Some("application/json"), ""),
        ("/resource_set", Some("application/json"), "\u{0}"),
        ("/resource_set", Some("application/xml"), "<x/>"),
        ("/resource_set", None, "{}"),
        (
            "/permission",
            Some("application/json"),
            r#"{"resource_id":"a","resource_id":"b","resource_scopes":[]}"#,
        ),
        ("/permission", Some("text/plain"), "{}"),
        ("/permission", Some("application/json"), "null"),
    ] {
        let (st, v) = raw(
            &s,
            Method::POST,
            path,
            Some(&pat),
            ct,
            body.as_bytes().to_vec(),
        )
        .await;
        assert_eq!(st, 400, "{path} {ct:?} {body:?}");
        assert_eq!(v["error"], "invalid_request", "{path} {ct:?} {body:?}");
    }
    // Non-UTF-8 JSON.
    let (st, _) = raw(
        &s,
        Method::POST,
        "/resource_set",
        Some(&pat),
        Some("application/json"),
        vec![0xff, 0xfe],
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn form_endpoints_refuse_wrong_content_type_and_duplicates() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    // Token endpoint with JSON.
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(RS1.0, Some(RS1.1))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Introspection with a repeated token parameter.
    let r = s
        .http
        .post(s.url("/introspect"))
        .bearer_auth(&pat)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={pat}&token=x"))
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Malformed Basic header.
    let r = s
        .http
        .post(s.url("/token"))
        .header("authorization", "Basic %%%not-base64")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st.as_u16(), v["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow_and_unknown_paths_404_json() {
    let s = TestServer::start().await;
    for (m, p) in [
        (Method::GET, "/token"),
        (Method::PUT, "/token"),
        (Method::GET, "/introspect"),
        (Method::GET, "/revoke"),
        (Method::GET, "/permission"),
        (Method::DELETE, "/jwks"),
        (Method::PUT, "/authorize"),
    ] {
        let (st, v) = raw(&s, m.clone(), p, None, None, vec![]).await;
        assert_eq!(st, 405, "{m} {p}");
        assert_eq!(v["error"], "unsupported_method_type");
    }
    let (st, v) = raw(&s, Method::GET, "/no/such/thing", None, None, vec![]).await;
    assert_eq!((st.as_u16(), v["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn odd_paths_and_headers_never_give_500() {
    let s = TestServer::start().await;
    let pat = s.client_token(RS1, None).await;
    for p in [
        "/resource_set/%FF%FE",
        "/resource_set/%00",
        "/resource_set/..%2F..",
        "/resource_set/a%2Fb",
    ] {
        let r = s.http.get(s.url(p)).bearer_auth(&pat).send().await.unwrap();
        assert!(r.status().is_client_error(), "{p}: {}", r.status());
    }
    for h in ["Bearer", "Bearer ", "Basic", "Digest abc", "bearer   "] {
        let r = s
            .http
            .get(s.url("/resource_set"))
            .header("authorization", h)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{h:?}: {}", r.status());
    }
}

#[tokio::test]
async fn stalled_body_upload_is_cut_off_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| c.request_timeout_secs = 1).await;
    let pat = s.client_token(RS1, None).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /resource_set HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {pat}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{",
        s.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut resp),
    )
    .await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("invalid_request"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
