//! Every wire payload type through `tmp_protocol::json::parse`; see `tmp_protocol_fuzz::payloads`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp_protocol_fuzz::payloads::run(data));
