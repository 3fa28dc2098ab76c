//! Token events (every status transition), notifications (every type), idempotency.

use std::sync::Arc;

use serde_json::json;

use super::{notification_body, notification_call, token_event_body, token_event_call, verify_call, verify_cvc_call};
use crate::case;
use crate::case::{BOTH, Case, EXTERNAL, Expect, Outcome, ensure};
use crate::harness::Capability;
use crate::payload::{CvcChoice, PayloadSpec};
use crate::session::Session;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "ISS-TOKEN-001",
            TokenEvents,
            BOTH,
            IssuerApi,
            "New token (INACTIVE) is acknowledged",
            "A token event for a new INACTIVE token answers 200 with its eventId, tokenId and accepted: true.",
            &["R-HTTP-1", "R-TOKEN-1"],
            token_new_inactive
        ),
        case!(
            "ISS-TOKEN-002",
            TokenEvents,
            BOTH,
            IssuerApi,
            "INACTIVE → ACTIVE is acknowledged",
            "Activation of a token is acknowledged with accepted: true.",
            &["R-TOKEN-1"],
            token_inactive_active
        ),
        case!(
            "ISS-TOKEN-003",
            TokenEvents,
            BOTH,
            IssuerApi,
            "ACTIVE → SUSPENDED is acknowledged",
            "Suspension of a token is acknowledged with accepted: true.",
            &["R-TOKEN-1"],
            token_active_suspended
        ),
        case!(
            "ISS-TOKEN-004",
            TokenEvents,
            BOTH,
            IssuerApi,
            "SUSPENDED → ACTIVE is acknowledged",
            "Resumption of a token is acknowledged with accepted: true.",
            &["R-TOKEN-1"],
            token_suspended_active
        ),
        case!(
            "ISS-TOKEN-005",
            TokenEvents,
            BOTH,
            IssuerApi,
            "ACTIVE → DEACTIVATED is acknowledged",
            "Deactivation of an active token is acknowledged with accepted: true.",
            &["R-TOKEN-1"],
            token_active_deactivated
        ),
        case!(
            "ISS-TOKEN-006",
            TokenEvents,
            BOTH,
            IssuerApi,
            "SUSPENDED → DEACTIVATED is acknowledged",
            "Deactivation of a suspended token is acknowledged with accepted: true.",
            &["R-TOKEN-1"],
            token_suspended_deactivated
        ),
        case!(
            "ISS-TOKEN-007",
            TokenEvents,
            BOTH,
            IssuerApi,
            "INACTIVE → DEACTIVATED is acknowledged",
            "A token that never activated (wrong OTPs, expiry) can be deactivated; acknowledged with accepted: true.",
            &["R-TOKEN-1"],
            token_inactive_deactivated
        ),
        case!(
            "ISS-TOKEN-008",
            TokenEvents,
            BOTH,
            IssuerApi,
            "A token's whole life in order",
            "INACTIVE, ACTIVE, SUSPENDED, ACTIVE, DEACTIVATED for one token: each event acknowledged.",
            &["R-TOKEN-1"],
            token_lifecycle
        ),
        case!(
            "ISS-TOKEN-009",
            TokenEvents,
            BOTH,
            IssuerApi,
            "A retried event (same eventId, new key) is acknowledged again",
            "TMP retries with the same eventId: the answer is 200 accepted: true, with no second effect.",
            &["R-IDEM-6", "R-TOKEN-4"],
            token_duplicate_event
        ),
        case!(
            "ISS-TOKEN-010",
            TokenEvents,
            BOTH,
            IssuerApi,
            "An eventId reused for another event is a conflict",
            "The same eventId with another status is 409 CONFLICT.",
            &["R-TOKEN-2", "R-ERR-1"],
            token_event_conflict
        ),
        case!(
            "ISS-TOKEN-011",
            TokenEvents,
            BOTH,
            IssuerApi,
            "A late event is acknowledged",
            "An event older than the token's known state (callbacks arrive out of order) is still acknowledged.",
            &["R-TOKEN-1", "R-TOKEN-5"],
            token_late_event
        ),
        case!(
            "ISS-TOKEN-012",
            TokenEvents,
            BOTH,
            IssuerApi,
            "tokenLast4 must be four digits",
            "A tokenLast4 that is not exactly four digits is 422 VALIDATION_FAILED.",
            &["R-FIELD-8"],
            token_bad_last4
        ),
        case!(
            "ISS-TOKEN-013",
            TokenEvents,
            BOTH,
            IssuerApi,
            "A timestamp without an offset is refused",
            "occurredAt without a UTC offset is 422 VALIDATION_FAILED.",
            &["R-FIELD-5"],
            token_naive_timestamp
        ),
        case!(
            "ISS-TOKEN-014",
            TokenEvents,
            BOTH,
            IssuerApi,
            "A token event of a card the issuer does not know is acknowledged",
            "A token event naming a card id the issuer has never seen answers 200 with accepted: true (contract §1.3: it must not be lost for a lookup).",
            &["R-TOKEN-3"],
            token_unknown_card
        ),
        case!(
            "ISS-TOKEN-015",
            TokenEvents,
            BOTH,
            IssuerApi,
            "A token event naming who caused it and a coded reason is accepted",
            "An event with initiator TOKEN_REQUESTOR, reasonCode LOST and a tokenizationId answers 200 with accepted: true.",
            &["R-TOKEN-1", "R-TOKEN-7"],
            token_coded_cause
        ),
        case!(
            "ISS-TOKEN-016",
            TokenEvents,
            BOTH,
            IssuerApi,
            "An unknown initiator or reason code is refused",
            "An event whose reasonCode or initiator is not one of the contract's values is 422 VALIDATION_FAILED.",
            &["R-TOKEN-7", "R-ENUM-1"],
            token_unknown_cause
        ),
        case!(
            "ISS-NOTIFY-001",
            Notifications,
            BOTH,
            IssuerApi,
            "Activation code delivery is accepted",
            "ACTIVATION_CODE_DELIVERY with the OTP as JWE and expiresAt answers 200 accepted: true.",
            &["R-HTTP-1", "R-NOTIFY-1"],
            notify_activation
        ),
        case!(
            "ISS-NOTIFY-002",
            Notifications,
            BOTH,
            IssuerApi,
            "TOKEN_ACTIVATED is accepted",
            "A TOKEN_ACTIVATED notification answers 200 accepted: true.",
            &["R-NOTIFY-1"],
            notify_token_activated
        ),
        case!(
            "ISS-NOTIFY-003",
            Notifications,
            BOTH,
            IssuerApi,
            "CARD_REMOVED_BY_CUSTOMER is accepted",
            "A CARD_REMOVED_BY_CUSTOMER notification answers 200 accepted: true.",
            &["R-NOTIFY-1"],
            notify_removed_by_customer
        ),
        case!(
            "ISS-NOTIFY-004",
            Notifications,
            BOTH,
            IssuerApi,
            "CARD_REMOVED_BY_ISSUER is accepted",
            "A CARD_REMOVED_BY_ISSUER notification answers 200 accepted: true.",
            &["R-NOTIFY-1"],
            notify_removed_by_issuer
        ),
        case!(
            "ISS-NOTIFY-005",
            Notifications,
            BOTH,
            IssuerApi,
            "An activation code needs its payload",
            "ACTIVATION_CODE_DELIVERY without encryptedPayload is 422 VALIDATION_FAILED.",
            &["R-NOTIFY-2"],
            notify_activation_without_code
        ),
        case!(
            "ISS-NOTIFY-006",
            Notifications,
            BOTH,
            IssuerApi,
            "Other types carry no payload",
            "An encryptedPayload on TOKEN_ACTIVATED is 422 VALIDATION_FAILED.",
            &["R-NOTIFY-2"],
            notify_payload_on_other_type
        ),
        case!(
            "ISS-NOTIFY-007",
            Notifications,
            BOTH,
            IssuerApi,
            "An OTP must be 6 to 8 digits",
            "An activation code of 4 digits is 422 VALIDATION_FAILED.",
            &["R-NOTIFY-2"],
            notify_short_otp
        ),
        case!(
            "ISS-NOTIFY-008",
            Notifications,
            BOTH,
            IssuerApi,
            "A retried notification is acknowledged again",
            "The same notificationId under a new idempotency key answers 200 accepted: true, with no second delivery.",
            &["R-IDEM-6"],
            notify_duplicate
        ),
        case!(
            "ISS-NOTIFY-009",
            Notifications,
            BOTH,
            ActivationCodes,
            "The activation code reaches the issuer's system, encrypted",
            "The OTP of an ACTIVATION_CODE_DELIVERY reaches the issuer's webhook sink as JWE to the sink's key and decrypts to the code TMP sent.",
            &["R-NOTIFY-5"],
            notify_reaches_sink
        ),
        case!(
            "ISS-NOTIFY-010",
            Notifications,
            BOTH,
            IssuerApi,
            "An activation code already expired is accepted",
            "ACTIVATION_CODE_DELIVERY whose expiresAt has passed answers 200 accepted: true (it is erased, not refused).",
            &["R-NOTIFY-4"],
            notify_expired_code
        ),
        case!(
            "ISS-NOTIFY-011",
            Notifications,
            BOTH,
            HeldDeliveries,
            "An activation code is never delivered after it expired",
            "While the issuer's system refuses deliveries, an activation code expires (expiresAt 2 s ahead); once the system accepts again, the code does not arrive there.",
            &["R-NOTIFY-3"],
            notify_never_after_expiry
        ),
        case!(
            "ISS-NOTIFY-012",
            Notifications,
            BOTH,
            IssuerApi,
            "The cardholder's step-up choice is accepted",
            "STEP_UP_REQUESTED naming OUTBOUND_CALL, and ACTIVATION_CODE_DELIVERY naming OTP_SMS beside channel SMS, each answer 200 accepted: true.",
            &["R-STEPUP-3", "R-NOTIFY-1"],
            notify_step_up_choice
        ),
        case!(
            "ISS-NOTIFY-013",
            Notifications,
            BOTH,
            IssuerApi,
            "A step-up method goes only where it belongs",
            "STEP_UP_REQUESTED without stepUpMethod or naming OTP_SMS, an activation code naming OUTBOUND_CALL or a channel other than its method's, and a stepUpMethod on TOKEN_ACTIVATED are each 422 VALIDATION_FAILED; an unknown method is 422 too.",
            &["R-STEPUP-3", "R-ENUM-1"],
            notify_step_up_misplaced
        ),
        case!(
            "ISS-IDEM-001",
            Idempotency,
            BOTH,
            IssuerApi,
            "Same key, same body: the stored answer",
            "A token event resent byte-identical under the same X-Idempotency-Key gets the same status and body, marked Idempotent-Replayed: true.",
            &["R-HDR-5", "R-IDEM-2", "R-IDEM-3"],
            idem_same_body
        ),
        case!(
            "ISS-IDEM-002",
            Idempotency,
            BOTH,
            IssuerApi,
            "Same key, other body: refused",
            "The same X-Idempotency-Key with another body is 422 IDEMPOTENCY_KEY_REUSED.",
            &["R-ERR-4", "R-IDEM-4"],
            idem_other_body
        ),
        case!(
            "ISS-IDEM-003",
            Idempotency,
            BOTH,
            IssuerApi,
            "The key is required",
            "A POST without X-Idempotency-Key is 400 INVALID_HEADER.",
            &["R-HDR-1"],
            idem_missing_key
        ),
        case!(
            "ISS-IDEM-004",
            Idempotency,
            EXTERNAL,
            IssuerApi,
            "A replayed verification is the same decision",
            "verify-card resent byte-identical under the same key answers the stored decision, marked Idempotent-Replayed: true.",
            &["R-HDR-5", "R-IDEM-2"],
            idem_verify_card
        ),
        case!(
            "ISS-IDEM-005",
            Idempotency,
            BOTH,
            IssuerApi,
            "A rejected request does not spend its key",
            "A request refused with 422 leaves its key unused: the corrected body under the same key is processed.",
            &["R-ADMIT-2", "R-IDEM-5"],
            idem_rejection_not_stored
        ),
        case!(
            "ISS-IDEM-006",
            Idempotency,
            BOTH,
            IssuerApi,
            "A replayed CVC check is not counted again",
            "A wrong CVC replayed under its key more times than the attempt limit does not lock the card.",
            &["R-IDEM-2", "R-COUNT-6"],
            idem_cvc_not_recounted
        ),
        case!(
            "ISS-IDEM-007",
            Idempotency,
            BOTH,
            IssuerApi,
            "A replayed notification is the same answer",
            "A notification resent byte-identical under the same key answers the stored acknowledgement, marked Idempotent-Replayed: true.",
            &["R-HDR-5", "R-IDEM-2"],
            idem_notification
        ),
        case!(
            "ISS-IDEM-008",
            Idempotency,
            BOTH,
            IssuerApi,
            "Idempotency keys are scoped per route",
            "One X-Idempotency-Key used on verify-cvc, then on a token event, then on a notification: each is answered as new on its own route (its own ids, no Idempotent-Replayed).",
            &["R-IDEM-1"],
            idem_scoped_per_route
        ),
    ]
}

