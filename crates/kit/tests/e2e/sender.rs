//! Real-sender behaviour toward the adapter: retries, duplicates, reordering, the verify-card
//! deadline and stand-in, dropped connections.

use reqwest::Method;
use serde_json::json;
use tmp_protocol::enums::TokenStatus;
use tmp_protocol::issuer_api::{NOTIFICATIONS_PATH, TOKEN_EVENTS_PATH};

use crate::helpers::{EXPIRY, Kit, PAN_ACTIVE, expect_json};

#[tokio::test]
async fn a_callback_answered_503_is_retried_and_has_one_effect() {
    let kit = Kit::spawn().await;
    // The adapter gets the first attempt, but the mock sees a 503: it must retry, and the
    // adapter must treat the retry as the same event.
    kit.control(
        "/_mock/v1/faults",
        json!({"route": "POST /issuer-api/v1/tokens/events", "error_status": 503, "times": 1, "after_delivery": true}),
    )
    .await;
    let token = kit.green_token().await;
    let attempts = kit.sent(TOKEN_EVENTS_PATH).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["outcome"], "answer_lost");
    assert_eq!((attempts[1]["outcome"].as_str(), attempts[1]["status"].as_u64()), (Some("answered"), Some(200)));
    assert_eq!(attempts[0]["idempotencyKey"], attempts[1]["idempotencyKey"]);
    assert_ne!(attempts[0]["webhookId"], attempts[1]["webhookId"]);
    assert_eq!(kit.store.token_history(&token).await.expect("history").len(), 1);
    assert_eq!(kit.adapter_token(&token).await.status, TokenStatus::Active);
}

#[tokio::test]
async fn callbacks_that_never_reached_the_issuer_are_retried() {
    // A fault that fails the attempt before sending: the issuer is down for two attempts.
    let kit = Kit::spawn().await;
    kit.control(
        "/_mock/v1/faults",
        json!({"route": "POST /issuer-api/v1/tokens/events", "error_status": 503, "times": 2}),
    )
    .await;
    let token = kit.green_token().await;
    let attempts = kit.sent(TOKEN_EVENTS_PATH).await;
    let outcomes: Vec<_> = attempts.iter().map(|a| a["outcome"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(outcomes, ["fault_injected", "fault_injected", "answered"]);
    assert_eq!(kit.store.token_history(&token).await.expect("history").len(), 1);
}

#[tokio::test]
async fn duplicates_reach_the_adapter_and_change_nothing() {
    let kit = Kit::spawn_with(
        |_| {},
        |config| {
            config.sender.duplicate_rate = 1.0;
            config.sender.duplicate_copies = 2;
        },
    )
    .await;
    let token = kit.green_token().await;
    let attempts = kit.sent(TOKEN_EVENTS_PATH).await;
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a["status"] == 200 && a["idempotencyKey"] == attempts[0]["idempotencyKey"]));
    assert_eq!(kit.store.token_history(&token).await.expect("history").len(), 1);
    assert_eq!(kit.adapter_token(&token).await.status, TokenStatus::Active);
}

#[tokio::test]
async fn reordered_callbacks_leave_the_adapter_in_the_right_state() {
    let kit = Kit::spawn_with(
        |_| {},
        |config| {
            // The green token's event and its TOKEN_ACTIVATED, then the suspension's event.
            config.sender.reorder_window = 3;
            // Long enough that the window fills; the test does not depend on it elapsing.
            config.sender.reorder_hold_ms = 60_000;
        },
    )
    .await;
    let answer = kit.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    let token = answer["tokenId"].as_str().expect("token").to_owned();
    let response = kit
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/suspend"))
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "fraud check"}))
        .send()
        .await;
    expect_json(response, 200).await;
    kit.inner.mock_idle().await;
    let sent = kit.sent(TOKEN_EVENTS_PATH).await;
    let statuses: Vec<_> = sent.iter().map(|e| e["body"]["status"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(statuses, ["SUSPENDED", "ACTIVE"], "newest first");
    // The older ACTIVE event arrived last and is kept as history only.
    assert_eq!(kit.adapter_token(&token).await.status, TokenStatus::Suspended);
    assert_eq!(kit.store.token_history(&token).await.expect("history").len(), 2);
}

#[tokio::test]
async fn a_slow_verify_card_crosses_the_deadline_and_the_mock_stands_in() {
    let kit = Kit::spawn_with(|_| {}, |config| config.issuer.verify_card_deadline_ms = 200).await;
    kit.control(
        "/_mock/v1/faults",
        json!({"route": "POST /issuer-api/v1/cards/verify", "latency_ms": 1500, "times": 1}),
    )
    .await;
    let answer = kit.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    assert_eq!(
        (answer["standIn"].as_bool(), answer["reason"].as_str(), answer["decision"].as_str()),
        (Some(true), Some("STAND_IN_TIMEOUT"), Some("DECLINED")),
        "{answer}"
    );
    let recorded = kit.get("/_mock/v1/tokenizations").await;
    assert_eq!(recorded["tokenizations"][0]["standIn"], true);
    let journal = kit.get("/_mock/v1/requests").await;
    let stand_in = journal["requests"].as_array().expect("entries").iter().find(|e| e["outcome"] == "stand_in");
    assert!(stand_in.is_some_and(|e| e["note"].as_str().unwrap_or_default().contains("deadline")), "{journal}");
}

#[tokio::test]
async fn a_stand_in_by_configuration_approves_when_the_issuer_is_down() {
    let kit =
        Kit::spawn_with(|_| {}, |config| config.issuer.stand_in_decision = tmp_protocol::enums::Decision::Approved)
            .await;
    kit.stop_adapter().await;
    let answer = kit.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    assert_eq!(
        (answer["path"].as_str(), answer["reason"].as_str()),
        (Some("GREEN"), Some("STAND_IN_UNAVAILABLE")),
        "{answer}"
    );
    assert!(answer["cardId"].as_str().is_some_and(|c| c.starts_with("tmp-card-")));
}

#[tokio::test]
async fn a_dropped_connection_is_reported_as_such() {
    let kit = Kit::spawn().await;
    let token = kit.green_token().await;
    // Inbound: the issuer's call is cut off.
    kit.control(
        "/_mock/v1/faults",
        json!({"route": "POST /tmp-api/v1/tokens/{tokenId}/{action}", "drop_connection": true, "times": 1}),
    )
    .await;
    let result = kit
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/suspend"))
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "x"}))
        .try_send()
        .await;
    let dropped = match result {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(dropped, "the client sees the connection dropped");
    let journal = kit.get("/_mock/v1/requests").await;
    assert!(journal["requests"].as_array().expect("entries").iter().any(|e| e["direction"] == "received"
        && e["outcome"] == "dropped"
        && e["route"] == "/tmp-api/v1/tokens/{tokenId}/{action}"));
    // Outbound: the mock's own callback is dropped, reported, and retried.
    kit.control(
        "/_mock/v1/faults",
        json!({"route": "POST /issuer-api/v1/notifications", "drop_connection": true, "times": 1}),
    )
    .await;
    kit.control(&format!("/_mock/v1/simulate/tokens/{token}/remove"), json!({})).await;
    kit.inner.mock_idle().await;
    let outcomes: Vec<_> = kit
        .sent(NOTIFICATIONS_PATH)
        .await
        .iter()
        .filter(|e| e["body"]["type"] == "CARD_REMOVED_BY_CUSTOMER")
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes, ["dropped", "answered"]);
}
