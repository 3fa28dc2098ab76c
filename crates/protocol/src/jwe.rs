//! Compact JWE (RFC 7516) with `alg: "RSA-OAEP-256"` and `enc: "A256GCM"`.
//!
//! Card data (PAN, expiry, CVC, OTP) crosses the wire only inside an `encryptedPayload`
//! field holding one of these tokens. The format, exactly:
//!
//! ```text
//! BASE64URL(protected header) . BASE64URL(encrypted key) . BASE64URL(IV)
//!     . BASE64URL(ciphertext) . BASE64URL(tag)
//! ```
//!
//! * protected header: `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"…"}`;
//! * a fresh random 256-bit content-encryption key (CEK) per token, encrypted to the
//!   recipient's RSA key with OAEP (SHA-256, MGF1-SHA-256, empty label);
//! * a fresh random 96-bit IV;
//! * AES-256-GCM over the plaintext, with the ASCII of the *encoded* protected header as
//!   additional authenticated data, so the header cannot be altered either;
//! * the 128-bit tag as its own part.
//!
//! Base64url is unpadded and decoded strictly (non-canonical encodings are refused), so any
//! change to any character of a token is detected.
//!
//! Decryption is deliberately uninformative about *why* a well-formed token failed: a
//! wrong key, a tampered encrypted key, IV, ciphertext, tag or header all give
//! [`JweError::DecryptionFailed`]. An RSA padding failure is not reported separately but
//! replaced by a random CEK that then fails authentication (RFC 7516 §11.5), which closes
//! the padding-oracle side channel.

use std::fmt;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng as _;
use rand::rngs::SysRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::jwk::{ALG_RSA_OAEP_256, JwkError, JwkSet, PublicJwk, RsaKeyPair};

/// The only `alg` produced and accepted.
pub const ALG: &str = ALG_RSA_OAEP_256;
/// The only `enc` produced and accepted.
pub const ENC: &str = "A256GCM";
/// Longest compact JWE accepted (and produced), in bytes. Checked before any parsing so
/// that an oversized field costs nothing; card payloads are a few hundred bytes. A quarter of
/// the Issuer API's default body limit (64 KiB), so that a payload of any length the OpenAPI
/// document allows fits in a body the Issuer API accepts, and one too long is answered 422
/// for what it is rather than 413 for the body around it.
pub const MAX_COMPACT_LEN: usize = 16 * 1024;

/// A compact JWE as the contract takes it: five base64url parts, none empty (the key is
/// always wrapped, the content always has an IV and a tag). Each `encryptedPayload` states it in
/// the OpenAPI with the length limits (the adapter's OpenAPI test holds them to these values).
pub const COMPACT_PATTERN: &str =
    "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$";
/// Shortest compact JWE: five one-character parts and four dots.
pub const MIN_COMPACT_LEN: usize = 9;

