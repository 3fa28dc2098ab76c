//! The automated token lifecycle (ATLM), driven through the TMP API as the issuer calls it, seen
//! from the mock's state and from what reaches the issuer: block suspends and unblock resumes,
//! close deactivates and tells the issuer `CARD_REMOVED_BY_ISSUER`.

use reqwest::Method;
use serde_json::json;
use tmp_protocol::issuer_api::{NOTIFICATIONS_PATH, TOKEN_EVENTS_PATH};

use crate::driver::{EXPIRY, PAN_ACTIVE, expect_json};
use crate::helpers::Mock;

async fn card_status(mock: &Mock, status: &str) -> serde_json::Value {
    let response =
        mock.signed(Method::POST, "/tmp-api/v1/cards/card-active/status").json(&json!({"status": status})).send().await;
    let ack = expect_json(response, 200).await;
    mock.handle.wait_idle().await;
    ack
}

/// The statuses of the token events for `token` the issuer accepted, oldest first.
fn told(mock: &Mock, token: &str) -> Vec<String> {
    mock.issuer
        .received(TOKEN_EVENTS_PATH)
        .into_iter()
        .filter(|r| r.status == 200 && r.body["tokenId"] == token)
        .map(|r| r.body["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn blocking_suspends_the_cards_tokens_and_unblocking_resumes_them() {
    let mock = Mock::start().await;
    let token = mock.green_token().await;
    assert_eq!(card_status(&mock, "BLOCKED").await["tokensAffected"], 1);
    assert_eq!(mock.mock_token(&token).await["status"], "SUSPENDED");
    assert_eq!(mock.mock_token(&token).await["suspendedBy"], json!(["CARD_BLOCK"]));
    assert_eq!(card_status(&mock, "ACTIVE").await["tokensAffected"], 1);
    assert_eq!(mock.mock_token(&token).await["status"], "ACTIVE");
    assert_eq!(told(&mock, &token), ["ACTIVE", "SUSPENDED", "ACTIVE"]);
}

#[tokio::test]
async fn closing_deactivates_and_tells_the_issuer_the_card_was_removed() {
    let mock = Mock::start().await;
    let token = mock.green_token().await;
    assert_eq!(card_status(&mock, "CLOSED").await["tokensAffected"], 1);
    assert_eq!(mock.mock_token(&token).await["status"], "DEACTIVATED");
    assert_eq!(told(&mock, &token), ["ACTIVE", "DEACTIVATED"]);
    let removals: Vec<_> = mock
        .issuer
        .received(NOTIFICATIONS_PATH)
        .into_iter()
        .filter(|r| r.body["type"] == "CARD_REMOVED_BY_ISSUER" && r.body["tokenId"] == token.as_str())
        .collect();
    assert_eq!(removals.len(), 1, "one removal notification");
    // A closed card stays closed.
    let reopen = mock
        .signed(Method::POST, "/tmp-api/v1/cards/card-active/status")
        .json(&json!({"status": "ACTIVE"}))
        .send()
        .await;
    assert_eq!(reopen.status(), 409);
}

#[tokio::test]
async fn a_reorder_window_delivers_a_tokens_events_newest_first() {
    let mock = Mock::start_with(|config| {
        // The green token's event and its TOKEN_ACTIVATED, then the suspension's event.
        config.sender.reorder_window = 3;
        // Long enough that the window fills; the test does not depend on it elapsing.
        config.sender.reorder_hold_ms = 60_000;
    })
    .await;
    let token = mock.simulate_green().await;
    let response = mock
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/suspend"))
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "fraud check"}))
        .send()
        .await;
    expect_json(response, 200).await;
    mock.handle.wait_idle().await;
    assert_eq!(told(&mock, &token), ["SUSPENDED", "ACTIVE"], "newest first");
}

