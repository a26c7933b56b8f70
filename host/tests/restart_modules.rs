//! Measurement (issue 4): a restart keeps the owners' modules and does not recompile them.
//!
//! Stores 1,000 distinct module versions (the `allow-list` plugin with a custom section that
//! numbers it, so each has its own digest and its own compiled artifact) for four owners through
//! the real owner API of the real binary, binds a policy on one of them, then restarts the server
//! several times and measures:
//! - the time from spawning `uma-host serve` to the first `200` of `/healthz`;
//! - the first dry-run after the restart (which loads that one module from the compiled cache:
//!   modules are loaded lazily at first use, nothing is compiled or loaded at start);
//! - the server's resident memory (VmRSS) after start and after the first dry-run.
//!
//! It also checks that no compiled artifact was written again.
//!
//! Ignored by default (it compiles 1,000 components, minutes of CPU). Run it on a release build:
//!
//! ```sh
//! cargo test --release -p uma-host --test restart_modules -- --ignored --nocapture
//! ```
//!
//! `UMA_BENCH_MODULES` (default 1000) and `UMA_BENCH_OWNERS` (default 4) change the sizes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::{Value, json};

/// `bytes` with a custom section (id 0) named `uma-bench` whose payload is `n`, appended at the
/// end: a custom section may appear anywhere in a component and changes nothing it does, but
/// it changes the digest.
fn numbered(bytes: &[u8], n: u64) -> Vec<u8> {
    fn leb128(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"uma-bench";
    let payload = n.to_le_bytes();
    let mut content = Vec::new();
    leb128(name.len() as u64, &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0);
    leb128(content.len() as u64, &mut out);
    out.extend_from_slice(&content);
    out
}

fn rss_kib(child: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Name → modification time of every compiled artifact.
fn artifacts(data: &Path) -> BTreeMap<String, SystemTime> {
    std::fs::read_dir(data.join("compiled"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[test]
#[ignore = "measurement: compiles 1,000 components; run with --release -- --ignored --nocapture"]
fn restart_with_1000_stored_modules() {
    let modules = env_usize("UMA_BENCH_MODULES", 1000);
    let owners = env_usize("UMA_BENCH_OWNERS", 4);
    let per_owner = modules.div_ceil(owners);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    // The owners are resource servers that own their resources themselves (their
    // client_credentials PAT has every owner right); the quota is raised to hold them.
    let mut config =
        format!("issuer = \"{issuer}\"\n\n[policy]\nmax_modules_per_owner = {per_owner}\n\n");
    for o in 0..owners {
        config.push_str(&format!(
            "[[clients]]\nclient_id = \"owner-{o}\"\nclient_secret = \"owner-{o}-secret-0123456789\"\n\n"
        ));
    }
    let config_file = dir.path().join("uma-host.toml");
    std::fs::write(&config_file, config).unwrap();
    let http = http();

    let (server, empty_start) = start_timed(&config_file, &data, port);
    let empty_rss = rss_kib(&server);
    let tokens: Vec<String> = (0..owners)
        .map(|o| {
            client_token(
                &http,
                &issuer,
                (
                    &format!("owner-{o}"),
                    &format!("owner-{o}-secret-0123456789"),
                ),
            )
        })
        .collect();

    // --- 1,000 uploads through the owner API, two at a time (the server compiles at most two
    // at once by default) -------------------------------------------------------------------
    let base = uma_host::plugins::builtin("allow-list").unwrap().bytes;
    let next = AtomicUsize::new(0);
    let uploading = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let http = common::http();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= modules {
                        return;
                    }
                    let owner = i % owners;
                    let name = format!("bench-{}", (i / owners) % 10);
                    let bytes = numbered(base, i as u64);
                    loop {
                        let r = http
                            .post(format!("{issuer}/owner/modules/{name}"))
                            .bearer_auth(&tokens[owner])
                            .header("content-type", "application/wasm")
                            .body(bytes.clone())
                            .send()
                            .unwrap();
                        let status = r.status();
                        let body: Value = r.json().unwrap();
                        if status == 201 {
                            break;
                        }
                        let busy = body["error_description"]
                            .as_str()
                            .is_some_and(|d| d.contains("try again"));
                        assert!(busy, "upload {i}: {status} {body}");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            });
        }
    });
    let upload_time = uploading.elapsed();
    let loaded_rss = rss_kib(&server);

    // A resource of owner 0 with a policy on one of its uploaded modules.
    let rid = create_resource(
        &http,
        &issuer,
        &tokens[0],
        &json!({"name": "bench", "resource_scopes": ["view"]}),
    );
    let r: Value = http
        .post(format!("{issuer}/owner/policies"))
        .bearer_auth(&tokens[0])
        .json(&json!({"name": "bench", "module": {"library": "owned", "name": "bench-0", "version": 1},
            "config": {"client_ids": ["some-app"]}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let pid = r["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let r = http
        .put(format!("{issuer}/owner/resources/owner-0/{rid}/policy"))
        .bearer_auth(&tokens[0])
        .json(&json!({"bindings": [{"policy": pid}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let dry_run = || -> (Duration, Value) {
        let t = Instant::now();
        let r = http
            .post(format!("{issuer}/owner/resources/owner-0/{rid}/dry-run"))
            .bearer_auth(&tokens[0])
            .json(&json!({"client_id": "some-app", "scopes": ["view"]}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        (t.elapsed(), v)
    };
    let (warm_dry_run, v) = dry_run();
    assert_eq!(v["decision"], "permit", "{v}");
    // Listing modules shows the built-in library, which compiles (and caches) the built-ins:
    // do it now so that the check below sees only what the restarts do.
    let r = http
        .get(format!("{issuer}/owner/modules"))
        .bearer_auth(&tokens[0])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    stop(server);

    let before = artifacts(&data);
    assert!(
        before.len() >= modules,
        "{} artifacts for {modules} modules",
        before.len()
    );
    let cache_bytes: u64 = std::fs::read_dir(data.join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    // --- Restarts ---------------------------------------------------------------------------
    let mut rows = Vec::new();
    for round in 0..3 {
        let (server, started) = start_timed(&config_file, &data, port);
        let rss_started = rss_kib(&server);
        let (first, v) = dry_run();
        assert_eq!(v["decision"], "permit", "{v}");
        assert_eq!(v["policies"][0]["module"], "bench-0@1");
        let (second, _) = dry_run();
        let rss_after = rss_kib(&server);
        if round == 0 {
            // The restart kept every module of every owner.
            for (o, token) in tokens.iter().enumerate() {
                let list: Value = http
                    .get(format!("{issuer}/owner/modules"))
                    .bearer_auth(token)
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                let expected = (0..modules).filter(|i| i % owners == o).count();
                assert_eq!(list["owned"].as_array().unwrap().len(), expected);
            }
        }
        stop(server);
        rows.push((started, first, second, rss_started, rss_after));
    }
    assert_eq!(
        artifacts(&data),
        before,
        "no compiled artifact was written again: nothing was recompiled"
    );

    println!("\n## restart with {modules} stored modules ({owners} owners)\n");
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "uploads: {modules} through POST /owner/modules in {:.1} s ({} per module, two at a time)",
        upload_time.as_secs_f64(),
        ms(upload_time / modules as u32)
    );
    println!(
        "compiled cache: {} artifacts, {:.1} MiB",
        before.len(),
        cache_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "empty data dir: start to /healthz {}, RSS {} MiB",
        ms(empty_start),
        empty_rss / 1024
    );
    println!(
        "before the restart: RSS {} MiB with every uploaded module loaded; warm dry-run {}",
        loaded_rss / 1024,
        ms(warm_dry_run)
    );
    println!(
        "\n| restart | start to /healthz | first dry-run | second dry-run | RSS after start | RSS after dry-run |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, (started, first, second, a, b)) in rows.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {} MiB | {} MiB |",
            i + 1,
            ms(*started),
            ms(*first),
            ms(*second),
            a / 1024,
            b / 1024
        );
    }
}

#[test]
fn numbered_components_stay_valid_and_distinct() {
    let base = uma_host::plugins::builtin("allow-list").unwrap().bytes;
    let a = numbered(base, 1);
    let b = numbered(base, 300);
    assert_ne!(uma_host::runtime::digest(&a), uma_host::runtime::digest(&b));
    for bytes in [&a, &b] {
        assert!(wasmparser::Parser::is_component(bytes));
        wasmparser::Validator::new_with_features(uma_host::runtime::FEATURES)
            .validate_all(bytes)
            .expect("still a valid component");
    }
}
