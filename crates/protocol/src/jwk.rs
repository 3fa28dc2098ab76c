//! RSA JSON Web Keys (RFC 7517/7518) for JWE key transport.
//!
//! Each side publishes a [`JwkSet`] of RSA public keys (`use: "enc"`,
//! `alg: "RSA-OAEP-256"`) at its `…/public-key` endpoint; the other side encrypts field
//! payloads to one of them with [`crate::jwe::encrypt`]. The private half is an
//! [`RsaKeyPair`], loaded from PKCS#8 PEM and held in a [`crate::jwe::KeyRing`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use zeroize::Zeroizing;

pub use crate::rsa::{GENERATED_RSA_BITS, MAX_RSA_BITS, MIN_RSA_BITS, RsaPublicKey};
use crate::rsa::{RsaError, RsaPrivateKey};

/// `kty` of every key in this contract.
pub const KTY_RSA: &str = "RSA";
/// `use` of every key in this contract: encryption.
pub const USE_ENC: &str = "enc";
/// `alg` of every key in this contract.
pub const ALG_RSA_OAEP_256: &str = "RSA-OAEP-256";
/// Longest accepted `kid`.
pub const MAX_KID_LEN: usize = 128;

/// Why a key could not be used, loaded or made. Never contains key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    #[error("JWK kty must be \"RSA\"")]
    UnsupportedKeyType,
    #[error("JWK use must be \"enc\"")]
    UnsupportedUse,
    #[error("JWK alg must be \"RSA-OAEP-256\"")]
    UnsupportedAlgorithm,
    #[error("kid must be 1 to 128 visible ASCII characters")]
    InvalidKid,
    #[error("JWK member {0} is not valid base64url")]
    InvalidEncoding(&'static str),
    #[error("RSA modulus must be 2048 to 8192 bits (generated keys: 2048, 3072, 4096 or 8192)")]
    KeySize,
    #[error("not a valid RSA public key")]
    InvalidPublicKey,
    #[error("not a valid PKCS#8 PEM RSA private key")]
    InvalidPrivateKey,
    #[error("RSA key generation failed")]
    Generation,
    #[error("RSA private key could not be encoded as PKCS#8")]
    Encoding,
    #[error("a key ring must hold at least one key")]
    EmptyKeyRing,
    #[error("two keys in one key ring share a kid")]
    DuplicateKid,
}

impl From<RsaError> for JwkError {
    fn from(e: RsaError) -> Self {
        match e {
            RsaError::KeySize => JwkError::KeySize,
            RsaError::InvalidPublicKey => JwkError::InvalidPublicKey,
            RsaError::InvalidPrivateKey => JwkError::InvalidPrivateKey,
            RsaError::Generation | RsaError::Operation => JwkError::Generation,
            RsaError::Encoding => JwkError::Encoding,
        }
    }
}

/// Checks a `kid`: 1 to 128 visible ASCII characters. Kids travel in JWE headers and in
/// logs, so anything beyond that is refused rather than escaped.
pub fn validate_kid(kid: &str) -> Result<(), JwkError> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(JwkError::InvalidKid);
    }
    Ok(())
}

/// An RSA public key for JWE key transport, as published in a [`JwkSet`].
///
/// Unknown members (`key_ops`, `x5c`, …) are ignored when reading, so keys published by
/// other JOSE tooling load as long as the members below are present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublicJwk {
    /// Key type; always `RSA`.
    #[schema(example = "RSA")]
    pub kty: String,
    /// Key id; copied into the `kid` header of every JWE encrypted to this key.
    #[schema(example = "2026-01-issuer-enc")]
    pub kid: String,
    /// Public key use; always `enc`.
    #[serde(rename = "use")]
    #[schema(rename = "use", example = "enc")]
    pub key_use: String,
    /// Key-management algorithm; always `RSA-OAEP-256`.
    #[schema(example = "RSA-OAEP-256")]
    pub alg: String,
    /// Modulus, base64url (no padding) big-endian unsigned integer.
    pub n: String,
    /// Public exponent, base64url (no padding) big-endian unsigned integer.
    #[schema(example = "AQAB")]
    pub e: String,
}

impl PublicJwk {
    /// The JWK of `key` under `kid`, with `use: "enc"` and `alg: "RSA-OAEP-256"`.
    pub fn from_public_key(kid: impl Into<String>, key: &RsaPublicKey) -> PublicJwk {
        PublicJwk {
            kty: KTY_RSA.to_owned(),
            kid: kid.into(),
            key_use: USE_ENC.to_owned(),
            alg: ALG_RSA_OAEP_256.to_owned(),
            // Minimal big-endian encodings, as RFC 7518 §6.3.1 requires.
            n: URL_SAFE_NO_PAD.encode(key.n()),
            e: URL_SAFE_NO_PAD.encode(key.e()),
        }
    }