const CEK_LEN: usize = 32;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a JWE could not be produced or opened. Never contains plaintext or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JweError {
    /// Not five base64url parts, a header that is not a JSON object, or an IV, tag or
    /// encrypted key of the wrong length.
    #[error("malformed JWE")]
    Malformed,
    /// The token is longer than [`MAX_COMPACT_LEN`] (or would be, when encrypting).
    #[error("JWE exceeds the maximum size")]
    TooLarge,
    /// `alg` other than `RSA-OAEP-256`.
    #[error("the JWE's `alg` must be RSA-OAEP-256")]
    UnsupportedAlgorithm,
    /// `enc` other than `A256GCM`.
    #[error("the JWE's `enc` must be A256GCM")]
    UnsupportedEncryption,
    /// A `zip` (compression) or `crit` (critical extensions) header: neither is part of this
    /// contract. Carries the header's name.
    #[error("the JWE header `{0}` is not supported")]
    UnsupportedHeader(&'static str),
    /// The header has no `kid` (or one that is not a string): the key cannot be chosen.
    #[error("the JWE header has no `kid`")]
    MissingKeyId,
    /// The header names a key not in the ring.
    #[error("the JWE names an unknown `kid`")]
    UnknownKey,
    /// Wrong key or tampered token. Deliberately says nothing more.
    #[error("JWE decryption failed")]
    DecryptionFailed,
    /// The plaintext is not the expected JSON (or a value could not be serialized).
    /// Carries no detail: serde messages may quote the plaintext.
    #[error("JWE payload is not valid for the expected type")]
    InvalidPayload,
    /// The recipient key cannot be used.
    #[error("invalid recipient key: {0}")]
    InvalidKey(#[from] JwkError),
    /// The random number generator or a cipher failed while encrypting.
    #[error("JWE encryption failed")]
    EncryptionFailed,
}

/// The protected header we produce; field order is the serialization order. `extra` holds the
/// members a sender adds besides the three the contract requires (none in the kit's senders).
#[derive(Serialize)]
struct ProtectedHeader<'a> {
    alg: &'a str,
    enc: &'a str,
    kid: &'a str,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

fn fill_random(buf: &mut [u8]) -> Result<(), JweError> {
    // The OS RNG directly: one syscall per token is nothing next to an RSA operation,
    // and it leaves no user-space RNG state to worry about (forks, snapshots).
    SysRng.try_fill_bytes(buf).map_err(|_| JweError::EncryptionFailed)
}

/// Encrypts `plaintext` to `recipient`, naming it by its `kid`.
pub fn encrypt(plaintext: &[u8], recipient: &PublicJwk) -> Result<String, JweError> {
    encrypt_with_header(plaintext, recipient, &serde_json::Map::new())
}

/// [`encrypt`], with `extra` members in the protected header (covered by the AAD like the
/// others). The contract allows other members and refuses `zip` and `crit`: the conformance
/// suite sends both kinds to check a receiver tells them apart. `extra` cannot replace `alg`,
/// `enc` or `kid`.
pub fn encrypt_with_header(
    plaintext: &[u8],
    recipient: &PublicJwk,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, JweError> {
    if ["alg", "enc", "kid"].iter().any(|name| extra.contains_key(*name)) {
        return Err(JweError::EncryptionFailed);
    }
    // Reject early: base64 grows data by 4/3, and the rest of the token is well under the
    // slack left here.
    if plaintext.len() > MAX_COMPACT_LEN / 4 * 3 {
        return Err(JweError::TooLarge);
    }
    let public_key = recipient.to_public_key()?;

    let header = serde_json::to_vec(&ProtectedHeader { alg: ALG, enc: ENC, kid: &recipient.kid, extra })
        .map_err(|_| JweError::EncryptionFailed)?;
    let header_b64 = URL_SAFE_NO_PAD.encode(header);

    let mut cek = Zeroizing::new([0u8; CEK_LEN]);
    fill_random(&mut cek[..])?;
    let mut iv = [0u8; IV_LEN];
    fill_random(&mut iv)?;

    let encrypted_key = public_key.oaep_encrypt(&cek[..]).map_err(|_| JweError::EncryptionFailed)?;

    let cipher = Aes256Gcm::new_from_slice(&cek[..]).map_err(|_| JweError::EncryptionFailed)?;
    // The buffer briefly holds a plaintext copy, so wipe it on drop.
    let mut buffer = Zeroizing::new(plaintext.to_vec());
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(iv), header_b64.as_bytes(), buffer.as_mut_slice().into())
        .map_err(|_| JweError::EncryptionFailed)?;

    let compact = [
        header_b64.as_str(),
        &URL_SAFE_NO_PAD.encode(encrypted_key),
        &URL_SAFE_NO_PAD.encode(iv),
        &URL_SAFE_NO_PAD.encode(buffer.as_slice()),
        &URL_SAFE_NO_PAD.encode(tag),
    ]
    .join(".");
    if compact.len() > MAX_COMPACT_LEN {
        return Err(JweError::TooLarge);
    }
    Ok(compact)
}

/// Serializes `value` as JSON and encrypts it to `recipient`.
///
/// The JSON is written into a pre-sized buffer that is wiped on drop, so for ordinary card
/// payloads no unwiped intermediate copy is left behind.
pub fn encrypt_json<T: Serialize + ?Sized>(value: &T, recipient: &PublicJwk) -> Result<String, JweError> {
    let mut json = Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *json, value).map_err(|_| JweError::InvalidPayload)?;
    encrypt(&json, recipient)
}

/// The parsed and checked parts of a compact JWE, before decryption.
struct Parts<'a> {
    header_b64: &'a str,
    kid: String,
    encrypted_key: Vec<u8>,
    iv: [u8; IV_LEN],
    ciphertext: Vec<u8>,
    tag: [u8; TAG_LEN],
}

