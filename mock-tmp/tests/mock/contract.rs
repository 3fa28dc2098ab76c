//! Requests the real platform would reject are rejected with the contract's errors; keys,
//! idempotency and persistence behave as documented.

use reqwest::Method;
use serde_json::json;
use tmp_protocol::webhook::WebhookSecret;

use crate::driver::{EXPIRY, PAN_ACTIVE, expect_error, expect_json};
use crate::helpers::{Mock, mock_config};

fn status_body() -> serde_json::Value {
    json!({"status": "BLOCKED"})
}

#[tokio::test]
async fn signatures_are_required_checked_and_single_use() {
    let kit = Mock::start().await;
    kit.green_token().await;
    let path = "/tmp-api/v1/cards/card-active/status";
    let unsigned = kit.signed(Method::POST, path).json(&status_body()).secret(None).send().await;
    expect_error(unsigned, 401, "MISSING_SIGNATURE").await;
    let (other, _) = WebhookSecret::generate();
    let forged = kit.signed(Method::POST, path).json(&status_body()).secret(Some(other)).send().await;
    expect_error(forged, 401, "INVALID_SIGNATURE").await;
    let first = kit.signed(Method::POST, path).json(&status_body()).webhook_id("msg_replayed1").send().await;
    expect_json(first, 200).await;
    let replay = kit.signed(Method::POST, path).json(&status_body()).webhook_id("msg_replayed1").send().await;
    expect_error(replay, 401, "REPLAYED_REQUEST").await;
}

#[tokio::test]
async fn malformed_unknown_and_undecryptable_requests_are_refused() {
    let kit = Mock::start().await;
    let token = kit.green_token().await;
    let status = "/tmp-api/v1/cards/card-active/status";
    expect_error(kit.signed(Method::POST, status).raw(b"{\"status\": ").send().await, 400, "MALFORMED_JSON").await;
    expect_error(
        kit.signed(Method::POST, status).json(&json!({"status": "LOST"})).send().await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    expect_error(kit.signed(Method::POST, status).json(&json!({})).send().await, 422, "VALIDATION_FAILED").await;
    expect_error(
        kit.signed(Method::POST, status).json(&status_body()).content_type("text/plain").send().await,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    let huge = vec![b' '; 70_000];
    expect_error(kit.signed(Method::POST, status).raw(&huge).send().await, 413, "PAYLOAD_TOO_LARGE").await;
    let no_key = kit.signed(Method::POST, status).json(&status_body()).key("");
    expect_error(no_key.send().await, 400, "INVALID_HEADER").await;

    // A JWE to a key the mock does not have, and one that is not a JWE at all.
    let foreign = tmp_protocol::jwk::RsaKeyPair::generate(2048).expect("key").public_jwk();
    let jwe = tmp_protocol::jwe::encrypt_json(&json!({"expiry": "12/33"}), &foreign).expect("jwe");
    for payload in [jwe.as_str(), "not-a-jwe"] {
        let response = kit
            .signed(Method::POST, "/tmp-api/v1/cards/card-active/expiry")
            .json(&json!({"encryptedPayload": payload}))
            .send()
            .await;
        expect_error(response, 422, "INVALID_ENCRYPTED_PAYLOAD").await;
    }
    let unknown = kit
        .signed(Method::POST, "/tmp-api/v1/tokens/DWSPMCunknown/suspend")
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "x"}))
        .send()
        .await;
    expect_error(unknown, 404, "NOT_FOUND").await;
    // A lifecycle fact for a card TMP never tokenized: accepted, nothing to change.
    let untokenized = kit
        .signed(Method::POST, "/tmp-api/v1/cards/never-tokenized/status")
        .json(&json!({"status": "BLOCKED"}))
        .send()
        .await;
    let ack = expect_json(untokenized, 200).await;
    assert_eq!(ack["tokensAffected"], 0, "{ack}");
    let bad_initiator = kit
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/suspend"))
        .json(&json!({"initiator": "BANK", "reasonCode": "OTHER", "reason": "x"}))
        .send()
        .await;
    expect_error(bad_initiator, 422, "VALIDATION_FAILED").await;
    // A token action is coded: an unknown code, or none, is refused.
    for body in [
        json!({"initiator": "ISSUER", "reasonCode": "BORED", "reason": "x"}),
        json!({"initiator": "ISSUER", "reason": "x"}),
    ] {
        let uncoded = kit.signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/suspend")).json(&body).send().await;
        expect_error(uncoded, 422, "VALIDATION_FAILED").await;
    }
    let forbidden = kit
        .signed(Method::POST, &format!("/tmp-api/v1/tokens/{token}/activate"))
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "x"}))
        .send()
        .await;
    expect_error(forbidden, 409, "CONFLICT").await;
    expect_error(kit.client.get(format!("{}/nowhere", kit.mock_url)).send().await.expect("get"), 404, "NOT_FOUND")
        .await;
    // The root says where one is.
    let index = kit.client.get(format!("{}/", kit.mock_url)).send().await.expect("get");
    assert_eq!(index.status(), 200);
    let index: serde_json::Value = index.json().await.expect("json");
    assert_eq!(index["service"], "mock-tmp");
    assert!(index["links"]["control"].as_str().unwrap().starts_with("/_mock/v1/"), "{index}");
}

