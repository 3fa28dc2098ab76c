//! Card data at rest: AES-256-GCM under versioned data keys, and keyed PAN fingerprints.
//!
//! * [`DataKeyRing`] seals PANs and OTPs before they reach the database. Every blob records
//!   the id of the key that sealed it, so keys can be rotated: new writes use the active
//!   key, older blobs still open under their own key until they are re-sealed and the old
//!   key is retired.
//! * [`Fingerprinter`] gives each PAN a stable HMAC-SHA256 fingerprint under a separate
//!   key, so cards can be looked up by PAN without decrypting anything and without storing
//!   an unkeyed hash (a plain SHA-256 of a PAN is brute-forced in minutes: the space of
//!   valid PANs under one BIN is small).
//!
//! The caller passes associated data (AAD) naming what a blob is and whose it is (e.g.
//! `pan:<card id>`). Decryption needs the same AAD, so a ciphertext copied into another row
//! or column does not open.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use tmp_protocol::sensitive::Pan;

/// Data key length: AES-256.
pub const KEY_LEN: usize = 32;
/// Random nonce length (96 bits, the GCM standard size).
pub const NONCE_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Longest accepted data key id.
pub const MAX_KEY_ID_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a key ring could not be built or a blob could not be opened. Never contains key
/// material or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AtRestError {
    #[error("data key ids must be 1 to 64 visible ASCII characters")]
    InvalidKeyId,
    #[error("two data keys share an id")]
    DuplicateKeyId,
    #[error("the active data key id is not among the data keys")]
    ActiveKeyMissing,
    #[error("no data key with this id")]
    UnknownKeyId,
    #[error("sealed blob is shorter than a nonce and a tag")]
    Malformed,
    #[error("decryption failed (wrong key, wrong associated data or tampered blob)")]
    DecryptionFailed,
}

/// An encrypted value and the id of the data key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlob {
    pub key_id: String,
    /// `nonce (12) || ciphertext || tag (16)`.
    pub bytes: Vec<u8>,
}

/// Versioned AES-256-GCM data keys: one active key for new writes, any number of older
/// keys still able to decrypt.
///
/// Nonces are random, so a single key should seal well under 2³² values (the bound at which
/// random 96-bit nonces risk a collision); rotate long before that.
pub struct DataKeyRing {
    active_key_id: String,
    keys: HashMap<String, Zeroizing<[u8; KEY_LEN]>>,
}

impl DataKeyRing {
    /// A ring of `keys` (id → 32-byte key) whose `active_key_id` seals new values.
    pub fn new(
        active_key_id: impl Into<String>,
        keys: impl IntoIterator<Item = (String, Zeroizing<[u8; KEY_LEN]>)>,
    ) -> Result<DataKeyRing, AtRestError> {
        let active_key_id = active_key_id.into();
        let mut map = HashMap::new();
        for (id, key) in keys {
            if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(AtRestError::InvalidKeyId);
            }
            if map.insert(id, key).is_some() {
                return Err(AtRestError::DuplicateKeyId);
            }
        }
        if !map.contains_key(&active_key_id) {
            return Err(AtRestError::ActiveKeyMissing);
        }
        Ok(DataKeyRing { active_key_id, keys: map })
    }

    /// A fresh random data key, e.g. for key generation tooling.
    pub fn generate_key() -> Zeroizing<[u8; KEY_LEN]> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(&mut key[..]);
        key
    }

    /// The id new values are sealed under.
    pub fn active_key_id(&self) -> &str {
        &self.active_key_id
    }

    /// Whether a blob sealed under `key_id` should be re-sealed under the active key.
    pub fn needs_reseal(&self, key_id: &str) -> bool {
        key_id != self.active_key_id
    }

    /// Whether the ring holds a key with this id.
    pub fn has_key(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// False when both rings hold a key with this id and the keys differ: a value `other`
    /// sealed under it would not open here.
    pub fn same_key_as(&self, other: &DataKeyRing, key_id: &str) -> bool {
        match (self.keys.get(key_id), other.keys.get(key_id)) {
            (Some(mine), Some(theirs)) => mine[..] == theirs[..],
            _ => true,
        }
    }

    /// Ids of all keys in the ring, in no particular order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Seals `plaintext` under the active key, bound to `aad`.
    ///
    /// # Panics
    ///
    /// Only if `plaintext` exceeds AES-GCM's limit of about 64 GiB, which no card value
    /// approaches.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> SealedBlob {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);

        let mut bytes = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(plaintext);
        let tag = self
            .cipher(&self.active_key_id)
            .expect("the active key is in the ring (checked in new)")
            .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut bytes[NONCE_LEN..]).into())
            .expect("card values are far below the AES-GCM length limit");
        bytes.extend_from_slice(&tag);
        SealedBlob { key_id: self.active_key_id.clone(), bytes }
    }

    /// Opens a blob sealed under `key_id` with the same `aad`.
    pub fn decrypt(&self, key_id: &str, bytes: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
        let cipher = self.cipher(key_id).ok_or(AtRestError::UnknownKeyId)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(AtRestError::Malformed);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| AtRestError::Malformed)?;
        let tag = Tag::try_from(tag).map_err(|_| AtRestError::Malformed)?;

        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        cipher
            .decrypt_inout_detached(&nonce, aad, plaintext.as_mut_slice().into(), &tag)
            .map_err(|_| AtRestError::DecryptionFailed)?;
        Ok(plaintext)
    }

    fn cipher(&self, key_id: &str) -> Option<Aes256Gcm> {
        let key: &Key<Aes256Gcm> = (&**self.keys.get(key_id)?).into();
        Some(Aes256Gcm::new(key))
    }
}

