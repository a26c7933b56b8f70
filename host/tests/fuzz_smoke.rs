//! The fuzz targets' properties on the stable toolchain, in every test run: each target's
//! committed seeds (fuzz/corpus/<target>/seed-*) and a few thousand deterministic mutations of
//! them. Not coverage-guided like `cargo +nightly fuzz run` (scripts/fuzz.sh), but it keeps the
//! targets compiling and their properties holding, and replays any crash input committed as a
//! seed.

use std::path::Path;

use uma_host::fuzzing::{self, Harness};

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        })
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(!out.is_empty(), "no seeds for {target}");
    out.sort();
    out
}

/// Deterministic mutations: bit flips, byte replacements, insertions, truncations, splices.
fn mutations(seeds: &[Vec<u8>], n: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n).map(move |_| {
        let mut v = seeds[(next() as usize) % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = if v.is_empty() {
                0
            } else {
                (next() as usize) % v.len()
            };
            match next() % 5 {
                0 if !v.is_empty() => v[at] ^= 1 << (next() % 8),
                1 if !v.is_empty() => v[at] = next() as u8,
                2 => v.insert(
                    at,
                    [b'"', b'{', b'}', b'%', b'&', b'=', 0xff, 0][next() as usize % 8],
                ),
                3 => v.truncate(at),
                _ => {
                    let other = &seeds[(next() as usize) % seeds.len()];
                    let from = (next() as usize) % (other.len() + 1);
                    v.splice(at..at, other[from..].iter().copied());
                }
            }
        }
        v
    })
}

fn run(target: &str, n: usize, f: impl Fn(&[u8])) {
    let seeds = seeds(target);
    for s in &seeds {
        f(s);
    }
    for m in mutations(&seeds, n) {
        f(&m);
    }
}

#[test]
fn fuzz_smoke_token_form() {
    let h = Harness::new();
    run("token_form", 3_000, |d| h.token_request(d));
}

#[test]
fn fuzz_smoke_claim_token() {
    let h = Harness::new();
    run("claim_token", 5_000, |d| h.claim_token(d));
}

#[test]
fn fuzz_smoke_resource_description() {
    run(
        "resource_description",
        20_000,
        fuzzing::resource_description,
    );
}

#[test]
fn fuzz_smoke_plugin_output() {
    run("plugin_output", 50_000, fuzzing::plugin_output);
}