async fn ack(s: &Session, body: serde_json::Value) -> Outcome {
    let (event, token) = (body["eventId"].clone(), body["tokenId"].clone());
    let answer = s.send(token_event_call(s, body)).await?;
    answer.ok_with(&[("/eventId", event), ("/tokenId", token), ("/accepted", json!(true))])
}

async fn transition(s: &Session, from: Option<&str>, to: &str) -> Outcome {
    ack(s, token_event_body(s, to, from)).await
}

async fn token_unknown_card(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "INACTIVE", None);
    // Whatever card the profile names for the other token-event cases: this one is new.
    body["cardId"] = json!(s.id("card-unknown-to-issuer"));
    ack(&s, body).await
}

async fn token_new_inactive(s: Arc<Session>) -> Outcome {
    transition(&s, None, "INACTIVE").await
}
async fn token_inactive_active(s: Arc<Session>) -> Outcome {
    transition(&s, Some("INACTIVE"), "ACTIVE").await
}
async fn token_active_suspended(s: Arc<Session>) -> Outcome {
    transition(&s, Some("ACTIVE"), "SUSPENDED").await
}
async fn token_suspended_active(s: Arc<Session>) -> Outcome {
    transition(&s, Some("SUSPENDED"), "ACTIVE").await
}
async fn token_active_deactivated(s: Arc<Session>) -> Outcome {
    transition(&s, Some("ACTIVE"), "DEACTIVATED").await
}
async fn token_suspended_deactivated(s: Arc<Session>) -> Outcome {
    transition(&s, Some("SUSPENDED"), "DEACTIVATED").await
}
async fn token_inactive_deactivated(s: Arc<Session>) -> Outcome {
    transition(&s, Some("INACTIVE"), "DEACTIVATED").await
}

