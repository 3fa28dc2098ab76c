//! `tmp-conformance sign-proxy` in front of a real adapter: what a fuzzer sends with placeholder
//! signatures and payloads of the right form reaches the adapter's validation and is answered on
//! its merits; what is malformed passes through and is refused; a key a fuzzer reuses for
//! another body is renewed, the same request again is the same request.

use std::sync::Arc;

use serde_json::{Value, json};
use tmp_conformance::case::Approach;
use tmp_conformance::client::Client;
use tmp_kit::{KitOptions, TestKit};

const VERIFY: &str = "/issuer-api/v1/cards/verify";

fn placeholders(request: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    request
        .header("X-Idempotency-Key", key)
        .header("webhook-id", "0")
        .header("webhook-timestamp", "0")
        .header("webhook-signature", format!("v1,{}=", "A".repeat(43)))
}

#[tokio::test]
async fn requests_of_the_right_form_reach_the_adapters_validation_through_the_sign_proxy() {
    let kit = Arc::new(TestKit::start(&KitOptions::new(tmp_adapter::config::Approach::External)).await.expect("kit"));
    tmp_kit::harness::spawned_session(&kit, &kit.adapter_url, Approach::External, 0).await.expect("fixtures");
    let client = Client::new(kit.profile.clone(), &kit.adapter_url, kit.secrets.clone()).expect("client");
    let (address, server) =
        tmp_conformance::sign_proxy::start(client, &kit.adapter_url, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let proxy = tokio::spawn(server);
    let url = |path: &str| format!("http://{address}{path}");
    let http = reqwest::Client::new();
    let verify = |key: &str, tokenization: &str, payload: &str| {
        placeholders(http.post(url(VERIFY)), key).json(&json!({
            "tokenizationId": tokenization,
            "tsp": "MDES",
            "tokenRequestor": {"id": "50120834693", "name": "Google Pay", "wallet": "GOOGLE_PAY"},
            "provisioningMethod": "MANUAL",
            "encryptedPayload": payload,
        }))
    };

    // Placeholders of the documented form: signed and encrypted by the proxy, decided.
    let answer = verify("k-1", "t-1", "a.b.c.d.e").send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["decision"], "APPROVED", "{answer}");

    // The same key for another body: renewed (a fuzzer's reuse, not TMP's), decided again.
    let renewed = verify("k-1", "t-2", "a.b.c.d.e").send().await.unwrap();
    assert_eq!(renewed.status(), 200, "{}", renewed.text().await.unwrap());
    // The same request again: the same body and key, so the adapter replays its answer.
    let replayed = verify("k-1", "t-1", "a.b.c.d.e").send().await.unwrap();
    assert_eq!(replayed.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));

    // Malformed parts pass through for the adapter to refuse.
    let not_jwe = verify("k-3", "t-3", "not-a-jwe").send().await.unwrap();
    assert_eq!(not_jwe.status(), 422);
    let unsigned = http
        .post(url(VERIFY))
        .header("X-Idempotency-Key", "k-4")
        .json(&json!({"tokenizationId": "t-4", "encryptedPayload": "a.b.c.d.e"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401, "no webhook-* headers: nothing to sign");

    // A processor event for a card the profile does not have: a test PAN of its own.
    let issued = placeholders(http.post(url("/processor/v1/events")), "k-5")
        .json(&json!([{"id": "e-1", "cardId": "fuzz-card-1", "type": "card.issued",
                        "occurredAt": "2026-01-01T00:00:00Z", "data": {"encryptedPayload": "a.b.c.d.e"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 202, "{}", issued.text().await.unwrap());
    // Other methods pass through: the adapter's 405 with its Allow header.
    let delete = http.delete(url(VERIFY)).send().await.unwrap();
    assert_eq!(delete.status(), 405);
    assert_eq!(delete.headers().get("allow").unwrap(), "POST");
    proxy.abort();
}