fn b64(part: &str) -> Result<Vec<u8>, JweError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JweError::Malformed)
}

fn parse(compact: &str) -> Result<Parts<'_>, JweError> {
    if compact.len() > MAX_COMPACT_LEN {
        return Err(JweError::TooLarge);
    }
    let mut it = compact.split('.');
    let (Some(h), Some(k), Some(i), Some(c), Some(t), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(JweError::Malformed);
    };

    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&b64(h)?).map_err(|_| JweError::Malformed)?;
    // serde_json keeps the last of duplicate members, which RFC 7515 §4 permits. Each refusal
    // names its own cause: a sender fixing its JWE needs to know which member is wrong.
    if header.get("alg").and_then(|v| v.as_str()) != Some(ALG) {
        return Err(JweError::UnsupportedAlgorithm);
    }
    if header.get("enc").and_then(|v| v.as_str()) != Some(ENC) {
        return Err(JweError::UnsupportedEncryption);
    }
    for name in ["zip", "crit"] {
        if header.contains_key(name) {
            return Err(JweError::UnsupportedHeader(name));
        }
    }
    let kid = header.get("kid").and_then(|v| v.as_str()).ok_or(JweError::MissingKeyId)?.to_owned();

    let iv = b64(i)?.try_into().map_err(|_| JweError::Malformed)?;
    let tag = b64(t)?.try_into().map_err(|_| JweError::Malformed)?;
    Ok(Parts { header_b64: h, kid, encrypted_key: b64(k)?, iv, ciphertext: b64(c)?, tag })
}

/// Reads the `kid` a compact JWE names, without decrypting it (e.g. to log which key a
/// sender used). Fails as decryption would on a malformed or unsupported token.
pub fn peek_kid(compact: &str) -> Result<String, JweError> {
    parse(compact).map(|p| p.kid)
}

/// The private keys this party can decrypt with. Several are live during a rotation: the
/// new key is published first, and tokens encrypted to the old one still open until it
/// is removed.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<RsaKeyPair>,
}