impl fmt::Debug for DataKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.key_ids().collect();
        ids.sort_unstable();
        f.debug_struct("DataKeyRing").field("active_key_id", &self.active_key_id).field("key_ids", &ids).finish()
    }
}

/// Keyed PAN fingerprints: HMAC-SHA256 of the PAN digits under a dedicated key.
///
/// Deterministic (the same PAN always gives the same fingerprint under one key), so it can
/// be a unique, indexed column. The key must differ from every data key, and cannot be
/// rotated without recomputing every stored fingerprint.
pub struct Fingerprinter {
    /// The HMAC state after absorbing the key, cloned for each fingerprint.
    keyed: HmacSha256,
}

impl Fingerprinter {
    /// A fingerprinter under a 32-byte key.
    pub fn new(key: Zeroizing<[u8; KEY_LEN]>) -> Fingerprinter {
        let keyed = HmacSha256::new_from_slice(&key[..]).expect("HMAC-SHA256 accepts keys of any length");
        Fingerprinter { keyed }
    }

    /// The fingerprint of `pan`.
    pub fn fingerprint(&self, pan: &Pan) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(pan.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl Fingerprinter {
    /// Whether `other` is under the same key: both fingerprint one fixed message (no PAN) and
    /// the results are compared, so neither key is exposed.
    pub fn same_key(&self, other: &Fingerprinter) -> bool {
        const PROBE: &[u8] = b"tmp-adapter fingerprint key comparison";
        let probe = |f: &Fingerprinter| {
            let mut mac = f.keyed.clone();
            mac.update(PROBE);
            mac.finalize().into_bytes()
        };
        probe(self) == probe(other)
    }
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprinter(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new([byte; KEY_LEN])
    }

    fn ring(active: &str) -> DataKeyRing {
        DataKeyRing::new(active, [("k1".to_owned(), key(1)), ("k2".to_owned(), key(2))]).unwrap()
    }

    #[test]
    fn round_trip() {
        let ring = ring("k2");
        let sealed = ring.encrypt(b"4111111111111111", b"pan:card-1");
        assert_eq!(sealed.key_id, "k2");
        assert_eq!(sealed.bytes.len(), NONCE_LEN + 16 + TAG_LEN);
        assert!(!sealed.bytes.windows(4).any(|w| w == b"4111"));
        let opened = ring.decrypt(&sealed.key_id, &sealed.bytes, b"pan:card-1").unwrap();
        assert_eq!(&*opened, b"4111111111111111");
        // Empty plaintext works too.
        let empty = ring.encrypt(b"", b"x");
        assert!(ring.decrypt("k2", &empty.bytes, b"x").unwrap().is_empty());
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = ring("k1");
        let a = ring.encrypt(b"same", b"aad");
        let b = ring.encrypt(b"same", b"aad");
        assert_ne!(a.bytes[..NONCE_LEN], b.bytes[..NONCE_LEN]);
        assert_ne!(a.bytes, b.bytes);
    }

    #[test]
    fn rotation_old_blobs_still_open() {
        let old = ring("k1");
        let sealed = old.encrypt(b"123456", b"otp:n-1");
        let new = ring("k2");
        assert!(new.needs_reseal(&sealed.key_id));
        assert_eq!(&*new.decrypt(&sealed.key_id, &sealed.bytes, b"otp:n-1").unwrap(), b"123456");
        assert!(!new.needs_reseal(new.active_key_id()));
    }

    #[test]
    fn wrong_key_fails() {
        let ring = ring("k1");
        let sealed = ring.encrypt(b"secret", b"aad");
        assert_eq!(ring.decrypt("k2", &sealed.bytes, b"aad").unwrap_err(), AtRestError::DecryptionFailed);
        // Same id, different key material.
        let other = DataKeyRing::new("k1", [("k1".to_owned(), key(9))]).unwrap();
        assert_eq!(other.decrypt("k1", &sealed.bytes, b"aad").unwrap_err(), AtRestError::DecryptionFailed);
    }

    #[test]
    fn wrong_aad_fails() {
        let ring = ring("k1");
        let sealed = ring.encrypt(b"secret", b"pan:card-1");
        assert_eq!(ring.decrypt("k1", &sealed.bytes, b"pan:card-2").unwrap_err(), AtRestError::DecryptionFailed);
    }

    #[test]
    fn any_tampered_byte_fails() {
        let ring = ring("k1");
        let sealed = ring.encrypt(b"4111111111111111", b"aad");
        for i in 0..sealed.bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bytes = sealed.bytes.clone();
                bytes[i] ^= bit;
                assert_eq!(ring.decrypt("k1", &bytes, b"aad").unwrap_err(), AtRestError::DecryptionFailed, "byte {i}");
            }
        }
        let truncated = &sealed.bytes[..sealed.bytes.len() - 1];
        assert_eq!(ring.decrypt("k1", truncated, b"aad").unwrap_err(), AtRestError::DecryptionFailed);
        assert_eq!(
            ring.decrypt("k1", &sealed.bytes[..NONCE_LEN + TAG_LEN - 1], b"aad").unwrap_err(),
            AtRestError::Malformed
        );
        assert_eq!(ring.decrypt("k1", &[], b"aad").unwrap_err(), AtRestError::Malformed);
    }

