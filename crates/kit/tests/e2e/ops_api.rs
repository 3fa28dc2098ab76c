//! The adapter's ops API against mock-tmp over real sockets: a card's tokens, push provisioning
//! through the simulated wallet to an active token, token actions and their forbidden
//! transitions, an unknown card, TMP down (the mock's faults), scopes, revoked keys and the rate
//! limit. The adapter's TMP API client reaches the mock through a pass-through bound before the
//! adapter starts (the mock needs the adapter's URL first).

use serde_json::{Value, json};
use time::OffsetDateTime;
use tmp_adapter::ops::api_keys::NewApiKey;
use tmp_adapter::store::{ApiKeyRecord, OpsAuditRecord};
use tmp_protocol::enums::TokenStatus;

use crate::forwarding::PassThrough;
use crate::helpers::{EXPIRY, Kit, PAN_ACTIVE, PAN_BLOCKED, expect_error, expect_json};

pub(crate) struct Ops {
    pub(crate) kit: Kit,
    url: String,
}

impl Ops {
    pub(crate) async fn spawn() -> Ops {
        let pass = PassThrough::start().await;
        let tmp_url = pass.url.clone();
        let kit = Kit::spawn_with(
            |s| {
                s.ops.enabled = true;
                s.ops.port = 0;
                s.ops.tmp_request_timeout_ms = 3000;
                // The issuer's website, and the loopback the browser test comes back to.
                s.ops.web_push_callback_hosts = vec!["bank.example".into(), "127.0.0.1".into()];
                s.forwarding.tmp_api.base_url = tmp_url;
            },
            |_| {},
        )
        .await;
        pass.target.send_replace(kit.inner.mock_addr().await);
        let url = kit.ops_url.clone().expect("the ops listener runs");
        Ops { kit, url }
    }

    /// A new API key with `scopes`, as `tmp-adapter apikey create` makes it.
    pub(crate) async fn key(
        &self,
        name: &str,
        scopes: &[&str],
        rate_limit_per_minute: Option<u32>,
    ) -> (String, String) {
        let new = NewApiKey::generate();
        let record = ApiKeyRecord {
            id: new.id.clone(),
            name: name.to_owned(),
            secret_digest: new.digest.clone(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            rate_limit_per_minute,
            created_at: OffsetDateTime::now_utc(),
            revoked_at: None,
        };
        self.kit.store.create_api_key(&record, &audit_of("apikey.create", &new.id)).await.expect("create key");
        (new.id, new.key.to_string())
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.kit.client.get(format!("{}{path}", self.url)).bearer_auth(key).send().await.expect("ops request")
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        key: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.kit.client.post(format!("{}{path}", self.url)).bearer_auth(key).json(body);
        if let Some(k) = idempotency_key {
            request = request.header("X-Idempotency-Key", k);
        }
        request.send().await.expect("ops request")
    }

    async fn tokens(&self, card: &str, key: &str) -> Value {
        expect_json(self.get(&format!("/ops/v1/cards/{card}/tokens"), key).await, 200).await
    }

    pub(crate) async fn seed(&self, card_id: &str, pan: &str, status: &str) {
        self.kit
            .control("/_mock/v1/cards", json!({"cardId": card_id, "pan": pan, "expiry": EXPIRY, "status": status}))
            .await;
    }

    /// The simulated wallet hands the payload of `sign` back.
    async fn wallet_push(&self, body: Value) -> Value {
        let answer = self.kit.control("/_mock/v1/simulate/wallet/push", body).await;
        self.kit.inner.mock_idle().await;
        answer
    }
}

fn audit_of(action: &str, target: &str) -> OpsAuditRecord {
    OpsAuditRecord {
        id: uuid::Uuid::new_v4(),
        at: OffsetDateTime::now_utc(),
        actor: "cli:test".into(),
        action: action.into(),
        target: Some(target.into()),
        card_id: None,
        reason: None,
        outcome: "ok".into(),
        status: 0,
        correlation_id: uuid::Uuid::new_v4().to_string(),
    }
}

fn token_in<'a>(list: &'a Value, token_id: &str) -> &'a Value {
    list["tokens"].as_array().expect("tokens").iter().find(|t| t["tokenId"] == token_id).unwrap_or(&Value::Null)
}

fn apple_pay_input() -> Value {
    json!({"certificates": ["MIIBszCCAVmgAwIBAgIU", "MIICQjCCAcmgAwIBAgIU"], "nonce": "4a2b9c0d",
           "nonceSignature": "9f8e7d6c5b4a", "reason": "customer tapped Add to Apple Wallet"})
}

