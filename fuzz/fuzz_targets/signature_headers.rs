//! Standard-Webhooks header parsing and verification; see `tmp_protocol_fuzz::signatures`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp_protocol_fuzz::signatures::run(data));