async fn token_lifecycle(s: Arc<Session>) -> Outcome {
    let token = s.id("DWSPMC0000");
    let card = s.id("card-tkn");
    let start = time::OffsetDateTime::now_utc();
    let steps = [
        (None, "INACTIVE"),
        (Some("INACTIVE"), "ACTIVE"),
        (Some("ACTIVE"), "SUSPENDED"),
        (Some("SUSPENDED"), "ACTIVE"),
        (Some("ACTIVE"), "DEACTIVATED"),
    ];
    for (i, (from, to)) in steps.into_iter().enumerate() {
        let mut body = token_event_body(&s, to, from);
        body["tokenId"] = json!(token);
        body["cardId"] = json!(card);
        body["occurredAt"] = json!(super::rfc3339(start + time::Duration::seconds(i as i64)));
        ack(&s, body).await?;
    }
    Ok(())
}

async fn token_duplicate_event(s: Arc<Session>) -> Outcome {
    let body = token_event_body(&s, "ACTIVE", Some("INACTIVE"));
    ack(&s, body.clone()).await?;
    // TMP's retry: a new request (new idempotency key), same event.
    ack(&s, body).await
}

async fn token_event_conflict(s: Arc<Session>) -> Outcome {
    let body = token_event_body(&s, "ACTIVE", Some("INACTIVE"));
    ack(&s, body.clone()).await?;
    let mut other = body;
    other["status"] = json!("SUSPENDED");
    s.send(token_event_call(&s, other)).await?.error(409, "CONFLICT")
}

