//! `json_payloads`: every wire payload of contract v1 through `tmp_protocol::json::parse`, the
//! entry point the adapter and mock-tmp parse request bodies, answers and `encryptedPayload`
//! plaintexts with.
//!
//! Input: one selector byte, then the JSON document. The selector picks the payload type,
//! `PAYLOADS[selector % PAYLOADS.len()]`; the order of [`PAYLOADS`] is part of the corpus
//! format, so append new types at the end.
//!
//! Checked for every input:
//! * parsing never panics;
//! * an error message never holds something that looks like a PAN (errors are logged and sent
//!   back to the caller, so they must not echo card data);
//! * a well-formed JSON document is never reported as a syntax error (it is a 422, not a
//!   400), and a document that parses is well-formed JSON (UTF-8 included);
//! * a parsed value serialises, the serialisation parses again, and the two values are equal
//!   (compared with `==`, or by their serialisations for types without `PartialEq`);
//! * the `Debug` form of a JWE plaintext shows no card digits beyond a PAN's last four;
//! * wherever a parsed value serialises as an object, the document held an object (serde's
//!   derived structs would also read an array of their fields: `json::parse` refuses it).

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use tmp_protocol::bridge::{BridgeCard, BridgeCvcRequest, BridgeCvcResponse, BridgeLookupRequest};
use tmp_protocol::error::ErrorBody;
use tmp_protocol::issuer_api::{
    ActivationCode, CardData, NotificationAck, NotificationRequest, TokenEventAck, TokenEventRequest,
    VerifyCardRequest, VerifyCardResponse, VerifyCvcRequest, VerifyCvcResponse,
};
use tmp_protocol::json::{self, JsonError};
use tmp_protocol::jwk::JwkSet;
use tmp_protocol::lifecycle_api::{
    LifecycleCard, LifecycleCardReplace, LifecycleCardUpdate, LifecycleCardView, LifecycleImport, LifecycleImportResult,
};
use tmp_protocol::processor::{ProcessorEvent, ProcessorEventsAck};
use tmp_protocol::sensitive::contains_pan_like;
use tmp_protocol::tmp_api::{
    CardExpiryUpdate, CardMetadata, CardReplace, CardStatusUpdate, CardUpdateAck, ExpiryData, ReplacementCardData,
    SignCardRequest, SignCardResponse, TokenActionRequest, TokenInfo, TokenList,
};

/// Prefix of a request or answer body.
pub const BODY: &str = "";
/// Prefix of a decrypted `encryptedPayload`, as the adapter passes it.
pub const ENCRYPTED: &str = "encryptedPayload";

/// One payload type of the contract.
pub struct Payload {
    /// The Rust type's name (seed files are named after it).
    pub name: &'static str,
    /// The `prefix` argument of `json::parse`.
    pub prefix: &'static str,
    /// Parses `bytes` as this type and checks the properties above.
    pub check: fn(&[u8]),
}

