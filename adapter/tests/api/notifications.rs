//! `POST /issuer-api/v1/notifications`: every type, the OTP encrypted at rest and erased
//! after expiry, the outbox entry never carrying the code.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::app::*;
use crate::helpers::db::test_databases;

const NOTIFICATIONS: &str = "/issuer-api/v1/notifications";
pub const OTP: &str = "493817";

pub fn notification_body(app: &TestApp, kind: &str, id: &str, expires_in: Option<time::Duration>) -> Value {
    let mut body = json!({
        "notificationId": id,
        "type": kind,
        "cardId": "card-active",
        "tokenId": "tok-9",
        "tokenRequestor": {"id": "50110030273", "name": "Apple Pay", "wallet": "APPLE_PAY"},
        "channel": "SMS",
        "occurredAt": "2026-03-01T10:00:00Z",
    });
    if kind == "ACTIVATION_CODE_DELIVERY" {
        body["encryptedPayload"] = json!(app.encrypt(&json!({"otp": OTP})));
        let expires = OffsetDateTime::now_utc() + expires_in.unwrap_or(time::Duration::minutes(10));
        body["expiresAt"] = json!(expires.format(&Rfc3339).unwrap());
        body["stepUpMethod"] = json!("OTP_SMS");
    }
    if kind == "STEP_UP_REQUESTED" {
        body.as_object_mut().unwrap().remove("channel");
        body["stepUpMethod"] = json!("OUTBOUND_CALL");
    }
    body
}

#[tokio::test]
async fn every_notification_type_is_stored_and_queued() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let kinds = [
            "ACTIVATION_CODE_DELIVERY",
            "TOKEN_ACTIVATED",
            "CARD_REMOVED_BY_CUSTOMER",
            "CARD_REMOVED_BY_ISSUER",
            "STEP_UP_REQUESTED",
        ];
        for (i, kind) in kinds.iter().enumerate() {
            let id = format!("ntf-{i}");
            let ack = expect_json(
                app.request(NOTIFICATIONS).json(&notification_body(&app, kind, &id, None)).send().await,
                200,
            )
            .await;
            assert_eq!(ack, json!({"notificationId": id, "accepted": true}), "{}", db.backend);
            let stored = app.store.find_notification(&id).await.unwrap().expect("stored");
            assert_eq!(stored.notification_type, *kind);
            assert_eq!(stored.otp_ciphertext.is_some(), i == 0, "{} {kind}", db.backend);
        }
        let outbox = app.store.pending_outbox(10).await.unwrap();
        let types: Vec<_> = outbox.iter().map(|o| o.event_type()).collect();
        assert_eq!(types, kinds.map(|k| format!("notification.{k}")), "{}", db.backend);
        assert!(outbox[0].not_after.is_some(), "an OTP is never delivered after its expiry");
        // The sink learns which method the cardholder chose.
        assert_eq!(outbox[0].message.to_json()["stepUpMethod"], "OTP_SMS");
        assert_eq!(outbox[4].message.to_json()["stepUpMethod"], "OUTBOUND_CALL");
        for entry in &outbox {
            let payload = entry.message.to_json();
            assert!(payload.get("encryptedPayload").is_none());
            assert!(!payload.to_string().contains(OTP));
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_otp_is_stored_only_encrypted_and_erased_after_expiry() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let body = notification_body(&app, "ACTIVATION_CODE_DELIVERY", "ntf-otp", Some(time::Duration::seconds(2)));
        expect_json(app.request(NOTIFICATIONS).json(&body).send().await, 200).await;
        let stored = app.store.find_notification("ntf-otp").await.unwrap().unwrap();
        let ciphertext = stored.otp_ciphertext.clone().expect("encrypted OTP");
        assert!(!String::from_utf8_lossy(&ciphertext).contains(OTP));
        let plain = app
            .keys
            .data_keys
            .current()
            .decrypt(stored.otp_key_id.as_deref().unwrap(), &ciphertext, &tmp_adapter::crypto::aad::otp("ntf-otp"))
            .expect("decrypts with the data key");
        assert_eq!(plain.as_slice(), OTP.as_bytes());

        // Not yet expired: kept.
        assert_eq!(app.store.erase_expired_otps(OffsetDateTime::now_utc()).await.unwrap(), 0, "{}", db.backend);
        let later = OffsetDateTime::now_utc() + time::Duration::seconds(5);
        assert_eq!(app.store.erase_expired_otps(later).await.unwrap(), 1, "{}", db.backend);
        let erased = app.store.find_notification("ntf-otp").await.unwrap().unwrap();
        assert!(erased.otp_ciphertext.is_none(), "{}", db.backend);
        app.stop().await;
    }
}