async fn token_late_event(s: Arc<Session>) -> Outcome {
    let newer = token_event_body(&s, "SUSPENDED", Some("ACTIVE"));
    let mut older = token_event_body(&s, "ACTIVE", Some("INACTIVE"));
    older["tokenId"] = newer["tokenId"].clone();
    older["cardId"] = newer["cardId"].clone();
    older["occurredAt"] = json!(super::rfc3339(time::OffsetDateTime::now_utc() - time::Duration::minutes(5)));
    ack(&s, newer).await?;
    ack(&s, older).await
}

async fn token_bad_last4(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "ACTIVE", None);
    body["tokenLast4"] = json!("43x1");
    s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn token_naive_timestamp(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "ACTIVE", None);
    body["occurredAt"] = json!("2026-11-25T10:00:00");
    s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn token_coded_cause(s: Arc<Session>) -> Outcome {
    let mut body = token_event_body(&s, "SUSPENDED", Some("ACTIVE"));
    body["initiator"] = json!("TOKEN_REQUESTOR");
    body["reasonCode"] = json!("LOST");
    body["reason"] = json!("device reported lost in the wallet");
    body["tokenizationId"] = json!(s.id("tkn"));
    let (event, token) = (body["eventId"].clone(), body["tokenId"].clone());
    s.send(token_event_call(&s, body)).await?.ok_with(&[
        ("/eventId", event),
        ("/tokenId", token),
        ("/accepted", json!(true)),
    ])
}