/// Every payload type, in corpus order (append only).
pub const PAYLOADS: &[Payload] = &[
    // Issuer API: TMP → adapter, and the answers.
    Payload { name: "VerifyCardRequest", prefix: BODY, check: |b| _ = by_serialisation::<VerifyCardRequest>(b, BODY) },
    Payload { name: "VerifyCvcRequest", prefix: BODY, check: |b| _ = by_serialisation::<VerifyCvcRequest>(b, BODY) },
    Payload { name: "TokenEventRequest", prefix: BODY, check: |b| _ = by_serialisation::<TokenEventRequest>(b, BODY) },
    Payload {
        name: "NotificationRequest",
        prefix: BODY,
        check: |b| _ = by_serialisation::<NotificationRequest>(b, BODY),
    },
    Payload { name: "VerifyCardResponse", prefix: BODY, check: |b| _ = by_eq::<VerifyCardResponse>(b, BODY) },
    Payload { name: "VerifyCvcResponse", prefix: BODY, check: |b| _ = by_eq::<VerifyCvcResponse>(b, BODY) },
    Payload { name: "TokenEventAck", prefix: BODY, check: |b| _ = by_eq::<TokenEventAck>(b, BODY) },
    Payload { name: "NotificationAck", prefix: BODY, check: |b| _ = by_eq::<NotificationAck>(b, BODY) },
    // JWE plaintexts (`encryptedPayload`).
    Payload {
        name: "CardData",
        prefix: ENCRYPTED,
        check: |b| {
            if let Some(v) = by_eq::<CardData>(b, ENCRYPTED) {
                assert_masked(&format!("{v:?}"), v.pan.last4());
            }
        },
    },
    Payload {
        name: "ActivationCode",
        prefix: ENCRYPTED,
        check: |b| {
            if let Some(v) = by_eq::<ActivationCode>(b, ENCRYPTED) {
                assert_masked(&format!("{v:?}"), "");
            }
        },
    },
    Payload {
        name: "ReplacementCardData",
        prefix: ENCRYPTED,
        check: |b| {
            if let Some(v) = by_eq::<ReplacementCardData>(b, ENCRYPTED) {
                assert_masked(&format!("{v:?}"), v.pan.last4());
            }
        },
    },
    Payload {
        name: "ExpiryData",
        prefix: ENCRYPTED,
        check: |b| {
            if let Some(v) = by_eq::<ExpiryData>(b, ENCRYPTED) {
                assert_masked(&format!("{v:?}"), "");
            }
        },
    },
    // Processor events: processor → adapter (one event or an array).
    Payload { name: "ProcessorEvent", prefix: BODY, check: |b| _ = by_eq::<ProcessorEvent>(b, BODY) },
    Payload { name: "ProcessorEventBatch", prefix: BODY, check: |b| _ = by_eq::<Vec<ProcessorEvent>>(b, BODY) },
    Payload { name: "ProcessorEventsAck", prefix: BODY, check: |b| _ = by_eq::<ProcessorEventsAck>(b, BODY) },
    // Processor bridge: the adapter's requests and the bridge's answers.
    Payload {
        name: "BridgeLookupRequest",
        prefix: BODY,
        check: |b| {
            if let Some(v) = by_eq::<BridgeLookupRequest>(b, BODY) {
                assert_masked(&format!("{v:?}"), v.pan.last4());
            }
        },
    },
    Payload { name: "BridgeCard", prefix: BODY, check: |b| _ = by_eq::<BridgeCard>(b, BODY) },
    Payload { name: "BridgeCvcRequest", prefix: BODY, check: |b| _ = by_eq::<BridgeCvcRequest>(b, BODY) },
    Payload { name: "BridgeCvcResponse", prefix: BODY, check: |b| _ = by_eq::<BridgeCvcResponse>(b, BODY) },
    // TMP API: adapter → TMP (mock-tmp parses these), and the answers.
    Payload { name: "TokenInfo", prefix: BODY, check: |b| _ = by_eq::<TokenInfo>(b, BODY) },
    Payload { name: "TokenList", prefix: BODY, check: |b| _ = by_eq::<TokenList>(b, BODY) },
    Payload { name: "SignCardRequest", prefix: BODY, check: |b| _ = by_eq::<SignCardRequest>(b, BODY) },
    Payload { name: "SignCardResponse", prefix: BODY, check: |b| _ = by_eq::<SignCardResponse>(b, BODY) },
    Payload { name: "TokenActionRequest", prefix: BODY, check: |b| _ = by_eq::<TokenActionRequest>(b, BODY) },
    Payload { name: "CardStatusUpdate", prefix: BODY, check: |b| _ = by_eq::<CardStatusUpdate>(b, BODY) },
    Payload { name: "CardReplace", prefix: BODY, check: |b| _ = by_eq::<CardReplace>(b, BODY) },
    Payload { name: "CardExpiryUpdate", prefix: BODY, check: |b| _ = by_eq::<CardExpiryUpdate>(b, BODY) },
    Payload { name: "CardUpdateAck", prefix: BODY, check: |b| _ = by_eq::<CardUpdateAck>(b, BODY) },
    // Lifecycle API: adapter → DataCore (mock-tmp parses these), and the answers.
    Payload { name: "LifecycleCard", prefix: BODY, check: |b| _ = by_eq::<LifecycleCard>(b, BODY) },
    Payload { name: "LifecycleCardUpdate", prefix: BODY, check: |b| _ = by_eq::<LifecycleCardUpdate>(b, BODY) },
    Payload { name: "LifecycleCardReplace", prefix: BODY, check: |b| _ = by_eq::<LifecycleCardReplace>(b, BODY) },
    Payload { name: "LifecycleCardView", prefix: BODY, check: |b| _ = by_eq::<LifecycleCardView>(b, BODY) },
    Payload { name: "LifecycleImport", prefix: BODY, check: |b| _ = by_eq::<LifecycleImport>(b, BODY) },
    Payload { name: "LifecycleImportResult", prefix: BODY, check: |b| _ = by_eq::<LifecycleImportResult>(b, BODY) },
    // `…/public-key` answers: the keys the adapter encrypts to.
    Payload {
        name: "JwkSet",
        prefix: BODY,
        check: |b| {
            if let Some(set) = by_eq::<JwkSet>(b, BODY) {
                check_jwk_set(&set);
            }
        },
    },
    // The error body of every surface.
    Payload { name: "ErrorBody", prefix: BODY, check: |b| _ = by_eq::<ErrorBody>(b, BODY) },
    // Added later, so that the selector bytes of the stored corpus keep their meaning.
    Payload { name: "CardMetadata", prefix: BODY, check: |b| _ = by_eq::<CardMetadata>(b, BODY) },
];

