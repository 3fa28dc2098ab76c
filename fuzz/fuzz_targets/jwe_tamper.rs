//! A valid JWE with one part changed; see `tmp_protocol_fuzz::jwe::tamper`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp_protocol_fuzz::jwe::tamper(data));
