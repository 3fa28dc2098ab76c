//! CVC2 computation (the Visa CVV / Mastercard CVC algorithm) for the local card registry.
//!
//! The algorithm, with a double-length DES card verification key (CVK-A, CVK-B):
//!
//! 1. data = PAN digits ‖ expiry `YYMM` ‖ service code (3 digits), right-padded with `0`
//!    to 32 digits, read as 16 bytes of packed BCD and split into two 8-byte blocks;
//! 2. block 1 is DES-encrypted under CVK-A and XORed with block 2;
//! 3. the result is encrypted under CVK-A, decrypted under CVK-B, encrypted under CVK-A
//!    (two-key triple DES, EDE);
//! 4. decimalisation: the result's 16 hex digits are scanned left to right taking the
//!    digits `0`-`9`, then scanned again taking `A`-`F` minus 10; the first three digits
//!    are the value.
//!
//! The printed CVC2 uses service code `000` ([`CvkPair::cvc2`]); the magnetic-stripe CVV
//! uses the card's real service code ([`CvkPair::compute`]).
//!
//! An issuer normally does this in an HSM. The local registry exists for issuers without
//! one in the loop (and for test environments), so the CVKs here are plain key bytes held
//! in zeroizing memory.

use std::fmt;

use des::Des;
use des::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroizing;

use tmp_protocol::sensitive::{Cvc, Expiry, Pan};

/// Service code used for CVC2/CVV2, the value printed on the card.
pub const CVC2_SERVICE_CODE: &str = "000";

/// Why a CVK or a CVV input was rejected. Never contains key material or card data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CvkError {
    #[error("CVK-A and CVK-B must each be 16 hex characters")]
    KeyFormat,
    #[error("CVK-A and CVK-B must differ (equal halves make the key single DES)")]
    EqualHalves,
    #[error("CVK half is a weak or semi-weak DES key")]
    WeakKey,
    #[error("expiry must be 4 digits YYMM")]
    Expiry,
    #[error("service code must be 3 digits")]
    ServiceCode,
}

/// A double-length card verification key: CVK-A and CVK-B, 8 bytes each.
///
/// The key bytes are wiped on drop; `Debug` prints `CvkPair(***)`.
pub struct CvkPair {
    a: Zeroizing<[u8; 8]>,
    b: Zeroizing<[u8; 8]>,
}

impl CvkPair {
    /// Parses CVK-A and CVK-B from 16 hex characters each (either case).
    ///
    /// Refuses equal halves and DES weak or semi-weak halves: no real CVK has them, and
    /// they would silently weaken the algorithm. DES parity bits are ignored (as DES
    /// itself ignores them), so keys with or without odd parity load alike.
    pub fn from_hex(a: &str, b: &str) -> Result<CvkPair, CvkError> {
        let a = decode_half(a)?;
        let b = decode_half(b)?;
        if *a == *b {
            return Err(CvkError::EqualHalves);
        }
        if des::weak_key_test(&a[..]).is_err() || des::weak_key_test(&b[..]).is_err() {
            return Err(CvkError::WeakKey);
        }
        Ok(CvkPair { a, b })
    }

    /// The CVV for `pan`, expiry `YYMM` and a 3-digit service code.
    ///
    /// Returned as a [`Cvc`] so that the value keeps masking and constant-time comparison.
    pub fn compute(&self, pan: &Pan, expiry_yymm: &str, service_code: &str) -> Result<Cvc, CvkError> {
        self.compute_digits(pan.expose(), expiry_yymm, service_code)
    }

    /// The CVC2 printed on the card: service code `000`.
    pub fn cvc2(&self, pan: &Pan, expiry: &Expiry) -> Cvc {
        let yymm = Zeroizing::new(expiry.yymm());
        // A `Pan` is at most 19 digits and `yymm` always 4 digits, so the only fallible
        // inputs are already valid: this cannot fail.
        self.compute_digits(pan.expose(), &yymm, CVC2_SERVICE_CODE)
            .expect("a Pan and an Expiry always form valid CVV input")
    }

    /// The algorithm over raw digits; `pan` is trusted to be 1 to 19 ASCII digits
    /// (a [`Pan`] in production; unit tests also feed the published vectors, some of
    /// whose PANs are not Luhn-valid).
    fn compute_digits(&self, pan: &str, expiry_yymm: &str, service_code: &str) -> Result<Cvc, CvkError> {
        if expiry_yymm.len() != 4 || !expiry_yymm.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CvkError::Expiry);
        }
        if service_code.len() != 3 || !service_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CvkError::ServiceCode);
        }

        // Pack the digits as BCD, two per byte, zero-padded on the right to 32 digits.
        let mut data = Zeroizing::new([0u8; 16]);
        let digits = pan.bytes().chain(expiry_yymm.bytes()).chain(service_code.bytes());
        for (i, d) in digits.take(32).enumerate() {
            let nibble = d.wrapping_sub(b'0') & 0x0F;
            data[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
        }

        // Both halves are exactly 8 bytes, so construction cannot fail.
        let cvk_a = Des::new_from_slice(&self.a[..]).map_err(|_| CvkError::KeyFormat)?;
        let cvk_b = Des::new_from_slice(&self.b[..]).map_err(|_| CvkError::KeyFormat)?;

        let mut bytes = Zeroizing::new([0u8; 8]);
        bytes.copy_from_slice(&data[..8]);
        let block: &mut Block<Des> = (&mut *bytes).into();
        cvk_a.encrypt_block(block);
        for (x, y) in block.iter_mut().zip(&data[8..]) {
            *x ^= y;
        }
        cvk_a.encrypt_block(block);
        cvk_b.decrypt_block(block);
        cvk_a.encrypt_block(block);

        Ok(decimalise(&bytes))
    }
}