async fn token_unknown_cause(s: Arc<Session>) -> Outcome {
    for (field, value) in [("reasonCode", "MISPLACED"), ("initiator", "BANK")] {
        let mut body = token_event_body(&s, "SUSPENDED", Some("ACTIVE"));
        body[field] = json!(value);
        s.send(token_event_call(&s, body)).await?.error(422, "VALIDATION_FAILED")?;
    }
    Ok(())
}

async fn notify_ok(s: &Session, kind: &str) -> Outcome {
    let body = notification_body(s, kind);
    let id = body["notificationId"].clone();
    let answer = s.send(notification_call(s, body)).await?;
    answer.ok_with(&[("/notificationId", id), ("/accepted", json!(true))])
}

async fn notify_activation(s: Arc<Session>) -> Outcome {
    notify_ok(&s, "ACTIVATION_CODE_DELIVERY").await
}
async fn notify_token_activated(s: Arc<Session>) -> Outcome {
    notify_ok(&s, "TOKEN_ACTIVATED").await
}
async fn notify_removed_by_customer(s: Arc<Session>) -> Outcome {
    notify_ok(&s, "CARD_REMOVED_BY_CUSTOMER").await
}
async fn notify_removed_by_issuer(s: Arc<Session>) -> Outcome {
    notify_ok(&s, "CARD_REMOVED_BY_ISSUER").await
}

/// A `STEP_UP_REQUESTED` for a token, naming `method` (no channel: nothing is sent by TMP).
fn step_up_requested(s: &Session, method: &str) -> serde_json::Value {
    let mut body = notification_body(s, "STEP_UP_REQUESTED");
    body.as_object_mut().map(|o| o.remove("channel"));
    body["stepUpMethod"] = json!(method);
    body
}

async fn notify_step_up_choice(s: Arc<Session>) -> Outcome {
    let body = step_up_requested(&s, "OUTBOUND_CALL");
    let id = body["notificationId"].clone();
    s.send(notification_call(&s, body)).await?.ok_with(&[("/notificationId", id), ("/accepted", json!(true))])?;
    let mut code = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    code["stepUpMethod"] = json!("OTP_SMS");
    let id = code["notificationId"].clone();
    s.send(notification_call(&s, code)).await?.ok_with(&[("/notificationId", id), ("/accepted", json!(true))])
}

async fn notify_step_up_misplaced(s: Arc<Session>) -> Outcome {
    let mut without = step_up_requested(&s, "APP_TO_APP");
    without.as_object_mut().map(|o| o.remove("stepUpMethod"));
    let code_method = step_up_requested(&s, "OTP_SMS");
    let mut code_by_call = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    code_by_call["stepUpMethod"] = json!("OUTBOUND_CALL");
    let mut other_channel = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    other_channel["stepUpMethod"] = json!("OTP_EMAIL");
    let mut stray = notification_body(&s, "TOKEN_ACTIVATED");
    stray["stepUpMethod"] = json!("APP_TO_APP");
    let unknown = step_up_requested(&s, "CARRIER_PIGEON");
    for body in [without, code_method, code_by_call, other_channel, stray, unknown] {
        s.send(notification_call(&s, body)).await?.error(422, "VALIDATION_FAILED")?;
    }
    Ok(())
}

async fn notify_activation_without_code(s: Arc<Session>) -> Outcome {
    let mut body = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    body.as_object_mut().map(|o| o.remove("encryptedPayload"));
    s.send(notification_call(&s, body)).await?.error(422, "VALIDATION_FAILED")
}

