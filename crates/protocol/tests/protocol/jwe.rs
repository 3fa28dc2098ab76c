//! JWE: property tests and interoperability with `picky`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use picky::jose::jwe::{Jwe, JweAlg, JweEnc};
use proptest::prelude::*;
use tmp_protocol::jwe::{self, JweError, KeyRing};
use tmp_protocol::jwk::{JwkSet, PublicJwk};
use tmp_protocol::sensitive::{Cvc, Expiry, Pan};

use crate::keys;

fn ring_a() -> KeyRing {
    KeyRing::new(vec![keys().0.clone()]).unwrap()
}

/// RSA private-key operations dominate; keep the case count moderate.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 48, ..ProptestConfig::default() }
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn round_trip(plaintext in prop::collection::vec(any::<u8>(), 0..4096)) {
        let token = jwe::encrypt(&plaintext, &keys().0.public_jwk()).unwrap();
        prop_assert_eq!(&*ring_a().decrypt(&token).unwrap(), plaintext.as_slice());
    }

    #[test]
    fn any_changed_character_is_detected(
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        pos in any::<prop::sample::Index>(),
        replacement in any::<prop::sample::Index>(),
    ) {
        let token = jwe::encrypt(&plaintext, &keys().0.public_jwk()).unwrap();
        let mut bytes = token.into_bytes();
        let i = pos.index(bytes.len());
        let new = B64URL[replacement.index(B64URL.len())];
        prop_assume!(bytes[i] != new);
        bytes[i] = new;
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert!(ring_a().decrypt(&tampered).is_err());
    }

    #[test]
    fn any_flipped_bit_in_any_part_is_detected(
        plaintext in prop::collection::vec(any::<u8>(), 1..256),
        part in 0usize..5,
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let token = jwe::encrypt(&plaintext, &keys().0.public_jwk()).unwrap();
        let mut parts: Vec<Vec<u8>> =
            token.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).unwrap()).collect();
        let i = pos.index(parts[part].len());
        parts[part][i] ^= 1 << bit;
        let tampered = parts.iter().map(|p| URL_SAFE_NO_PAD.encode(p)).collect::<Vec<_>>().join(".");
        let err = ring_a().decrypt(&tampered).unwrap_err();
        if part > 0 {
            // Only a header change can alter what the header says; everything else must
            // look like one indistinguishable failure.
            prop_assert_eq!(err, JweError::DecryptionFailed);
        }
    }

    #[test]
    fn wrong_key_is_rejected(plaintext in prop::collection::vec(any::<u8>(), 0..256)) {
        let (a, b) = keys();
        // Encrypted to B but labelled with A's kid: A's ring must fail uniformly.
        let mut impostor = b.public_jwk();
        impostor.kid = a.kid().to_owned();
        let token = jwe::encrypt(&plaintext, &impostor).unwrap();
        prop_assert_eq!(ring_a().decrypt(&token).unwrap_err(), JweError::DecryptionFailed);
        // Encrypted to B under B's kid: A's ring does not know the key.
        let token = jwe::encrypt(&plaintext, &b.public_jwk()).unwrap();
        prop_assert_eq!(ring_a().decrypt(&token).unwrap_err(), JweError::UnknownKey);
    }

    #[test]
    fn garbage_never_panics(s in "\\PC{0,300}") {
        prop_assert!(ring_a().decrypt(&s).is_err());
    }

    #[test]
    fn dotted_garbage_never_panics(parts in prop::collection::vec("[A-Za-z0-9_-]{0,40}", 5)) {
        prop_assert!(ring_a().decrypt(&parts.join(".")).is_err());
    }
}

#[test]
fn card_payload_round_trip() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct CardData {
        pan: Pan,
        expiry: Expiry,
        cvc: Option<Cvc>,
    }
    let card = CardData {
        pan: Pan::parse("4111111111111111").unwrap(),
        expiry: Expiry::parse("12/28").unwrap(),
        cvc: Some(Cvc::parse("123").unwrap()),
    };
    let token = jwe::encrypt_json(&card, &keys().0.public_jwk()).unwrap();
    assert!(!token.contains("4111"));
    assert_eq!(ring_a().decrypt_json::<CardData>(&token).unwrap(), card);
}

