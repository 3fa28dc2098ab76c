//! `jwe_decrypt` and `jwe_tamper`: compact JWE parsing and decryption with a fixed key ring.
//!
//! The ring holds one 2048-bit key (the contract's minimum) under [`KID`], generated once per
//! process: key generation takes about a second, and everything after it is deterministic
//! enough for libFuzzer.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tmp_protocol::jwe::{self, JweError, KeyRing, MAX_COMPACT_LEN};
use tmp_protocol::jwk::RsaKeyPair;

use crate::payloads::{ENCRYPTED, PAYLOADS};

/// The `kid` of the fuzzers' key. The seeds name it, so that they get past the key lookup.
pub const KID: &str = "fuzz-2026-01";

/// Plaintext of the valid token `jwe_tamper` starts from: a `CardData` with a test PAN.
pub const PLAINTEXT: &[u8] = br#"{"pan":"4111111111111111","expiry":"12/30","cvc":"123"}"#;

/// The fuzzers' key ring.
pub static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    let key = RsaKeyPair::generate(2048).expect("RSA key generation").with_kid(KID).expect("kid");
    KeyRing::new(vec![key]).expect("key ring")
});

/// A valid token of [`PLAINTEXT`] to [`RING`], made once per process.
pub static ORIGINAL: LazyLock<String> =
    LazyLock::new(|| jwe::encrypt(PLAINTEXT, &RING.keys()[0].public_jwk()).expect("encrypt"));

/// `jwe_decrypt`: the input is the compact token, as the adapter reads it from a JSON string
/// (so UTF-8; other inputs are skipped).
///
/// Checked: nothing panics; decryption fails exactly as parsing does when the token does not
/// parse ([`jwe::peek_kid`] and [`KeyRing::decrypt`] agree); an oversized token is `TooLarge`;
/// a kid outside the ring is `UnknownKey`; and a token that decrypts (only possible from a
/// genuine token) has a plaintext every `encryptedPayload` type parses without panicking.
pub fn decrypt(data: &[u8]) {
    let Ok(compact) = std::str::from_utf8(data) else { return };
    let peeked = jwe::peek_kid(compact);
    let result = RING.decrypt(compact);
    if compact.len() > MAX_COMPACT_LEN {
        assert_eq!(peeked, Err(JweError::TooLarge));
    }
    match (&peeked, &result) {
        (Err(parse_error), result) => {
            assert_eq!(result.as_ref().err(), Some(parse_error), "decryption and parsing disagree");
        }
        (Ok(kid), Err(JweError::UnknownKey)) => assert!(RING.get(kid).is_none(), "the ring's own kid is unknown"),
        (Ok(kid), result) => {
            assert!(RING.get(kid).is_some(), "a token for an unknown kid got past the lookup");
            if let Err(e) = result {
                assert!(matches!(e, JweError::Malformed | JweError::DecryptionFailed), "unexpected error {e:?}");
            }
        }
    }
    if let Ok(plaintext) = result {
        parse_plaintext(&plaintext);
    }
}

/// Every `encryptedPayload` type parses `plaintext` (see [`crate::payloads`]).
fn parse_plaintext(plaintext: &[u8]) {
    for payload in PAYLOADS.iter().filter(|p| p.prefix == ENCRYPTED) {
        (payload.check)(plaintext);
    }
}

/// What `jwe_tamper` does to the valid token [`ORIGINAL`]: the first input byte is
/// `part + 5 * operation`, the rest is the operation's argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// The decoded part becomes the argument (re-encoded in base64url).
    ReplaceDecoded = 0,
    /// The encoded part becomes the argument, as text.
    ReplaceEncoded = 1,
    /// The argument is XORed into the decoded part, from its first byte.
    XorDecoded = 2,
    /// The decoded part is cut or extended (with the argument's bytes) to the length in the
    /// argument's first two bytes (big-endian).
    ResizeDecoded = 3,
    /// The argument's text is inserted into the encoded part at the offset in its first byte.
    InsertEncoded = 4,
    /// No tampering: the argument is encrypted to the ring's key and must decrypt to itself,
    /// and its plaintext is parsed as every `encryptedPayload` type.
    RoundTrip = 5,
}