#[tokio::test]
async fn push_provisioning_from_the_ops_api_through_the_wallet_ends_in_an_active_token() {
    let ops = Ops::spawn().await;
    ops.seed("card-active", PAN_ACTIVE, "ACTIVE").await;
    let (app_id, app) = ops.key("mobile app backend", &["provisioning", "tokens:read", "tokens:write"], None).await;

    // Google Pay: TMP signs, the wallet pushes, the issuer approves: an active token at once.
    let signed = expect_json(
        ops.post(
            "/ops/v1/cards/card-active/push-provisioning/google-pay",
            &app,
            &json!({"clientDeviceId": "device-1", "clientWalletAccountId": "wallet-1", "cardholderName": "Jan Kowalski"}),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!((signed["cardId"].as_str(), signed["wallet"].as_str()), (Some("card-active"), Some("GOOGLE_PAY")));
    let opc = signed["opaquePaymentCard"].as_str().expect("opaque payment card");
    assert_eq!(opc.split('.').count(), 5, "a compact JWE to the wallet");
    let pushed = ops.wallet_push(json!({"payload": opc, "approach": "external"})).await;
    assert_eq!((pushed["path"].as_str(), pushed["provisioningMethod"].as_str()), (Some("GREEN"), Some("PUSH")));
    let google = pushed["tokenId"].as_str().expect("token").to_owned();
    let listed = ops.tokens("card-active", &app).await;
    assert_eq!((listed["source"].as_str(), listed["stale"].as_bool()), (Some("tmp"), Some(false)), "{listed}");
    assert_eq!(token_in(&listed, &google)["status"], "ACTIVE", "{listed}");
    assert_eq!(token_in(&listed, &google)["wallet"], "GOOGLE_PAY", "{listed}");

    // Apple Pay, step-up: the token waits inactive until the app activates it through the ops API.
    let signed = expect_json(
        ops.post("/ops/v1/cards/card-active/push-provisioning/apple-pay", &app, &apple_pay_input(), None).await,
        200,
    )
    .await;
    let pass = signed["encryptedPassData"].as_str().expect("encrypted pass data");
    assert_eq!(pass.split('.').count(), 5);
    assert!(!signed["activationData"].as_str().unwrap_or_default().is_empty(), "{signed}");
    assert!(!signed["ephemeralPublicKey"].as_str().unwrap_or_default().is_empty(), "{signed}");
    let pushed = ops
        .wallet_push(json!({"payload": pass, "approach": "external",
                             "walletRecommendation": "REQUIRE_ADDITIONAL_AUTHENTICATION"}))
        .await;
    assert_eq!(pushed["path"], "YELLOW", "{pushed}");
    let apple = pushed["tokenId"].as_str().expect("token").to_owned();
    assert_eq!(token_in(&ops.tokens("card-active", &app).await, &apple)["status"], "INACTIVE");
    let activated = expect_json(
        ops.post(
            &format!("/ops/v1/tokens/{apple}/activate"),
            &app,
            &json!({"reason": "cardholder authenticated in the bank app"}),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!((activated["status"].as_str(), activated["cardId"].as_str()), (Some("ACTIVE"), Some("card-active")));
    let listed = ops.tokens("card-active", &app).await;
    assert_eq!(token_in(&listed, &apple)["status"], "ACTIVE", "{listed}");
    assert_eq!(token_in(&listed, &apple)["wallet"], "APPLE_PAY", "{listed}");
    ops.kit.inner.mock_idle().await;
    assert_eq!(ops.kit.adapter_token(&apple).await.status, TokenStatus::Active, "the mirror follows TMP's events");

    // Apple Pay with the activation data the app received: the wallet completes the step-up.
    let signed = expect_json(
        ops.post("/ops/v1/cards/card-active/push-provisioning/apple-pay", &app, &apple_pay_input(), None).await,
        200,
    )
    .await;
    let wrong = ops
        .kit
        .client
        .post(format!("{}/_mock/v1/simulate/wallet/push", ops.kit.mock_url))
        .json(&json!({"payload": signed["encryptedPassData"], "activationData": "bm90IGl0"}))
        .send()
        .await
        .expect("mock answers");
    assert_eq!(wrong.status(), 409, "activation data must be the one issued with the payload");
    let pushed = ops
        .wallet_push(json!({"payload": signed["encryptedPassData"], "activationData": signed["activationData"],
                             "approach": "external", "walletRecommendation": "REQUIRE_ADDITIONAL_AUTHENTICATION"}))
        .await;
    let direct = pushed["tokenId"].as_str().expect("token");
    assert_eq!(token_in(&ops.tokens("card-active", &app).await, direct)["status"], "ACTIVE");
    let pushes = ops.kit.get("/_mock/v1/pushes").await;
    assert_eq!(pushes["pushes"].as_array().map(Vec::len), Some(3), "{pushes}");

    // Audited: who, what, on what, why.
    let (_, auditor) = ops.key("auditor", &["audit:read"], None).await;
    let audit = expect_json(ops.get("/ops/v1/audit?cardId=card-active", &auditor).await, 200).await;
    let entries = audit["items"].as_array().expect("items");
    let actions: Vec<_> = entries.iter().map(|e| e["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        actions,
        ["provisioning.apple_pay", "token.activate", "provisioning.apple_pay", "provisioning.google_pay"],
        "{audit}"
    );
    let activation = &entries[1];
    assert_eq!(activation["actor"], format!("apikey:{app_id} (mobile app backend)"));
    assert_eq!(activation["target"], apple.as_str());
    assert_eq!(activation["reason"], "OTHER: cardholder authenticated in the bank app");
    assert_eq!((activation["outcome"].as_str(), activation["status"].as_u64()), (Some("ok"), Some(200)));

    // The decisions the adapter took during those push tokenizations: no card data.
    let response = ops.get("/ops/v1/cards/card-active/decisions", &auditor).await;
    let text = response.text().await.expect("body");
    assert!(!text.contains(PAN_ACTIVE), "{text}");
    let decisions: Value = serde_json::from_str(&text).expect("json");
    let items = decisions["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{decisions}");
    assert!(items.iter().all(|d| d["operation"] == "verify_card" && d["panLast4"] == "1111"), "{decisions}");
    assert_eq!(items[2]["decision"], "APPROVED", "{decisions}");
    assert_eq!(items[1]["decision"], "REQUIRE_ADDITIONAL_AUTHENTICATION", "{decisions}");
}

#[tokio::test]
async fn token_actions_follow_tmp_and_forbidden_transitions_are_409() {
    let ops = Ops::spawn().await;
    let token = ops.kit.green_token().await;
    let (_, back_office) = ops.key("back office", &["tokens:read", "tokens:write"], None).await;
    let act = |action: &str, body: Value, key: Option<&'static str>| {
        let path = format!("/ops/v1/tokens/{token}/{action}");
        let ops = &ops;
        let back_office = back_office.clone();
        async move { ops.post(&path, &back_office, &body, key).await }
    };
    let why = json!({"reason": "fraud suspected by the back office"});

    let suspended = expect_json(act("suspend", why.clone(), None).await, 200).await;
    assert_eq!(suspended["status"], "SUSPENDED");
    expect_error(act("suspend", why.clone(), None).await, 409, "INVALID_TOKEN_STATE").await;
    expect_error(act("activate", why.clone(), None).await, 409, "INVALID_TOKEN_STATE").await;
    // Only the party that suspended can resume.
    expect_error(
        act("resume", json!({"reason": "cardholder asked", "initiator": "CARDHOLDER"}), None).await,
        409,
        "INVALID_TOKEN_STATE",
    )
    .await;
    assert_eq!(expect_json(act("resume", json!({"reason": "cleared"}), None).await, 200).await["status"], "ACTIVE");

    // X-Idempotency-Key: the same key and body answer the stored response without a second action.
    let bye = json!({"reason": "card reported stolen"});
    let first = act("deactivate", bye.clone(), Some("deactivate-1")).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    assert_eq!(expect_json(first, 200).await["status"], "DEACTIVATED");
    let again = act("deactivate", bye.clone(), Some("deactivate-1")).await;
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(expect_json(again, 200).await["status"], "DEACTIVATED");
    expect_error(
        act("deactivate", json!({"reason": "another reason"}), Some("deactivate-1")).await,
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    .await;
    expect_error(act("deactivate", bye.clone(), None).await, 409, "INVALID_TOKEN_STATE").await;
    expect_error(act("resume", why.clone(), None).await, 409, "INVALID_TOKEN_STATE").await;
    assert_eq!(ops.kit.mock_token(&token).await["status"], "DEACTIVATED");

    // Bad input never reaches TMP.
    expect_error(act("suspend", json!({}), None).await, 422, "VALIDATION_FAILED").await;
    expect_error(act("suspend", json!({"reason": "x", "initiator": "BANK"}), None).await, 422, "VALIDATION_FAILED")
        .await;
    expect_error(act("suspend", json!({"reason": "card 4111 1111 1111 1111"}), None).await, 422, "VALIDATION_FAILED")
        .await;
    let malformed = ops
        .kit
        .client
        .post(format!("{}/ops/v1/tokens/{token}/suspend", ops.url))
        .bearer_auth(&back_office)
        .header("content-type", "application/json")
        .body("{\"reason\": ")
        .send()
        .await
        .unwrap();
    expect_error(malformed, 400, "MALFORMED_JSON").await;
    expect_error(act("explode", why.clone(), None).await, 404, "NOT_FOUND").await;
    expect_error(ops.post("/ops/v1/tokens/DWSPMCunknown/suspend", &back_office, &why, None).await, 404, "NOT_FOUND")
        .await;

    // The mirror followed TMP's token events.
    ops.kit.inner.mock_idle().await;
    assert_eq!(ops.kit.adapter_token(&token).await.status, TokenStatus::Deactivated);
}

#[tokio::test]
async fn unknown_cards_are_404_and_tmp_down_is_503_or_the_stale_mirror() {
    let ops = Ops::spawn().await;
    let token = ops.kit.green_token().await;
    let (_, key) = ops.key("all", &["tokens:read", "tokens:write", "provisioning", "audit:read"], None).await;

    expect_error(ops.get("/ops/v1/cards/card-nobody/tokens", &key).await, 404, "NOT_FOUND").await;
    expect_error(
        ops.post("/ops/v1/cards/card-nobody/push-provisioning/google-pay", &key, &json!({}), None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // TMP refuses to push a blocked card.
    ops.seed("card-blocked", PAN_BLOCKED, "BLOCKED").await;
    expect_error(
        ops.post("/ops/v1/cards/card-blocked/push-provisioning/apple-pay", &key, &apple_pay_input(), None).await,
        409,
        "CONFLICT",
    )
    .await;

    // TMP answers 503 to token listing: the mirror answers, marked stale.
    ops.kit
        .control("/_mock/v1/faults", json!({"route": "GET /tmp-api/v1/cards/{cardId}/tokens", "error_status": 503}))
        .await;
    let listed = ops.tokens("card-active", &key).await;
    assert_eq!((listed["source"].as_str(), listed["stale"].as_bool()), (Some("mirror"), Some(true)), "{listed}");
    assert_eq!(token_in(&listed, &token)["status"], "ACTIVE", "{listed}");

    // TMP failing or unreachable on a write: 503 with Retry-After, nothing changed.
    ops.kit
        .control(
            "/_mock/v1/faults",
            json!({"route": "POST /tmp-api/v1/tokens/{tokenId}/{action}", "error_status": 503, "times": 1}),
        )
        .await;
    let response =
        ops.post(&format!("/ops/v1/tokens/{token}/suspend"), &key, &json!({"reason": "lost phone"}), None).await;
    assert!(response.headers().get("retry-after").is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() >= 1));
    expect_error(response, 503, "UNAVAILABLE").await;
    // A card-wide action: TMP lists the tokens, then fails the first action — the others are
    // not tried, and with nothing done the answer is a 503 to retry, not an answer to keep.
    ops.kit.client.delete(format!("{}/_mock/v1/faults", ops.kit.mock_url)).send().await.unwrap();
    ops.kit
        .control(
            "/_mock/v1/faults",
            json!({"route": "POST /tmp-api/v1/tokens/{tokenId}/{action}", "error_status": 503, "times": 1}),
        )
        .await;
    let card_id = ops.kit.adapter_token(&token).await.card_id;
    let path = format!("/ops/v1/cards/{card_id}/tokens/suspend");
    let response = ops.post(&path, &key, &json!({"reasonCode": "LOST", "reason": "lost phone"}), Some("bulk-1")).await;
    expect_error(response, 503, "UNAVAILABLE").await;
    assert_eq!(ops.kit.mock_token(&token).await["status"], "ACTIVE");
    ops.kit
        .control("/_mock/v1/faults", json!({"route": "POST /tmp-api/v1/cards/{cardId}/sign", "drop_connection": true}))
        .await;
    let response = ops.post("/ops/v1/cards/card-active/push-provisioning/google-pay", &key, &json!({}), None).await;
    assert!(response.headers().get("retry-after").is_some());
    expect_error(response, 503, "UNAVAILABLE").await;
    assert_eq!(ops.kit.mock_token(&token).await["status"], "ACTIVE");

    // The failed writes are audited with their outcome.
    let audit = expect_json(ops.get("/ops/v1/audit", &key).await, 200).await;
    let outcomes: Vec<_> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or_default(), e["outcome"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        &outcomes[..6],
        [
            ("provisioning.google_pay", "UNAVAILABLE"),
            ("card_tokens.suspend", "UNAVAILABLE"),
            ("token.suspend", "UNAVAILABLE"),
            ("token.suspend", "UNAVAILABLE"),
            ("provisioning.apple_pay", "CONFLICT"),
            ("provisioning.google_pay", "NOT_FOUND"),
        ],
        "{audit}"
    );
}

#[tokio::test]
async fn wrong_scope_is_403_revoked_key_401_and_the_rate_limit_429() {
    let ops = Ops::spawn().await;
    let token = ops.kit.green_token().await;
    let (reader_id, reader) = ops.key("read only", &["tokens:read"], None).await;

    ops.tokens("card-active", &reader).await;
    let why = json!({"reason": "fraud"});
    expect_error(ops.post(&format!("/ops/v1/tokens/{token}/suspend"), &reader, &why, None).await, 403, "FORBIDDEN")
        .await;
    expect_error(
        ops.post("/ops/v1/cards/card-active/push-provisioning/google-pay", &reader, &json!({}), None).await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(ops.get("/ops/v1/cards/card-active/decisions", &reader).await, 403, "FORBIDDEN").await;
    expect_error(ops.get("/ops/v1/outbox", &reader).await, 403, "FORBIDDEN").await;
    assert_eq!(ops.kit.mock_token(&token).await["status"], "ACTIVE");

    assert!(
        ops.kit
            .store
            .revoke_api_key(&reader_id, OffsetDateTime::now_utc(), &audit_of("apikey.revoke", &reader_id))
            .await
            .unwrap()
    );
    expect_error(ops.get("/ops/v1/cards/card-active/tokens", &reader).await, 401, "UNAUTHENTICATED").await;

    let (_, limited) = ops.key("limited", &["tokens:read"], Some(2)).await;
    ops.tokens("card-active", &limited).await;
    ops.tokens("card-active", &limited).await;
    let response = ops.get("/ops/v1/cards/card-active/tokens", &limited).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_error(response, 429, "RATE_LIMITED").await;
}

/// "Phone lost: suspend every token on it" — one card-wide action with a coded reason reaches
/// exactly the tokens on that device, each audited, each token event back from TMP carrying
/// the code and who asked; sent again it is a replay, and resuming them is one more call.
#[tokio::test]
async fn a_fraud_desk_suspends_every_token_on_one_device_with_a_coded_reason() {
    let ops = Ops::spawn().await;
    let (_, desk) = ops.key("fraud desk", &["tokens:read", "tokens:write", "audit:read"], None).await;
    let tokenize = |wallet: &'static str, device: &'static str| {
        let ops = &ops;
        async move {
            let answer = ops
                .kit
                .simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": wallet, "deviceId": device}))
                .await;
            assert_eq!(answer["path"], "GREEN", "{answer}");
            (
                answer["token"]["tokenId"].as_str().unwrap().to_owned(),
                answer["token"]["cardId"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (phone_gpay, card) = tokenize("GOOGLE_PAY", "dev-phone-1").await;
    let (phone_samsung, _) = tokenize("SAMSUNG_PAY", "dev-phone-1").await;
    let (watch, _) = tokenize("GOOGLE_PAY", "dev-watch-2").await;
    ops.kit.inner.mock_idle().await;
    let listed = ops.tokens(&card, &desk).await;
    assert_eq!(token_in(&listed, &phone_gpay)["deviceId"], "dev-phone-1", "{listed}");

    let lost = json!({"reasonCode": "LOST", "reason": "phone reported lost", "deviceId": "dev-phone-1"});
    let path = format!("/ops/v1/cards/{card}/tokens/suspend");
    let answer = expect_json(ops.post(&path, &desk, &lost, Some("lost-1")).await, 200).await;
    assert_eq!(
        (answer["done"].as_u64(), answer["skipped"].as_u64(), answer["failed"].as_u64()),
        (Some(2), Some(0), Some(0)),
        "{answer}"
    );
    let mut acted: Vec<_> =
        answer["tokens"].as_array().unwrap().iter().map(|t| t["tokenId"].as_str().unwrap()).collect();
    acted.sort_unstable();
    let mut phone = vec![phone_gpay.as_str(), phone_samsung.as_str()];
    phone.sort_unstable();
    assert_eq!(acted, phone, "the phone's tokens, and only they");
    assert!(
        answer["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["outcome"] == "done" && t["token"]["status"] == "SUSPENDED")
    );
    assert_eq!(ops.kit.mock_token(&watch).await["status"], "ACTIVE", "the watch keeps paying");
    for token in &phone {
        assert_eq!(ops.kit.mock_token(token).await["status"], "SUSPENDED");
    }

    // The same request again under its key: the stored answer, no second action.
    let again = ops.post(&path, &desk, &lost, Some("lost-1")).await;
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(expect_json(again, 200).await, answer);
    // Under a new key: the issuer already holds them suspended, nothing left to do.
    let twice = expect_json(ops.post(&path, &desk, &lost, Some("lost-2")).await, 200).await;
    assert_eq!((twice["done"].as_u64(), twice["skipped"].as_u64()), (Some(0), Some(2)), "{twice}");

    // TMP's token events came back with the code and the initiator, into the token's history.
    ops.kit.inner.mock_idle().await;
    let history = expect_json(ops.get(&format!("/ops/v1/tokens/{phone_gpay}/history"), &desk).await, 200).await;
    let last = history["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["status"], &last["reasonCode"], &last["initiator"], &last["reason"], &last["applied"]),
        (&json!("SUSPENDED"), &json!("LOST"), &json!("ISSUER"), &json!("phone reported lost"), &json!(true)),
        "{history}"
    );
    let first = &history["events"][0];
    assert_eq!((&first["status"], &first["initiator"]), (&json!("ACTIVE"), &json!("TOKEN_REQUESTOR")), "{history}");
    // And the decision that created the token, through the tokenization TMP named.
    assert!(history["tokenizationId"].as_str().is_some_and(|id| !id.is_empty()), "{history}");
    let decision = &history["decisions"][0];
    assert_eq!(
        (&decision["operation"], &decision["decision"], &decision["standIn"]),
        (&json!("verify_card"), &json!("APPROVED"), &json!(false)),
        "{history}"
    );
    assert!(decision.get("panLast4").is_none(), "the card's digits stay in the decision audit");

    // One audit row per token tried, with the code; and one for the request.
    let audit = expect_json(ops.get("/ops/v1/audit?limit=50", &desk).await, 200).await;
    let items = audit["items"].as_array().unwrap();
    let per_token: Vec<_> = items.iter().filter(|e| e["action"] == "token.suspend").collect();
    assert!(per_token.iter().all(|e| e["reason"] == "LOST: phone reported lost" && e["cardId"] == card.as_str()));
    let outcomes = |outcome: &str| per_token.iter().filter(|e| e["outcome"] == outcome).count();
    // The first run suspended both; the second tried both and TMP had nothing to do.
    assert_eq!((outcomes("ok"), outcomes("INVALID_TOKEN_STATE")), (2, 2), "{audit}");
    assert_eq!(items.iter().filter(|e| e["action"] == "card_tokens.suspend").count(), 2, "one per request run");

    // Found: one call resumes them, by wallet this time (the Samsung Pay one only).
    let found = json!({"reasonCode": "FOUND", "reason": "phone found", "wallet": "SAMSUNG_PAY"});
    let resumed =
        expect_json(ops.post(&format!("/ops/v1/cards/{card}/tokens/resume"), &desk, &found, None).await, 200).await;
    assert_eq!((resumed["done"].as_u64(), resumed["tokens"].as_array().unwrap().len()), (Some(1), 1), "{resumed}");
    assert_eq!(ops.kit.mock_token(&phone_samsung).await["status"], "ACTIVE");
    assert_eq!(ops.kit.mock_token(&phone_gpay).await["status"], "SUSPENDED");
    let request_rows = expect_json(ops.get("/ops/v1/audit?limit=50", &desk).await, 200).await;
    let filtered = request_rows["items"].as_array().unwrap().iter().find(|e| e["action"] == "card_tokens.suspend");
    assert_eq!(
        filtered.unwrap()["reason"],
        "LOST: phone reported lost (deviceId dev-phone-1)",
        "the filter is audited"
    );

    // The whole card: what is suspended resumes, what is active is not tried.
    let all = json!({"reasonCode": "FOUND", "reason": "case closed"});
    let resume = format!("/ops/v1/cards/{card}/tokens/resume");
    let resumed = expect_json(ops.post(&resume, &desk, &all, None).await, 200).await;
    assert_eq!((resumed["done"].as_u64(), resumed["skipped"].as_u64()), (Some(1), Some(2)), "{resumed}");
    let watch_result = resumed["tokens"].as_array().unwrap().iter().find(|t| t["tokenId"] == watch.as_str()).unwrap();
    assert_eq!(watch_result["outcome"], "skipped");
    assert!(watch_result["error"]["message"].as_str().unwrap().starts_with("not tried"), "{watch_result}");
    // The wallet holds the watch's token suspended on its own: the issuer cannot resume it —
    // a failure, not "nothing to do".
    ops.kit.control(&format!("/_mock/v1/simulate/tokens/{watch}/wallet/suspend"), json!({})).await;
    let watch_only = json!({"reasonCode": "FOUND", "reason": "watch found", "deviceId": "dev-watch-2"});
    let refused = expect_json(ops.post(&resume, &desk, &watch_only, None).await, 200).await;
    assert_eq!((refused["done"].as_u64(), refused["failed"].as_u64()), (Some(0), Some(1)), "{refused}");
    assert_eq!(refused["tokens"][0]["error"]["code"], "INVALID_TOKEN_STATE", "{refused}");
    assert_eq!(ops.kit.mock_token(&watch).await["status"], "SUSPENDED");
    ops.kit.control(&format!("/_mock/v1/simulate/tokens/{watch}/wallet/resume"), json!({})).await;

    // Bad input is refused before TMP is asked.
    for body in [
        json!({"reasonCode": "BORED", "reason": "x"}),
        json!({"reasonCode": "LOST"}),
        json!({"reasonCode": "LOST", "reason": "x", "deviceId": "a device"}),
        json!({"reasonCode": "LOST", "reason": "x", "wallet": "PAYPAL"}),
        json!({"reasonCode": "LOST", "reason": "x", "devceId": "dev-phone-1"}),
    ] {
        expect_error(ops.post(&path, &desk, &body, None).await, 422, "VALIDATION_FAILED").await;
    }
    expect_error(
        ops.post(&format!("/ops/v1/cards/{card}/tokens/activate"), &desk, &lost, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(ops.post("/ops/v1/cards/nobody/tokens/suspend", &desk, &lost, None).await, 404, "NOT_FOUND").await;
    assert_eq!(ops.kit.mock_token(&watch).await["status"], "ACTIVE");
}

/// TMP loses token events (the mock's `discard` fault): the mirror drifts — a suspension it
/// never heard of, a token it never saw — a read of the card's tokens shows how far, and
/// reconciliation repairs it from TMP's list, once, through the ops API and the CLI alike.
#[tokio::test]
async fn lost_token_events_make_the_mirror_drift_and_reconciliation_repairs_it() {
    let ops = Ops::spawn().await;
    let (_, desk) = ops.key("back office", &["tokens:read", "tokens:write", "audit:read"], None).await;
    let first = ops.kit.green_token().await;
    let card = ops.kit.adapter_token(&first).await.card_id;
    let lose = |times: u32| json!({"route": "POST /issuer-api/v1/tokens/events", "discard": true, "times": times});
    ops.kit.control("/_mock/v1/faults", lose(2)).await;
    // The wallet suspends the first token; a second token is made: TMP loses both events.
    ops.kit.control(&format!("/_mock/v1/simulate/tokens/{first}/wallet/suspend"), json!({})).await;
    let second = ops.kit.simulate_green().await;
    ops.kit.inner.mock_idle().await;
    assert_eq!(ops.kit.adapter_token(&first).await.status, TokenStatus::Active, "the mirror missed the suspension");
    assert!(ops.kit.store.find_token(&second).await.unwrap().is_none(), "and the new token");

    let path = format!("/ops/v1/cards/{card}/tokens/reconcile");
    let report =
        expect_json(ops.post(&path, &desk, &json!({"reason": "customer says the token is off"}), None).await, 200)
            .await;
    let mut drift: Vec<_> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["tokenId"].as_str().unwrap().to_owned(),
                d["kind"].clone(),
                d["tmpStatus"].clone(),
                d["repaired"].clone(),
            )
        })
        .collect();
    drift.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (first.clone(), json!("status"), json!("SUSPENDED"), json!(true)),
        (second.clone(), json!("missing"), json!("ACTIVE"), json!(true)),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(drift, expected, "{report}");
    assert_eq!(ops.kit.adapter_token(&first).await.status, TokenStatus::Suspended);
    assert_eq!(ops.kit.adapter_token(&second).await.status, TokenStatus::Active);
    // The repair is in the token's history, and the issuer's sinks hear of it.
    let history = expect_json(ops.get(&format!("/ops/v1/tokens/{first}/history"), &desk).await, 200).await;
    let last = history["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["status"], &last["reason"], &last["applied"]),
        (&json!("SUSPENDED"), &json!("RECONCILED_WITH_TMP"), &json!(true))
    );
    let metrics =
        ops.kit.client.get(format!("{}/metrics", ops.kit.adapter_url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tmp_adapter_token_drift_total{kind=\"status\"} 1"), "{metrics}");
    assert!(metrics.contains("tmp_adapter_token_drift_total{kind=\"missing\"} 1"), "{metrics}");
    // Nothing left: the same reconciliation finds no drift.
    let again = expect_json(ops.post(&path, &desk, &json!({}), None).await, 200).await;
    assert_eq!(again["drift"], json!([]), "{again}");
    assert_eq!(again["checked"], 2);

    // A read of the card's tokens says how far the mirror is off, and writes nothing: the
    // wallet resumes, TMP loses the event.
    ops.kit.control("/_mock/v1/faults", lose(1)).await;
    ops.kit.control(&format!("/_mock/v1/simulate/tokens/{first}/wallet/resume"), json!({})).await;
    ops.kit.inner.mock_idle().await;
    assert_eq!(ops.kit.adapter_token(&first).await.status, TokenStatus::Suspended);
    assert_eq!(ops.tokens(&card, &desk).await["mirrorDrift"], 1);
    assert_eq!(ops.kit.adapter_token(&first).await.status, TokenStatus::Suspended, "a read repairs nothing");

    // The CLI: the same repair for every card the mirror holds.
    ops.kit.control("/_mock/v1/faults", lose(1)).await;
    ops.kit.control(&format!("/_mock/v1/simulate/tokens/{second}/remove"), json!({})).await;
    ops.kit.inner.mock_idle().await;
    assert_eq!(ops.kit.adapter_token(&second).await.status, TokenStatus::Active);
    let repair = tmp_adapter::ops::tokens::Mode::Repair { deactivate_unknown: false };
    let code = tmp_adapter::cli::reconcile_command(ops.kit.inner.settings(), None, true, repair).await.unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert_eq!(ops.kit.adapter_token(&second).await.status, TokenStatus::Deactivated);
    assert_eq!(ops.kit.adapter_token(&first).await.status, TokenStatus::Active, "the read's drift too");
    assert_eq!(ops.tokens(&card, &desk).await["mirrorDrift"], 0);
    let audit = expect_json(ops.get("/ops/v1/audit?limit=20", &desk).await, 200).await;
    let runs = audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "tokens.reconcile").count();
    assert_eq!(runs, 3, "two through the ops API, one by the CLI: {audit}");
    // Asked to deactivate what TMP does not list, the run is audited as that decision.
    let forced = expect_json(ops.post(&path, &desk, &json!({"deactivateUnknown": true}), None).await, 200).await;
    assert_eq!(forced["drift"], json!([]), "{forced}");
    let audit = expect_json(ops.get("/ops/v1/audit?limit=20", &desk).await, 200).await;
    let newest = &audit["items"][0];
    assert_eq!(newest["action"], "tokens.reconcile.deactivate_unknown", "{audit}");
}

/// The cardholder's code expired (the mock's clock moves ahead): the bank's app sees it on the
/// token, asks for a new one by e-mail through the ops API, the new code reaches the issuer's
/// sink, the old one is dead, a wrong try still counts, and the new code activates the token.
#[tokio::test]
async fn an_expired_activation_code_is_resent_by_another_channel_and_activates_the_token() {
    let ops = Ops::spawn().await;
    let (_, app) = ops.key("mobile app backend", &["tokens:read", "tokens:write"], None).await;
    let answer = ops
        .kit
        .simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY", "walletScore": 2}))
        .await;
    assert_eq!(answer["path"], "YELLOW", "{answer}");
    let (token, card) = (answer["tokenId"].as_str().unwrap().to_owned(), answer["cardId"].as_str().unwrap().to_owned());
    let first_code = ops.kit.delivered_otp(answer["activationNotificationId"].as_str().unwrap()).await;
    let shown = token_in(&ops.tokens(&card, &app).await, &token).clone();
    assert_eq!(shown["status"], "INACTIVE");
    assert_eq!(
        (shown["activationCode"]["attemptsLeft"].as_u64(), shown["activationCode"]["channel"].as_str()),
        (Some(3), Some("SMS")),
        "{shown}"
    );

    // A wrong try, then the code expires.
    let otp = |code: String| {
        let ops = &ops;
        let path = format!("/_mock/v1/simulate/tokens/{token}/otp");
        async move {
            ops.kit.client.post(format!("{}{path}", ops.kit.mock_url)).json(&json!({"otp": code})).send().await.unwrap()
        }
    };
    let wrong = if first_code == "000000" { "111111" } else { "000000" };
    assert_eq!(expect_json(otp(wrong.into()).await, 200).await["result"], "WRONG_CODE");
    let clock = ops.kit.control("/_mock/v1/clock/advance", json!({"secs": 3600})).await;
    assert_eq!(clock["offsetSecs"], 3600);
    expect_error(otp(first_code.clone()).await, 409, "CONFLICT").await;

    // A new code by e-mail.
    let path = format!("/ops/v1/tokens/{token}/activation-code/resend");
    let why = json!({"channel": "EMAIL", "reason": "cardholder did not get the SMS in time"});
    let resent = expect_json(ops.post(&path, &app, &why, Some("resend-1")).await, 200).await;
    assert_eq!(
        (resent["status"].as_str(), resent["activationCode"]["channel"].as_str()),
        (Some("INACTIVE"), Some("EMAIL")),
        "{resent}"
    );
    assert_eq!(resent["activationCode"]["attemptsLeft"], 2, "the wrong try still counts: {resent}");
    let again = ops.post(&path, &app, &why, Some("resend-1")).await;
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"), "no third code");
    ops.kit.inner.mock_idle().await;
    // The new code reached the issuer's sink (the adapter's relay works on its own), by e-mail.
    let started = std::time::Instant::now();
    let codes = loop {
        let codes: Vec<_> = ops
            .kit
            .inner
            .sink
            .deliveries()
            .into_iter()
            .filter(|d| d.data["tokenId"] == token.as_str() && d.event_type == "notification.ACTIVATION_CODE_DELIVERY")
            .collect();
        if codes.len() >= 2 || started.elapsed() > std::time::Duration::from_secs(10) {
            break codes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(codes.len(), 2, "the first code and the resent one");
    let resent_delivery = codes.iter().find(|d| d.data["channel"] == "EMAIL").expect("the e-mailed code");
    let new_code = resent_delivery.otp.as_ref().expect("the code").expose().to_owned();
    // The old code is dead; the new one activates.
    if new_code != first_code {
        assert_eq!(expect_json(otp(first_code).await, 200).await["result"], "WRONG_CODE");
    }
    assert_eq!(expect_json(otp(new_code).await, 200).await["result"], "ACCEPTED");
    ops.kit.inner.mock_idle().await;
    assert_eq!(ops.kit.adapter_token(&token).await.status, TokenStatus::Active);

    // Not waiting for a code any more: 409; PUSH is not a channel for a code.
    expect_error(ops.post(&path, &app, &json!({"reason": "again"}), None).await, 409, "INVALID_TOKEN_STATE").await;
    expect_error(
        ops.post(&path, &app, &json!({"channel": "PUSH", "reason": "x"}), None).await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
    expect_error(ops.post(&path, &app, &json!({"channel": "EMAIL"}), None).await, 422, "VALIDATION_FAILED").await;
}

#[tokio::test]
async fn samsung_pay_and_web_push_provisioning_end_in_active_tokens() {
    let ops = Ops::spawn().await;
    ops.seed("card-active", PAN_ACTIVE, "ACTIVE").await;
    let (_, app) = ops.key("mobile app backend", &["provisioning", "tokens:read"], None).await;

    // Samsung Pay: TMP signs, the wallet's addCard pushes the payload, the issuer approves.
    let signed = expect_json(
        ops.post(
            "/ops/v1/cards/card-active/push-provisioning/samsung-pay",
            &app,
            &json!({"deviceId": "galaxy-1", "walletUserId": "wu-1", "reason": "tapped Add to Samsung Wallet"}),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(signed["wallet"], "SAMSUNG_PAY");
    let payload = signed["provisioningPayload"].as_str().expect("the provisioning payload");
    assert_eq!(payload.split('.').count(), 5, "a compact JWE to the wallet");
    let pushed = ops.wallet_push(json!({"payload": payload, "approach": "external"})).await;
    assert_eq!((pushed["path"].as_str(), pushed["provisioningMethod"].as_str()), (Some("GREEN"), Some("PUSH")));
    let samsung = pushed["tokenId"].as_str().expect("token").to_owned();
    assert_eq!(token_in(&ops.tokens("card-active", &app).await, &samsung)["wallet"], "SAMSUNG_PAY");
    // A card number where an id belongs is refused, and not repeated.
    let bad = ops
        .post("/ops/v1/cards/card-active/push-provisioning/samsung-pay", &app, &json!({"deviceId": PAN_ACTIVE}), None)
        .await;
    let body = expect_error(bad, 422, "VALIDATION_FAILED").await;
    assert!(!body.to_string().contains(PAN_ACTIVE), "{body}");

    // Web: the issuer's website gets the wallet's web flow; the cardholder adds the card there
    // and comes back to the callback with the token.
    let web = |wallet: &str, callback: &str| json!({"wallet": wallet, "callbackUrl": callback});
    for (body, problem) in [
        (web("APPLE_PAY", "https://bank.example/back"), "`wallet` of a web push"),
        (web("GOOGLE_PAY", "http://bank.example/back"), "`callbackUrl` must be an https:// URL"),
        (web("GOOGLE_PAY", &format!("https://bank.example/back?c={PAN_ACTIVE}")), "must not hold a card number"),
        (web("GOOGLE_PAY", "https://bank.example.evil.example/back"), "a host of ops.web_push_callback_hosts"),
        (web("GOOGLE_PAY", "https://bank.example;sandbox/back"), "letters, digits"),
    ] {
        let answer = ops.post("/ops/v1/cards/card-active/push-provisioning/web", &app, &body, None).await;
        let error = expect_error(answer, 422, "VALIDATION_FAILED").await;
        assert!(error["error"]["message"].as_str().unwrap_or_default().contains(problem), "{error}");
        assert!(!error.to_string().contains(PAN_ACTIVE), "{error}");
    }
    let start = |callback: &'static str| {
        let ops = &ops;
        let app = app.clone();
        async move {
            let answer = ops
                .post("/ops/v1/cards/card-active/push-provisioning/web", &app, &web("GOOGLE_PAY", callback), None)
                .await;
            expect_json(answer, 200).await
        }
    };
    let signed = start("https://bank.example/cards/added?session=s1").await;
    assert_eq!(signed["wallet"], "GOOGLE_PAY");
    assert!(signed["expiresAt"].is_string(), "{signed}");
    let push_url = signed["pushUrl"].as_str().expect("the web flow").to_owned();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let page = browser.get(&push_url).send().await.expect("the page");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("form-action 'self' https://bank.example") && csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains(&format!("•••• {}", &PAN_ACTIVE[12..])) && !html.contains(PAN_ACTIVE), "{html}");
    let form = |body: &'static str| {
        browser.post(&push_url).header("content-type", "application/x-www-form-urlencoded").body(body).send()
    };
    // Terms not accepted: nothing happens.
    assert_eq!(form("deviceName=Laptop&action=add").await.expect("post").status(), 422);
    let added = form("deviceName=Laptop&terms=accepted&action=add").await.expect("post");
    assert_eq!(added.status(), 303);
    let location = added.headers()["location"].to_str().expect("location").to_owned();
    let token = location
        .strip_prefix("https://bank.example/cards/added?session=s1&result=ADDED&tokenId=")
        .unwrap_or_else(|| panic!("back to the callback with the token: {location}"))
        .to_owned();
    ops.kit.inner.mock_idle().await;
    let listed = ops.tokens("card-active", &app).await;
    let mirrored = token_in(&listed, &token);
    assert_eq!((mirrored["status"].as_str(), mirrored["deviceName"].as_str()), (Some("ACTIVE"), Some("Laptop")));
    // The receipt works once.
    assert_eq!(form("terms=accepted&action=add").await.expect("post").status(), 409);
    assert_eq!(browser.get(&push_url).send().await.expect("page").status(), 409);

    // Cancelled: back with CANCELLED, no token.
    let cancelled = start("https://bank.example/back").await;
    let url = cancelled["pushUrl"].as_str().expect("url").to_owned();
    let answer = browser.post(&url).header("content-type", "application/x-www-form-urlencoded").body("action=cancel");
    let answer = answer.send().await.expect("post");
    assert_eq!(answer.headers()["location"], "https://bank.example/back?result=CANCELLED");

    // Expired by the mock's clock: refused.
    let late = start("https://bank.example/back").await;
    ops.kit.control("/_mock/v1/clock/advance", json!({"secs": 3600})).await;
    let url = late["pushUrl"].as_str().expect("url");
    assert_eq!(browser.get(url).send().await.expect("page").status(), 410);
    assert_eq!(ops.tokens("card-active", &app).await["tokens"].as_array().map(Vec::len), Some(2));
}