#[test]
fn jwk_set_json_shape() {
    let (a, b) = keys();
    let ring = KeyRing::new(vec![b.clone(), a.clone()]).unwrap();
    let json = serde_json::to_value(ring.jwk_set()).unwrap();
    let first = &json["keys"][0];
    assert_eq!(first["kty"], "RSA");
    assert_eq!(first["use"], "enc");
    assert_eq!(first["alg"], "RSA-OAEP-256");
    assert_eq!(first["kid"], b.kid());
    assert_eq!(first["e"], "AQAB");
    let set: JwkSet = serde_json::from_value(json).unwrap();
    assert_eq!(set.encryption_key().unwrap().kid, b.kid());
}

// --- interoperability with picky ------------------------------------------------------

fn picky_private_key() -> picky::key::PrivateKey {
    let pem = keys().0.to_pkcs8_pem().unwrap();
    picky::key::PrivateKey::from_pem_str(&pem).expect("picky reads our PKCS#8 PEM")
}

/// Our JWK, read by picky's JWK parser.
fn picky_public_key(jwk: &PublicJwk) -> picky::key::PublicKey {
    let json = serde_json::to_string(jwk).unwrap();
    let parsed = picky::jose::jwk::Jwk::from_json(&json).expect("picky reads our JWK");
    assert_eq!(parsed.kid.as_deref(), Some(jwk.kid.as_str()));
    parsed.to_public_key().expect("picky converts our JWK")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn picky_decrypts_ours(plaintext in prop::collection::vec(any::<u8>(), 0..2048)) {
        let token = jwe::encrypt(&plaintext, &keys().0.public_jwk()).unwrap();
        let opened = Jwe::decode(&token, &picky_private_key()).expect("picky decrypts our JWE");
        prop_assert_eq!(opened.header.alg, JweAlg::RsaOaep256);
        prop_assert_eq!(opened.header.enc, JweEnc::Aes256Gcm);
        prop_assert_eq!(opened.header.kid.as_deref(), Some(keys().0.kid()));
        prop_assert_eq!(opened.payload, plaintext);
    }

    #[test]
    fn we_decrypt_pickys(plaintext in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (a, _) = keys();
        let mut jwe = Jwe::new(JweAlg::RsaOaep256, JweEnc::Aes256Gcm, plaintext.clone());
        jwe.header.kid = Some(a.kid().to_owned());
        let token = jwe.encode(&picky_public_key(&a.public_jwk())).expect("picky encrypts");
        prop_assert_eq!(&*ring_a().decrypt(&token).unwrap(), plaintext.as_slice());
    }
}

#[test]
fn picky_tokens_with_other_algorithms_are_refused() {
    let (a, _) = keys();
    let pk = picky_public_key(&a.public_jwk());
    for (alg, enc) in [
        (JweAlg::RsaOaep, JweEnc::Aes256Gcm),
        (JweAlg::RsaPkcs1v15, JweEnc::Aes256Gcm),
        (JweAlg::RsaOaep256, JweEnc::Aes128Gcm),
    ] {
        let mut jwe = Jwe::new(alg, enc, b"x".to_vec());
        jwe.header.kid = Some(a.kid().to_owned());
        let token = jwe.encode(&pk).unwrap();
        let expected = match alg {
            JweAlg::RsaOaep256 => JweError::UnsupportedEncryption,
            _ => JweError::UnsupportedAlgorithm,
        };
        assert_eq!(ring_a().decrypt(&token).unwrap_err(), expected, "{alg:?}/{enc:?}");
    }
}

#[test]
fn picky_jwk_loads_as_ours() {
    // picky's own JWK for the same key (signed big-endian integers, possibly with a leading
    // zero octet) must convert to the same RSA public key.
    let (a, _) = keys();
    let picky_pub = picky_private_key().to_public_key().unwrap();
    let mut picky_jwk = picky::jose::jwk::Jwk::from_public_key(&picky_pub).unwrap();
    picky_jwk.kid = Some(a.kid().to_owned());
    picky_jwk.key_use = Some(picky::jose::jwk::JwkPubKeyUse::Encryption);
    picky_jwk.alg = Some(picky::jose::jwk::Jwa::CEKAlg(JweAlg::RsaOaep256));
    let ours: PublicJwk = serde_json::from_str(&picky_jwk.to_json().unwrap()).unwrap();
    assert_eq!(&ours.to_public_key().unwrap(), a.public_key());
    // And a token encrypted to it opens with our ring.
    let token = jwe::encrypt(b"via picky jwk", &ours).unwrap();
    assert_eq!(&*ring_a().decrypt(&token).unwrap(), b"via picky jwk");
}
