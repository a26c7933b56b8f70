//! The WIT contract: released versions are never edited, and the SDK vendors them unchanged.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Every released contract version and the SHA-256 of its text. A change to a released file
/// fails here: add a new version beside it instead (and teach the host to serve both).
const RELEASED: &[(&str, &str)] = &[(
    "v0.1.0/policy.wit",
    "53216e99352d1c0ee3a52c0004904ddeec52b8b77a45ae526830e7b58120380f",
)];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn released_contract_versions_are_unchanged() {
    for (file, expected) in RELEASED {
        let text = std::fs::read(root().join("wit").join(file)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&text)),
            *expected,
            "wit/{file} is a released contract and must not be edited"
        );
    }
}

#[test]
fn sdk_vendors_the_current_contract_verbatim() {
    let (latest, _) = RELEASED.last().unwrap();
    let released = std::fs::read_to_string(root().join("wit").join(latest)).unwrap();
    let vendored = std::fs::read_to_string(root().join("sdk/wit/policy.wit")).unwrap();
    assert_eq!(
        released, vendored,
        "sdk/wit/policy.wit must be a copy of wit/{latest}"
    );
}