impl KeyRing {
    /// A ring of `keys`, current key first. Kids must be unique and the ring non-empty.
    pub fn new(keys: Vec<RsaKeyPair>) -> Result<KeyRing, JwkError> {
        if keys.is_empty() {
            return Err(JwkError::EmptyKeyRing);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid() == key.kid()) {
                return Err(JwkError::DuplicateKid);
            }
        }
        Ok(KeyRing { keys })
    }

    /// The keys, current first.
    pub fn keys(&self) -> &[RsaKeyPair] {
        &self.keys
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&RsaKeyPair> {
        self.keys.iter().find(|k| k.kid() == kid)
    }

    /// The public keys, current first: the body of the `…/public-key` endpoints.
    pub fn jwk_set(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(RsaKeyPair::public_jwk).collect() }
    }

    /// Decrypts a compact JWE addressed to one of the ring's keys.
    pub fn decrypt(&self, compact: &str) -> Result<Zeroizing<Vec<u8>>, JweError> {
        let parts = parse(compact)?;
        let pair = self.get(&parts.kid).ok_or(JweError::UnknownKey)?;
        let key = pair.private_key();

        // The encrypted key is exactly one modulus long; its length is public, so
        // reporting a mismatch as malformed leaks nothing.
        if parts.encrypted_key.len() != pair.bits().div_ceil(8) {
            return Err(JweError::Malformed);
        }

        // RFC 7516 §11.5: on an RSA failure (or a CEK of the wrong length) carry on with a
        // random CEK, so that the outcome is always the same AES-GCM authentication failure
        // and an attacker cannot tell padding errors from tag errors.
        let mut cek = Zeroizing::new([0u8; CEK_LEN]);
        match key.oaep_decrypt(&parts.encrypted_key) {
            Ok(k) if k.len() == CEK_LEN => cek.copy_from_slice(&k),
            _ => fill_random(&mut cek[..]).map_err(|_| JweError::DecryptionFailed)?,
        }

        let cipher = Aes256Gcm::new_from_slice(&cek[..]).map_err(|_| JweError::DecryptionFailed)?;
        let mut buffer = Zeroizing::new(parts.ciphertext);
        cipher
            .decrypt_inout_detached(
                &Nonce::from(parts.iv),
                parts.header_b64.as_bytes(),
                buffer.as_mut_slice().into(),
                &Tag::from(parts.tag),
            )
            .map_err(|_| JweError::DecryptionFailed)?;
        Ok(buffer)
    }

    /// Decrypts and parses the plaintext as JSON `T`.
    ///
    /// Any JSON error becomes [`JweError::InvalidPayload`] without detail, since serde's
    /// messages can quote the (secret) plaintext.
    pub fn decrypt_json<T: DeserializeOwned>(&self, compact: &str) -> Result<T, JweError> {
        let plaintext = self.decrypt(compact)?;
        serde_json::from_slice(&plaintext).map_err(|_| JweError::InvalidPayload)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.keys.iter().map(RsaKeyPair::kid).collect::<Vec<_>>()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn keys() -> &'static (RsaKeyPair, RsaKeyPair) {
        static KEYS: OnceLock<(RsaKeyPair, RsaKeyPair)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let a = RsaKeyPair::generate(2048).unwrap().with_kid("key-a").unwrap();
            let b = RsaKeyPair::generate(2048).unwrap().with_kid("key-b").unwrap();
            (a, b)
        })
    }

    fn ring_a() -> KeyRing {
        KeyRing::new(vec![keys().0.clone()]).unwrap()
    }

    fn header_of(compact: &str) -> serde_json::Value {
        let h = compact.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    }

    fn with_header(compact: &str, header: &serde_json::Value) -> String {
        let rest: Vec<&str> = compact.split('.').skip(1).collect();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), rest.join("."))
    }

    #[test]
    fn round_trip_and_shape() {
        let token = encrypt(b"hello", &keys().0.public_jwk()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 5);
        assert_eq!(header_of(&token), serde_json::json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "key-a"}));
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[1]).unwrap().len(), 256);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 12);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[4]).unwrap().len(), 16);
        assert_eq!(&*ring_a().decrypt(&token).unwrap(), b"hello");
        assert_eq!(peek_kid(&token).unwrap(), "key-a");
        // Empty plaintext is valid too.
        let empty = encrypt(b"", &keys().0.public_jwk()).unwrap();
        assert!(ring_a().decrypt(&empty).unwrap().is_empty());
    }

    #[test]
    fn every_token_uses_a_fresh_cek_and_iv() {
        let a = encrypt(b"same", &keys().0.public_jwk()).unwrap();
        let b = encrypt(b"same", &keys().0.public_jwk()).unwrap();
        let (pa, pb): (Vec<_>, Vec<_>) = (a.split('.').collect(), b.split('.').collect());
        assert_ne!(pa[1], pb[1]);
        assert_ne!(pa[2], pb[2]);
    }

    #[test]
    fn rotation_ring_opens_tokens_for_any_live_key() {
        let (a, b) = keys();
        let ring = KeyRing::new(vec![b.clone(), a.clone()]).unwrap();
        for jwk in [a.public_jwk(), b.public_jwk()] {
            assert_eq!(&*ring.decrypt(&encrypt(b"x", &jwk).unwrap()).unwrap(), b"x");
        }
        let set = ring.jwk_set();
        assert_eq!(set.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["key-b", "key-a"]);
        assert_eq!(format!("{ring:?}"), r#"KeyRing { kids: ["key-b", "key-a"] }"#);
    }

    #[test]
    fn key_ring_construction_rules() {
        assert_eq!(KeyRing::new(vec![]).unwrap_err(), JwkError::EmptyKeyRing);
        let a = keys().0.clone();
        assert_eq!(KeyRing::new(vec![a.clone(), a]).unwrap_err(), JwkError::DuplicateKid);
    }

    #[test]
    fn wrong_or_unknown_key() {
        let (a, b) = keys();
        let token = encrypt(b"x", &b.public_jwk()).unwrap();
        assert_eq!(ring_a().decrypt(&token).unwrap_err(), JweError::UnknownKey);
        // Same kid, different key: the RSA failure surfaces as a plain decryption failure.
        let mut impostor = b.public_jwk();
        impostor.kid = a.kid().to_owned();
        let token = encrypt(b"x", &impostor).unwrap();
        assert_eq!(ring_a().decrypt(&token).unwrap_err(), JweError::DecryptionFailed);
    }

    #[test]
    fn extra_header_members_are_covered_and_only_zip_and_crit_refused() {
        let extra = |pairs: serde_json::Value| pairs.as_object().unwrap().clone();
        let token =
            encrypt_with_header(b"hi", &keys().0.public_jwk(), &extra(serde_json::json!({"cty": "json"}))).unwrap();
        assert_eq!(header_of(&token)["cty"], "json");
        assert_eq!(ring_a().decrypt(&token).unwrap().as_slice(), b"hi");
        // The member is in the AAD: removing it breaks the tag.
        let mut stripped = header_of(&token);
        stripped.as_object_mut().unwrap().remove("cty");
        assert_eq!(ring_a().decrypt(&with_header(&token, &stripped)).unwrap_err(), JweError::DecryptionFailed);
        for (member, value) in [("zip", serde_json::json!("DEF")), ("crit", serde_json::json!(["exp"]))] {
            let token =
                encrypt_with_header(b"hi", &keys().0.public_jwk(), &extra(serde_json::json!({member: value}))).unwrap();
            assert_eq!(ring_a().decrypt(&token).unwrap_err(), JweError::UnsupportedHeader(member), "{member}");
        }
        // The three members the contract fixes cannot be replaced.
        let replaced = encrypt_with_header(b"hi", &keys().0.public_jwk(), &extra(serde_json::json!({"alg": "dir"})));
        assert_eq!(replaced.unwrap_err(), JweError::EncryptionFailed);
    }

    #[test]
    fn header_policy() {
        let token = encrypt(b"x", &keys().0.public_jwk()).unwrap();
        let base = header_of(&token);
        let check = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut h = base.clone();
            edit(&mut h);
            ring_a().decrypt(&with_header(&token, &h)).unwrap_err()
        };
        assert_eq!(check(&|h| h["alg"] = "RSA-OAEP".into()), JweError::UnsupportedAlgorithm);
        assert_eq!(check(&|h| h["alg"] = "dir".into()), JweError::UnsupportedAlgorithm);
        assert_eq!(check(&|h| h["enc"] = "A128GCM".into()), JweError::UnsupportedEncryption);
        assert_eq!(check(&|h| h["zip"] = "DEF".into()), JweError::UnsupportedHeader("zip"));
        assert_eq!(check(&|h| h["crit"] = serde_json::json!(["exp"])), JweError::UnsupportedHeader("crit"));
        assert_eq!(
            check(&|h| {
                h.as_object_mut().unwrap().remove("kid");
            }),
            JweError::MissingKeyId
        );
        assert_eq!(check(&|h| h["kid"] = 7.into()), JweError::MissingKeyId);
        // Each message names its cause, and none the other's.
        let messages: Vec<String> = [
            JweError::UnsupportedAlgorithm,
            JweError::UnsupportedEncryption,
            JweError::UnsupportedHeader("zip"),
            JweError::UnsupportedHeader("crit"),
            JweError::MissingKeyId,
            JweError::UnknownKey,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        for (message, cause) in messages.iter().zip(["`alg`", "`enc`", "`zip`", "`crit`", "no `kid`", "unknown `kid`"])
        {
            assert!(message.contains(cause), "{message}");
        }
        // A harmless extra member changes the AAD, so authentication fails.
        assert_eq!(check(&|h| h["cty"] = "JSON".into()), JweError::DecryptionFailed);
        assert_eq!(check(&|h| *h = serde_json::json!([1])), JweError::Malformed);
    }

    #[test]
    fn malformed_tokens() {
        let token = encrypt(b"x", &keys().0.public_jwk()).unwrap();
        let ring = ring_a();
        assert_eq!(ring.decrypt("").unwrap_err(), JweError::Malformed);
        assert_eq!(ring.decrypt("a.b.c.d").unwrap_err(), JweError::Malformed);
        assert_eq!(ring.decrypt(&format!("{token}.x")).unwrap_err(), JweError::Malformed);
        let p: Vec<&str> = token.split('.').collect();
        let rebuild = |i: usize, v: &str| {
            let mut q = p.clone();
            q[i] = v;
            q.join(".")
        };
        assert_eq!(ring.decrypt(&rebuild(2, "AAAA")).unwrap_err(), JweError::Malformed);
        assert_eq!(ring.decrypt(&rebuild(4, "AAAA")).unwrap_err(), JweError::Malformed);
        assert_eq!(ring.decrypt(&rebuild(1, "AAAA")).unwrap_err(), JweError::Malformed);
        assert_eq!(ring.decrypt(&rebuild(3, "A")).unwrap_err(), JweError::Malformed);
        let padded = format!("{}=", p[2]);
        assert_eq!(ring.decrypt(&rebuild(2, &padded)).unwrap_err(), JweError::Malformed);
        assert_eq!(ring.decrypt(&"a".repeat(MAX_COMPACT_LEN + 1)).unwrap_err(), JweError::TooLarge);
        assert_eq!(encrypt(&vec![0; MAX_COMPACT_LEN], &keys().0.public_jwk()).unwrap_err(), JweError::TooLarge);
    }

    #[test]
    fn json_helpers() {
        #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Card {
            pan: crate::sensitive::Pan,
        }
        let card = Card { pan: crate::sensitive::Pan::parse("4111111111111111").unwrap() };
        let token = encrypt_json(&card, &keys().0.public_jwk()).unwrap();
        assert_eq!(ring_a().decrypt_json::<Card>(&token).unwrap(), card);
        let bad = encrypt(br#"{"pan":"4111111111111112"}"#, &keys().0.public_jwk()).unwrap();
        assert_eq!(ring_a().decrypt_json::<Card>(&bad).unwrap_err(), JweError::InvalidPayload);
    }

    #[test]
    fn encrypting_to_an_unusable_key_fails() {
        let mut jwk = keys().0.public_jwk();
        jwk.key_use = "sig".into();
        assert_eq!(encrypt(b"x", &jwk).unwrap_err(), JweError::InvalidKey(JwkError::UnsupportedUse));
    }
}
