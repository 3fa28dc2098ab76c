//! `POST /issuer-api/v1/cards/verify-cvc`.

use serde_json::json;

use crate::helpers::app::*;
use crate::helpers::db::test_databases;

const VERIFY_CVC: &str = "/issuer-api/v1/cards/verify-cvc";

#[tokio::test]
async fn match_no_match_attempts_exceeded_and_not_found() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let right = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let wrong = if right == "000" { "001" } else { "000" };
        let check = |pan: &str, cvc: &str| {
            json!({
                "tokenRequestor": {"id": "50110030273", "name": "Apple Pay", "wallet": "APPLE_PAY"},
                "encryptedPayload": app.card_payload(pan, EXPIRY, Some(cvc)),
            })
        };
        let ok = expect_json(app.request(VERIFY_CVC).json(&check(PAN_ACTIVE, &right)).send().await, 200).await;
        assert_eq!(
            ok,
            json!({"cvcResult": "MATCH", "cardStatus": "ACTIVE", "cardId": "card-active", "reason": "CARD_VERIFIED"}),
            "{}",
            db.backend
        );
        // An expiry typed wrong is told apart from a wrong CVC, and does not count against it.
        let mut mistyped = check(PAN_ACTIVE, &right);
        mistyped["encryptedPayload"] = json!(app.card_payload(PAN_ACTIVE, "01/31", Some(&right)));
        let expiry = expect_json(app.request(VERIFY_CVC).json(&mistyped).send().await, 200).await;
        assert_eq!(
            (&expiry["cvcResult"], &expiry["cardStatus"], &expiry["reason"]),
            (&json!("NO_MATCH"), &json!("ACTIVE"), &json!("EXPIRY_MISMATCH")),
            "{}",
            db.backend
        );
        for _ in 0..3 {
            let no = expect_json(app.request(VERIFY_CVC).json(&check(PAN_ACTIVE, wrong)).send().await, 200).await;
            assert_eq!(
                (&no["cvcResult"], &no["reason"]),
                (&json!("NO_MATCH"), &json!("CVC_NO_MATCH")),
                "{}",
                db.backend
            );
        }
        let locked = expect_json(app.request(VERIFY_CVC).json(&check(PAN_ACTIVE, &right)).send().await, 200).await;
        assert_eq!(locked["cvcResult"], "ATTEMPTS_EXCEEDED", "{}", db.backend);
        assert_eq!(locked["reason"], "CVC_ATTEMPTS_EXCEEDED", "{}", db.backend);
        let unknown = expect_json(app.request(VERIFY_CVC).json(&check(PAN_UNKNOWN, "123")).send().await, 200).await;
        assert_eq!(unknown["cardStatus"], "NOT_FOUND");
        assert_eq!(unknown["cvcResult"], "NO_MATCH");
        let blocked = expect_json(app.request(VERIFY_CVC).json(&check(PAN_BLOCKED, "123")).send().await, 200).await;
        assert_eq!(blocked["cardStatus"], "BLOCKED");
        let audit = app.store.decisions_for_card("card-active", 10).await.unwrap();
        assert_eq!(audit.len(), 6, "{}", db.backend);
        assert!(audit.iter().all(|d| d.operation == "verify_cvc"));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_cvc_check_without_a_cvc_is_invalid() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let body = json!({"encryptedPayload": app.card_payload(PAN_ACTIVE, EXPIRY, None)});
        expect_error(app.request(VERIFY_CVC).json(&body).send().await, 422, "VALIDATION_FAILED").await;
        assert!(app.store.decisions_for_card("card-active", 10).await.unwrap().is_empty());
        app.stop().await;
    }
}

#[test]
fn a_lockout_window_of_seconds_is_refused_in_production_only() {
    let mut settings = base_settings("sqlite://unused.db");
    settings.policy.cvc.lockout_window_secs = 4;
    settings.validate().expect("a test may watch a short window end");
    settings.policy.cvc.lockout_window_secs = 0;
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("between 1 and 2678400") && error.contains("production requires at least 60"), "{error}");
    settings.environment = tmp_adapter::config::Environment::Production;
    settings.policy.cvc.lockout_window_secs = 59;
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("policy.cvc.lockout_window_secs must be between 60 and 2678400"), "{error}");
}
