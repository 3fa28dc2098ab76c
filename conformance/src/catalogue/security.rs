//! Signatures, hostile and malformed input, field encryption and the public key set.

use std::sync::Arc;

use serde_json::json;
use tmp_protocol::issuer_api::TOKEN_EVENTS_PATH;

use super::{requestor, token_event_body, token_event_call, verify_cvc_call};
use crate::case;
use crate::case::{BOTH, Case, Expect, Failure, Outcome, ensure};
use crate::client::Signing;
use crate::payload::{HeaderMember, KeyChoice, PayloadSpec};
use crate::session::Session;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "ISS-SIG-001",
            Signatures,
            BOTH,
            IssuerApi,
            "Unsigned requests are refused",
            "A POST without webhook-id / webhook-timestamp / webhook-signature is 401 MISSING_SIGNATURE.",
            &["R-ERR-1", "R-ERR-4", "R-SIG-5"],
            sig_missing
        ),
        case!(
            "ISS-SIG-002",
            Signatures,
            BOTH,
            IssuerApi,
            "A signature by another secret is refused",
            "A request signed with a secret the issuer does not hold is 401 INVALID_SIGNATURE.",
            &["R-ERR-4", "R-SIG-1"],
            sig_wrong_secret
        ),
        case!(
            "ISS-SIG-003",
            Signatures,
            BOTH,
            IssuerApi,
            "A body changed after signing is refused",
            "The signature covers the raw body: one byte more is 401 INVALID_SIGNATURE.",
            &["R-SIG-1"],
            sig_tampered
        ),
        case!(
            "ISS-SIG-004",
            Signatures,
            BOTH,
            IssuerApi,
            "A stale timestamp is refused",
            "A webhook-timestamp ten minutes old is 401 STALE_TIMESTAMP.",
            &["R-ERR-4", "R-SIG-4"],
            sig_stale
        ),
        case!(
            "ISS-SIG-005",
            Signatures,
            BOTH,
            IssuerApi,
            "A timestamp from the future is refused",
            "A webhook-timestamp ten minutes ahead is 401 STALE_TIMESTAMP.",
            &["R-SIG-4"],
            sig_future
        ),
        case!(
            "ISS-SIG-006",
            Signatures,
            BOTH,
            IssuerApi,
            "A replayed webhook-id is refused",
            "A second request with an already accepted webhook-id is 401 REPLAYED_REQUEST.",
            &["R-HDR-3", "R-ERR-4", "R-SIG-6"],
            sig_replay
        ),
        case!(
            "ISS-SIG-007",
            Signatures,
            BOTH,
            IssuerApi,
            "A malformed signature header is refused",
            "A webhook-signature with no v1 entry is 400 INVALID_HEADER.",
            &["R-ERR-4", "R-SIG-2", "R-SIG-5"],
            sig_malformed
        ),
        case!(
            "ISS-SIG-008",
            Signatures,
            BOTH,
            IssuerApi,
            "A refused request changes nothing",
            "A token event refused for its signature leaves no trace: the same event, signed, is then processed as new (no Idempotent-Replayed).",
            &["R-ADMIT-2"],
            sig_refusal_changes_nothing
        ),
        case!(
            "ISS-SIG-009",
            Signatures,
            BOTH,
            IssuerApi,
            "Admission follows the contract's order",
            "With several faults in one request, the first check of the admission order answers: signature (401) before content type (415), content type before the idempotency key (400 INVALID_HEADER), the key's lookup before JSON parsing (422 IDEMPOTENCY_KEY_REUSED for a reused key with a malformed body), field rules (422 VALIDATION_FAILED) before decryption.",
            &["R-FIELD-4", "R-HDR-1", "R-ADMIT-1", "R-ADMIT-5"],
            sig_admission_order
        ),
        case!(
            "ISS-SIG-010",
            Signatures,
            BOTH,
            IssuerApi,
            "A webhook-id is spent even when a later step refuses the request",
            "A signed request refused after the replay check (here for a missing X-Idempotency-Key) still spends its webhook-id: the same id on a valid request is 401 REPLAYED_REQUEST.",
            &["R-HDR-3", "R-ADMIT-4"],
            sig_id_spent_by_a_refusal
        ),
        case!(
            "ISS-SIG-011",
            Signatures,
            BOTH,
            IssuerApi,
            "Any matching signature entry is enough",
            "A webhook-signature with an entry by another secret and one of another version (v1a) before the valid entry is accepted, as during a secret rotation.",
            &["R-SIG-3", "R-SIG-5"],
            sig_several_entries
        ),
        case!(
            "ISS-INPUT-001",
            Input,
            BOTH,
            IssuerApi,
            "Malformed JSON is refused",
            "A body that is not JSON is 400 MALFORMED_JSON.",
            &["R-ERR-1", "R-ERR-4"],
            input_malformed
        ),
        case!(
            "ISS-INPUT-002",
            Input,
            BOTH,
            IssuerApi,
            "A wrong type is refused",
            "A number where the contract has a string is 422 VALIDATION_FAILED.",
            &["R-HTTP-5"],
            input_wrong_type
        ),
        case!(
            "ISS-INPUT-003",
            Input,
            BOTH,
            IssuerApi,
            "A missing field is refused",
            "A token event without tokenId is 422 VALIDATION_FAILED.",
            &["R-FIELD-9"],
            input_missing_field
        ),
        case!(
            "ISS-INPUT-004",
            Input,
            BOTH,
            IssuerApi,
            "An oversized body is refused",
            "A body four times the limit is 413 PAYLOAD_TOO_LARGE.",
            &["R-ERR-4", "R-ADMIT-3"],
            input_oversized
        ),
        case!(
            "ISS-INPUT-005",
            Input,
            BOTH,
            IssuerApi,
            "Another content type is refused",
            "Content-Type text/plain is 415 UNSUPPORTED_MEDIA_TYPE.",
            &["R-HDR-4", "R-ERR-4"],
            input_content_type
        ),
        case!(
            "ISS-INPUT-006",
            Input,
            BOTH,
            IssuerApi,
            "An unknown enum value is refused, never coerced",
            "tokenRequestor.wallet DIGITAL_PURSE is 422 VALIDATION_FAILED.",
            &["R-FIELD-6"],
            input_unknown_enum
        ),
        case!(
            "ISS-INPUT-007",
            Input,
            BOTH,
            IssuerApi,
            "A PAN in free text is refused",
            "A reason holding a PAN-like run of digits is 422 VALIDATION_FAILED.",
            &["R-FIELD-2", "R-FIELD-4", "R-ERR-2", "R-SENS-1"],
            input_pan_in_text
        ),
        case!(
            "ISS-INPUT-008",
            Input,
            BOTH,
            IssuerApi,
            "An id that is a PAN is refused",
            "A cardId that is a Luhn-valid PAN is 422 VALIDATION_FAILED.",
            &["R-FIELD-1"],
            input_pan_as_id
        ),
        case!(
            "ISS-INPUT-009",
            Input,
            BOTH,
            IssuerApi,
            "An unknown path is a JSON 404",
            "A path outside the contract is 404 NOT_FOUND with the contract's error body.",
            &["R-HTTP-2", "R-ERR-1"],
            input_unknown_path
        ),
        case!(
            "ISS-INPUT-010",
            Input,
            BOTH,
            IssuerApi,
            "A wrong method is a JSON 405",
            "GET on a POST route is 405 METHOD_NOT_ALLOWED with the contract's error body.",
            &["R-HTTP-3", "R-ERR-4"],
            input_wrong_method
        ),
        case!(
            "ISS-INPUT-011",
            Input,
            BOTH,
            IssuerApi,
            "A score outside 1–5 is refused",
            "walletScore 9 is 422 VALIDATION_FAILED.",
            &["R-FIELD-7"],
            input_score_range
        ),
        case!(
            "ISS-INPUT-012",
            Input,
            BOTH,
            IssuerApi,
            "The service keeps serving after hostile input",
            "After a burst of malformed, oversized and unsigned requests, the public key and a valid token event are served.",
            &["R-ADMIT-3"],
            input_keeps_serving
        ),
        case!(
            "ISS-INPUT-013",
            Input,
            BOTH,
            IssuerApi,
            "X-Correlation-Id is echoed, generated, and never a card number",
            "A well-formed X-Correlation-Id is echoed on a 200 and on an error, where the body's correlationId equals it; without one, or with one holding a card number, the answer carries a new id (not the sent one) in the header and the error body alike.",
            &["R-HDR-2", "R-ERR-3"],
            input_correlation_id
        ),
        case!(
            "ISS-INPUT-014",
            Input,
            BOTH,
            IssuerApi,
            "Unknown request members are ignored",
            "A verify-cvc request with members the contract does not define, at the top level and inside tokenRequestor, is answered as without them (200 MATCH).",
            &["R-HTTP-4"],
            input_unknown_members
        ),
        case!(
            "ISS-JWE-001",
            Encryption,
            BOTH,
            IssuerApi,
            "A payload for another key is refused",
            "A JWE made with another RSA key under the issuer's kid is 422 INVALID_ENCRYPTED_PAYLOAD.",
            &["R-ERR-4", "R-JWE-4"],
            jwe_wrong_key
        ),
        case!(
            "ISS-JWE-002",
            Encryption,
            BOTH,
            IssuerApi,
            "An unknown kid is refused",
            "A JWE naming a kid the issuer never published is 422 INVALID_ENCRYPTED_PAYLOAD.",
            &["R-JWE-1"],
            jwe_unknown_kid
        ),
        case!(
            "ISS-JWE-003",
            Encryption,
            BOTH,
            IssuerApi,
            "A tampered ciphertext is refused",
            "A JWE with one ciphertext character changed is 422 INVALID_ENCRYPTED_PAYLOAD.",
            &["R-JWE-4"],
            jwe_tampered
        ),
        case!(
            "ISS-JWE-004",
            Encryption,
            BOTH,
            IssuerApi,
            "Another algorithm is refused",
            "A JWE whose header says RSA1_5 is 422 INVALID_ENCRYPTED_PAYLOAD.",
            &["R-JWE-2"],
            jwe_wrong_alg
        ),
        case!(
            "ISS-JWE-005",
            Encryption,
            BOTH,
            IssuerApi,
            "Something that is not a JWE is refused",
            "encryptedPayload \"not-a-jwe\" is 422 INVALID_ENCRYPTED_PAYLOAD.",
            &["R-JWE-4"],
            jwe_not_jwe
        ),
        case!(
            "ISS-JWE-006",
            Encryption,
            BOTH,
            IssuerApi,
            "A compressed JWE is refused",
            "A JWE to the published key whose protected header carries zip: DEF is 422 INVALID_ENCRYPTED_PAYLOAD.",
            &["R-JWE-2"],
            jwe_zip
        ),
        case!(
            "ISS-JWE-007",
            Encryption,
            BOTH,
            IssuerApi,
            "A JWE with critical extensions is refused",
            "A JWE to the published key whose protected header carries crit is 422 INVALID_ENCRYPTED_PAYLOAD.",
            &["R-JWE-2"],
            jwe_crit
        ),
        case!(
            "ISS-JWE-008",
            Encryption,
            BOTH,
            IssuerApi,
            "Other header members are allowed",
            "A JWE to the published key with cty and a private member in its protected header is decrypted: verify-cvc answers 200 MATCH.",
            &["R-JWE-3"],
            jwe_other_members
        ),
        case!(
            "ISS-JWE-009",
            Encryption,
            BOTH,
            IssuerApi,
            "A plaintext with an unknown member is refused",
            "Card data whose decrypted JSON has a member CardData does not define is 422 VALIDATION_FAILED (plaintexts are strict), and the answer does not quote it.",
            &["R-JWE-5"],
            jwe_plaintext_unknown_member
        ),
        case!(
            "ISS-KEYS-001",
            Encryption,
            BOTH,
            IssuerApi,
            "The public key set is well formed",
            "GET /issuer-api/v1/public-key is a JWK set of RSA keys with unique kids, use enc, alg RSA-OAEP-256, and no private members.",
            &["R-KEYS-1", "R-KEYS-2"],
            keys_well_formed
        ),
        case!(
            "ISS-KEYS-002",
            Encryption,
            BOTH,
            IssuerApi,
            "Every published key decrypts (rotation)",
            "A payload encrypted to each published key in turn is accepted: a new key can be rolled in before the old one goes.",
            &["R-KEYS-1", "R-JWE-6"],
            keys_every_key_decrypts
        ),
    ]
}

