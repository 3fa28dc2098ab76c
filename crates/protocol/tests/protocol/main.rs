//! Integration tests of the `tmp-protocol` security primitives, through the public API
//! only, including interoperability with independent implementations:
//! `picky` (JOSE/JWE) and `standardwebhooks` (the Standard Webhooks reference crate); and the
//! inputs the fuzz targets found (`fuzz_regressions`).

mod fuzz_regressions;
mod jwe;
mod leaks;
mod sensitive;
mod webhook;

use std::sync::OnceLock;

use tmp_protocol::jwk::RsaKeyPair;

/// Two 2048-bit keys, generated once per test binary: RSA key generation is slow.
pub fn keys() -> &'static (RsaKeyPair, RsaKeyPair) {
    static KEYS: OnceLock<(RsaKeyPair, RsaKeyPair)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let a = RsaKeyPair::generate(2048).expect("keygen a").with_kid("issuer-2026-01").expect("kid");
        let b = RsaKeyPair::generate(2048).expect("keygen b").with_kid("issuer-2026-07").expect("kid");
        (a, b)
    })
}

/// Appends the Luhn check digit to `body` (ASCII digits).
pub fn with_luhn_digit(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            // The check digit will sit to the right, so the rightmost body digit is doubled.
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}
