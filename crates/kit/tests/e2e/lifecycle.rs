//! The automated token lifecycle, driven through the TMP API as the issuer calls it, with the
//! adapter's mirror checked after every change.

use reqwest::Method;
use serde_json::json;
use tmp_protocol::enums::TokenStatus;

use crate::helpers::{EXPIRY, Kit, expect_json};

async fn card_status(kit: &Kit, card_id: &str, status: &str) -> serde_json::Value {
    let response = kit
        .signed(Method::POST, &format!("/tmp-api/v1/cards/{card_id}/status"))
        .json(&json!({"status": status}))
        .send()
        .await;
    let ack = expect_json(response, 200).await;
    kit.inner.mock_idle().await;
    ack
}

async fn action(kit: &Kit, token_id: &str, action: &str, initiator: &str) -> reqwest::Response {
    kit.signed(Method::POST, &format!("/tmp-api/v1/tokens/{token_id}/{action}"))
        .json(&json!({"initiator": initiator, "reasonCode": "OTHER", "reason": "test"}))
        .send()
        .await
}

async fn both(kit: &Kit, token_id: &str) -> (String, TokenStatus) {
    let mock = kit.mock_token(token_id).await["status"].as_str().expect("status").to_owned();
    (mock, kit.adapter_token(token_id).await.status)
}

#[tokio::test]
async fn block_suspends_and_unblock_resumes() {
    let kit = Kit::spawn().await;
    let token = kit.green_token().await;
    assert_eq!(card_status(&kit, "card-active", "BLOCKED").await["tokensAffected"], 1);
    assert_eq!(both(&kit, &token).await, ("SUSPENDED".into(), TokenStatus::Suspended));
    assert_eq!(kit.mock_token(&token).await["suspendedBy"], json!(["CARD_BLOCK"]));
    assert_eq!(card_status(&kit, "card-active", "ACTIVE").await["tokensAffected"], 1);
    assert_eq!(both(&kit, &token).await, ("ACTIVE".into(), TokenStatus::Active));
}

#[tokio::test]
async fn unblock_resumes_only_tokens_nobody_else_suspended() {
    let kit = Kit::spawn().await;
    let only_block = kit.green_token().await;
    let cardholder_too = kit.green_token().await;
    let issuer_too = kit.green_token().await;
    expect_json(action(&kit, &cardholder_too, "suspend", "CARDHOLDER").await, 200).await;
    card_status(&kit, "card-active", "BLOCKED").await;
    // The issuer suspends a token that the block already suspended: it now holds it too.
    expect_json(action(&kit, &issuer_too, "suspend", "ISSUER").await, 200).await;
    let ack = card_status(&kit, "card-active", "ACTIVE").await;
    assert_eq!(ack["tokensAffected"], 1);
    assert_eq!(both(&kit, &only_block).await, ("ACTIVE".into(), TokenStatus::Active));
    assert_eq!(both(&kit, &cardholder_too).await, ("SUSPENDED".into(), TokenStatus::Suspended));
    assert_eq!(both(&kit, &issuer_too).await, ("SUSPENDED".into(), TokenStatus::Suspended));
    assert_eq!(kit.mock_token(&cardholder_too).await["suspendedBy"], json!(["CARDHOLDER"]));
    // Only the party that suspended may lift its hold.
    assert_eq!(action(&kit, &cardholder_too, "resume", "ISSUER").await.status(), 409);
    expect_json(action(&kit, &cardholder_too, "resume", "CARDHOLDER").await, 200).await;
    expect_json(action(&kit, &issuer_too, "resume", "ISSUER").await, 200).await;
    kit.inner.mock_idle().await;
    assert_eq!(both(&kit, &cardholder_too).await, ("ACTIVE".into(), TokenStatus::Active));
    assert_eq!(both(&kit, &issuer_too).await, ("ACTIVE".into(), TokenStatus::Active));
}

#[tokio::test]
async fn closing_deactivates_and_notifies_card_removed_by_issuer() {
    let kit = Kit::spawn().await;
    let token = kit.green_token().await;
    assert_eq!(card_status(&kit, "card-active", "CLOSED").await["tokensAffected"], 1);
    assert_eq!(both(&kit, &token).await, ("DEACTIVATED".into(), TokenStatus::Deactivated));
    let sent = kit.sent(tmp_protocol::issuer_api::NOTIFICATIONS_PATH).await;
    let removal = sent.iter().find(|e| e["body"]["type"] == "CARD_REMOVED_BY_ISSUER").expect("notification sent");
    let stored = kit.store.find_notification(removal["body"]["notificationId"].as_str().expect("id")).await;
    assert_eq!(stored.expect("store").expect("stored").token_id.as_deref(), Some(token.as_str()));
    // A closed card stays closed.
    let reopen = kit
        .signed(Method::POST, "/tmp-api/v1/cards/card-active/status")
        .json(&json!({"status": "ACTIVE"}))
        .send()
        .await;
    assert_eq!(reopen.status(), 409);
}

