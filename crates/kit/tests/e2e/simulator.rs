//! Every simulator path against the real adapter, in both approaches, asserting both sides.

use serde_json::json;
use tmp_protocol::enums::TokenStatus;
use tmp_protocol::issuer_api::{NOTIFICATIONS_PATH, TOKEN_EVENTS_PATH, VERIFY_CARD_PATH};
use tmp_protocol::trace_context::{TRACEPARENT, TraceParent};

use crate::helpers::{EXPIRY, Kit, PAN_ACTIVE, PAN_BLOCKED, PAN_DATACORE};

fn cvc(kit: &Kit, pan: &str) -> String {
    let pan = tmp_protocol::sensitive::Pan::parse(pan).expect("pan");
    let expiry = tmp_protocol::sensitive::Expiry::parse(EXPIRY).expect("expiry");
    kit.adapter_keys.cvk.as_ref().expect("cvk").cvc2(&pan, &expiry).expose().to_owned()
}

#[tokio::test]
async fn external_green_google_pay_manual() {
    let kit = Kit::spawn().await;
    let token_id = kit.green_token().await;
    assert_eq!(kit.mock_token(&token_id).await["status"], "ACTIVE");
    // Usable at once: the issuer hears so, as after an activation code.
    told_activated(&kit, &token_id).await;
    let mirror = kit.adapter_token(&token_id).await;
    assert_eq!(
        (mirror.status, mirror.card_id.as_str(), mirror.wallet.as_str()),
        (TokenStatus::Active, "card-active", "GOOGLE_PAY")
    );
    let decisions = kit.store.decisions_for_card("card-active", 10).await.expect("audit");
    assert_eq!(decisions.len(), 1);
    assert_eq!((decisions[0].operation.as_str(), decisions[0].decision.as_str()), ("verify_card", "APPROVED"));
    // The journal never holds the PAN.
    let journal = kit.get("/_mock/v1/requests").await.to_string();
    assert!(!journal.contains(PAN_ACTIVE) && journal.contains("************1111"), "{journal}");
}

#[tokio::test]
async fn external_green_apple_pay_checks_the_cvc_first() {
    let kit = Kit::spawn().await;
    let cvc = cvc(&kit, PAN_ACTIVE);
    let answer = kit
        .simulate(
            json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY, "cvc": cvc}, "wallet": "APPLE_PAY", "tsp": "VTS"}),
        )
        .await;
    assert_eq!((answer["path"].as_str(), answer["cvcResult"].as_str()), (Some("GREEN"), Some("MATCH")), "{answer}");
    kit.inner.mock_idle().await;
    let token_id = answer["tokenId"].as_str().expect("token");
    assert!(token_id.starts_with("DNITHE"));
    let mirror = kit.adapter_token(token_id).await;
    assert_eq!((mirror.status, mirror.wallet.as_str(), mirror.tsp.as_str()), (TokenStatus::Active, "APPLE_PAY", "VTS"));
    let mut operations: Vec<_> = kit
        .store
        .decisions_for_card("card-active", 10)
        .await
        .expect("audit")
        .into_iter()
        .map(|d| d.operation)
        .collect();
    operations.sort();
    assert_eq!(operations, ["verify_card", "verify_cvc"]);
    assert!(!kit.get("/_mock/v1/requests").await.to_string().contains(&format!("\"{cvc}\"")));
}

#[tokio::test]
async fn external_apple_pay_with_a_wrong_cvc_is_red() {
    let kit = Kit::spawn().await;
    let right = cvc(&kit, PAN_ACTIVE);
    let wrong = if right == "000" { "111" } else { "000" };
    let answer =
        kit.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY, "cvc": wrong}, "wallet": "APPLE_PAY"})).await;
    assert_eq!((answer["path"].as_str(), answer["reason"].as_str()), (Some("RED"), Some("CVC_NO_MATCH")), "{answer}");
    assert!(answer["token"].is_null());
}