/// The harness: selector byte, then the document.
pub fn run(data: &[u8]) {
    let Some((&selector, document)) = data.split_first() else { return };
    (PAYLOADS[usize::from(selector) % PAYLOADS.len()].check)(document);
}

/// The index of the payload type called `name` (for seeds and regression inputs).
pub fn selector(name: &str) -> u8 {
    let index = PAYLOADS.iter().position(|p| p.name == name).unwrap_or_else(|| panic!("no payload {name}"));
    u8::try_from(index).expect("fewer than 256 payload types")
}

/// Parses `bytes` as `T` and checks everything but value equality; returns the value.
fn by_serialisation<T: Serialize + DeserializeOwned>(bytes: &[u8], prefix: &str) -> Option<T> {
    let parsed = json::parse::<T>(bytes, prefix);
    let is_json = well_formed(bytes);
    let value = match parsed {
        Ok(value) => value,
        Err(error) => {
            check_error(&error, is_json);
            return None;
        }
    };
    assert!(is_json, "a document that is not valid JSON was accepted");
    let first = serde_json::to_vec(&value).expect("a parsed payload serialises");
    if let (Ok(input), Ok(output)) =
        (serde_json::from_slice::<serde_json::Value>(bytes), serde_json::from_slice::<serde_json::Value>(&first))
    {
        assert_objects_were_objects(&input, &output, "body");
    }
    let again: T = json::parse(&first, prefix).unwrap_or_else(|e| {
        panic!("our own serialisation does not parse again: {e}\n{}", String::from_utf8_lossy(&first))
    });
    let second = serde_json::to_vec(&again).expect("a parsed payload serialises");
    assert!(
        first == second,
        "the round trip changed the payload:\n{}\n{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    Some(value)
}

/// [`by_serialisation`], and the re-parsed value equals the first one.
fn by_eq<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8], prefix: &str) -> Option<T> {
    let value = by_serialisation::<T>(bytes, prefix)?;
    let again: T = json::parse(&serde_json::to_vec(&value).expect("serialises"), prefix).expect("parses again");
    assert!(again == value, "the round trip changed the value: {value:?} became {again:?}");
    Some(value)
}

/// Every object of `output` (the parsed value, serialised) stands where `input` (the document)
/// had an object: a struct was not read from an array.
fn assert_objects_were_objects(input: &serde_json::Value, output: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (input, output) {
        (Value::Object(given), Value::Object(parsed)) => {
            for (name, value) in parsed {
                if let Some(sent) = given.get(name) {
                    assert_objects_were_objects(sent, value, &format!("{path}.{name}"));
                }
            }
        }
        (Value::Array(given), Value::Array(parsed)) => {
            for (i, (sent, value)) in given.iter().zip(parsed).enumerate() {
                assert_objects_were_objects(sent, value, &format!("{path}[{i}]"));
            }
        }
        (given, Value::Object(_)) => panic!("an object was read from {} at {path}", kind(given)),
        _ => {}
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// UTF-8 and one JSON value by the grammar (a lone surrogate escape or `1e400` is well formed,
/// though serde_json cannot decode either into a `serde_json::Value`).
fn well_formed(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde::de::IgnoredAny::deserialize(&mut deserializer).is_ok() && deserializer.end().is_ok()
}

fn check_error(error: &JsonError, is_json: bool) {
    let message = match error {
        JsonError::Syntax(m) => {
            assert!(!is_json, "valid JSON reported as a syntax error (400 instead of 422): {m}");
            m
        }
        JsonError::Shape(m) => m,
    };
    assert!(!message.is_empty(), "empty error message");
    assert!(!contains_pan_like(message), "an error message holds a PAN-like number: {message}");
}

/// A `Debug` rendering of card data holds no digit, once `allowed` (a PAN's last four) is
/// taken out.
fn assert_masked(debug: &str, allowed: &str) {
    let rest = if allowed.is_empty() { debug.to_owned() } else { debug.replace(allowed, "") };
    assert!(!rest.bytes().any(|b| b.is_ascii_digit()), "card digits in a Debug rendering: {debug}");
}

/// What the adapter does with a received key set: pick the encryption key, check every key,
/// and encrypt to a usable one.
fn check_jwk_set(set: &JwkSet) {
    for key in &set.keys {
        _ = key.thumbprint();
        if key.to_public_key().is_ok() {
            // A small plaintext: this exercises the RSA public operation with the received
            // modulus and exponent, whatever they are.
            let token = tmp_protocol::jwe::encrypt(b"{}", key);
            assert!(token.is_ok(), "a key that validates cannot be encrypted to: {token:?}");
        }
    }
    if let Some(key) = set.encryption_key() {
        assert!(key.to_public_key().is_ok());
    }
}