#[tokio::test]
async fn replacing_moves_tokens_to_the_new_card() {
    let kit = Kit::spawn().await;
    let token = kit.green_token().await;
    let jwk = kit.jwk("/tmp-api/v1/public-key").await;
    let payload =
        tmp_protocol::jwe::encrypt_json(&json!({"pan": "4000056655665556", "expiry": "01/31"}), &jwk).expect("jwe");
    let response = kit
        .signed(Method::POST, "/tmp-api/v1/cards/card-active/replace")
        .json(&json!({"newCardId": "card-new", "encryptedPayload": payload}))
        .send()
        .await;
    assert_eq!(expect_json(response, 200).await["tokensAffected"], 1);
    kit.inner.mock_idle().await;
    assert_eq!(kit.mock_token(&token).await["cardId"], "card-new");
    let mirror = kit.adapter_token(&token).await;
    assert_eq!((mirror.card_id.as_str(), mirror.status), ("card-new", TokenStatus::Active));
    let cards = kit.get("/_mock/v1/cards").await.to_string();
    assert!(
        cards.contains("\"replacedBy\":\"card-new\"") && cards.contains("5556") && !cards.contains("4000056655665556")
    );
}

#[tokio::test]
async fn renewing_updates_the_expiry_and_tells_the_issuer() {
    let kit = Kit::spawn().await;
    let token = kit.green_token().await;
    let jwk = kit.jwk("/tmp-api/v1/public-key").await;
    let payload = tmp_protocol::jwe::encrypt_json(&json!({"expiry": "12/33"}), &jwk).expect("jwe");
    let response = kit
        .signed(Method::POST, "/tmp-api/v1/cards/card-active/expiry")
        .json(&json!({"encryptedPayload": payload}))
        .send()
        .await;
    assert_eq!(expect_json(response, 200).await["tokensAffected"], 1);
    kit.inner.mock_idle().await;
    let history = kit.store.token_history(&token).await.expect("history");
    assert_eq!(history.last().and_then(|e| e.event.reason.as_deref()), Some("CARD_RENEWED"));
    assert_eq!(kit.adapter_token(&token).await.status, TokenStatus::Active);
}

#[tokio::test]
async fn cardholder_removal_sends_card_removed_by_customer() {
    let kit = Kit::spawn().await;
    let token = kit.green_token().await;
    kit.control(&format!("/_mock/v1/simulate/tokens/{token}/remove"), json!({})).await;
    kit.inner.mock_idle().await;
    assert_eq!(both(&kit, &token).await, ("DEACTIVATED".into(), TokenStatus::Deactivated));
    let sent = kit.sent(tmp_protocol::issuer_api::NOTIFICATIONS_PATH).await;
    assert!(sent.iter().any(|e| e["body"]["type"] == "CARD_REMOVED_BY_CUSTOMER" && e["status"] == 200));
}

#[tokio::test]
async fn datacore_block_through_the_lifecycle_api() {
    let kit = Kit::spawn().await;
    kit.load_datacore_card("dc-1", crate::helpers::PAN_DATACORE, EXPIRY, "ACTIVE").await;
    let answer = kit.simulate(json!({"approach": "datacore", "cardId": "dc-1", "wallet": "GOOGLE_PAY"})).await;
    kit.inner.mock_idle().await;
    let token = answer["tokenId"].as_str().expect("token").to_owned();
    let response =
        kit.signed(Method::PATCH, "/lifecycle/v1/cards/dc-1").json(&json!({"status": "BLOCKED"})).send().await;
    assert_eq!(expect_json(response, 200).await["status"], "BLOCKED");
    kit.inner.mock_idle().await;
    assert_eq!(both(&kit, &token).await, ("SUSPENDED".into(), TokenStatus::Suspended));
    let response = kit.signed(Method::DELETE, "/lifecycle/v1/cards/dc-1").send().await;
    assert_eq!(response.status(), 204);
    kit.inner.mock_idle().await;
    assert_eq!(both(&kit, &token).await, ("DEACTIVATED".into(), TokenStatus::Deactivated));
}
