//! Resource description parsing and validation (Fed §3.1): what validates round-trips unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| uma_host::fuzzing::resource_description(data));
