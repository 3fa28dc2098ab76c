//! Compact JWE parsing and decryption of arbitrary text; see `tmp_protocol_fuzz::jwe::decrypt`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp_protocol_fuzz::jwe::decrypt(data));