fn event(s: &Session) -> crate::client::Call {
    token_event_call(s, token_event_body(s, "ACTIVE", Some("INACTIVE")))
}

async fn sig_admission_order(s: Arc<Session>) -> Outcome {
    let malformed = || event(&s).raw(b"{\"eventId\": ".to_vec(), "'{\"eventId\": '");
    // Unsigned, wrong content type, no key, malformed: the signature answers.
    let call = malformed().signing(Signing::Missing).content_type(Some("text/plain")).idempotency_key(None);
    s.send(call).await?.error(401, "MISSING_SIGNATURE")?;
    // Signed; wrong content type, no key, malformed: the content type answers.
    let call = malformed().content_type(Some("text/plain")).idempotency_key(None);
    s.send(call).await?.error(415, "UNSUPPORTED_MEDIA_TYPE")?;
    // No key, malformed: the key answers.
    s.send(malformed().idempotency_key(None)).await?.error(400, "INVALID_HEADER")?;
    // A key already used with another body, now with a malformed one: the lookup answers.
    let key = uuid::Uuid::new_v4().to_string();
    s.send(event(&s).idempotency_key(Some(&key))).await?.status(200)?;
    s.send(malformed().idempotency_key(Some(&key))).await?.error(422, "IDEMPOTENCY_KEY_REUSED")?;
    // A field rule broken and a payload that does not decrypt: the field rule answers.
    let mut body = json!({"tokenRequestor": requestor("APPLE_PAY"), "encryptedPayload": "not-a-jwe"});
    body["tokenRequestor"]["wallet"] = json!("PAYPAL_WALLET");
    s.send(s.post(tmp_protocol::issuer_api::VERIFY_CVC_PATH, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn input_correlation_id(s: Arc<Session>) -> Outcome {
    let echoed = |answer: &crate::client::Answer, sent: &str| {
        ensure(
            answer.header(tmp_protocol::headers::CORRELATION_ID).as_deref() == Some(sent),
            format!("X-Correlation-Id: {sent} on the answer"),
            format!("{:?}", answer.header(tmp_protocol::headers::CORRELATION_ID)),
        )
        .map_err(|f| f.with(answer))
    };
    let in_body = |answer: &crate::client::Answer| {
        let header = answer.header(tmp_protocol::headers::CORRELATION_ID).unwrap_or_default();
        let body = answer.json().unwrap_or_default();
        ensure(
            !header.is_empty() && body["error"]["correlationId"] == header.as_str(),
            "the error body's correlationId equal to the X-Correlation-Id header",
            format!("header {header:?}, body {body}"),
        )
        .map_err(|f| f.with(answer))
    };
    let sent = s.id("corr");
    let ok = s.send(verify_cvc_call(&s, PayloadSpec::card("active")).correlation_id(Some(&sent))).await?;
    ok.status(200)?;
    echoed(&ok, &sent)?;
    let sent = s.id("corr");
    let error = s.send(event(&s).idempotency_key(None).correlation_id(Some(&sent))).await?;
    error.error(400, "INVALID_HEADER")?;
    echoed(&error, &sent)?;
    in_body(&error)?;
    // None sent, or one holding a card number (a well-known test PAN, not a profile card):
    // a new id, the same in header and body, and not the one sent.
    for sent in [None, Some("corr-4000000000000002")] {
        let mut call = event(&s).idempotency_key(None);
        call = call.correlation_id(sent);
        let answer = s.send(call).await?;
        answer.error(400, "INVALID_HEADER")?;
        in_body(&answer)?;
        let header = answer.header(tmp_protocol::headers::CORRELATION_ID).unwrap_or_default();
        ensure(
            !header.contains("4000000000000002"),
            "a generated correlation id in place of one holding a card number",
            "the card number echoed",
        )
        .map_err(|f| f.with(&answer))?;
    }
    Ok(())
}

async fn sig_missing(s: Arc<Session>) -> Outcome {
    s.send(event(&s).signing(Signing::Missing)).await?.error(401, "MISSING_SIGNATURE")
}
async fn sig_wrong_secret(s: Arc<Session>) -> Outcome {
    s.send(event(&s).signing(Signing::WrongSecret)).await?.error(401, "INVALID_SIGNATURE")
}
async fn sig_tampered(s: Arc<Session>) -> Outcome {
    s.send(event(&s).signing(Signing::TamperedBody)).await?.error(401, "INVALID_SIGNATURE")
}
async fn sig_stale(s: Arc<Session>) -> Outcome {
    s.send(event(&s).signing(Signing::Stale)).await?.error(401, "STALE_TIMESTAMP")
}
async fn sig_future(s: Arc<Session>) -> Outcome {
    s.send(event(&s).signing(Signing::Future)).await?.error(401, "STALE_TIMESTAMP")
}
async fn sig_malformed(s: Arc<Session>) -> Outcome {
    s.send(event(&s).signing(Signing::MalformedHeader)).await?.error(400, "INVALID_HEADER")
}

async fn sig_replay(s: Arc<Session>) -> Outcome {
    let id = tmp_protocol::webhook::new_message_id();
    s.send(event(&s).signing(Signing::WithId(id.clone()))).await?.status(200)?;
    s.send(event(&s).signing(Signing::WithId(id))).await?.error(401, "REPLAYED_REQUEST")
}

async fn sig_refusal_changes_nothing(s: Arc<Session>) -> Outcome {
    let key = uuid::Uuid::new_v4().to_string();
    let body = token_event_body(&s, "ACTIVE", Some("INACTIVE"));
    let refused = token_event_call(&s, body.clone()).idempotency_key(Some(&key)).signing(Signing::WrongSecret);
    s.send(refused).await?.error(401, "INVALID_SIGNATURE")?;
    let answer = s.send(token_event_call(&s, body).idempotency_key(Some(&key))).await?;
    answer.ok_with(&[("/accepted", json!(true))])?;
    ensure(answer.header("idempotent-replayed").is_none(), "a fresh answer", "a replayed one")
        .map_err(|f| f.with(&answer))
}

async fn input_malformed(s: Arc<Session>) -> Outcome {
    let call = event(&s).raw(b"{\"eventId\": ".to_vec(), "'{\"eventId\": '");
    s.send(call).await?.error(400, "MALFORMED_JSON")
}

async fn input_wrong_type(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "ACTIVE", None);
    body["tokenId"] = json!(12345);
    s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")?;
    // An array of an object's members in order, where the object is defined.
    let mut body = token_event_body(&s, "ACTIVE", None);
    body["tokenRequestor"] = json!(["50120834693", "Google Pay", "GOOGLE_PAY"]);
    s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn input_missing_field(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "ACTIVE", None);
    body.as_object_mut().map(|o| o.remove("tokenId"));
    s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn input_oversized(s: Arc<Session>) -> Outcome {
    let size = s.client.profile.body_limit_bytes * 4;
    let bytes = format!("{{\"pad\":\"{}\"}}", "a".repeat(size)).into_bytes();
    let shell = format!("\"{{\\\"pad\\\":\\\"$(head -c {size} /dev/zero | tr '\\0' a)\\\"}}\"");
    s.send(event(&s).raw(bytes, &shell)).await?.error(413, "PAYLOAD_TOO_LARGE")
}

async fn input_content_type(s: Arc<Session>) -> Outcome {
    s.send(event(&s).content_type(Some("text/plain"))).await?.error(415, "UNSUPPORTED_MEDIA_TYPE")?;
    // Parameters are allowed and the comparison ignores case (contract §2).
    let charset = event(&s).content_type(Some("Application/JSON; charset=utf-8"));
    s.send(charset).await?.ok_with(&[("/accepted", json!(true))])
}

async fn input_unknown_enum(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "ACTIVE", None);
    body["tokenRequestor"]["wallet"] = json!("DIGITAL_PURSE");
    s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn input_pan_in_text(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "SUSPENDED", Some("ACTIVE"));
    body["reason"] = json!("customer called about 4111 1111 1111 1111");
    let answer = s.send(token_event_call(&s, body)).await?;
    answer.error(422, "VALIDATION_FAILED")?;
    // The message names the field, never the value.
    let digits: String = answer.text().chars().filter(char::is_ascii_digit).collect();
    ensure(!digits.contains("41111111"), "an error that does not quote the card number", answer.text())
        .map_err(|f| f.with(&answer))
}

async fn input_pan_as_id(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "ACTIVE", None);
    body["cardId"] = json!("4111111111111111");
    s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn input_unknown_path(s: Arc<Session>) -> Outcome {
    s.send(s.get("/issuer-api/v1/no-such-route")).await?.error(404, "NOT_FOUND")
}

async fn input_wrong_method(s: Arc<Session>) -> Outcome {
    let answer = s.send(s.get(TOKEN_EVENTS_PATH)).await?;
    answer.error(405, "METHOD_NOT_ALLOWED")?;
    let allow = answer.header("allow").unwrap_or_default();
    ensure(allow.split(',').any(|m| m.trim() == "POST"), "an Allow header naming POST", format!("Allow: {allow:?}"))
        .map_err(|f| f.with(&answer))
}

async fn input_unknown_members(s: Arc<Session>) -> Outcome {
    let mut body =
        json!({"tokenRequestor": requestor("APPLE_PAY"), "encryptedPayload": crate::client::payload_slot(0)});
    body["x-extension"] = json!({"note": "a member a later version might define"});
    body["tokenRequestor"]["brand"] = json!("an extra member");
    let call = s.post(tmp_protocol::issuer_api::VERIFY_CVC_PATH, body).payload(PayloadSpec::card("active"));
    s.send(call).await?.ok_with(&[("/cvcResult", json!("MATCH"))])
}

async fn sig_id_spent_by_a_refusal(s: Arc<Session>) -> Outcome {
    let id = tmp_protocol::webhook::new_message_id();
    let refused = event(&s).idempotency_key(None).signing(Signing::WithId(id.clone()));
    s.send(refused).await?.error(400, "INVALID_HEADER")?;
    s.send(event(&s).signing(Signing::WithId(id))).await?.error(401, "REPLAYED_REQUEST")
}

async fn sig_several_entries(s: Arc<Session>) -> Outcome {
    s.send(event(&s).signing(Signing::SeveralEntries)).await?.ok_with(&[("/accepted", json!(true))])
}

async fn jwe_plaintext_unknown_member(s: Arc<Session>) -> Outcome {
    let answer = s.send(verify_cvc_call(&s, PayloadSpec::card("active").extra_member())).await?;
    answer.error(422, "VALIDATION_FAILED")?;
    ensure(!answer.text().contains("an extra member"), "an answer that does not quote the plaintext", answer.text())
        .map_err(|f| f.with(&answer))
}

async fn input_score_range(s: Arc<Session>) -> Outcome {
    let call = super::verify_call(&s, PayloadSpec::card("active"), |b| b["walletScore"] = json!(9));
    s.send(call).await?.error(422, "VALIDATION_FAILED")
}

async fn input_keeps_serving(s: Arc<Session>) -> Outcome {
    for _ in 0..5 {
        s.send(event(&s).raw(b"[[[[".to_vec(), "'[[[['")).await?.status(400)?;
        s.send(event(&s).signing(Signing::Missing)).await?.status(401)?;
        let size = s.client.profile.body_limit_bytes * 2;
        let shell = format!("\"$(head -c {size} /dev/zero | tr '\\0' a)\"");
        s.send(event(&s).raw(vec![b'a'; size], &shell)).await?.status(413)?;
    }
    s.send(s.get(tmp_protocol::issuer_api::PUBLIC_KEY_PATH)).await?.status(200)?;
    s.send(event(&s)).await?.ok_with(&[("/accepted", json!(true))])
}

async fn jwe_refused(s: &Session, key: KeyChoice) -> Outcome {
    let call = verify_cvc_call(s, PayloadSpec::card("active").key(key));
    s.send(call).await?.error(422, "INVALID_ENCRYPTED_PAYLOAD")
}

async fn jwe_wrong_key(s: Arc<Session>) -> Outcome {
    jwe_refused(&s, KeyChoice::Wrong).await
}
async fn jwe_unknown_kid(s: Arc<Session>) -> Outcome {
    jwe_refused(&s, KeyChoice::UnknownKid).await
}
async fn jwe_tampered(s: Arc<Session>) -> Outcome {
    jwe_refused(&s, KeyChoice::Tampered).await
}
async fn jwe_wrong_alg(s: Arc<Session>) -> Outcome {
    jwe_refused(&s, KeyChoice::WrongAlgorithm).await
}
async fn jwe_not_jwe(s: Arc<Session>) -> Outcome {
    jwe_refused(&s, KeyChoice::NotJwe).await
}

async fn jwe_zip(s: Arc<Session>) -> Outcome {
    jwe_refused(&s, KeyChoice::HeaderMember(HeaderMember::Zip)).await
}
async fn jwe_crit(s: Arc<Session>) -> Outcome {
    jwe_refused(&s, KeyChoice::HeaderMember(HeaderMember::Crit)).await
}
async fn jwe_other_members(s: Arc<Session>) -> Outcome {
    let call = verify_cvc_call(&s, PayloadSpec::card("active").key(KeyChoice::HeaderMember(HeaderMember::Other)));
    s.send(call).await?.ok_with(&[("/cvcResult", json!("MATCH"))])
}

async fn keys_well_formed(s: Arc<Session>) -> Outcome {
    let answer = s.send(s.get(tmp_protocol::issuer_api::PUBLIC_KEY_PATH)).await?;
    answer.status(200)?;
    let body = answer.json().unwrap_or_default();
    let Some(keys) = body["keys"].as_array().filter(|k| !k.is_empty()) else {
        return Err(Failure::new("a JWK set with at least one key", body.to_string()).with(&answer));
    };
    // Published without authentication, for callers to cache (contract §1.5).
    let cache = answer.header("cache-control").unwrap_or_default();
    let max_age = cache.split(',').find_map(|d| d.trim().strip_prefix("max-age=")).and_then(|v| v.parse::<u64>().ok());
    ensure(max_age.is_some_and(|a| a > 0), "Cache-Control with a max-age", format!("Cache-Control: {cache:?}"))
        .map_err(|f| f.with(&answer))?;
    let mut kids = Vec::new();
    for key in keys {
        let private = ["d", "p", "q", "dp", "dq", "qi"].iter().any(|m| key.get(m).is_some());
        let good = key["kty"] == "RSA"
            && key["use"] == "enc"
            && key["alg"] == "RSA-OAEP-256"
            && key["n"].is_string()
            && key["e"].is_string()
            && key["kid"].as_str().is_some_and(|k| !k.is_empty())
            && !private;
        ensure(good, "kty RSA, use enc, alg RSA-OAEP-256, n, e, a kid, no private member", key.to_string())
            .map_err(|f| f.with(&answer))?;
        kids.push(key["kid"].as_str().unwrap_or_default().to_owned());
    }
    let count = kids.len();
    kids.sort();
    kids.dedup();
    ensure(kids.len() == count, "unique kids", format!("{count} keys, {} distinct kids", kids.len()))
        .map_err(|f| f.with(&answer))?;
    // A key set parses as one, and each key as an RSA public key.
    let set: tmp_protocol::jwk::JwkSet =
        serde_json::from_slice(&answer.body).map_err(|e| Failure::new("a JWK set", e.to_string()).with(&answer))?;
    for key in &set.keys {
        key.to_public_key().map_err(|e| Failure::new("a usable RSA public key", e.to_string()).with(&answer))?;
    }
    s.note(format!("{count} published key(s)"));
    Ok(())
}

async fn keys_every_key_decrypts(s: Arc<Session>) -> Outcome {
    let keys = s.client.keys(true).await?;
    for key in &keys.keys {
        let call = verify_cvc_call(&s, PayloadSpec::card("active").key(KeyChoice::Kid(key.kid.clone())));
        s.send(call).await?.field("/cvcResult", "MATCH")?;
    }
    s.note(format!("{} key(s) decrypt", keys.keys.len()));
    Ok(())
}