    #[test]
    fn unknown_key_id() {
        let ring = ring("k1");
        let sealed = ring.encrypt(b"x", b"");
        assert_eq!(ring.decrypt("k3", &sealed.bytes, b"").unwrap_err(), AtRestError::UnknownKeyId);
    }

    #[test]
    fn construction_rules() {
        assert_eq!(DataKeyRing::new("k9", [("k1".to_owned(), key(1))]).unwrap_err(), AtRestError::ActiveKeyMissing);
        assert_eq!(
            DataKeyRing::new("k1", [("k1".to_owned(), key(1)), ("k1".to_owned(), key(2))]).unwrap_err(),
            AtRestError::DuplicateKeyId
        );
        assert_eq!(DataKeyRing::new("", [(String::new(), key(1))]).unwrap_err(), AtRestError::InvalidKeyId);
        assert_eq!(DataKeyRing::new("a b", [("a b".to_owned(), key(1))]).unwrap_err(), AtRestError::InvalidKeyId);
        let generated = DataKeyRing::generate_key();
        assert_ne!(*generated, [0u8; KEY_LEN]);
        assert_ne!(*generated, *DataKeyRing::generate_key());
    }

    #[test]
    fn debug_shows_ids_only() {
        let dbg = format!("{:?}", ring("k1"));
        assert_eq!(dbg, r#"DataKeyRing { active_key_id: "k1", key_ids: ["k1", "k2"] }"#);
        assert_eq!(format!("{:?}", Fingerprinter::new(key(1))), "Fingerprinter(***)");
    }

    #[test]
    fn fingerprints() {
        let f = Fingerprinter::new(key(7));
        let visa = Pan::parse("4111111111111111").unwrap();
        let mc = Pan::parse("5555555555554444").unwrap();
        assert_eq!(f.fingerprint(&visa), f.fingerprint(&Pan::parse("4111111111111111").unwrap()));
        assert_ne!(f.fingerprint(&visa), f.fingerprint(&mc));
        assert_ne!(f.fingerprint(&visa), Fingerprinter::new(key(8)).fingerprint(&visa));
        // It is plain HMAC-SHA256 over the digits, so other tools can reproduce it.
        let mut mac = HmacSha256::new_from_slice(&[7u8; KEY_LEN]).unwrap();
        mac.update(b"4111111111111111");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(f.fingerprint(&visa), expected);
    }

    #[test]
    fn fingerprint_matches_a_known_value() {
        // Computed with an independent implementation (Python hmac/hashlib).
        let f = Fingerprinter::new(key(0x0b));
        let pan = Pan::parse("4111111111111111").unwrap();
        assert_eq!(hex::encode(f.fingerprint(&pan)), FINGERPRINT_0B_VISA);
    }

    const FINGERPRINT_0B_VISA: &str = "fa61b145ec820bc4a65f8a5c629f5aaa963c889be33aaa4de3d9eb3e5d9a2818";
}