    /// Validates every member and returns the RSA public key.
    ///
    /// Refuses anything this contract does not use: another `kty`, `use` or `alg`, an
    /// invalid `kid`, a modulus outside 2048-8192 bits or an unusable exponent.
    pub fn to_public_key(&self) -> Result<RsaPublicKey, JwkError> {
        if self.kty != KTY_RSA {
            return Err(JwkError::UnsupportedKeyType);
        }
        if self.key_use != USE_ENC {
            return Err(JwkError::UnsupportedUse);
        }
        if self.alg != ALG_RSA_OAEP_256 {
            return Err(JwkError::UnsupportedAlgorithm);
        }
        validate_kid(&self.kid)?;
        // Bound the work before decoding: an 8192-bit modulus is 1366 base64 characters.
        if self.n.len() > (MAX_RSA_BITS / 8 + 1).div_ceil(3) * 4 || self.e.len() > 16 {
            return Err(JwkError::KeySize);
        }
        let n = URL_SAFE_NO_PAD.decode(&self.n).map_err(|_| JwkError::InvalidEncoding("n"))?;
        let e = URL_SAFE_NO_PAD.decode(&self.e).map_err(|_| JwkError::InvalidEncoding("e"))?;
        Ok(RsaPublicKey::from_components(&n, &e)?)
    }