#[tokio::test]
async fn an_idempotency_key_replays_its_answer_and_refuses_another_body() {
    let kit = Mock::start().await;
    let token = kit.green_token().await;
    let path = format!("/tmp-api/v1/tokens/{token}/suspend");
    let body = json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "first"});
    let first = expect_json(kit.signed(Method::POST, &path).key("k-1").json(&body).send().await, 200).await;
    let again = kit.signed(Method::POST, &path).key("k-1").json(&body).send().await;
    assert_eq!(again.headers().get("Idempotent-Replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(expect_json(again, 200).await, first);
    let other = kit
        .signed(Method::POST, &path)
        .key("k-1")
        .json(&json!({"initiator": "ISSUER", "reasonCode": "OTHER", "reason": "other"}))
        .send()
        .await;
    expect_error(other, 422, "IDEMPOTENCY_KEY_REUSED").await;
    kit.handle.wait_idle().await;
    // One suspension reached the issuer: the token's creation, then its suspension.
    let events: Vec<_> = kit
        .issuer
        .received(tmp_protocol::issuer_api::TOKEN_EVENTS_PATH)
        .into_iter()
        .filter(|r| r.status == 200 && r.body["tokenId"] == token.as_str())
        .map(|r| r.body["status"].clone())
        .collect();
    assert_eq!(events, [json!("ACTIVE"), json!("SUSPENDED")]);
}

#[tokio::test]
async fn key_rotation_publishes_both_keys_and_the_old_one_still_decrypts() {
    let kit = Mock::start().await;
    kit.green_token().await;
    let old = kit.jwk("/tmp-api/v1/public-key").await;
    let old_lifecycle = kit.jwk("/lifecycle/v1/public-key").await;
    assert_ne!(old.kid, old_lifecycle.kid);
    let rotated = kit.control("/_mock/v1/keys/rotate", json!({})).await;
    let new_kid = rotated["rotated"]["tmp_api"].as_str().expect("new kid").to_owned();
    let set: tmp_protocol::jwk::JwkSet = kit
        .client
        .get(format!("{}/tmp-api/v1/public-key", kit.mock_url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("set");
    let kids: Vec<_> = set.keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids, [new_kid, old.kid.clone()], "current key first, old one still published");
    let payload = tmp_protocol::jwe::encrypt_json(&json!({"expiry": "12/33"}), &old).expect("jwe");
    let response = kit
        .signed(Method::POST, "/tmp-api/v1/cards/card-active/expiry")
        .json(&json!({"encryptedPayload": payload}))
        .send()
        .await;
    expect_json(response, 200).await;
}

#[tokio::test]
async fn state_and_keys_survive_a_restart_with_sqlite() {
    let kit = Mock::start().await;
    let url = format!("sqlite://{}", kit.dir.path().join("mock").join("state.db").display());
    let secret = kit.secret.clone();
    let config = |url: &str| {
        let (mut config, _) = mock_config(&kit.issuer);
        config.auth.hmac_secrets = vec![secret.clone()];
        config.state.storage = mock_tmp::config::StorageKind::Sqlite;
        config.state.sqlite_url = url.to_owned();
        config
    };
    let first = mock_tmp::start(config(&url)).await.expect("mock starts");
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(format!("{}/_mock/v1/simulate/tokenizations", first.base_url()))
        .json(&json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"}))
        .send()
        .await
        .expect("simulate")
        .json()
        .await
        .expect("json");
    let token = answer["tokenId"].as_str().expect("token").to_owned();
    first.wait_idle().await;
    let kid: tmp_protocol::jwk::JwkSet = client
        .get(format!("{}/tmp-api/v1/public-key", first.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("set");
    first.stop().await;

    let second = mock_tmp::start(config(&url)).await.expect("mock restarts");
    let tokens: serde_json::Value = client
        .get(format!("{}/_mock/v1/tokens", second.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(tokens["tokens"][0]["tokenId"], token.as_str());
    assert_eq!(tokens["tokens"][0]["status"], "ACTIVE");
    let again: tmp_protocol::jwk::JwkSet = client
        .get(format!("{}/tmp-api/v1/public-key", second.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("set");
    assert_eq!(again.keys[0].kid, kid.keys[0].kid);
    second.stop().await;
}

#[tokio::test]
async fn the_sender_and_faults_can_be_changed_at_run_time() {
    let kit = Mock::start().await;
    let sender = kit.get("/_mock/v1/sender").await;
    let mut behaviour = sender["behaviour"].clone();
    behaviour["duplicate_rate"] = json!(1.0);
    let response =
        kit.client.put(format!("{}/_mock/v1/sender", kit.mock_url)).json(&behaviour).send().await.expect("put");
    assert_eq!(response.status(), 200);
    let bad = kit
        .client
        .post(format!("{}/_mock/v1/faults", kit.mock_url))
        .json(&json!({"route": "nowhere"}))
        .send()
        .await
        .expect("post");
    expect_error(bad, 422, "VALIDATION_FAILED").await;
    let fault = kit
        .control("/_mock/v1/faults", json!({"route": "POST /tmp-api/v1/cards/{cardId}/status", "error_status": 503}))
        .await;
    let blocked = kit.signed(Method::POST, "/tmp-api/v1/cards/card-active/status").json(&status_body()).send().await;
    expect_error(blocked, 503, "UNAVAILABLE").await;
    let id = fault["id"].as_u64().expect("id");
    let removed = kit.client.delete(format!("{}/_mock/v1/faults/{id}", kit.mock_url)).send().await.expect("delete");
    assert_eq!(removed.status(), 204);
    kit.control("/_mock/v1/reset", json!({})).await;
    assert!(kit.get("/_mock/v1/tokens").await["tokens"].as_array().expect("tokens").is_empty());
    assert_eq!(kit.get("/_mock/v1/sender").await["behaviour"]["duplicate_rate"], 0.0);
}

/// The journal names each received call's route pattern, never its path (no ids or card data),
/// whether the route was looked up before routing (a fault rule is set) or taken from the
/// routed request (none is).
#[tokio::test]
async fn the_journal_names_the_route_with_and_without_fault_rules() {
    let kit = Mock::start().await;
    let route = "/tmp-api/v1/cards/{cardId}/status";
    let routes_of_status_calls = || async {
        let journal = kit.get("/_mock/v1/requests").await;
        journal["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|e| e["direction"] == "received" && e["path"] == "/tmp-api/v1/cards/card-active/status")
            .map(|e| (e["route"].clone(), e["status"].clone()))
            .collect::<Vec<_>>()
    };
    let answered = kit.signed(Method::POST, "/tmp-api/v1/cards/card-active/status").json(&status_body()).send().await;
    assert_eq!(answered.status(), 200);
    assert_eq!(routes_of_status_calls().await, vec![(json!(route), json!(200))], "no fault rule");

    kit.control(
        "/_mock/v1/faults",
        json!({"route": "POST /tmp-api/v1/tokens/{tokenId}/{action}", "error_status": 503}),
    )
    .await;
    let answered = kit.signed(Method::POST, "/tmp-api/v1/cards/card-active/status").json(&status_body()).send().await;
    assert_eq!(answered.status(), 200);
    kit.control("/_mock/v1/faults", json!({"route": format!("POST {route}"), "error_status": 503})).await;
    let refused = kit.signed(Method::POST, "/tmp-api/v1/cards/card-active/status").json(&status_body()).send().await;
    expect_error(refused, 503, "UNAVAILABLE").await;
    assert_eq!(
        routes_of_status_calls().await,
        vec![(json!(route), json!(200)), (json!(route), json!(200)), (json!(route), json!(503))],
        "a rule for another route, then one for this route"
    );
}
