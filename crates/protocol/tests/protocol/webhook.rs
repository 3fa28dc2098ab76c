//! Standard Webhooks signatures: property tests and interoperability with the reference
//! `standardwebhooks` crate.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use tmp_protocol::webhook::{self, SignatureError, SignatureHeaders, Verifier, WebhookSecret};

const TOLERANCE: Duration = webhook::DEFAULT_TOLERANCE;

fn secret() -> impl Strategy<Value = WebhookSecret> {
    prop::collection::vec(any::<u8>(), webhook::MIN_SECRET_LEN..=webhook::MAX_SECRET_LEN)
        .prop_map(|b| WebhookSecret::from_bytes(&b).unwrap())
}

fn id() -> impl Strategy<Value = String> {
    "[!-~]{1,256}"
}

fn timestamp() -> impl Strategy<Value = i64> {
    0i64..=4_102_444_800
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

fn verify(v: &Verifier, h: &SignatureHeaders, body: &[u8], now: i64) -> Result<(), SignatureError> {
    v.verify(Some(&h.id), Some(&h.timestamp.to_string()), Some(&h.signature), body, now)
}

proptest! {
    #[test]
    fn round_trip(s in secret(), id in id(), ts in timestamp(), body in body(), skew in -300i64..=300) {
        let h = SignatureHeaders::sign(std::slice::from_ref(&s), &id, ts, &body).unwrap();
        let v = Verifier::new(vec![s], TOLERANCE);
        prop_assert_eq!(verify(&v, &h, &body, ts + skew), Ok(()));
    }

    #[test]
    fn secret_text_round_trip(s in secret()) {
        let text = s.to_whsec_string();
        let parsed = WebhookSecret::parse(&text).unwrap();
        prop_assert_eq!(parsed.expose(), s.expose());
    }

    #[test]
    fn tampered_body_is_rejected(s in secret(), id in id(), ts in timestamp(), body in prop::collection::vec(any::<u8>(), 1..512), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let h = SignatureHeaders::sign(std::slice::from_ref(&s), &id, ts, &body).unwrap();
        let mut tampered = body.clone();
        let i = pos.index(tampered.len());
        tampered[i] ^= 1 << bit;
        let v = Verifier::new(vec![s], TOLERANCE);
        prop_assert_eq!(verify(&v, &h, &tampered, ts), Err(SignatureError::Invalid));
    }

    #[test]
    fn tampered_id_or_timestamp_is_rejected(s in secret(), id in "[a-z0-9_]{1,64}", ts in timestamp(), body in body(), shift in 1i64..=300) {
        let h = SignatureHeaders::sign(std::slice::from_ref(&s), &id, ts, &body).unwrap();
        let v = Verifier::new(vec![s], TOLERANCE);
        let mut other_id = h.clone();
        other_id.id.push('x');
        prop_assert_eq!(verify(&v, &other_id, &body, ts), Err(SignatureError::Invalid));
        let mut other_ts = h.clone();
        other_ts.timestamp += shift;
        prop_assert_eq!(verify(&v, &other_ts, &body, ts), Err(SignatureError::Invalid));
    }

    #[test]
    fn tampered_signature_is_rejected(s in secret(), ts in timestamp(), body in body(), pos in 0usize..32, bit in 0u8..8) {
        let h = SignatureHeaders::sign(std::slice::from_ref(&s), "msg_1", ts, &body).unwrap();
        let mut mac = STANDARD.decode(&h.signature[3..]).unwrap();
        mac[pos] ^= 1 << bit;
        let tampered = SignatureHeaders { signature: format!("v1,{}", STANDARD.encode(mac)), ..h };
        let v = Verifier::new(vec![s], TOLERANCE);
        prop_assert_eq!(verify(&v, &tampered, &body, ts), Err(SignatureError::Invalid));
    }

    #[test]
    fn wrong_key_is_rejected(s in secret(), other in secret(), ts in timestamp(), body in body()) {
        prop_assume!(s.expose() != other.expose());
        let h = SignatureHeaders::sign(&[s], "msg_1", ts, &body).unwrap();
        let v = Verifier::new(vec![other], TOLERANCE);
        prop_assert_eq!(verify(&v, &h, &body, ts), Err(SignatureError::Invalid));
    }

    #[test]
    fn rotation_any_live_key_matches(old in secret(), new in secret(), ts in timestamp(), body in body(), sender_has_both in any::<bool>()) {
        let sender: Vec<WebhookSecret> = if sender_has_both { vec![new.clone(), old.clone()] } else { vec![old.clone()] };
        let h = SignatureHeaders::sign(&sender, "msg_rot", ts, &body).unwrap();
        prop_assert_eq!(verify(&Verifier::new(vec![new.clone(), old.clone()], TOLERANCE), &h, &body, ts), Ok(()));
        if sender_has_both {
            prop_assert_eq!(verify(&Verifier::new(vec![new], TOLERANCE), &h, &body, ts), Ok(()));
        }
    }

    #[test]
    fn outside_tolerance_is_stale(s in secret(), ts in timestamp(), body in body(), extra in 1i64..1_000_000, future in any::<bool>()) {
        let h = SignatureHeaders::sign(std::slice::from_ref(&s), "msg_1", ts, &body).unwrap();
        let v = Verifier::new(vec![s], TOLERANCE);
        let off = TOLERANCE.as_secs() as i64 + extra;
        let now = if future { ts - off } else { ts + off };
        prop_assert_eq!(verify(&v, &h, &body, now), Err(SignatureError::Stale));
    }

    #[test]
    fn junk_headers_never_panic(id in "\\PC{0,300}", ts in "\\PC{0,30}", sig in "\\PC{0,300}", body in body()) {
        let (s, _) = WebhookSecret::generate();
        let v = Verifier::new(vec![s], TOLERANCE);
        prop_assert!(v.verify(Some(&id), Some(&ts), Some(&sig), &body, 0).is_err());
    }
}

// --- interoperability with the `standardwebhooks` reference crate ------------------------

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn header_map(h: &SignatureHeaders) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in h.to_header_pairs() {
        map.insert(name, http::HeaderValue::from_str(&value).unwrap());
    }
    map
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reference_crate_verifies_ours(s in secret(), other in secret(), id in "[A-Za-z0-9_-]{1,64}", body in "\\PC{0,512}") {
        // Signed with two live keys; the reference verifier knows only one of them.
        let h = SignatureHeaders::sign(&[other, s.clone()], &id, now(), body.as_bytes()).unwrap();
        let theirs = standardwebhooks::Webhook::new(&s.to_whsec_string()).unwrap();
        prop_assert!(theirs.verify(body.as_bytes(), &header_map(&h)).is_ok());
    }

    #[test]
    fn we_verify_the_reference_crates(s in secret(), id in "[A-Za-z0-9_-]{1,64}", body in "\\PC{0,512}") {
        let whsec = s.to_whsec_string();
        let theirs = standardwebhooks::Webhook::new(&whsec).unwrap();
        let ts = now();
        let signature = theirs.sign(&id, ts, body.as_bytes()).unwrap();
        let v = Verifier::new(vec![WebhookSecret::parse(&whsec).unwrap()], TOLERANCE);
        prop_assert_eq!(
            v.verify(Some(&id), Some(&ts.to_string()), Some(&signature), body.as_bytes(), ts),
            Ok(())
        );
        // Both produce the very same entry.
        prop_assert_eq!(signature, webhook::sign(&s, &id, ts, body.as_bytes()));
    }

    #[test]
    fn reference_crate_rejects_our_tampered_requests(s in secret(), body in "[a-z]{1,64}") {
        let h = SignatureHeaders::sign(std::slice::from_ref(&s), "msg_1", now(), body.as_bytes()).unwrap();
        let theirs = standardwebhooks::Webhook::new(&s.to_whsec_string()).unwrap();
        let tampered = format!("{body}!");
        prop_assert!(theirs.verify(tampered.as_bytes(), &header_map(&h)).is_err());
    }
}

#[test]
fn reference_example_secret_loads() {
    // The example secret of the reference implementations (24 bytes).
    let ours = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let theirs = standardwebhooks::Webhook::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let body = br#"{"event":"card.verified"}"#;
    assert_eq!(theirs.sign("msg_2", 1_700_000_000, body).unwrap(), webhook::sign(&ours, "msg_2", 1_700_000_000, body));
}