#[tokio::test]
async fn activation_code_rules_are_enforced() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let mut no_code = notification_body(&app, "ACTIVATION_CODE_DELIVERY", "ntf-a", None);
        no_code.as_object_mut().unwrap().remove("encryptedPayload");
        expect_error(app.request(NOTIFICATIONS).json(&no_code).send().await, 422, "VALIDATION_FAILED").await;
        let mut no_expiry = notification_body(&app, "ACTIVATION_CODE_DELIVERY", "ntf-b", None);
        no_expiry.as_object_mut().unwrap().remove("expiresAt");
        expect_error(app.request(NOTIFICATIONS).json(&no_expiry).send().await, 422, "VALIDATION_FAILED").await;
        let mut stray = notification_body(&app, "TOKEN_ACTIVATED", "ntf-c", None);
        stray["encryptedPayload"] = json!(app.encrypt(&json!({"otp": OTP})));
        expect_error(app.request(NOTIFICATIONS).json(&stray).send().await, 422, "VALIDATION_FAILED").await;
        let mut bad_otp = notification_body(&app, "ACTIVATION_CODE_DELIVERY", "ntf-d", None);
        bad_otp["encryptedPayload"] = json!(app.encrypt(&json!({"otp": "12ab"})));
        expect_error(app.request(NOTIFICATIONS).json(&bad_otp).send().await, 422, "VALIDATION_FAILED").await;
        // A step-up method goes with a code of its channel, or with STEP_UP_REQUESTED for a
        // token when it has no code.
        let mut wrong_channel = notification_body(&app, "ACTIVATION_CODE_DELIVERY", "ntf-e", None);
        wrong_channel["stepUpMethod"] = json!("OTP_EMAIL");
        let mut code_by_call = notification_body(&app, "ACTIVATION_CODE_DELIVERY", "ntf-f", None);
        code_by_call["stepUpMethod"] = json!("OUTBOUND_CALL");
        let mut no_method = notification_body(&app, "STEP_UP_REQUESTED", "ntf-g", None);
        no_method.as_object_mut().unwrap().remove("stepUpMethod");
        let mut otp_method = notification_body(&app, "STEP_UP_REQUESTED", "ntf-h", None);
        otp_method["stepUpMethod"] = json!("OTP_SMS");
        let mut no_token = notification_body(&app, "STEP_UP_REQUESTED", "ntf-i", None);
        no_token.as_object_mut().unwrap().remove("tokenId");
        let mut stray_method = notification_body(&app, "TOKEN_ACTIVATED", "ntf-j", None);
        stray_method["stepUpMethod"] = json!("APP_TO_APP");
        let mut unknown_method = notification_body(&app, "STEP_UP_REQUESTED", "ntf-k", None);
        unknown_method["stepUpMethod"] = json!("CARRIER_PIGEON");
        for body in [&wrong_channel, &code_by_call, &no_method, &otp_method, &no_token, &stray_method, &unknown_method]
        {
            expect_error(app.request(NOTIFICATIONS).json(body).send().await, 422, "VALIDATION_FAILED").await;
        }
        for id in ["ntf-a", "ntf-b", "ntf-c", "ntf-d", "ntf-e", "ntf-f", "ntf-g", "ntf-h", "ntf-i", "ntf-j", "ntf-k"] {
            assert!(app.store.find_notification(id).await.unwrap().is_none(), "{} {id}", db.backend);
        }
        assert!(app.store.pending_outbox(10).await.unwrap().is_empty());
        app.stop().await;
    }
}