async fn notify_payload_on_other_type(s: Arc<Session>) -> Outcome {
    let mut body = notification_body(&s, "TOKEN_ACTIVATED");
    body["encryptedPayload"] = crate::client::payload_slot(0);
    s.send(s.post(tmp_protocol::issuer_api::NOTIFICATIONS_PATH, body).payload(PayloadSpec::otp("482913")))
        .await?
        .error(422, "VALIDATION_FAILED")
}

async fn notify_short_otp(s: Arc<Session>) -> Outcome {
    let body = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    s.send(s.post(tmp_protocol::issuer_api::NOTIFICATIONS_PATH, body).payload(PayloadSpec::otp("4829")))
        .await?
        .error(422, "VALIDATION_FAILED")
}

async fn notify_duplicate(s: Arc<Session>) -> Outcome {
    let body = notification_body(&s, "TOKEN_ACTIVATED");
    let id = body["notificationId"].clone();
    for _ in 0..2 {
        let answer = s.send(notification_call(&s, body.clone())).await?;
        answer.ok_with(&[("/notificationId", id.clone()), ("/accepted", json!(true))])?;
    }
    Ok(())
}

async fn notify_reaches_sink(s: Arc<Session>) -> Outcome {
    let harness = s.harness(Capability::ActivationCodes)?.clone();
    let mut body = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    let token = s.id("DWSPMC0000");
    body["tokenId"] = json!(token);
    s.send(notification_call(&s, body)).await?.status(200)?;
    crate::session::eventually(std::time::Duration::from_secs(15), || {
        let found = harness.activation_code(&token);
        async move {
            let otp = found.ok_or_else(|| crate::case::Failure::new("the code at the sink", "nothing yet"))?;
            ensure(otp.expose() == "482913", "the code TMP sent", "another code")
        }
    })
    .await
}

async fn idem_same_body(s: Arc<Session>) -> Outcome {
    let prepared = s.prepare(token_event_call(&s, token_event_body(&s, "ACTIVE", Some("INACTIVE")))).await?;
    replayed(&s, &prepared, |first| first.status(200)).await?;
    // A replay carries the X-Correlation-Id of the request that asked, not the first one's.
    let mut again = prepared.clone();
    let id = s.id("corr-replay");
    again.call.correlation_id = Some(id.clone());
    let answer = s.send_prepared(&again).await?;
    ensure(
        answer.header(tmp_protocol::headers::CORRELATION_ID).as_deref() == Some(id.as_str()),
        format!("X-Correlation-Id: {id} on the replay"),
        format!("{:?}", answer.header(tmp_protocol::headers::CORRELATION_ID)),
    )
    .map_err(|f| f.with(&answer))
}

async fn notify_never_after_expiry(s: Arc<Session>) -> Outcome {
    let harness = s.harness(crate::harness::Capability::HoldDeliveries)?.clone();
    let mut body = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    let token = s.id("DWSPMC0000");
    body["tokenId"] = json!(token);
    body["expiresAt"] = json!(super::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::seconds(2)));
    harness.hold_deliveries(true);
    let outcome = async {
        s.send(notification_call(&s, body)).await?.ok_with(&[("/accepted", json!(true))])?;
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        Ok::<(), crate::case::Failure>(())
    }
    .await;
    harness.hold_deliveries(false);
    outcome?;
    // The target retries what failed; give it time to (wrongly) deliver the expired code.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    ensure(harness.activation_code(&token).is_none(), "no activation code after its expiry", "the expired code arrived")
}

async fn notify_expired_code(s: Arc<Session>) -> Outcome {
    let mut body = notification_body(&s, "ACTIVATION_CODE_DELIVERY");
    body["expiresAt"] = json!("2020-01-01T00:00:00Z");
    let id = body["notificationId"].clone();
    s.send(notification_call(&s, body)).await?.ok_with(&[("/notificationId", id), ("/accepted", json!(true))])
}