/// Decimalisation of an 8-byte result into the first three digits (see the module docs).
fn decimalise(result: &[u8; 8]) -> Cvc {
    let nibbles = Zeroizing::new(result.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect::<Vec<u8>>());
    let decimal = nibbles.iter().filter(|&&n| n <= 9).copied();
    let letters = nibbles.iter().filter(|&&n| n > 9).map(|&n| n - 10);
    // 16 nibbles, each contributing exactly one digit, so there are always at least three.
    let digits: Zeroizing<String> =
        Zeroizing::new(decimal.chain(letters).take(3).map(|d| char::from(b'0' + d)).collect());
    Cvc::parse(&digits).expect("decimalisation yields three ASCII digits")
}

fn decode_half(hex_key: &str) -> Result<Zeroizing<[u8; 8]>, CvkError> {
    let mut key = Zeroizing::new([0u8; 8]);
    hex::decode_to_slice(hex_key.trim(), key.as_mut_slice()).map_err(|_| CvkError::KeyFormat)?;
    Ok(key)
}

impl fmt::Debug for CvkPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CvkPair(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CVK_A: &str = "0123456789ABCDEF";
    const CVK_B: &str = "FEDCBA9876543210";

    fn cvk() -> CvkPair {
        CvkPair::from_hex(CVK_A, CVK_B).unwrap()
    }

    /// Published reference vectors for CVK-A 0123456789ABCDEF / CVK-B FEDCBA9876543210
    /// (the table circulated with the Visa CVV specification and reproduced in HSM
    /// documentation; 13- and 16-digit PANs). Each was cross-checked with an independent
    /// DES implementation (Python `cryptography`) when this module was written.
    const VECTORS: &[(&str, &str, &str, &str)] = &[
        ("4123456789012345", "8701", "101", "561"),
        ("4999988887777000", "9105", "111", "245"),
        ("4666655554444111", "9206", "120", "664"),
        ("4333322221111222", "9307", "141", "382"),
        ("4123456789012", "8701", "101", "370"),
        ("4999988887777", "9105", "111", "649"),
        ("4666655554444", "9206", "120", "821"),
        ("4333322221111", "9307", "141", "697"),
        // A worked example with the same keys and service code 111 (intermediate result
        // 8D5625FA78011A0C).
        ("4123456789012345", "8701", "111", "856"),
    ];

    #[test]
    fn published_vectors() {
        let cvk = cvk();
        for &(pan, yymm, sc, expected) in VECTORS {
            assert_eq!(cvk.compute_digits(pan, yymm, sc).unwrap().expose(), expected, "{pan} {yymm} {sc}");
        }
    }

    #[test]
    fn lowercase_hex_keys_are_the_same_key() {
        let lower = CvkPair::from_hex(&CVK_A.to_lowercase(), &CVK_B.to_lowercase()).unwrap();
        assert_eq!(lower.compute_digits("4123456789012345", "8701", "101").unwrap().expose(), "561");
    }

    #[test]
    fn cvc2_uses_service_code_000() {
        let cvk = cvk();
        // 4333322221111 is Luhn-valid, so this vector also runs through the typed API.
        let pan = Pan::parse("4333322221111").unwrap();
        assert_eq!(cvk.compute(&pan, "9307", "141").unwrap().expose(), "697");
        // Cross-checked with an independent DES implementation.
        let visa = Pan::parse("4111111111111111").unwrap();
        let expiry = Expiry::parse("12/28").unwrap();
        let cvc2 = cvk.cvc2(&visa, &expiry);
        assert_eq!(cvc2.expose(), "590");
        assert!(cvc2.ct_eq(&cvk.compute(&visa, "2812", "000").unwrap()));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cvk = cvk();
        let pan = Pan::parse("4111111111111111").unwrap();
        assert_eq!(cvk.compute(&pan, "281", "000").unwrap_err(), CvkError::Expiry);
        assert_eq!(cvk.compute(&pan, "28/2", "000").unwrap_err(), CvkError::Expiry);
        assert_eq!(cvk.compute(&pan, "2812", "0000").unwrap_err(), CvkError::ServiceCode);
        assert_eq!(cvk.compute(&pan, "2812", "a00").unwrap_err(), CvkError::ServiceCode);
    }

    #[test]
    fn key_validation() {
        assert_eq!(CvkPair::from_hex("0123", CVK_B).unwrap_err(), CvkError::KeyFormat);
        assert_eq!(CvkPair::from_hex(CVK_A, "FEDCBA987654321G").unwrap_err(), CvkError::KeyFormat);
        assert_eq!(CvkPair::from_hex(CVK_A, CVK_A).unwrap_err(), CvkError::EqualHalves);
        assert_eq!(CvkPair::from_hex("0101010101010101", CVK_B).unwrap_err(), CvkError::WeakKey);
        assert_eq!(CvkPair::from_hex(CVK_A, "011F011F010E010E").unwrap_err(), CvkError::WeakKey);
    }

    #[test]
    fn debug_is_masked() {
        assert_eq!(format!("{:?}", cvk()), "CvkPair(***)");
        let cvc = cvk().cvc2(&Pan::parse("4111111111111111").unwrap(), &Expiry::parse("12/28").unwrap());
        assert_eq!(format!("{cvc:?}"), "Cvc(***)");
    }
}
