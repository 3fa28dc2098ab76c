//! RSA-OAEP-256 keys, on AWS-LC.
//!
//! The only module that names the RSA implementation. AWS-LC's RSA private-key operation is
//! constant-time (fixed-window Montgomery exponentiation over secret-independent memory
//! accesses, with base blinding) and its OAEP padding check does not branch on secret data,
//! so a caller who can submit JWEs learns nothing from timing. It is also the provider rustls
//! uses in this process, so the kit carries one cryptographic library, not two.
//!
//! Keys travel as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); the PEM text, the DER inside
//! it and every decrypted buffer are wiped on drop.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, PublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Smallest modulus accepted anywhere (generated, loaded or received), in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest modulus accepted, in bits (bounds the cost of a private-key operation).
pub const MAX_RSA_BITS: usize = 8192;
/// The key sizes [`RsaPrivateKey::generate`] makes.
pub const GENERATED_RSA_BITS: [usize; 4] = [2048, 3072, 4096, 8192];

/// Why an RSA key could not be made, read or used. Never carries key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsaError {
    KeySize,
    InvalidPublicKey,
    InvalidPrivateKey,
    Generation,
    Encoding,
    Operation,
}

/// An RSA public key for RSA-OAEP-256, with its modulus and exponent as minimal big-endian
/// bytes (what a JWK publishes). Two keys are equal when their components are.
#[derive(Clone)]
pub struct RsaPublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
    key: PublicEncryptingKey,
}

impl RsaPublicKey {
    /// The key with modulus `n` and exponent `e` (big-endian, leading zeros ignored).
    ///
    /// Refuses a modulus outside 2048–8192 bits, an even modulus and an exponent that is even,
    /// below 3 or longer than 33 bits (what AWS-LC itself accepts; RFC 8017 §3.1 allows no less).
    pub(crate) fn from_components(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, RsaError> {
        let (n, e) = (strip_leading_zeros(n), strip_leading_zeros(e));
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bit_length(n)) {
            return Err(RsaError::KeySize);
        }
        let odd = |v: &[u8]| v.last().is_some_and(|b| b & 1 == 1);
        if !odd(n) || !odd(e) || !(2..=33).contains(&bit_length(e)) {
            return Err(RsaError::InvalidPublicKey);
        }
        let key: PublicEncryptingKey =
            PublicKeyComponents { n, e }.try_into().map_err(|_| RsaError::InvalidPublicKey)?;
        Ok(RsaPublicKey { n: n.to_vec(), e: e.to_vec(), key })
    }

    /// The modulus, big-endian without leading zeros.
    pub fn n(&self) -> &[u8] {
        &self.n
    }

    /// The public exponent, big-endian without leading zeros.
    pub fn e(&self) -> &[u8] {
        &self.e
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        bit_length(&self.n)
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) encryption of a short `message` (a CEK).
    pub(crate) fn oaep_encrypt(&self, message: &[u8]) -> Result<Vec<u8>, RsaError> {
        let key = OaepPublicEncryptingKey::new(self.key.clone()).map_err(|_| RsaError::Operation)?;
        let mut out = vec![0u8; key.ciphertext_size()];
        let len = key.encrypt(&OAEP_SHA256_MGF1SHA256, message, &mut out, None).map_err(|_| RsaError::Operation)?.len();
        out.truncate(len);
        Ok(out)
    }
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.e == other.e
    }
}

impl Eq for RsaPublicKey {}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey").field("bits", &self.bits()).finish_non_exhaustive()
    }
}

/// An RSA private key for RSA-OAEP-256 decryption. `Debug` shows only its size; AWS-LC
/// wipes the key when its last reference is dropped.
#[derive(Clone)]
pub struct RsaPrivateKey {
    key: PrivateDecryptingKey,
    public: RsaPublicKey,
}