    /// The RFC 7638 JWK thumbprint: base64url SHA-256 of `{"e":…,"kty":"RSA","n":…}`.
    /// A stable, collision-resistant name for the key, used as the default `kid`.
    pub fn thumbprint(&self) -> String {
        // Members in lexicographic order, no whitespace; n and e are base64url and need
        // no JSON escaping.
        let canonical = format!(r#"{{"e":"{}","kty":"{}","n":"{}"}}"#, self.e, self.kty, self.n);
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

impl TryFrom<&PublicJwk> for RsaPublicKey {
    type Error = JwkError;
    fn try_from(jwk: &PublicJwk) -> Result<Self, Self::Error> {
        jwk.to_public_key()
    }
}

/// A JWK Set (RFC 7517 §5): what the `…/public-key` endpoints return.
///
/// During a rotation it holds several keys; senders encrypt to the first
/// ([`JwkSet::encryption_key`]) and receivers decrypt with whichever `kid` a JWE names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<PublicJwk>,
}

impl JwkSet {
    /// The key with this `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&PublicJwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The first key this contract can encrypt to (valid RSA-OAEP-256 encryption key).
    /// Publishers list their current key first.
    pub fn encryption_key(&self) -> Option<&PublicJwk> {
        self.keys.iter().find(|k| k.to_public_key().is_ok())
    }
}

/// An RSA private key and its `kid`.
///
/// `Debug` shows only the `kid` and modulus size; the private key is wiped on drop (see
/// [`crate::rsa`]).
#[derive(Clone)]
pub struct RsaKeyPair {
    kid: String,
    key: RsaPrivateKey,
}

impl RsaKeyPair {
    /// Generates a new key of `bits` (one of [`GENERATED_RSA_BITS`]) with public exponent
    /// 65537, named by its RFC 7638 thumbprint. Tens of milliseconds for 2048 bits, seconds
    /// for 8192.
    pub fn generate(bits: usize) -> Result<RsaKeyPair, JwkError> {
        let key = RsaPrivateKey::generate(bits)?;
        let kid = PublicJwk::from_public_key(String::new(), key.public_key()).thumbprint();
        Ok(RsaKeyPair { kid, key })
    }

    /// Loads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) RSA private key under `kid`.
    pub fn from_pkcs8_pem(kid: impl Into<String>, pem: &str) -> Result<RsaKeyPair, JwkError> {
        let kid = kid.into();
        validate_kid(&kid)?;
        let key = RsaPrivateKey::from_pkcs8_pem(pem)?;
        Ok(RsaKeyPair { kid, key })
    }

    /// The same key under another `kid`.
    pub fn with_kid(self, kid: impl Into<String>) -> Result<RsaKeyPair, JwkError> {
        let kid = kid.into();
        validate_kid(&kid)?;
        Ok(RsaKeyPair { kid, key: self.key })
    }

    /// The private key as PKCS#8 PEM (LF line endings), in a buffer wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, JwkError> {
        Ok(self.key.to_pkcs8_pem()?)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.bits()
    }

    /// The public half as a JWK.
    pub fn public_jwk(&self) -> PublicJwk {
        PublicJwk::from_public_key(self.kid.clone(), self.key.public_key())
    }

    /// The public half.
    pub fn public_key(&self) -> &RsaPublicKey {
        self.key.public_key()
    }

    pub(crate) fn private_key(&self) -> &RsaPrivateKey {
        &self.key
    }
}

impl fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKeyPair").field("kid", &self.kid).field("bits", &self.bits()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn pair() -> &'static RsaKeyPair {
        static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
        KEY.get_or_init(|| RsaKeyPair::generate(2048).expect("keygen"))
    }

    #[test]
    fn jwk_round_trips_through_json_and_rsa() {
        let jwk = pair().public_jwk();
        assert_eq!(
            (jwk.kty.as_str(), jwk.key_use.as_str(), jwk.alg.as_str(), jwk.e.as_str()),
            ("RSA", "enc", "RSA-OAEP-256", "AQAB")
        );
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "enc");
        assert!(json.get("key_use").is_none());
        let back: PublicJwk = serde_json::from_value(json).unwrap();
        assert_eq!(back, jwk);
        assert_eq!(&back.to_public_key().unwrap(), pair().public_key());
        assert_eq!(&RsaPublicKey::try_from(&back).unwrap(), pair().public_key());
        // Generated kids are RFC 7638 thumbprints.
        assert_eq!(pair().kid(), jwk.thumbprint());
        assert_eq!(pair().bits(), 2048);
    }

    #[test]
    fn foreign_members_are_ignored() {
        let mut json = serde_json::to_value(pair().public_jwk()).unwrap();
        json["key_ops"] = serde_json::json!(["encrypt"]);
        let jwk: PublicJwk = serde_json::from_value(json).unwrap();
        jwk.to_public_key().unwrap();
    }

    #[test]
    fn unusable_keys_are_refused() {
        let good = pair().public_jwk();
        let with = |f: fn(&mut PublicJwk)| {
            let mut k = good.clone();
            f(&mut k);
            k.to_public_key().unwrap_err()
        };
        assert_eq!(with(|k| k.kty = "EC".into()), JwkError::UnsupportedKeyType);
        assert_eq!(with(|k| k.key_use = "sig".into()), JwkError::UnsupportedUse);
        assert_eq!(with(|k| k.alg = "RSA-OAEP".into()), JwkError::UnsupportedAlgorithm);
        assert_eq!(with(|k| k.kid = String::new()), JwkError::InvalidKid);
        assert_eq!(with(|k| k.kid = "a b".into()), JwkError::InvalidKid);
        assert_eq!(with(|k| k.n = "!!".into()), JwkError::InvalidEncoding("n"));
        assert_eq!(with(|k| k.e = "AQAB=".into()), JwkError::InvalidEncoding("e"));
        // 1024-bit modulus.
        assert_eq!(with(|k| k.n = URL_SAFE_NO_PAD.encode([0xC5u8; 128])), JwkError::KeySize);
        assert_eq!(with(|k| k.n = "A".repeat(5000)), JwkError::KeySize);
        // Even modulus.
        assert_eq!(with(|k| k.n = URL_SAFE_NO_PAD.encode([0xC4u8; 256])), JwkError::InvalidPublicKey);
    }

    #[test]
    fn pem_round_trip() {
        let pem = pair().to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let loaded = RsaKeyPair::from_pkcs8_pem("k1", &pem).unwrap();
        assert_eq!(loaded.kid(), "k1");
        assert_eq!(loaded.public_key(), pair().public_key());
        assert_eq!(loaded.bits(), 2048);
        assert_eq!(RsaKeyPair::from_pkcs8_pem("k1", "nope").unwrap_err(), JwkError::InvalidPrivateKey);
        assert_eq!(RsaKeyPair::from_pkcs8_pem("", &pem).unwrap_err(), JwkError::InvalidKid);
        assert_eq!(RsaKeyPair::generate(1024).unwrap_err(), JwkError::KeySize);
        assert_eq!(RsaKeyPair::generate(2050).unwrap_err(), JwkError::KeySize);
    }

    #[test]
    fn debug_hides_the_private_key() {
        let dbg = format!("{:?}", pair());
        assert!(dbg.starts_with("RsaKeyPair { kid: "), "{dbg}");
        assert!(!dbg.contains("PrivateKey") && !dbg.contains("key:"), "{dbg}");
    }

    #[test]
    fn jwk_set_lookup() {
        let mut bad = pair().public_jwk();
        bad.alg = "RSA1_5".into();
        bad.kid = "old".into();
        let set = JwkSet { keys: vec![bad, pair().public_jwk()] };
        assert_eq!(set.find("old").unwrap().alg, "RSA1_5");
        assert_eq!(set.encryption_key().unwrap().kid, pair().kid());
        assert!(set.find("none").is_none());
    }
}
