//! The host's handling of a plugin's answer: size accounting and conversion into the host's
//! types; a permit never exceeds what was requested.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| uma_host::fuzzing::plugin_output(data));
