//! Inputs the fuzz targets (`fuzz/`, docs/fuzzing.md) found, kept as regression tests.
//!
//! Each test holds the fuzzer's input verbatim (without the target's selector byte, which only
//! picked the payload type) and the behaviour the fix established, plus a readable variant.

use tmp_protocol::issuer_api::{CardData, VerifyCardResponse};
use tmp_protocol::json::{JsonError, parse};
use tmp_protocol::processor::ProcessorEvent;
use tmp_protocol::sensitive::contains_pan_like;
use tmp_protocol::tmp_api::{ExpiryData, SignCardResponse};

fn shape<T: serde::de::DeserializeOwned + std::fmt::Debug>(input: &[u8], prefix: &str) -> String {
    match parse::<T>(input, prefix) {
        Err(JsonError::Shape(m)) => m,
        other => panic!("shape error expected, got {other:?}"),
    }
}

/// `json_payloads` crash-06c5cb55 (minimised): invalid UTF-8 in a member serde_json skips was
/// accepted, so a body that is not JSON got through.
#[test]
fn invalid_utf8_in_a_skipped_member_is_malformed_json() {
    let input = b"{\"\":{\"\x96\":\"\"},\"wallet\":\"GOOGLE_PAY\"}";
    assert!(matches!(parse::<SignCardResponse>(input, ""), Err(JsonError::Syntax(_))));
    let readable = b"{\"wallet\": \"GOOGLE_PAY\", \"note\": \"caf\xe9\"}";
    assert!(matches!(parse::<SignCardResponse>(readable, ""), Err(JsonError::Syntax(_))));
}

/// `json_payloads` crash-130c6252: a number where an enum is expected is well-formed JSON of
/// the wrong shape (422), but serde_json calls it a syntax error ("expected value", 400).
#[test]
fn a_non_string_enum_value_is_a_shape_error() {
    // (Since objects are objects only, the verbatim input is refused before its member is read.)
    assert_eq!(shape::<VerifyCardResponse>(b"[18446744073709551616]", ""), "body: expected a JSON object");
    let readable = br#"{"decision": null, "reason": "CARD_VERIFIED", "cardStatus": "ACTIVE",
        "cvcResult": "MATCH", "standIn": false}"#;
    assert_eq!(shape::<VerifyCardResponse>(readable, ""), "`decision`: invalid value");
}

/// `json_payloads` crash-1989ab90: an unknown field's name was cut at its last dot to find
/// the parent path, so a name with dots was echoed into the error.
#[test]
fn an_unknown_field_name_with_dots_is_not_echoed() {
    let input = b"{\"expiry\":\"01/31\",\"pan66666666666666666666666666666666666666666666666666666666666666666z666666666666666666666666666oiZnVLTAxIn0.a2V5.aXY.Y3Q.dG66666666666666666666666666oiZnVLTAxIn0.a2V5.aXY.Y3Q.dG666663333332.Y3Q.dG66666666666666666666666666666666\"\n\n\n\n\n\n\n\n\n\r\r\r\x00\x00\r \r\r\"}";
    // The raw control characters make it malformed: a syntax error (400), which names nothing
    // of the document (serde meets the unknown field first; the syntax check comes before it).
    match parse::<CardData>(input, "encryptedPayload") {
        Err(JsonError::Syntax(m)) => assert!(!m.contains("pan666") && !contains_pan_like(&m), "{m}"),
        other => panic!("syntax error expected, got {other:?}"),
    }
    let clean = br#"{"expiry":"01/31","pan666666666666.oiZnVLTAxIn0.a2V5": 1}"#;
    let m = shape::<CardData>(clean, "encryptedPayload");
    assert_eq!(m, "`encryptedPayload`: unknown field, expected one of `pan`, `expiry`, `cvc`");
    let m = shape::<CardData>(br#"{"4111111111111111.1": 1}"#, "encryptedPayload");
    assert!(!contains_pan_like(&m) && !m.contains("4111"), "{m}");
}

/// `json_payloads` crash-803e95b8: an unknown field's name containing ", expected " was split
/// there, so the rest of the name was echoed as if it were the list of expected fields.
#[test]
fn an_unknown_field_name_that_reads_like_serdes_message_is_not_echoed() {
    let input = br#"{"6-03-01T12:12:00:0, expected 444444440.1234444+44444444444200:00.123403-01T12:00:0, expected 444444440.12344444444444444420.123444444.56789Z""#;
    // Cut short, the input is malformed: a syntax error that names nothing of it.
    match parse::<ExpiryData>(input, "encryptedPayload") {
        Err(JsonError::Syntax(m)) => assert!(!m.contains("expected 4444"), "{m}"),
        other => panic!("syntax error expected, got {other:?}"),
    }
    let whole = br#"{"6-03-01T12:12:00:0, expected 444444440.1234444+44444444444200:00.123403": 1}"#;
    assert_eq!(shape::<ExpiryData>(whole, "encryptedPayload"), "`encryptedPayload`: unknown field, expected `expiry`");
    let m = shape::<CardData>(br#"{"x`, expected 4111111111111111": 1}"#, "encryptedPayload");
    assert!(!m.contains("4111") && m.ends_with("expected one of `pan`, `expiry`, `cvc`"), "{m}");
}

/// `json_payloads` crash-d3112bd1, found against a first version of the fix above: a lone
/// surrogate escape in members `#[serde(flatten)]` buffers is reported without the path, which
/// at that point holds the sender's member names.
#[test]
fn an_undecodable_value_in_buffered_members_is_reported_without_its_path() {
    let input = br#"{"cardId":"card-1","744073709551616.data":{"cardholder":{"email":"cardhcard-1","data":{"cardholde\ud800r":{"email":"cardholder@example.com","phone":"+48500100200"},"encryptedPayload":"eyJhbGciOiJSU0EtT0FF]UC0yNTYiLCJlbmMiOiJBMjU2R0NNDI2LTAxIn0.adGFn","productCategor~":"CONSUMER_CREDIT"},"id":"pe-]","occurredAt":"00199"},"encryptedPayload":"eyJhbGcC0yNTYiLCJlbmMiOiJBMjI2LTAxInR_CREDIT"},"id":"pe-]","occurredAt":"2026-03-issued"}"#;
    assert_eq!(shape::<ProcessorEvent>(input, ""), "body: holds a lone surrogate escape or a number out of range");
    let readable = br#"{"id": "pe-1", "cardId": "card-1", "occurredAt": "2026-03-01T12:00:00Z",
        "type": "card.closed", "data": {}, "4111111111111111": {"\udc00": 1}}"#;
    let m = shape::<ProcessorEvent>(readable, "");
    assert!(!m.contains("4111"), "{m}");
}

/// `signature_headers` crash-4fd158a9: once `webhook-id`s that are card numbers were refused,
/// the harness's independent check still called `4444222222222` (13 Luhn-valid digits) a valid
/// id; the signer refuses it, and so does verification.
#[test]
fn a_webhook_id_that_is_a_card_number_is_refused_by_signer_and_verifier() {
    use tmp_protocol::webhook::{SignatureError, SignatureHeaders, WebhookSecret, validate_id};
    let (secret, _) = WebhookSecret::generate();
    for id in ["4444222222222", "4111-1111-1111-1111"] {
        assert_eq!(validate_id(id), Err(SignatureError::Malformed("webhook-id")), "{id}");
        assert!(SignatureHeaders::sign(std::slice::from_ref(&secret), id, 1, b"{}").is_err(), "{id}");
    }
    assert_eq!(validate_id("4444222222223"), Ok(()), "not Luhn-valid: an id like any other");
}
