//! Writes the committed seed corpora (`fuzz/corpus/<target>/seed-*`) and the libFuzzer
//! dictionaries (`fuzz/dict/<target>.dict`):
//!
//! ```sh
//! cargo +nightly run --release --manifest-path fuzz/Cargo.toml --example seed_corpus
//! ```
//!
//! Seeds are small valid inputs (test PANs only) and a few near misses; libFuzzer grows the
//! rest. Rerunning replaces every `seed-*` file: the JWE seeds change each time, since they are
//! encrypted to a fresh key (the fuzzers generate their own key under the same `kid`, so seeds
//! reach the RSA and AES-GCM steps but only `jwe_tamper` decrypts successfully).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tmp_protocol::jwe;
use tmp_protocol::jwk::RsaKeyPair;
use tmp_protocol::webhook::{self, SignatureHeaders, WebhookSecret};
use tmp_protocol_fuzz::jwe::{KID, Operation, selector as jwe_selector};
use tmp_protocol_fuzz::payloads::{PAYLOADS, selector};
use tmp_protocol_fuzz::signatures::{Request, SECRET_A, SECRET_B};

/// A stand-in `encryptedPayload`: the payload parsers take any string there.
const JWE: &str = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiZnV6ei0yMDI2LTAxIn0.a2V5.aXY.Y3Q.dGFn";
const OCCURRED: &str = "2026-03-01T12:00:00Z";

fn main() -> std::io::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let key = RsaKeyPair::generate(2048).expect("keygen").with_kid(KID).expect("kid");

    let payloads = payload_seeds(&key);
    let covered: BTreeSet<&str> = payloads.iter().map(|(name, _)| *name).collect();
    for p in PAYLOADS {
        assert!(covered.contains(p.name), "no seed for payload {}", p.name);
    }
    let mut files = Vec::new();
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for (name, value) in &payloads {
        let n = seen.entry(name).or_default();
        *n += 1;
        let mut bytes = vec![selector(name)];
        bytes.extend(serde_json::to_vec(value).expect("json"));
        files.push((format!("seed-{name}-{n}"), bytes));
    }
    write_corpus(fuzz, "json_payloads", &files)?;
    write_dict(fuzz, "json_payloads", &json_dictionary(fuzz, &payloads))?;

    write_corpus(fuzz, "jwe_decrypt", &jwe_decrypt_seeds(&key))?;
    write_corpus(fuzz, "jwe_tamper", &jwe_tamper_seeds())?;
    write_dict(
        fuzz,
        "jwe_tamper",
        &["\"alg\"", "\"enc\"", "\"kid\"", "\"zip\"", "\"crit\"", "RSA-OAEP-256", "A256GCM", KID, "DEF", "RSA1_5"]
            .map(String::from),
    )?;
    write_corpus(fuzz, "signature_headers", &signature_seeds())?;
    write_dict(
        fuzz,
        "signature_headers",
        &["v1,", "v1a,", " v1,", "whsec_", "msg_", "=", "==", "\n"].map(String::from),
    )?;
    Ok(())
}

fn requestor(wallet: &str) -> Value {
    json!({"id": "50110030273", "name": "Apple Pay", "wallet": wallet})
}

fn contact() -> Value {
    json!({"phone": "+48500100200", "email": "cardholder@example.com"})
}

fn token_info() -> Value {
    json!({
        "tokenId": "DWSPMC000000000132d72d4fcb2f4136a0532d3093ff1a45", "cardId": "card-1", "status": "ACTIVE",
        "tsp": "MDES", "tokenRequestor": requestor("GOOGLE_PAY"), "tokenLast4": "4321", "deviceName": "Pixel 9",
        "deviceId": "dev-1", "updatedAt": "2026-03-01T12:00:00.250+01:00"
    })
}

fn lifecycle_card() -> Value {
    json!({
        "cardId": "card-1", "status": "ACTIVE", "productCategory": "CONSUMER_DEBIT", "cardholder": contact(),
        "encryptedPayload": JWE
    })
}