#[tokio::test]
async fn the_issuer_hears_token_activated_however_a_token_becomes_usable() {
    let mock = Mock::start().await;
    let green = mock.green_token().await;
    mock.issuer.decide("REQUIRE_ADDITIONAL_AUTHENTICATION");
    let answer = mock.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    assert_eq!(answer["path"], "YELLOW", "{answer}");
    let yellow = answer["tokenId"].as_str().expect("token").to_owned();
    mock.handle.wait_idle().await;
    let activated = |mock: &Mock| -> Vec<String> {
        mock.issuer
            .received(NOTIFICATIONS_PATH)
            .into_iter()
            .filter(|r| r.status == 200 && r.body["type"] == "TOKEN_ACTIVATED")
            .map(|r| r.body["tokenId"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // Green: usable at once. Yellow: not yet.
    assert_eq!(activated(&mock), std::slice::from_ref(&green));
    // The issuer activates it (its app authenticated the cardholder).
    let response = mock
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{yellow}/activate"))
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "authenticated in the issuer's app"}))
        .send()
        .await;
    expect_json(response, 200).await;
    mock.handle.wait_idle().await;
    assert_eq!(activated(&mock), [green, yellow]);
}

#[tokio::test]
async fn the_wallet_and_the_issuer_suspend_a_token_each_on_their_own() {
    let mock = Mock::start().await;
    let token = mock.green_token().await;
    let mock = &mock;
    let wallet = |action: &'static str| {
        let path = format!("/_mock/v1/simulate/tokens/{token}/wallet/{action}");
        async move { mock.control(&path, json!({})).await }
    };
    let issuer = |action: &'static str| {
        mock.signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/{action}"))
            .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "fraud check"}))
            .send()
    };
    // A device reported lost in the wallet's app: the token requestor suspends.
    assert_eq!(wallet("suspend").await["status"], "SUSPENDED");
    expect_json(issuer("suspend").await, 200).await;
    assert_eq!(mock.mock_token(&token).await["suspendedBy"], json!(["ISSUER", "TOKEN_REQUESTOR"]));
    // The issuer's resume lifts its own suspension only.
    assert_eq!(expect_json(issuer("resume").await, 200).await["status"], "SUSPENDED");
    assert_eq!(mock.mock_token(&token).await["suspendedBy"], json!(["TOKEN_REQUESTOR"]));
    assert_eq!(wallet("resume").await["status"], "ACTIVE");
    mock.handle.wait_idle().await;
    assert_eq!(told(mock, &token), ["ACTIVE", "SUSPENDED", "ACTIVE"]);
    // Each event names who caused it: the wallet asked for the token, suspended and resumed it.
    let causes: Vec<_> = mock
        .issuer
        .received(TOKEN_EVENTS_PATH)
        .into_iter()
        .filter(|r| r.status == 200 && r.body["tokenId"] == token.as_str())
        .map(|r| (r.body["initiator"].clone(), r.body["reason"].clone()))
        .collect();
    assert_eq!(
        causes,
        [
            (json!("TOKEN_REQUESTOR"), json!("TOKENIZATION_APPROVED")),
            (json!("TOKEN_REQUESTOR"), json!("SUSPENDED_BY_TOKEN_REQUESTOR")),
            (json!("TOKEN_REQUESTOR"), json!("RESUMED_BY_TOKEN_REQUESTOR")),
        ]
    );
}

#[tokio::test]
async fn an_issuers_token_action_comes_back_with_its_code_and_initiator() {
    let mock = Mock::start().await;
    let token = mock.green_token().await;
    let response = mock
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/suspend"))
        .json(&json!({"initiator": "CARDHOLDER", "reasonCode": "LOST", "reason": "phone lost"}))
        .send()
        .await;
    expect_json(response, 200).await;
    mock.handle.wait_idle().await;
    let event = mock
        .issuer
        .received(TOKEN_EVENTS_PATH)
        .into_iter()
        .rfind(|r| r.status == 200 && r.body["tokenId"] == token.as_str())
        .expect("the suspension's event");
    assert_eq!(event.body["status"], "SUSPENDED");
    assert_eq!(event.body["reasonCode"], "LOST");
    assert_eq!(event.body["initiator"], "CARDHOLDER");
    assert_eq!(event.body["reason"], "phone lost");
}