const OPERATIONS: [Operation; 6] = [
    Operation::ReplaceDecoded,
    Operation::ReplaceEncoded,
    Operation::XorDecoded,
    Operation::ResizeDecoded,
    Operation::InsertEncoded,
    Operation::RoundTrip,
];

/// The first input byte of `operation` on `part` (0 = header … 4 = tag).
pub fn selector(operation: Operation, part: u8) -> u8 {
    part % 5 + 5 * operation as u8
}

/// `jwe_tamper`: a valid token with one part changed.
///
/// Checked: nothing panics, and the changed token decrypts if and only if it is, character for
/// character, the original token (then to the original plaintext). Base64url is decoded
/// strictly and the header is the AES-GCM associated data, so any other outcome would be a
/// forgery.
pub fn tamper(data: &[u8]) {
    let Some((&selector, argument)) = data.split_first() else { return };
    let part = usize::from(selector % 5);
    let operation = OPERATIONS[usize::from(selector / 5) % OPERATIONS.len()];
    if operation == Operation::RoundTrip {
        return round_trip(argument);
    }

    let original = ORIGINAL.as_str();
    let mut parts: Vec<String> = original.split('.').map(str::to_owned).collect();
    let decoded = || URL_SAFE_NO_PAD.decode(&parts[part]).expect("the original token is valid base64url");
    let changed = match operation {
        Operation::ReplaceDecoded => URL_SAFE_NO_PAD.encode(argument),
        Operation::ReplaceEncoded => String::from_utf8_lossy(argument).into_owned(),
        Operation::XorDecoded => {
            let mut bytes = decoded();
            bytes.iter_mut().zip(argument).for_each(|(b, x)| *b ^= x);
            URL_SAFE_NO_PAD.encode(bytes)
        }
        Operation::ResizeDecoded => {
            let (len, fill) = match argument {
                [hi, lo, fill @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), fill),
                _ => return,
            };
            let mut bytes = decoded();
            if len <= bytes.len() {
                bytes.truncate(len);
            } else {
                let extra = len - bytes.len();
                bytes.extend(fill.iter().copied().chain(std::iter::repeat(0)).take(extra));
            }
            URL_SAFE_NO_PAD.encode(bytes)
        }
        Operation::InsertEncoded => {
            let Some((&at, text)) = argument.split_first() else { return };
            let mut encoded = parts[part].clone();
            let mut at = usize::from(at).min(encoded.len());
            while !encoded.is_char_boundary(at) {
                at -= 1;
            }
            encoded.insert_str(at, &String::from_utf8_lossy(text));
            encoded
        }
        Operation::RoundTrip => unreachable!(),
    };
    parts[part] = changed;
    let tampered = parts.join(".");

    let result = RING.decrypt(&tampered);
    if tampered == original {
        let plaintext = result.expect("the untouched token decrypts");
        assert_eq!(&plaintext[..], PLAINTEXT, "the untouched token decrypts to another plaintext");
    } else {
        assert!(result.is_err(), "a tampered token decrypted:\n{original}\n{tampered}");
        // Parsing alone must agree with decryption about malformed tokens.
        if let Err(parse_error) = jwe::peek_kid(&tampered) {
            assert_eq!(result.err(), Some(parse_error));
        }
    }
}

/// Encrypt, decrypt, compare; then parse the plaintext as every `encryptedPayload` type.
fn round_trip(plaintext: &[u8]) {
    let token = match jwe::encrypt(plaintext, &RING.keys()[0].public_jwk()) {
        Ok(token) => token,
        Err(e) => {
            assert_eq!(e, JweError::TooLarge, "encryption failed");
            return;
        }
    };
    let opened = RING.decrypt(&token).expect("a fresh token decrypts");
    assert_eq!(&opened[..], plaintext, "round trip changed the plaintext");
    parse_plaintext(&opened);
}