fn events() -> Vec<Value> {
    let event = |id: &str, kind: &str, data: Value| json!({"id": id, "cardId": "card-1", "occurredAt": OCCURRED, "type": kind, "data": data});
    vec![
        event(
            "pe-1",
            "card.issued",
            json!({"encryptedPayload": JWE, "productCategory": "CONSUMER_CREDIT", "cardholder": contact()}),
        ),
        event("pe-2", "card.status_changed", json!({"status": "BLOCKED", "reason": "lost"})),
        event("pe-3", "card.replaced", json!({"newCardId": "card-2", "encryptedPayload": JWE})),
        event("pe-4", "card.renewed", json!({"encryptedPayload": JWE})),
        event("pe-5", "card.closed", json!({"reason": "customer request"})),
        event("pe-6", "cardholder.updated", json!({"phone": "+48500100201"})),
        event("pe-7", "card.metadata_updated", json!({"productName": "Gold", "cardArtId": "art-gold"})),
    ]
}

/// Valid documents of every payload type (some types twice, for optional members).
fn payload_seeds(key: &RsaKeyPair) -> Vec<(&'static str, Value)> {
    let events = events();
    vec![
        (
            "VerifyCardRequest",
            json!({
                "tokenizationId": "tkn-req-8f14e45f", "tsp": "MDES", "tokenRequestor": requestor("APPLE_PAY"),
                "provisioningMethod": "MANUAL", "walletRecommendation": "APPROVED", "walletScore": 4,
                "deviceScore": 5, "device": {"id": "dev-4f2a9c1e", "type": "PHONE"}, "tokenType": "SECURE_ELEMENT",
                "risk": {"recommendationReasons": ["ACCOUNT_TOO_NEW"], "panSource": "KEY_ENTERED", "networkScore": 4},
                "encryptedPayload": JWE
            }),
        ),
        (
            "VerifyCardRequest",
            json!({
                "tokenizationId": "t-2", "tsp": "VTS", "tokenRequestor": requestor("SAMSUNG_PAY"),
                "provisioningMethod": "PUSH", "encryptedPayload": JWE
            }),
        ),
        ("VerifyCvcRequest", json!({"tokenRequestor": requestor("APPLE_PAY"), "encryptedPayload": JWE})),
        (
            "TokenEventRequest",
            json!({
                "eventId": "evt-0001", "tokenId": "DWSPMC000000000132d72d4fcb2f4136a0532d3093ff1a45",
                "cardId": "card-1", "tsp": "VTS", "tokenRequestor": requestor("MERCHANT"), "status": "SUSPENDED",
                "previousStatus": "ACTIVE", "reason": "CUSTOMER_REQUEST", "reasonCode": "CUSTOMER_REQUEST",
                "initiator": "CARDHOLDER", "tokenLast4": "1234", "occurredAt": OCCURRED
            }),
        ),
        (
            "NotificationRequest",
            json!({
                "notificationId": "ntf-0001", "type": "ACTIVATION_CODE_DELIVERY", "cardId": "card-1",
                "tokenId": "tok-1", "tokenRequestor": requestor("GOOGLE_PAY"), "channel": "SMS",
                "stepUpMethod": "OTP_SMS", "encryptedPayload": JWE, "expiresAt": "2026-03-01T12:10:00+01:00",
                "occurredAt": "2026-03-01T12:00:00.123456789Z"
            }),
        ),
        (
            "NotificationRequest",
            json!({"notificationId": "ntf-2", "type": "TOKEN_ACTIVATED", "cardId": "card-1", "occurredAt": OCCURRED}),
        ),
        (
            "NotificationRequest",
            json!({
                "notificationId": "ntf-3", "type": "STEP_UP_REQUESTED", "cardId": "card-1", "tokenId": "tok-1",
                "stepUpMethod": "OUTBOUND_CALL", "occurredAt": OCCURRED
            }),
        ),
        (
            "VerifyCardResponse",
            json!({
                "decision": "REQUIRE_ADDITIONAL_AUTHENTICATION", "reason": "LOW_SCORE_STEP_UP", "cardStatus": "ACTIVE",
                "cardId": "card-1", "cvcResult": "NOT_PROVIDED", "productCategory": "CONSUMER_DEBIT",
                "cardholder": contact(), "standIn": false,
                "stepUpMethods": [
                    {"type": "OTP_SMS", "value": "+48•••200"}, {"type": "OTP_EMAIL", "value": "h•••@example.com"},
                    {"type": "APP_TO_APP", "value": "com.example.bank"},
                    {"type": "CUSTOMER_SERVICE", "value": "+48 22 000 00 00"}, {"type": "OUTBOUND_CALL", "value": "+48•••200"}
                ]
            }),
        ),
        ("VerifyCvcResponse", json!({"cvcResult": "MATCH", "cardStatus": "ACTIVE", "cardId": "card-1"})),
        ("TokenEventAck", json!({"eventId": "evt-0001", "tokenId": "tok-1", "accepted": true})),
        ("NotificationAck", json!({"notificationId": "ntf-0001", "accepted": true})),
        ("CardData", json!({"pan": "4111111111111111", "expiry": "12/30", "cvc": "123"})),
        ("CardData", json!({"pan": "5555555555554444", "expiry": "01/31"})),
        ("ActivationCode", json!({"otp": "123456"})),
        ("ReplacementCardData", json!({"pan": "378282246310005", "expiry": "02/29"})),
        ("ExpiryData", json!({"expiry": "12/99"})),
        ("ProcessorEvent", events[0].clone()),
        ("ProcessorEvent", events[1].clone()),
        ("ProcessorEventBatch", Value::Array(events)),
        ("ProcessorEventsAck", json!({"accepted": 2, "duplicates": 1})),
        ("BridgeLookupRequest", json!({"pan": "6011111111111117"})),
        (
            "BridgeCard",
            json!({
                "cardId": "card-1", "status": "BLOCKED", "expiry": "12/30", "panLast4": "1111",
                "cardholder": contact(), "productCategory": "CONSUMER_DEBIT"
            }),
        ),
        ("BridgeCvcRequest", json!({"cardId": "card-1", "pan": "4111111111111111", "expiry": "12/30", "cvc": "1234"})),
        ("BridgeCvcResponse", json!({"match": true})),
        ("TokenInfo", token_info()),
        ("TokenList", json!({"cardId": "card-1", "tokens": [token_info()]})),
        (
            "SignCardRequest",
            json!({
                "wallet": "APPLE_PAY",
                "applePay": {"certificates": ["MIIBCgKCAQEA", "MIIBIjAN"], "nonce": "00ff", "nonceSignature": "abcd"}
            }),
        ),
        (
            "SignCardRequest",
            json!({
                "wallet": "GOOGLE_PAY",
                "googlePay": {"clientDeviceId": "dev-1", "clientWalletAccountId": "acc-1", "cardholderName": "J Doe"}
            }),
        ),
        (
            "SignCardResponse",
            json!({
                "wallet": "APPLE_PAY",
                "applePay": {"encryptedPassData": "ZW5j", "activationData": "YWN0", "ephemeralPublicKey": "ZXBr"}
            }),
        ),
        ("SignCardResponse", json!({"wallet": "GOOGLE_PAY", "googlePay": {"opaquePaymentCard": "b3Bj"}})),
        (
            "SignCardRequest",
            json!({"wallet": "SAMSUNG_PAY", "samsungPay": {"deviceId": "galaxy-1", "walletUserId": "wu-1"}}),
        ),
        ("SignCardRequest", json!({"wallet": "GOOGLE_PAY", "web": {"callbackUrl": "https://bank.example/back"}})),
        ("SignCardResponse", json!({"wallet": "SAMSUNG_PAY", "samsungPay": {"provisioningPayload": "cGF5"}})),
        (
            "SignCardResponse",
            json!({"wallet": "GOOGLE_PAY", "web": {"pushUrl": "https://tmp.example/w/1", "expiresAt": "2026-12-05T10:15:00Z"}}),
        ),
        ("CardMetadata", json!({"productId": "gold-2026", "productName": "Gold", "cardArtId": "art-gold"})),
        ("TokenActionRequest", json!({"initiator": "ISSUER", "reasonCode": "LOST", "reason": "card reported lost"})),
        ("TokenActionRequest", json!({"initiator": "CARDHOLDER", "reasonCode": "FOUND", "reason": "resume"})),
        ("CardStatusUpdate", json!({"status": "CLOSED", "reason": "closed by the cardholder"})),
        ("CardReplace", json!({"newCardId": "card-2", "encryptedPayload": JWE})),
        ("CardExpiryUpdate", json!({"encryptedPayload": JWE})),
        ("CardUpdateAck", json!({"cardId": "card-1", "tokensAffected": 2})),
        ("LifecycleCard", lifecycle_card()),
        (
            "LifecycleCardUpdate",
            json!({"status": "BLOCKED", "encryptedPayload": JWE, "cardholder": {"email": "c@example.com"}}),
        ),
        ("LifecycleCardUpdate", json!({"metadata": {"productCategory": "CONSUMER_CREDIT"}})),
        ("LifecycleCardReplace", json!({"newCardId": "card-2", "encryptedPayload": JWE})),
        (
            "LifecycleCardView",
            json!({"cardId": "card-1", "status": "ACTIVE", "panLast4": "1111", "replacedBy": "card-2"}),
        ),
        ("LifecycleImport", json!({"cards": [lifecycle_card()]})),
        (
            "LifecycleImportResult",
            json!({"imported": 1, "failed": [{"index": 1, "message": "`cards[1].cardId`: missing"}]}),
        ),
        ("JwkSet", json!({"keys": [key.public_jwk()]})),
        (
            "ErrorBody",
            json!({"error": {"code": "INVALID_SIGNATURE", "message": "no signature matches", "correlationId": "c-1"}}),
        ),
    ]
}