impl RsaPrivateKey {
    /// A new key of `bits` (one of [`GENERATED_RSA_BITS`]) with public exponent 65537.
    pub(crate) fn generate(bits: usize) -> Result<RsaPrivateKey, RsaError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            _ => return Err(RsaError::KeySize),
        };
        let key = PrivateDecryptingKey::generate(size).map_err(|_| RsaError::Generation)?;
        RsaPrivateKey::new(key)
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) RSA private key of 2048–8192 bits.
    pub(crate) fn from_pkcs8_pem(pem: &str) -> Result<RsaPrivateKey, RsaError> {
        let der = pem_decode(pem, PKCS8_LABEL).ok_or(RsaError::InvalidPrivateKey)?;
        let key = PrivateDecryptingKey::from_pkcs8(&der).map_err(|_| RsaError::InvalidPrivateKey)?;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key.key_size_bits()) {
            return Err(RsaError::KeySize);
        }
        RsaPrivateKey::new(key)
    }

    fn new(key: PrivateDecryptingKey) -> Result<RsaPrivateKey, RsaError> {
        // AWS-LC does not expose an encryption key's components; they are read back from its
        // SubjectPublicKeyInfo, once per key.
        let spki: PublicKeyX509Der<'static> = key.public_key().as_der().map_err(|_| RsaError::Encoding)?;
        let parsed = aws_lc_rs::rsa::PublicKey::from_der(spki.as_ref()).map_err(|_| RsaError::InvalidPrivateKey)?;
        let components = PublicKeyComponents::<Vec<u8>>::from(&parsed);
        let public = RsaPublicKey::from_components(&components.n, &components.e)?;
        Ok(RsaPrivateKey { key, public })
    }

    /// The key as PKCS#8 PEM (64-column lines, LF endings), in a buffer wiped on drop.
    pub(crate) fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, RsaError> {
        let der: Pkcs8V1Der<'static> = self.key.as_der().map_err(|_| RsaError::Encoding)?;
        Ok(pem_encode(der.as_ref(), PKCS8_LABEL))
    }

    /// The public half.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.public.bits()
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption, in a buffer wiped on drop.
    /// Fails without saying why: a padding error and a wrong key look the same.
    pub(crate) fn oaep_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, RsaError> {
        let key = OaepPrivateDecryptingKey::new(self.key.clone()).map_err(|_| RsaError::Operation)?;
        let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
        let len =
            key.decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None).map_err(|_| RsaError::Operation)?.len();
        out.truncate(len);
        Ok(out)
    }
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPrivateKey").field("bits", &self.bits()).finish_non_exhaustive()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Bits in a big-endian unsigned integer without leading zero bytes (0 for an empty one).
fn bit_length(v: &[u8]) -> usize {
    v.first().map_or(0, |b| v.len() * 8 - b.leading_zeros() as usize)
}

const PKCS8_LABEL: &str = "PRIVATE KEY";

/// RFC 7468 strict-ish PEM: exactly one block with `label`, text outside it ignored, base64
/// lines with optional surrounding whitespace. The DER is returned in a buffer wiped on drop.
fn pem_decode(pem: &str, label: &str) -> Option<Zeroizing<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    if pem[stop + end.len()..].contains("-----BEGIN ") {
        return None;
    }
    let mut body = Zeroizing::new(String::with_capacity(stop - start));
    body.extend(pem[start..stop].chars().filter(|c| !c.is_ascii_whitespace()));
    let mut der = Zeroizing::new(Vec::with_capacity(body.len() / 4 * 3));
    STANDARD.decode_vec(body.as_bytes(), &mut der).ok()?;
    Some(der)
}

fn pem_encode(der: &[u8], label: &str) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut pem = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
    pem.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::generate(2048).expect("keygen"))
    }

    #[test]
    fn oaep_round_trip_and_wrong_key() {
        let ct = key().public_key().oaep_encrypt(&[7u8; 32]).unwrap();
        assert_eq!(ct.len(), 256);
        assert_eq!(&**key().oaep_decrypt(&ct).unwrap(), &[7u8; 32]);
        let mut tampered = ct.clone();
        tampered[100] ^= 1;
        assert_eq!(key().oaep_decrypt(&tampered).unwrap_err(), RsaError::Operation);
        assert_eq!(key().oaep_decrypt(&ct[1..]).unwrap_err(), RsaError::Operation);
    }

    #[test]
    fn pem_round_trip_and_refusals() {
        let pem = key().to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = RsaPrivateKey::from_pkcs8_pem(&format!("comment\r\n{}", pem.replace('\n', "\r\n"))).unwrap();
        assert_eq!(back.public_key(), key().public_key());
        for bad in [
            String::new(),
            "nope".to_owned(),
            pem.replace("PRIVATE KEY", "RSA PRIVATE KEY"),
            pem.replace("-----END", "!-----END"),
            format!("{}{}", &*pem, &*pem),
        ] {
            assert_eq!(RsaPrivateKey::from_pkcs8_pem(&bad).unwrap_err(), RsaError::InvalidPrivateKey, "{bad}");
        }
    }

    #[test]
    fn components_are_minimal_and_checked() {
        let public = key().public_key();
        assert_eq!(public.e(), [1, 0, 1]);
        assert_eq!(public.bits(), 2048);
        assert_ne!(public.n()[0], 0);
        let padded = [&[0u8, 0][..], public.n()].concat();
        assert_eq!(&RsaPublicKey::from_components(&padded, &[0, 1, 0, 1]).unwrap(), public);
        let mut even = public.n().to_vec();
        *even.last_mut().unwrap() &= 0xFE;
        assert_eq!(RsaPublicKey::from_components(&even, public.e()).unwrap_err(), RsaError::InvalidPublicKey);
        assert_eq!(RsaPublicKey::from_components(public.n(), &[1]).unwrap_err(), RsaError::InvalidPublicKey);
        assert_eq!(RsaPublicKey::from_components(public.n(), &[1, 0, 0]).unwrap_err(), RsaError::InvalidPublicKey);
        assert_eq!(RsaPublicKey::from_components(&public.n()[1..], public.e()).unwrap_err(), RsaError::KeySize);
        assert_eq!(RsaPrivateKey::generate(2049).unwrap_err(), RsaError::KeySize);
        assert_eq!(format!("{:?}", key()), "RsaPrivateKey { bits: 2048, .. }");
    }
}
