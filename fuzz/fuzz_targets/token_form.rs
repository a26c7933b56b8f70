//! The token endpoint through the router: form parsing, client authentication, grant dispatch,
//! error mapping. Never a 5xx; always a JSON answer marked no-store.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uma_host::fuzzing::Harness;

fuzz_target!(|data: &[u8]| {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(Harness::new).token_request(data);
});