/// Property names and enum values of the OpenAPI document, and every key and short string of
/// the seeds, as JSON string tokens; plus JSON's own tokens.
fn json_dictionary(fuzz: &Path, payloads: &[(&str, Value)]) -> Vec<String> {
    fn walk(v: &Value, words: &mut BTreeSet<String>, openapi: bool) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if !openapi {
                        words.insert(k.clone());
                    }
                    if openapi && k == "properties" {
                        words.extend(v.as_object().into_iter().flat_map(|m| m.keys().cloned()));
                    }
                    if openapi && k == "enum" {
                        words.extend(v.as_array().into_iter().flatten().filter_map(|e| e.as_str().map(String::from)));
                    }
                    walk(v, words, openapi);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, words, openapi)),
            Value::String(s) if !openapi && s.len() <= 32 => {
                words.insert(s.clone());
            }
            _ => {}
        }
    }
    let mut words = BTreeSet::new();
    let openapi = fuzz.join("../docs/openapi/issuer-api.json");
    let spec: Value = serde_json::from_slice(&fs::read(&openapi).expect("docs/openapi/issuer-api.json")).unwrap();
    walk(&spec, &mut words, true);
    payloads.iter().for_each(|(_, v)| walk(v, &mut words, false));
    let mut tokens: Vec<String> = words.into_iter().map(|w| format!("\"{w}\"")).collect();
    tokens.extend(
        [
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "null",
            "true",
            "false",
            "-0",
            "1e400",
            "18446744073709551616",
            "\\u0000",
            "\\ud800",
            "\\udc00",
            "\\\"",
            "T23:59:60Z",
            "+23:59",
            "-00:00",
            ".999999999",
            "`",
            ", expected ",
            " at line ",
            ".",
        ]
        .map(String::from),
    );
    tokens
}