/// Yellow: ACTIVATION_CODE_DELIVERY reaches the adapter; the cardholder types what it got.
async fn yellow(kit: &Kit, body: serde_json::Value) -> (String, String) {
    let answer = kit.simulate(body).await;
    assert_eq!(answer["path"], "YELLOW", "{answer}");
    kit.inner.mock_idle().await;
    let token_id = answer["tokenId"].as_str().expect("token").to_owned();
    assert_eq!(kit.adapter_token(&token_id).await.status, TokenStatus::Inactive);
    let notification_id = answer["activationNotificationId"].as_str().expect("notification id");
    let n = kit.store.find_notification(notification_id).await.expect("store").expect("notification");
    assert_eq!(n.notification_type, "ACTIVATION_CODE_DELIVERY");
    assert_eq!(n.token_id.as_deref(), Some(token_id.as_str()));
    let otp = kit.delivered_otp(notification_id).await;
    assert_eq!(otp.len(), 6);
    // The inbox view (what `tmp-kit up`'s dev inbox serves) shows the code decrypted, and not
    // its JWE.
    let inbox: serde_json::Value =
        kit.client.get(kit.inner.sink.inbox_url()).send().await.expect("inbox").json().await.expect("json");
    let shown = inbox["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .find(|d| d["tokenId"] == token_id.as_str() && d["type"] == "notification.ACTIVATION_CODE_DELIVERY")
        .cloned()
        .unwrap_or_default();
    assert_eq!(shown["otp"], otp.as_str(), "{inbox}");
    assert!(shown["data"].get("encryptedPayload").is_none(), "{shown}");
    (token_id, otp)
}

async fn right_otp_activates(kit: &Kit, token_id: &str, otp: &str) {
    let answer = kit.control(&format!("/_mock/v1/simulate/tokens/{token_id}/otp"), json!({"otp": otp})).await;
    assert_eq!(answer["result"], "ACCEPTED", "{answer}");
    kit.inner.mock_idle().await;
    assert_eq!(kit.mock_token(token_id).await["status"], "ACTIVE");
    assert_eq!(kit.adapter_token(token_id).await.status, TokenStatus::Active);
    told_activated(kit, token_id).await;
}

/// The issuer heard `TOKEN_ACTIVATED` for the token exactly once, and stored it.
async fn told_activated(kit: &Kit, token_id: &str) {
    let sent = kit.sent(tmp_protocol::issuer_api::NOTIFICATIONS_PATH).await;
    let activated: Vec<_> =
        sent.iter().filter(|e| e["body"]["type"] == "TOKEN_ACTIVATED" && e["body"]["tokenId"] == token_id).collect();
    assert_eq!(activated.len(), 1, "TOKEN_ACTIVATED for {token_id}: {sent:?}");
    let id = activated[0]["body"]["notificationId"].as_str().expect("id");
    let stored = kit.store.find_notification(id).await.expect("store").expect("stored");
    assert_eq!(stored.token_id.as_deref(), Some(token_id));
}

async fn wrong_otps_deactivate(kit: &Kit, token_id: &str, otp: &str) {
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    for left in [2, 1] {
        let answer = kit.control(&format!("/_mock/v1/simulate/tokens/{token_id}/otp"), json!({"otp": wrong})).await;
        assert_eq!((answer["result"].as_str(), answer["attemptsLeft"].as_u64()), (Some("WRONG_CODE"), Some(left)));
    }
    let answer = kit.control(&format!("/_mock/v1/simulate/tokens/{token_id}/otp"), json!({"otp": wrong})).await;
    assert_eq!(answer["result"], "ATTEMPTS_EXCEEDED");
    kit.inner.mock_idle().await;
    assert_eq!(kit.mock_token(token_id).await["status"], "DEACTIVATED");
    assert_eq!(kit.adapter_token(token_id).await.status, TokenStatus::Deactivated);
    // Even the right code is refused now.
    let late = kit
        .client
        .post(format!("{}/_mock/v1/simulate/tokens/{token_id}/otp", kit.mock_url))
        .json(&json!({"otp": otp}))
        .send()
        .await
        .expect("request");
    assert_eq!(late.status(), 409);
}

#[tokio::test]
async fn external_yellow_with_the_right_otp() {
    let kit = Kit::spawn().await;
    let body = json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY", "walletScore": 2});
    let (token_id, otp) = yellow(&kit, body).await;
    let decisions = kit.store.decisions_for_card("card-active", 10).await.expect("audit");
    assert_eq!(decisions[0].decision, "REQUIRE_ADDITIONAL_AUTHENTICATION");
    // The wallet's risk context, as the mock sends it: a reason for the low score, a typed card.
    assert_eq!(
        (decisions[0].recommendation_reasons.as_deref(), decisions[0].pan_source.as_deref()),
        (Some(r#"["LOW_ACCOUNT_SCORE"]"#), Some("KEY_ENTERED"))
    );
    right_otp_activates(&kit, &token_id, &otp).await;
}

/// One tokenization is one W3C trace: the simulator's request (as TMP's own trace), the calls to
/// the issuer, the adapter's outbox and its deliveries to the issuer's sink all carry its trace
/// id; a tokenization begun without one gets a trace of its own.
#[tokio::test]
async fn one_tokenization_is_one_trace_from_tmp_through_the_adapter_to_the_sink() {
    let kit = Kit::spawn().await;
    let traced = |trace: Option<&TraceParent>| {
        let mut request = kit
            .client
            .post(format!("{}/_mock/v1/simulate/tokenizations", kit.mock_url))
            .json(&json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY", "walletScore": 2}));
        if let Some(trace) = trace {
            request = request.header(TRACEPARENT, trace.to_string());
        }
        async move { request.send().await.expect("simulate").json::<serde_json::Value>().await.expect("json") }
    };
    let trace = TraceParent::start();
    let (first, second) = (traced(Some(&trace)).await, traced(None).await);
    kit.inner.mock_idle().await;
    let otp_of = |answer: &serde_json::Value| answer["activationNotificationId"].as_str().expect("id").to_owned();
    kit.delivered_otp(&otp_of(&first)).await;
    kit.delivered_otp(&otp_of(&second)).await;

    let journal = kit.get("/_mock/v1/requests").await;
    let traces_of = |token_id: &str, path: &str| -> Vec<String> {
        journal["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|e| e["direction"] == "sent" && e["path"] == path && e["body"]["tokenId"] == token_id)
            .map(|e| e["traceId"].as_str().expect("every call names its trace").to_owned())
            .collect()
    };
    let first_token = first["tokenId"].as_str().expect("token");
    let notifications = traces_of(first_token, NOTIFICATIONS_PATH);
    assert!(!notifications.is_empty(), "{journal}");
    assert!(notifications.iter().all(|t| *t == trace.trace_id()), "{notifications:?} vs {}", trace.trace_id());
    let events = traces_of(first_token, TOKEN_EVENTS_PATH);
    assert!(!events.is_empty() && events.iter().all(|t| *t == trace.trace_id()), "{events:?}");
    let verify: Vec<_> = journal["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|e| e["direction"] == "sent" && e["path"] == VERIFY_CARD_PATH)
        .map(|e| e["traceId"].as_str().expect("trace").to_owned())
        .collect();
    assert_eq!(verify.len(), 2, "{journal}");
    assert_eq!(verify[0], trace.trace_id(), "verify-card continues TMP's trace");
    assert_ne!(verify[1], trace.trace_id(), "a tokenization without a trace starts its own");

    // The adapter's deliveries to the issuer's sink continue the trace of the call that caused
    // them, through the outbox.
    for (answer, expected) in [(&first, trace.trace_id()), (&second, verify[1].clone())] {
        let token_id = answer["tokenId"].as_str().expect("token");
        let deliveries: Vec<_> =
            kit.inner.sink.deliveries().into_iter().filter(|d| d.data["tokenId"] == token_id).collect();
        assert!(deliveries.len() >= 2, "an activation code and a status change for {token_id}");
        for d in deliveries {
            assert_eq!(d.trace_id.as_deref(), Some(expected.as_str()), "{} of {token_id}", d.event_type);
        }
    }
}

#[tokio::test]
async fn external_yellow_with_wrong_otps() {
    let kit = Kit::spawn().await;
    let body = json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY", "deviceScore": 2});
    let (token_id, otp) = yellow(&kit, body).await;
    wrong_otps_deactivate(&kit, &token_id, &otp).await;
}

#[tokio::test]
async fn external_red_for_a_blocked_card() {
    let kit = Kit::spawn().await;
    let answer = kit.simulate(json!({"card": {"pan": PAN_BLOCKED, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
    assert_eq!((answer["path"].as_str(), answer["reason"].as_str()), (Some("RED"), Some("CARD_BLOCKED")), "{answer}");
    assert!(answer["token"].is_null());
    kit.inner.mock_idle().await;
    assert!(kit.get("/_mock/v1/tokens").await["tokens"].as_array().expect("tokens").is_empty());
    let decisions = kit.store.decisions_for_card("card-blocked", 10).await.expect("audit");
    assert_eq!(decisions[0].decision, "DECLINED");
    assert!(kit.sent(tmp_protocol::issuer_api::TOKEN_EVENTS_PATH).await.is_empty());
}

#[tokio::test]
async fn datacore_green_apple_pay_without_calling_verify_card() {
    let kit = Kit::spawn().await;
    kit.load_datacore_card("dc-1", PAN_DATACORE, EXPIRY, "ACTIVE").await;
    let answer = kit
        .simulate(
            json!({"approach": "datacore", "card": {"pan": PAN_DATACORE, "expiry": EXPIRY}, "wallet": "APPLE_PAY"}),
        )
        .await;
    assert_eq!((answer["path"].as_str(), answer["cardId"].as_str()), (Some("GREEN"), Some("dc-1")), "{answer}");
    kit.inner.mock_idle().await;
    let token_id = answer["tokenId"].as_str().expect("token");
    assert_eq!(kit.adapter_token(token_id).await.status, TokenStatus::Active);
    assert!(kit.sent(tmp_protocol::issuer_api::VERIFY_CARD_PATH).await.is_empty());
    assert!(kit.store.decisions_for_card("dc-1", 10).await.expect("audit").is_empty());
}

#[tokio::test]
async fn datacore_apple_pay_checks_a_typed_cvc_at_the_issuer() {
    let kit = Kit::spawn().await;
    // DataCore holds no CVC: TMP asks the issuer, whose card source knows the card.
    kit.load_datacore_card("card-active", PAN_ACTIVE, EXPIRY, "ACTIVE").await;
    let right = cvc(&kit, PAN_ACTIVE);
    let wrong = if right == "000" { "111" } else { "000" };
    let tokenize = |cvc: &str| json!({"approach": "datacore", "card": {"pan": PAN_ACTIVE, "expiry": EXPIRY, "cvc": cvc}, "wallet": "APPLE_PAY"});
    let answer = kit.simulate(tokenize(wrong)).await;
    assert_eq!((answer["path"].as_str(), answer["reason"].as_str()), (Some("RED"), Some("CVC_NO_MATCH")), "{answer}");
    let answer = kit.simulate(tokenize(&right)).await;
    assert_eq!((answer["path"].as_str(), answer["cvcResult"].as_str()), (Some("GREEN"), Some("MATCH")), "{answer}");
    kit.inner.mock_idle().await;
    assert_eq!(kit.sent(tmp_protocol::issuer_api::VERIFY_CVC_PATH).await.len(), 2);
    assert!(kit.sent(tmp_protocol::issuer_api::VERIFY_CARD_PATH).await.is_empty());
    let decisions = kit.store.decisions_for_card("card-active", 10).await.expect("audit");
    let mut results: Vec<_> = decisions.iter().map(|d| (d.operation.as_str(), d.cvc_result.as_str())).collect();
    results.sort();
    assert_eq!(results, [("verify_cvc", "MATCH"), ("verify_cvc", "NO_MATCH")]);
}

/// The issuer's CVC check failing during a DataCore Apple Pay tokenization: TMP stands in, as in
/// the external approach — no token on a CVC nobody checked.
#[tokio::test]
async fn datacore_apple_pay_stands_in_when_the_issuers_cvc_check_fails() {
    let kit = Kit::spawn().await;
    kit.load_datacore_card("card-active", PAN_ACTIVE, EXPIRY, "ACTIVE").await;
    kit.control("/_mock/v1/faults", json!({"route": "POST /issuer-api/v1/cards/verify-cvc", "error_status": 503}))
        .await;
    let right = cvc(&kit, PAN_ACTIVE);
    let answer = kit
        .simulate(json!({"approach": "datacore", "card": {"pan": PAN_ACTIVE, "expiry": EXPIRY, "cvc": right}, "wallet": "APPLE_PAY"}))
        .await;
    assert_eq!(answer["standIn"], true, "{answer}");
    assert!(answer["reason"].as_str().is_some_and(|r| r.starts_with("STAND_IN_")), "{answer}");
    assert_ne!(answer["path"], "GREEN", "a CVC nobody checked does not make an active token: {answer}");
    let stand_ins = kit.get("/_mock/v1/requests").await["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "stand_in")
        .count();
    assert_eq!(stand_ins, 1, "the journal records the stand-in");
}

#[tokio::test]
async fn datacore_yellow_right_then_wrong_otp() {
    let kit = Kit::spawn().await;
    kit.load_datacore_card("dc-1", PAN_DATACORE, EXPIRY, "ACTIVE").await;
    let body = json!({"approach": "datacore", "cardId": "dc-1", "wallet": "GOOGLE_PAY", "walletScore": 2});
    let (token_id, otp) = yellow(&kit, body.clone()).await;
    right_otp_activates(&kit, &token_id, &otp).await;
    let (token_id, otp) = yellow(&kit, body).await;
    wrong_otps_deactivate(&kit, &token_id, &otp).await;
}

#[tokio::test]
async fn datacore_red_for_unknown_blocked_or_mismatching_cards() {
    let kit = Kit::spawn().await;
    kit.load_datacore_card("dc-1", PAN_DATACORE, EXPIRY, "BLOCKED").await;
    for (card, reason) in [
        (json!({"pan": PAN_DATACORE, "expiry": EXPIRY}), "CARD_BLOCKED"),
        (json!({"pan": PAN_ACTIVE, "expiry": EXPIRY}), "CARD_NOT_FOUND"),
    ] {
        let answer = kit.simulate(json!({"approach": "datacore", "card": card, "wallet": "GOOGLE_PAY"})).await;
        assert_eq!((answer["path"].as_str(), answer["reason"].as_str()), (Some("RED"), Some(reason)), "{answer}");
    }
    kit.load_datacore_card("dc-2", "5105105105105100", EXPIRY, "ACTIVE").await;
    let answer = kit
        .simulate(json!({"approach": "datacore", "card": {"pan": "5105105105105100", "expiry": "11/30"}, "wallet": "SAMSUNG_PAY"}))
        .await;
    assert_eq!(answer["reason"], "EXPIRY_MISMATCH", "{answer}");
    kit.inner.mock_idle().await;
    assert!(kit.sent(tmp_protocol::issuer_api::TOKEN_EVENTS_PATH).await.is_empty());
}

/// `sign` as the issuer's app calls it, then the wallet hands the payload back.
async fn push(kit: &Kit, card_id: &str, wallet: &str, approach: &str) -> serde_json::Value {
    let sign = match wallet {
        "APPLE_PAY" => {
            json!({"wallet": wallet, "applePay": {"certificates": ["MIIB"], "nonce": "0a0b", "nonceSignature": "0c0d"}})
        }
        _ => json!({"wallet": wallet, "googlePay": {"clientDeviceId": "dev-1"}}),
    };
    let response =
        kit.signed(reqwest::Method::POST, &format!("/tmp-api/v1/cards/{card_id}/sign")).json(&sign).send().await;
    let signed = crate::helpers::expect_json(response, 200).await;
    let payload = signed["applePay"]["encryptedPassData"]
        .as_str()
        .or(signed["googlePay"]["opaquePaymentCard"].as_str())
        .expect("payload")
        .to_owned();
    assert_eq!(payload.split('.').count(), 5, "a compact JWE");
    let answer = kit.control("/_mock/v1/simulate/wallet/push", json!({"payload": payload, "approach": approach})).await;
    // A payload is single use.
    let again = kit
        .client
        .post(format!("{}/_mock/v1/simulate/wallet/push", kit.mock_url))
        .json(&json!({"payload": payload}))
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 409);
    kit.inner.mock_idle().await;
    answer
}

#[tokio::test]
async fn push_google_pay_in_both_approaches() {
    let kit = Kit::spawn().await;
    kit.control("/_mock/v1/cards", json!({"cardId": "card-active", "pan": PAN_ACTIVE, "expiry": EXPIRY})).await;
    let answer = push(&kit, "card-active", "GOOGLE_PAY", "external").await;
    assert_eq!(
        (answer["path"].as_str(), answer["provisioningMethod"].as_str()),
        (Some("GREEN"), Some("PUSH")),
        "{answer}"
    );
    let token_id = answer["tokenId"].as_str().expect("token");
    assert_eq!(kit.adapter_token(token_id).await.status, TokenStatus::Active);
    assert_eq!(kit.store.decisions_for_card("card-active", 10).await.expect("audit")[0].decision, "APPROVED");

    kit.load_datacore_card("dc-1", PAN_DATACORE, EXPIRY, "ACTIVE").await;
    let answer = push(&kit, "dc-1", "GOOGLE_PAY", "datacore").await;
    assert_eq!(answer["path"], "GREEN", "{answer}");
    assert_eq!(kit.adapter_token(answer["tokenId"].as_str().expect("token")).await.card_id, "dc-1");
}

#[tokio::test]
async fn push_apple_pay_in_both_approaches() {
    let kit = Kit::spawn().await;
    kit.load_datacore_card("dc-1", PAN_DATACORE, EXPIRY, "ACTIVE").await;
    let answer = push(&kit, "dc-1", "APPLE_PAY", "datacore").await;
    assert_eq!(answer["path"], "GREEN", "{answer}");
    assert_eq!(kit.adapter_token(answer["tokenId"].as_str().expect("token")).await.wallet, "APPLE_PAY");

    // External: the adapter requires a CVC from Apple Pay for manual provisioning only; a push
    // starts in the issuer's app and carries none.
    kit.control("/_mock/v1/cards", json!({"cardId": "card-active", "pan": PAN_ACTIVE, "expiry": EXPIRY})).await;
    let answer = push(&kit, "card-active", "APPLE_PAY", "external").await;
    assert_eq!(answer["path"], "GREEN", "{answer}");
    assert_eq!(kit.adapter_token(answer["tokenId"].as_str().expect("token")).await.status, TokenStatus::Active);
}

/// The cardholder switches step-up methods: nothing is sent before the first choice, a code set
/// aside by a method without one cannot be typed, and wrong codes count across the switches.
#[tokio::test]
async fn switching_step_up_methods_never_buys_more_code_attempts() {
    let kit = Kit::spawn().await;
    let answer = kit
        .simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY",
                          "walletScore": 2, "stepUpMethod": "LATER"}))
        .await;
    assert_eq!((answer["path"].as_str(), &answer["activationNotificationId"]), (Some("YELLOW"), &json!(null)));
    let token_id = answer["tokenId"].as_str().expect("token").to_owned();
    let offered: Vec<_> = answer["token"]["stepUp"]["offered"]
        .as_array()
        .expect("offered")
        .iter()
        .filter_map(|m| m["type"].as_str())
        .collect();
    assert_eq!(offered, ["OTP_SMS", "OTP_EMAIL", "APP_TO_APP", "CUSTOMER_SERVICE", "OUTBOUND_CALL"]);
    kit.inner.mock_idle().await;
    let told = kit.sent(NOTIFICATIONS_PATH).await;
    assert!(!told.iter().any(|e| e["body"]["tokenId"] == token_id.as_str()), "nothing before the choice: {told:?}");

    let step_up = |method: &'static str| {
        let path = format!("/_mock/v1/simulate/tokens/{token_id}/step-up");
        let kit = &kit;
        async move { kit.control(&path, json!({"method": method})).await }
    };
    let otp = |code: &'static str| {
        let path = format!("/_mock/v1/simulate/tokens/{token_id}/otp");
        let kit = &kit;
        async move {
            kit.client.post(format!("{}{path}", kit.mock_url)).json(&json!({"otp": code})).send().await.expect("otp")
        }
    };
    step_up("OTP_SMS").await;
    let wrong = otp("00000000").await.json::<serde_json::Value>().await.expect("json");
    assert_eq!((wrong["result"].as_str(), wrong["attemptsLeft"].as_u64()), (Some("WRONG_CODE"), Some(2)), "{wrong}");
    let app = step_up("APP_TO_APP").await;
    assert!(app["otpExpiresAt"].is_null() && app["token"].get("otp").is_none(), "no code pending: {app}");
    assert_eq!(otp("00000000").await.status(), 409, "a code set aside cannot be typed");
    kit.inner.mock_idle().await;
    let requested = kit.sent(NOTIFICATIONS_PATH).await;
    assert!(
        requested.iter().any(|e| e["body"]["type"] == "STEP_UP_REQUESTED"
            && e["body"]["stepUpMethod"] == "APP_TO_APP"
            && e["body"]["tokenId"] == token_id.as_str()),
        "{requested:?}"
    );
    step_up("OTP_EMAIL").await;
    let wrong = otp("00000000").await.json::<serde_json::Value>().await.expect("json");
    assert_eq!(wrong["attemptsLeft"].as_u64(), Some(1), "the wrong code before the switch still counts: {wrong}");
}
