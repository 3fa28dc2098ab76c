//! The mock's callbacks to the issuer behave like a real sender's, seen from the issuer's side:
//! signed, retried with the same idempotency key under a new `webhook-id` while the issuer is
//! down, duplicated on demand, and activation codes encrypted to the issuer's published key.

use serde_json::json;
use tmp_protocol::issuer_api::{NOTIFICATIONS_PATH, TOKEN_EVENTS_PATH, VERIFY_CARD_PATH};

use crate::driver::{EXPIRY, PAN_ACTIVE};
use crate::helpers::Mock;

#[tokio::test]
async fn an_issuer_that_is_down_gets_the_same_event_again_until_it_answers() {
    let mock = Mock::start().await;
    mock.issuer.fail(TOKEN_EVENTS_PATH, 2);
    let token = mock.green_token().await;
    let received = mock.issuer.received(TOKEN_EVENTS_PATH);
    let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert!(received.iter().all(|r| r.body["tokenId"] == token.as_str()));
    let keys: std::collections::BTreeSet<_> = received.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 1, "one idempotency key across attempts: {keys:?}");
    let ids: std::collections::BTreeSet<_> = received.iter().map(|r| r.webhook_id.clone()).collect();
    assert_eq!(ids.len(), 3, "a new webhook-id per attempt: {ids:?}");
    // The journal tells the same story.
    let sent = mock.sent(TOKEN_EVENTS_PATH).await;
    let outcomes: Vec<_> =
        sent.iter().map(|e| (e["outcome"].as_str().map(str::to_owned), e["status"].as_u64())).collect();
    assert_eq!(
        outcomes,
        [
            (Some("answered".into()), Some(503)),
            (Some("answered".into()), Some(503)),
            (Some("answered".into()), Some(200))
        ]
    );
}

#[tokio::test]
async fn duplicates_reach_the_issuer_under_one_idempotency_key() {
    let mock = Mock::start_with(|config| {
        config.sender.duplicate_rate = 1.0;
        config.sender.duplicate_copies = 2;
    })
    .await;
    mock.green_token().await;
    let received = mock.issuer.received(TOKEN_EVENTS_PATH);
    assert_eq!(received.len(), 3, "the event and two copies");
    assert!(received.iter().all(|r| r.status == 200));
    let keys: std::collections::BTreeSet<_> = received.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[tokio::test]
async fn the_yellow_path_sends_the_code_encrypted_to_the_issuers_key() {
    let mock = Mock::start().await;
    mock.issuer.decide("REQUIRE_ADDITIONAL_AUTHENTICATION");
    let answer = mock.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    assert_eq!(answer["path"], "YELLOW", "{answer}");
    mock.handle.wait_idle().await;
    assert_eq!(mock.issuer.received(VERIFY_CARD_PATH).len(), 1);
    let notifications = mock.issuer.received(NOTIFICATIONS_PATH);
    let delivery = notifications
        .iter()
        .find(|r| r.body["type"] == "ACTIVATION_CODE_DELIVERY")
        .unwrap_or_else(|| panic!("no activation code sent: {notifications:?}"));
    let otp = delivery.otp.clone().expect("the code decrypts with the issuer's key");
    assert!(otp.len() >= 6 && otp.bytes().all(|b| b.is_ascii_digit()), "a numeric code");
    assert!(!delivery.body.to_string().contains(&otp), "the code travels only encrypted");
    // While the card is blocked the code activates nothing, and is not spent.
    let token = answer["tokenId"].as_str().expect("token");
    let block = |status: &'static str| {
        mock.signed(reqwest::Method::POST, "/tmp-api/v1/cards/card-active/status")
            .json(&json!({"status": status}))
            .send()
    };
    assert_eq!(block("BLOCKED").await.status(), 200);
    let url = format!("{}/_mock/v1/simulate/tokens/{token}/otp", mock.mock_url);
    let refused = mock.client.post(&url).json(&json!({"otp": otp})).send().await.expect("request");
    assert_eq!(refused.status(), 409);
    let refused: serde_json::Value = refused.json().await.expect("json");
    assert!(refused["error"]["message"].as_str().unwrap().contains("blocked"), "{refused}");
    assert_eq!(mock.mock_token(token).await["status"], "INACTIVE");
    assert_eq!(block("ACTIVE").await.status(), 200);
    // Typed into the wallet, the code activates the token.
    let entered = mock.control(&format!("/_mock/v1/simulate/tokens/{token}/otp"), json!({"otp": otp})).await;
    assert_eq!(entered["result"], "ACCEPTED", "{entered}");
}
