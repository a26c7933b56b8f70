//! Native TLS: with `tls_cert_file` and `tls_key_file` the server speaks HTTPS itself (rustls),
//! and refuses to start with a clear error when the files are unusable.

use std::time::Duration;

use uma_host::config::Config;

fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    (cert_file, key_file, cert.cert.pem().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = self_signed(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let issuer = format!("https://127.0.0.1:{port}");
    let mut config = Config::new(
        &issuer,
        listener.local_addr().unwrap(),
        dir.path().join("data"),
    );
    config.tls_cert_file = Some(cert);
    config.tls_key_file = Some(key);
    config.validate().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(uma_host::http::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let url = format!("{issuer}/.well-known/uma2-configuration");
    let mut doc = None;
    for _ in 0..100 {
        if let Ok(r) = trusting.get(&url).send().await {
            doc = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let doc = doc.expect("the server answers over HTTPS");
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token").as_str());

    // A client that does not trust the certificate gets no answer, and plain HTTP is not served.
    let untrusting = reqwest::Client::new();
    assert!(untrusting.get(&url).send().await.is_err());
    let plain = format!("http://127.0.0.1:{port}/.well-known/uma2-configuration");
    assert!(
        untrusting
            .get(&plain)
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("shuts down")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_cert, key, _) = self_signed(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let mut config = Config::new(format!("https://{addr}"), addr, dir.path().join("data"));
    config.tls_cert_file = Some(bogus.clone());
    config.tls_key_file = Some(key);
    let err = uma_host::http::serve(config, listener, std::future::pending())
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("bogus.pem"), "{msg}");

    let mut half = Config::new(format!("https://{addr}"), addr, dir.path().join("data"));
    half.tls_cert_file = Some(bogus);
    let err = half.validate().unwrap_err();
    assert!(err.to_string().contains("together"), "{err}");
}