/// Sends `prepared` twice: the second answer must be the first one, replayed.
async fn replayed(
    s: &Session,
    prepared: &crate::client::Prepared,
    check_first: impl FnOnce(&crate::client::Answer) -> Outcome,
) -> Outcome {
    let first = s.send_prepared(prepared).await?;
    check_first(&first)?;
    let second = s.send_prepared(prepared).await?;
    second.status(first.status)?;
    ensure(second.body == first.body, "the stored body", format!("another body: {}", second.text()))
        .map_err(|f| f.with(&second))?;
    ensure(
        second.header("idempotent-replayed").as_deref() == Some("true"),
        "Idempotent-Replayed: true",
        format!("{:?}", second.header("idempotent-replayed")),
    )
    .map_err(|f| f.with(&second))
}

async fn idem_other_body(s: Arc<Session>) -> Outcome {
    let key = uuid::Uuid::new_v4().to_string();
    let first = token_event_call(&s, token_event_body(&s, "ACTIVE", None)).idempotency_key(Some(&key));
    s.send(first).await?.status(200)?;
    let second = token_event_call(&s, token_event_body(&s, "SUSPENDED", None)).idempotency_key(Some(&key));
    s.send(second).await?.error(422, "IDEMPOTENCY_KEY_REUSED")
}

async fn idem_missing_key(s: Arc<Session>) -> Outcome {
    let call = token_event_call(&s, token_event_body(&s, "ACTIVE", None)).idempotency_key(None);
    s.send(call).await?.error(400, "INVALID_HEADER")
}

async fn idem_verify_card(s: Arc<Session>) -> Outcome {
    let prepared = s.prepare(verify_call(&s, PayloadSpec::card("active"), |_| {})).await?;
    replayed(&s, &prepared, |first| first.field("/decision", "APPROVED")).await
}

async fn idem_scoped_per_route(s: Arc<Session>) -> Outcome {
    let key = uuid::Uuid::new_v4().to_string();
    let fresh = |answer: &crate::client::Answer| {
        ensure(answer.header("idempotent-replayed").is_none(), "a fresh answer on this route", "a replayed one")
            .map_err(|f| f.with(answer))
    };
    let cvc = s.send(verify_cvc_call(&s, PayloadSpec::card("active")).idempotency_key(Some(&key))).await?;
    cvc.ok_with(&[("/cvcResult", json!("MATCH"))])?;
    let event = token_event_body(&s, "ACTIVE", None);
    let (event_id, token_id) = (event["eventId"].clone(), event["tokenId"].clone());
    let ack = s.send(token_event_call(&s, event).idempotency_key(Some(&key))).await?;
    ack.ok_with(&[("/eventId", event_id), ("/tokenId", token_id), ("/accepted", json!(true))])?;
    fresh(&ack)?;
    let notification = notification_body(&s, "TOKEN_ACTIVATED");
    let id = notification["notificationId"].clone();
    let answer = s.send(notification_call(&s, notification).idempotency_key(Some(&key))).await?;
    answer.ok_with(&[("/notificationId", id)])?;
    fresh(&answer)
}

async fn idem_rejection_not_stored(s: Arc<Session>) -> Outcome {
    let key = uuid::Uuid::new_v4().to_string();
    let mut bad = token_event_body(&s, "ACTIVE", None);
    bad["status"] = json!("PAUSED");
    s.send(token_event_call(&s, bad).idempotency_key(Some(&key))).await?.error(422, "VALIDATION_FAILED")?;
    let good = token_event_body(&s, "ACTIVE", None);
    s.send(token_event_call(&s, good).idempotency_key(Some(&key))).await?.ok_with(&[("/accepted", json!(true))])
}

async fn idem_cvc_not_recounted(s: Arc<Session>) -> Outcome {
    let prepared = s.prepare(verify_cvc_call(&s, PayloadSpec::card("active").cvc(CvcChoice::Wrong))).await?;
    for _ in 0..=s.client.profile.cvc_max_attempts {
        s.send_prepared(&prepared).await?.field("/cvcResult", "NO_MATCH")?;
    }
    // One wrong attempt counted: the right CVC still matches (and clears it).
    verify_cvc(&s).await
}

async fn verify_cvc(s: &Session) -> Outcome {
    s.send(verify_cvc_call(s, PayloadSpec::card("active"))).await?.field("/cvcResult", "MATCH")
}

async fn idem_notification(s: Arc<Session>) -> Outcome {
    let prepared = s.prepare(notification_call(&s, notification_body(&s, "TOKEN_ACTIVATED"))).await?;
    replayed(&s, &prepared, |first| first.status(200)).await
}
