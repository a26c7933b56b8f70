//! Claim-token verification against a trusted issuer: nothing the fuzzer builds verifies
//! (including `alg: none` and HS256 keyed with the issuer's public key), nothing panics.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uma_host::fuzzing::Harness;

fuzz_target!(|data: &[u8]| {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(Harness::new).claim_token(data);
});