fn jwe_decrypt_seeds(key: &RsaKeyPair) -> Vec<(String, Vec<u8>)> {
    let jwk = key.public_jwk();
    let token = |plaintext: &str| jwe::encrypt(plaintext.as_bytes(), &jwk).expect("encrypt");
    let with_header = |compact: &str, header: &Value| {
        let rest: Vec<&str> = compact.split('.').skip(1).collect();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), rest.join("."))
    };
    let card = token(r#"{"pan":"4111111111111111","expiry":"12/30","cvc":"123"}"#);
    let seeds = [
        ("card-data", card.clone()),
        ("activation-code", token(r#"{"otp":"12345678"}"#)),
        ("replacement", token(r#"{"pan":"5555555555554444","expiry":"01/31"}"#)),
        ("expiry", token(r#"{"expiry":"12/30"}"#)),
        ("empty", token("")),
        ("other-kid", with_header(&card, &json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "other"}))),
        ("no-kid", with_header(&card, &json!({"alg": "RSA-OAEP-256", "enc": "A256GCM"}))),
        ("zip", with_header(&card, &json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KID, "zip": "DEF"}))),
        ("rsa1_5", with_header(&card, &json!({"alg": "RSA1_5", "enc": "A256GCM", "kid": KID}))),
        ("four-parts", card.splitn(5, '.').take(4).collect::<Vec<_>>().join(".")),
    ];
    seeds.into_iter().map(|(name, s)| (format!("seed-{name}"), s.into_bytes())).collect()
}

fn jwe_tamper_seeds() -> Vec<(String, Vec<u8>)> {
    let header = |value: Value| value.to_string().into_bytes();
    let op = |operation: Operation, part: u8, argument: &[u8]| {
        let mut bytes = vec![jwe_selector(operation, part)];
        bytes.extend_from_slice(argument);
        bytes
    };
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        // The untouched token, three ways: it must decrypt.
        (
            "same-header",
            op(Operation::ReplaceDecoded, 0, br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"fuzz-2026-01"}"#),
        ),
        ("xor-nothing", op(Operation::XorDecoded, 3, &[0])),
        ("resize-iv-same", op(Operation::ResizeDecoded, 2, &[0, 12])),
        // Header changes.
        (
            "header-spaces",
            op(Operation::ReplaceDecoded, 0, br#"{"alg":"RSA-OAEP-256", "enc":"A256GCM", "kid":"fuzz-2026-01"}"#),
        ),
        (
            "header-zip",
            op(
                Operation::ReplaceDecoded,
                0,
                &header(json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KID, "zip": "DEF"})),
            ),
        ),
        (
            "header-crit",
            op(
                Operation::ReplaceDecoded,
                0,
                &header(json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KID, "crit": ["exp"]})),
            ),
        ),
        (
            "header-kid-number",
            op(Operation::ReplaceDecoded, 0, &header(json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": 1}))),
        ),
        (
            "header-duplicate-alg",
            op(
                Operation::ReplaceDecoded,
                0,
                br#"{"alg":"none","alg":"RSA-OAEP-256","enc":"A256GCM","kid":"fuzz-2026-01"}"#,
            ),
        ),
        // Encrypted key: boundary values of the RSA input.
        ("key-zero", op(Operation::ReplaceDecoded, 1, &[0; 256])),
        (
            "key-one",
            op(Operation::ReplaceDecoded, 1, &{
                let mut k = [0u8; 256];
                k[255] = 1;
                k
            }),
        ),
        ("key-max", op(Operation::ReplaceDecoded, 1, &[0xff; 256])),
        ("key-short", op(Operation::ResizeDecoded, 1, &[0, 255])),
        ("key-flip", op(Operation::XorDecoded, 1, &[0x80])),
        // IV, ciphertext, tag.
        ("iv-long", op(Operation::ResizeDecoded, 2, &[0, 13, 0xaa])),
        ("ciphertext-flip", op(Operation::XorDecoded, 3, &[0, 0, 1])),
        ("ciphertext-empty", op(Operation::ReplaceDecoded, 3, b"")),
        ("tag-short", op(Operation::ResizeDecoded, 4, &[0, 15])),
        // 22 characters for 16 bytes: the last one carries 4 unused bits, which must be 0.
        ("tag-noncanonical", op(Operation::ReplaceEncoded, 4, b"AAAAAAAAAAAAAAAAAAAAAB")),
        ("tag-padded", op(Operation::InsertEncoded, 4, b"\xff==")),
        ("extra-dot", op(Operation::InsertEncoded, 3, b"\x00.")),
        // Round trips of plaintexts.
        ("round-trip-card", op(Operation::RoundTrip, 0, br#"{"pan":"4111111111111111","expiry":"12/30"}"#)),
        ("round-trip-otp", op(Operation::RoundTrip, 0, br#"{"otp":"123456"}"#)),
        ("round-trip-empty", op(Operation::RoundTrip, 0, b"")),
    ];
    seeds.into_iter().map(|(name, s)| (format!("seed-{name}"), s)).collect()
}

fn signature_seeds() -> Vec<(String, Vec<u8>)> {
    // The Standard Webhooks specification's example request, signed with SECRET_A.
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: &str = "1649367553";
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    let secrets: Vec<WebhookSecret> = [SECRET_A, SECRET_B].iter().map(|s| WebhookSecret::parse(s).unwrap()).collect();
    let both = SignatureHeaders::sign(&secrets, "msg_rotation", 1_767_225_600, b"{\"eventId\":\"evt-1\"}\n").unwrap();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("spec-example", Request::encode(ID, TS, SIG, 0, BODY)),
        ("tolerance-edge", Request::encode(ID, TS, SIG, 300, BODY)),
        ("stale", Request::encode(ID, TS, SIG, -301, BODY)),
        ("other-versions", Request::encode(ID, TS, &format!("v1a,AAAA v2,{} {SIG}", &SIG[3..]), 0, BODY)),
        (
            "rotation",
            Request::encode(&both.id, &both.timestamp.to_string(), &both.signature, 1, b"{\"eventId\":\"evt-1\"}\n"),
        ),
        ("zero-padded-ts", Request::encode(ID, &format!("0{TS}"), SIG, 0, BODY)),
        ("id-with-space", Request::encode("msg 1", TS, SIG, 0, BODY)),
        ("garbage-signature", Request::encode(ID, TS, "garbage", 0, BODY)),
        ("no-signature", format!("{ID}\n{TS}").into_bytes()),
        ("secret-text", Request::encode(ID, TS, SECRET_B, 0, BODY)),
        ("fresh-id", Request::encode(&webhook::new_message_id(), "0", "v1,", 0, b"")),
    ];
    seeds.into_iter().map(|(name, s)| (format!("seed-{name}"), s)).collect()
}

fn write_corpus(fuzz: &Path, target: &str, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let dir = fuzz.join("corpus").join(target);
    fs::create_dir_all(&dir)?;
    // Replace earlier seeds; files libFuzzer or a person added stay.
    for entry in fs::read_dir(&dir)? {
        let path: PathBuf = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
            fs::remove_file(path)?;
        }
    }
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes)?;
    }
    println!("{}: {} seeds", dir.display(), files.len());
    Ok(())
}

fn write_dict(fuzz: &Path, target: &str, tokens: &[String]) -> std::io::Result<()> {
    let dir = fuzz.join("dict");
    fs::create_dir_all(&dir)?;
    let mut text = format!("# libFuzzer dictionary of {target}; generated by examples/seed_corpus.rs.\n");
    for token in tokens {
        let mut escaped = String::new();
        for b in token.bytes() {
            match b {
                b'"' => escaped.push_str("\\\""),
                b'\\' => escaped.push_str("\\\\"),
                0x20..=0x7e => escaped.push(char::from(b)),
                _ => escaped.push_str(&format!("\\x{b:02X}")),
            }
        }
        text.push_str(&format!("\"{escaped}\"\n"));
    }
    fs::write(dir.join(format!("{target}.dict")), text)?;
    println!("{}: {} tokens", dir.join(format!("{target}.dict")).display(), tokens.len());
    Ok(())
}
