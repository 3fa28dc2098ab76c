//! `POST /issuer-api/v1/cards/verify`: every decision path, on SQLite and PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};
use tmp_adapter::config::CardSourceKind;
use tmp_protocol::bridge::BridgeCard;
use tmp_protocol::enums::{IssuerCardStatus, StepUpMethodType};
use tmp_protocol::fields::{FreeText, Phone};
use tmp_protocol::issuer_api::CardholderContact;
use tmp_protocol::sensitive::Expiry;

use crate::helpers::app::*;
use crate::helpers::bridge::{BridgeBehaviour, BridgeCardEntry, DecideAnswer, TestBridge};
use crate::helpers::db::test_databases;

const VERIFY: &str = "/issuer-api/v1/cards/verify";

pub fn verify_body(payload: String, wallet: &str) -> Value {
    json!({
        "tokenizationId": uuid::Uuid::new_v4().to_string(),
        "tsp": "MDES",
        "tokenRequestor": {"id": "50110030273", "name": "Test Wallet", "wallet": wallet},
        "provisioningMethod": "MANUAL",
        "walletScore": 5,
        "deviceScore": 5,
        "encryptedPayload": payload,
    })
}

async fn verify(app: &TestApp, body: &Value) -> Value {
    expect_json(app.request(VERIFY).json(body).send().await, 200).await
}

async fn audit_reasons(app: &TestApp, card_id: &str) -> Vec<String> {
    app.store.decisions_for_card(card_id, 100).await.expect("audit").into_iter().map(|d| d.reason).collect()
}

#[tokio::test]
async fn green_path_approves_an_active_card_with_matching_cvc() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let cvc = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&cvc)), "APPLE_PAY");
        let answer = verify(&app, &body).await;
        assert_eq!(answer["decision"], "APPROVED", "{}: {answer}", db.backend);
        assert_eq!(answer["reason"], "CARD_VERIFIED");
        assert_eq!(answer["cardStatus"], "ACTIVE");
        assert_eq!(answer["cardId"], "card-active");
        assert_eq!(answer["cvcResult"], "MATCH");
        assert_eq!(answer["productCategory"], "CONSUMER_DEBIT");
        assert_eq!(answer["standIn"], false);
        assert!(answer.get("cardholder").is_none(), "contact only disclosed on step-up: {answer}");

        let audit = app.store.decisions_for_card("card-active", 10).await.expect("audit");
        assert_eq!(audit.len(), 1, "{}", db.backend);
        assert_eq!(audit[0].decision, "APPROVED");
        assert_eq!(audit[0].pan_last4.as_deref(), Some("1111"));
        assert_eq!(audit[0].wallet.as_deref(), Some("APPLE_PAY"));
        assert!(!audit[0].stand_in);
        app.stop().await;
    }
}

#[tokio::test]
async fn card_states_decline_with_reason_and_status() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let cases = [
            (PAN_UNKNOWN, EXPIRY, "CARD_NOT_FOUND", "NOT_FOUND"),
            (PAN_BLOCKED, EXPIRY, "CARD_BLOCKED", "BLOCKED"),
            (PAN_CLOSED, EXPIRY, "CARD_CLOSED", "CLOSED"),
            (PAN_EXPIRED, "01/20", "CARD_EXPIRED", "EXPIRED"),
            (PAN_ACTIVE, "11/29", "EXPIRY_MISMATCH", "ACTIVE"),
        ];
        for (pan, expiry, reason, status) in cases {
            let answer = verify(&app, &verify_body(app.card_payload(pan, expiry, None), "GOOGLE_PAY")).await;
            assert_eq!(answer["decision"], "DECLINED", "{} {reason}: {answer}", db.backend);
            assert_eq!(answer["reason"], reason, "{}: {answer}", db.backend);
            assert_eq!(answer["cardStatus"], status, "{}: {answer}", db.backend);
        }
        assert_eq!(audit_reasons(&app, "card-blocked").await, vec!["CARD_BLOCKED"]);
        app.stop().await;
    }
}

#[tokio::test]
async fn cvc_no_match_counts_attempts_until_locked_out() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let right = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let wrong = if right == "000" { "001" } else { "000" };
        for attempt in 1..=3 {
            let answer =
                verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(wrong)), "APPLE_PAY")).await;
            assert_eq!(answer["cvcResult"], "NO_MATCH", "{} attempt {attempt}: {answer}", db.backend);
            assert_eq!(answer["reason"], "CVC_NO_MATCH");
            assert_eq!(answer["decision"], "DECLINED");
        }
        // Locked out: even the right CVC is not checked now.
        let answer = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&right)), "APPLE_PAY")).await;
        assert_eq!(answer["cvcResult"], "ATTEMPTS_EXCEEDED", "{}: {answer}", db.backend);
        assert_eq!(answer["reason"], "CVC_ATTEMPTS_EXCEEDED");
        assert_eq!(answer["decision"], "DECLINED");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_match_clears_earlier_failures() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let right = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let wrong = if right == "000" { "001" } else { "000" };
        for cvc in [wrong, wrong, &right, wrong, wrong] {
            verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(cvc)), "APPLE_PAY")).await;
        }
        let answer = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&right)), "APPLE_PAY")).await;
        assert_eq!(answer["cvcResult"], "MATCH", "{}: {answer}", db.backend);
        app.stop().await;
    }
}

/// A verification's own writes (the CVC attempt reserved, the counter cleared, the tokenization
/// counted) commit without a flush of their own: the answer waits for one flush, after the
/// decision record, which covers them all (one WAL, written in order).
#[tokio::test]
async fn a_verification_waits_for_one_flush_after_all_its_writes() {
    for db in test_databases().await {
        let b = db.backend;
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let right = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let wrong = if right == "000" { "001" } else { "000" };
        // The adapter's own store's counters (the test's store is another handle on the file).
        let flushed = async || {
            let text = app.get("/metrics").await.text().await.unwrap();
            let value = |name: &str| -> u64 {
                let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {text}"));
                line.rsplit(' ').next().unwrap().parse().unwrap()
            };
            (value("tmp_adapter_store_flushed_commits_total "), value("tmp_adapter_store_flushes_total "))
        };
        // Start-up's durable writes — the velocity backfill, housekeeping's first pass (it erases
        // expired OTPs) — are done and flushed before counting.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while flushed().await.0 < 2 {
            assert!(std::time::Instant::now() < deadline, "{b}: start-up's two durable writes were not flushed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (cvc, expected, failures) in [(wrong, "NO_MATCH", 1), (right.as_str(), "MATCH", 0)] {
            let (commits, flushes) = flushed().await;
            let answer = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(cvc)), "APPLE_PAY")).await;
            assert_eq!(answer["cvcResult"], expected, "{b}: {answer}");
            let (commits_after, flushes_after) = flushed().await;
            assert_eq!(commits_after - commits, 1, "{b}: one durable commit per verification, covered when answered");
            assert!(flushes_after > flushes, "{b}: answered before a flush");
            let now = time::OffsetDateTime::now_utc();
            let counted = app.store.cvc_failures("card-active", now, time::Duration::hours(24)).await.unwrap();
            assert_eq!(counted, failures, "{b}: the attempt's count is committed before the answer");
        }
        // A replayed answer (it may be another request's, not yet durable, with that request's
        // relaxed writes before it) is sent only after a flush that began once it was read.
        let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(wrong)), "APPLE_PAY");
        let first =
            expect_json(app.request(VERIFY).idempotency_key(Some("flush-1")).json(&body).send().await, 200).await;
        let (commits, flushes) = flushed().await;
        let again =
            expect_json(app.request(VERIFY).idempotency_key(Some("flush-1")).json(&body).send().await, 200).await;
        assert_eq!(again, first, "{b}");
        let (commits_after, flushes_after) = flushed().await;
        assert_eq!(commits_after - commits, 1, "{b}: the replay waited for a flush of its own");
        assert!(flushes_after > flushes, "{b}");
        app.stop().await;
    }
}

#[tokio::test]
async fn cvc_requirement_follows_the_requestor_policy() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        // Apple Pay requires a CVC (config/base.yaml); Google Pay does not.
        let apple = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "APPLE_PAY")).await;
        assert_eq!((apple["decision"].as_str(), apple["reason"].as_str()), (Some("DECLINED"), Some("CVC_REQUIRED")));
        assert_eq!(apple["cvcResult"], "NOT_PROVIDED");
        let google = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY")).await;
        assert_eq!(google["decision"], "APPROVED", "{}: {google}", db.backend);
        assert_eq!(google["cvcResult"], "NOT_PROVIDED");
        app.stop().await;
    }
}

#[tokio::test]
async fn low_score_steps_up_and_discloses_the_contact() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        body["deviceScore"] = json!(2);
        let answer = verify(&app, &body).await;
        assert_eq!(answer["decision"], "REQUIRE_ADDITIONAL_AUTHENTICATION", "{}: {answer}", db.backend);
        assert_eq!(answer["reason"], "LOW_SCORE_STEP_UP");
        assert_eq!(answer["cardholder"]["phone"], "+48500100200");
        assert_eq!(answer["cardholder"]["email"], "holder@example.com");
        // config/local.yaml offers the two codes first, masked.
        assert_eq!(
            answer["stepUpMethods"].as_array().expect("methods")[..2],
            [
                json!({"type": "OTP_SMS", "value": "+48•••200"}),
                json!({"type": "OTP_EMAIL", "value": "h•••@example.com"})
            ]
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn step_up_methods_are_the_policy_s_and_go_only_where_the_contact_goes() {
    for db in test_databases().await {
        let app = TestApp::spawn_with(&db, |s| {
            s.policy.customer_service_phone = Some(Phone::parse("+48 22 000 00 00").unwrap());
            s.policy.default.step_up_methods =
                vec![StepUpMethodType::AppToApp, StepUpMethodType::CustomerService, StepUpMethodType::OutboundCall];
            s.policy.default.app_id = Some(FreeText::parse("com.example.bank").unwrap());
        })
        .await;
        app.import(&fixture_cards()).await;
        let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        body["deviceScore"] = json!(2);
        let answer = verify(&app, &body).await;
        assert_eq!(answer["decision"], "REQUIRE_ADDITIONAL_AUTHENTICATION", "{}: {answer}", db.backend);
        assert_eq!(
            answer["stepUpMethods"],
            json!([
                {"type": "APP_TO_APP", "value": "com.example.bank"},
                {"type": "CUSTOMER_SERVICE", "value": "+48 22 000 00 00"},
                {"type": "OUTBOUND_CALL", "value": "+48•••200"},
            ])
        );
        // An approval under step_up_only carries neither the contact nor the methods; a decline
        // never does.
        let approved = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY")).await;
        assert_eq!(approved["decision"], "APPROVED", "{approved}");
        assert!(approved.get("stepUpMethods").is_none() && approved.get("cardholder").is_none(), "{approved}");
        let mut declined = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        declined["walletRecommendation"] = json!("DECLINED");
        let declined = verify(&app, &declined).await;
        assert_eq!(declined["decision"], "DECLINED", "{declined}");
        assert!(declined.get("stepUpMethods").is_none(), "{declined}");
        app.stop().await;
    }
}

#[tokio::test]
async fn never_more_permissive_than_the_wallet_recommendation() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        for (recommended, expected) in [
            ("DECLINED", "DECLINED"),
            ("REQUIRE_ADDITIONAL_AUTHENTICATION", "REQUIRE_ADDITIONAL_AUTHENTICATION"),
            ("APPROVED", "APPROVED"),
        ] {
            let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
            body["walletRecommendation"] = json!(recommended);
            let answer = verify(&app, &body).await;
            assert_eq!(answer["decision"], expected, "{} {recommended}: {answer}", db.backend);
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn too_many_live_tokens_declines() {
    for db in test_databases().await {
        let app = TestApp::spawn_with(&db, |s| {
            s.policy.default.max_live_tokens_per_card = 1;
        })
        .await;
        app.import(&fixture_cards()).await;
        let event = crate::token_events::event_body("tok-1", "card-active", "ACTIVE", "2026-01-01T10:00:00Z");
        expect_json(app.request("/issuer-api/v1/tokens/events").json(&event).send().await, 200).await;
        // The same token requestor as the live token's (the default policy counts per requestor).
        let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        body["tokenRequestor"]["id"] = event["tokenRequestor"]["id"].clone();
        let answer = verify(&app, &body).await;
        assert_eq!(answer["reason"], "TOO_MANY_TOKENS", "{}: {answer}", db.backend);
        assert_eq!(answer["decision"], "DECLINED");
        app.stop().await;
    }
}

#[tokio::test]
async fn same_idempotency_key_replays_without_a_second_effect() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let right = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let wrong = if right == "000" { "001" } else { "000" };
        let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(wrong)), "APPLE_PAY");
        let first = app.request(VERIFY).idempotency_key(Some("idem-1")).json(&body).send().await;
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first = expect_json(first, 200).await;
        for _ in 0..3 {
            let again = app.request(VERIFY).idempotency_key(Some("idem-1")).json(&body).send().await;
            assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
            assert_eq!(expect_json(again, 200).await, first, "{}", db.backend);
        }
        // One decision, one counted CVC failure: the replays had no effect.
        assert_eq!(audit_reasons(&app, "card-active").await.len(), 1, "{}", db.backend);
        let window = time::Duration::days(1);
        let failures = app.store.cvc_failures("card-active", time::OffsetDateTime::now_utc(), window).await.unwrap();
        assert_eq!(failures, 1, "{}", db.backend);

        let other = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&right)), "APPLE_PAY");
        let reused = app.request(VERIFY).idempotency_key(Some("idem-1")).json(&other).send().await;
        expect_error(reused, 422, "IDEMPOTENCY_KEY_REUSED").await;
        assert_eq!(audit_reasons(&app, "card-active").await.len(), 1, "{}", db.backend);
        app.stop().await;
    }
}

fn bridge_card() -> BridgeCardEntry {
    BridgeCardEntry {
        pan: PAN_ACTIVE.into(),
        card: BridgeCard {
            card_id: "proc-card-1".into(),
            status: IssuerCardStatus::Active,
            expiry: Expiry::parse(EXPIRY).unwrap(),
            pan_last4: "1111".into(),
            cardholder: CardholderContact { phone: Some("+48500100300".try_into().unwrap()), email: None },
            product_category: Some("CONSUMER_CREDIT".into()),
        },
        cvc: "123".into(),
    }
}

#[tokio::test]
async fn processor_bridge_answers_decide_the_card() {
    let bridge = TestBridge::start(BridgeBehaviour {
        cards: vec![bridge_card()],
        delay: Duration::ZERO,
        fail_with: None,
        decide: None,
    })
    .await;
    for db in test_databases().await {
        let url = bridge.base_url.clone();
        let app = TestApp::spawn_with(&db, |s| {
            s.card_source.kind = CardSourceKind::ProcessorBridge;
            s.card_source.processor_bridge.base_url = url;
        })
        .await;
        let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("123")), "APPLE_PAY");
        body["device"] = json!({"id": "dev-phone-7", "type": "PHONE"});
        body["tokenType"] = json!("SECURE_ELEMENT");
        body["risk"] = json!({"recommendationReasons": ["ACCOUNT_TOO_NEW"], "panSource": "ON_FILE", "networkScore": 4});
        let ok = verify(&app, &body).await;
        assert_eq!((ok["decision"].as_str(), ok["cvcResult"].as_str()), (Some("APPROVED"), Some("MATCH")), "{ok}");
        assert_eq!(ok["cardId"], "proc-card-1");
        // The processor heard TMP's context of the tokenization, without the card data.
        let lookup = bridge.lookups.lock().unwrap().last().cloned().unwrap_or_default();
        assert_eq!(lookup["members"], json!(["pan", "tokenization"]), "the PAN and the context, nothing else");
        let context = lookup["tokenization"].clone();
        assert_eq!(context["tokenizationId"], body["tokenizationId"], "{context}");
        assert_eq!(context["device"], json!({"id": "dev-phone-7", "type": "PHONE"}), "{context}");
        assert_eq!(context["risk"], body["risk"], "{context}");
        assert_eq!(
            (&context["tokenType"], &context["walletScore"]),
            (&json!("SECURE_ELEMENT"), &json!(5)),
            "{context}"
        );
        // No card data in the context, at any depth (TMP's payload held the CVC and expiry).
        let text = context.to_string();
        for field in ["\"encryptedPayload\"", "\"cvc\"", "\"expiry\"", "\"pan\""] {
            assert!(!text.contains(field), "{field} in {context}");
        }
        let wrong = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("124")), "APPLE_PAY")).await;
        assert_eq!(wrong["cvcResult"], "NO_MATCH", "{wrong}");
        let unknown = verify(&app, &verify_body(app.card_payload(PAN_UNKNOWN, EXPIRY, None), "GOOGLE_PAY")).await;
        assert_eq!(unknown["reason"], "CARD_NOT_FOUND", "{unknown}");
        app.stop().await;
    }
    bridge.stop().await;
}

/// A bridge over `bridge_card()` whose decision hook answers `status` and `body` after `delay`.
async fn hook_bridge(status: u16, body: &str, delay: Duration) -> TestBridge {
    let decide = DecideAnswer { status, body: body.to_owned(), delay };
    TestBridge::start(BridgeBehaviour {
        cards: vec![bridge_card()],
        delay: Duration::ZERO,
        fail_with: None,
        decide: Some(decide),
    })
    .await
}

async fn hook_app(db: &crate::helpers::db::TestDb, bridge: &TestBridge) -> TestApp {
    let url = bridge.base_url.clone();
    TestApp::spawn_with(db, |s| {
        s.card_source.kind = CardSourceKind::ProcessorBridge;
        s.card_source.processor_bridge.base_url = url;
        s.card_source.processor_bridge.decide = true;
        s.policy.deadline_ms = 600;
    })
    .await
}

/// The issuer's fraud engine decides a tokenization the card checks passed: its answer stands
/// (reason RISK_ENGINE), never more permissive than the wallet; a decline is never put to it;
/// what it said is audited and counted, without a card number in what it is sent.
#[tokio::test]
async fn the_decision_hook_decides_within_the_deadline_never_above_the_wallet() {
    let steps_up = hook_bridge(
        200,
        r#"{"decision": "REQUIRE_ADDITIONAL_AUTHENTICATION", "reason": "NEW_DEVICE"}"#,
        Duration::ZERO,
    )
    .await;
    let approves = hook_bridge(200, r#"{"decision": "APPROVED", "reason": "KNOWN_DEVICE"}"#, Duration::ZERO).await;
    let declines = hook_bridge(200, r#"{"decision": "DECLINED", "reason": "MULE_ACCOUNT"}"#, Duration::ZERO).await;
    for db in test_databases().await {
        let app = hook_app(&db, &steps_up).await;
        let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("123")), "APPLE_PAY");
        body["device"] = json!({"id": "dev-phone-9"});
        let answer = verify(&app, &body).await;
        assert_eq!(
            (answer["decision"].as_str(), answer["reason"].as_str(), answer["cardStatus"].as_str()),
            (Some("REQUIRE_ADDITIONAL_AUTHENTICATION"), Some("RISK_ENGINE"), Some("ACTIVE")),
            "{}: {answer}",
            db.backend
        );
        assert_eq!(answer["cardholder"]["phone"], "+48500100300", "a step-up discloses the contact: {answer}");
        let asked = steps_up.decides.lock().unwrap().last().cloned().unwrap_or_default();
        assert_eq!((asked["cardId"].as_str(), asked["decision"].as_str()), (Some("proc-card-1"), Some("APPROVED")));
        assert_eq!(
            (asked["reason"].as_str(), &asked["tokenization"]["device"]),
            (Some("CARD_VERIFIED"), &json!({"id": "dev-phone-9"}))
        );
        let text = asked.to_string();
        for field in ["\"encryptedPayload\"", "\"cvc\"", "\"expiry\"", "\"pan\"", PAN_ACTIVE] {
            assert!(!text.contains(field), "{field} in {asked}");
        }
        let audit = app.store.recent_decisions(1).await.unwrap();
        assert_eq!(
            (audit[0].hook_outcome.as_deref(), audit[0].hook_decision.as_deref(), audit[0].hook_reason.as_deref()),
            (Some("ANSWERED"), Some("REQUIRE_ADDITIONAL_AUTHENTICATION"), Some("NEW_DEVICE")),
            "{}",
            db.backend
        );
        // A decline is final: a wrong CVC is not put to the engine.
        let before = steps_up.decides.lock().unwrap().len();
        let wrong = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("124")), "APPLE_PAY")).await;
        assert_eq!((wrong["decision"].as_str(), wrong["reason"].as_str()), (Some("DECLINED"), Some("CVC_NO_MATCH")));
        assert_eq!(steps_up.decides.lock().unwrap().len(), before, "a decline is never asked about");
        assert_eq!(app.store.recent_decisions(1).await.unwrap()[0].hook_outcome, None);
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("tmp_adapter_decision_hook_total{outcome=\"ANSWERED\"} 1"), "{metrics}");
        app.stop().await;

        // The engine may lift the policy's step-up, but never above the wallet's.
        let app = hook_app(&db, &approves).await;
        let mut low = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("123")), "APPLE_PAY");
        low["deviceScore"] = json!(2);
        let lifted = verify(&app, &low).await;
        assert_eq!(
            (lifted["decision"].as_str(), lifted["reason"].as_str()),
            (Some("APPROVED"), Some("RISK_ENGINE")),
            "{lifted}"
        );
        let asked = approves.decides.lock().unwrap().last().cloned().unwrap_or_default();
        assert_eq!(
            (asked["decision"].as_str(), asked["reason"].as_str()),
            (Some("REQUIRE_ADDITIONAL_AUTHENTICATION"), Some("LOW_SCORE_STEP_UP"))
        );
        let mut wallet = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("123")), "APPLE_PAY");
        wallet["walletRecommendation"] = json!("REQUIRE_ADDITIONAL_AUTHENTICATION");
        let before = approves.decides.lock().unwrap().len();
        let clamped = verify(&app, &wallet).await;
        assert_eq!(
            (clamped["decision"].as_str(), clamped["reason"].as_str()),
            (Some("REQUIRE_ADDITIONAL_AUTHENTICATION"), Some("WALLET_RECOMMENDATION")),
            "{clamped}"
        );
        assert_eq!(approves.decides.lock().unwrap().len(), before + 1, "the engine was asked and overruled");
        let audit = app.store.recent_decisions(1).await.unwrap();
        assert_eq!(
            (audit[0].hook_outcome.as_deref(), audit[0].hook_decision.as_deref()),
            (Some("ANSWERED"), Some("APPROVED")),
            "{}: the engine's word is audited even where the wallet's stands",
            db.backend
        );
        app.stop().await;

        // An engine that declines in time is followed, and says why in the audit only.
        let app = hook_app(&db, &declines).await;
        let declined = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("123")), "APPLE_PAY")).await;
        assert_eq!(
            (declined["decision"].as_str(), declined["reason"].as_str(), &declined["cardholder"]),
            (Some("DECLINED"), Some("RISK_ENGINE"), &serde_json::Value::Null),
            "{}: {declined}",
            db.backend
        );
        let audit = app.store.recent_decisions(1).await.unwrap();
        assert_eq!(
            (audit[0].hook_decision.as_deref(), audit[0].hook_reason.as_deref()),
            (Some("DECLINED"), Some("MULE_ACCOUNT"))
        );
        app.stop().await;
    }
    steps_up.stop().await;
    approves.stop().await;
    declines.stop().await;
}

/// Without a decision from the engine — too slow, an answer that is not one (or too large to
/// read), a refusal, a connection cut mid-answer — the policy's decision stands (not a
/// stand-in: the card was verified), and the outcome says why.
#[tokio::test]
async fn without_a_decision_from_the_hook_the_policy_s_stands_and_the_outcome_is_recorded() {
    let slow = hook_bridge(200, r#"{"decision": "DECLINED"}"#, Duration::from_millis(2000)).await;
    let nonsense = hook_bridge(200, r#"{"decision": "MAYBE"}"#, Duration::ZERO).await;
    let refuses = hook_bridge(503, "", Duration::ZERO).await;
    let rambles = hook_bridge(
        200,
        &format!(r#"{{"decision": "APPROVED", "reason": "{}"}}"#, "x".repeat(100_000)),
        Duration::ZERO,
    )
    .await;
    let cuts = hook_bridge(0, "", Duration::ZERO).await;
    let outcomes =
        [(&slow, "TIMEOUT"), (&nonsense, "INVALID"), (&refuses, "INVALID"), (&rambles, "INVALID"), (&cuts, "FAILED")];
    for db in test_databases().await {
        for (bridge, outcome) in outcomes {
            let app = hook_app(&db, bridge).await;
            let answer =
                verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some("123")), "APPLE_PAY")).await;
            assert_eq!(
                (answer["decision"].as_str(), answer["reason"].as_str(), &answer["standIn"]),
                (Some("APPROVED"), Some("CARD_VERIFIED"), &json!(false)),
                "{} {outcome}: {answer}",
                db.backend
            );
            let audit = app.store.recent_decisions(1).await.unwrap();
            assert_eq!((audit[0].hook_outcome.as_deref(), audit[0].hook_decision.as_deref()), (Some(outcome), None));
            let metrics = app.get("/metrics").await.text().await.unwrap();
            let counted = format!("tmp_adapter_decision_hook_total{{outcome=\"{outcome}\"}} 1");
            assert!(metrics.contains(&counted), "{counted} in {metrics}");
            app.stop().await;
        }
    }
    for bridge in [slow, nonsense, refuses, rambles, cuts] {
        bridge.stop().await;
    }
}

#[tokio::test]
async fn slow_processor_bridge_yields_the_recorded_stand_in() {
    let bridge = TestBridge::start(BridgeBehaviour {
        cards: vec![bridge_card()],
        delay: Duration::from_millis(1500),
        fail_with: None,
        decide: None,
    })
    .await;
    for db in test_databases().await {
        let url = bridge.base_url.clone();
        let app = TestApp::spawn_with(&db, |s| {
            s.card_source.kind = CardSourceKind::ProcessorBridge;
            s.card_source.processor_bridge.base_url = url;
            s.policy.deadline_ms = 200;
        })
        .await;
        let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        let answer = verify(&app, &body).await;
        assert_eq!(answer["decision"], "DECLINED", "{}: {answer}", db.backend);
        assert_eq!(answer["reason"], "STAND_IN_TIMEOUT");
        assert_eq!(answer["standIn"], true);
        // Not NOT_FOUND: the source never said whether it knows the card.
        assert_eq!(answer["cardStatus"], "UNKNOWN");
        assert!(answer.get("cardId").is_none() && answer.get("cardholder").is_none(), "{answer}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("tmp_adapter_stand_ins_total{cause=\"timeout\"} 1"), "{metrics}");
        let audit = app.store.recent_decisions(10).await.unwrap();
        assert_eq!(audit.len(), 1, "{}", db.backend);
        assert!(audit[0].stand_in && audit[0].reason == "STAND_IN_TIMEOUT", "{:?}", audit[0]);
        assert_eq!(audit[0].tokenization_id.as_deref(), body["tokenizationId"].as_str());
        app.stop().await;
    }
    bridge.stop().await;
}

#[tokio::test]
async fn failing_processor_bridge_yields_the_configured_stand_in() {
    let bridge =
        TestBridge::start(BridgeBehaviour { cards: vec![], delay: Duration::ZERO, fail_with: Some(500), decide: None })
            .await;
    for db in test_databases().await {
        let url = bridge.base_url.clone();
        let app = TestApp::spawn_with(&db, |s| {
            s.card_source.kind = CardSourceKind::ProcessorBridge;
            s.card_source.processor_bridge.base_url = url;
            s.policy.stand_in_decision = tmp_protocol::enums::Decision::RequireAdditionalAuthentication;
        })
        .await;
        let answer = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY")).await;
        assert_eq!(answer["decision"], "REQUIRE_ADDITIONAL_AUTHENTICATION", "{}: {answer}", db.backend);
        assert_eq!(answer["reason"], "STAND_IN_UNAVAILABLE");
        // The guardrail holds for the stand-in too.
        let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        body["walletRecommendation"] = json!("DECLINED");
        assert_eq!(verify(&app, &body).await["decision"], "DECLINED");
        app.stop().await;
    }
    bridge.stop().await;
}

#[tokio::test]
async fn parallel_cvc_guesses_are_limited_and_a_locked_card_is_declined_without_a_cvc() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        app.import(&fixture_cards()).await;
        let right = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let guesses: Vec<String> = (0..30).map(|i| format!("{i:03}")).filter(|g| *g != right).take(20).collect();
        let requests = guesses.iter().map(|guess| {
            let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(guess)), "GOOGLE_PAY");
            let app = &app;
            async move { expect_json(app.request(VERIFY).json(&body).send().await, 200).await }
        });
        let answers = futures_util::future::join_all(requests).await;
        let checked = answers.iter().filter(|a| a["cvcResult"] == "NO_MATCH").count();
        let refused = answers.iter().filter(|a| a["cvcResult"] == "ATTEMPTS_EXCEEDED").count();
        assert_eq!(checked, 3, "{}: only max_attempts guesses may reach the check", db.backend);
        assert_eq!(refused, 17, "{}", db.backend);
        // The lockout holds when the next requestor sends no CVC at all.
        let no_cvc = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY")).await;
        assert_eq!(no_cvc["decision"], "DECLINED", "{}: {no_cvc}", db.backend);
        assert_eq!(no_cvc["cvcResult"], "ATTEMPTS_EXCEEDED");
        app.stop().await;
    }
}

/// `max_live_tokens_per_card` counts the tokens of the policy entry that governs the request:
/// a card at its cap in one wallet can still be tokenized in another.
#[tokio::test]
async fn the_token_cap_counts_the_tokens_its_policy_entry_governs() {
    for db in test_databases().await {
        let app = TestApp::spawn_with(&db, |s| {
            // Per requestor (the default policy), and for Google Pay per wallet: one token each.
            s.policy.default.max_live_tokens_per_card = 1;
            s.policy.default.require_cvc = false;
            s.policy.token_requestors.clear();
            s.policy.wallets.clear();
            s.policy.wallets.insert(tmp_protocol::enums::Wallet::GooglePay, s.policy.default.clone());
        })
        .await;
        app.import(&fixture_cards()).await;
        // One live Google Pay token (requestor 40010030273) on the card.
        let token = crate::token_events::event_body("tok-cap", "card-active", "ACTIVE", "2026-03-01T10:00:00Z");
        expect_json(app.request("/issuer-api/v1/tokens/events").json(&token).send().await, 200).await;
        let decide = |wallet: &str, requestor: &str| {
            let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), wallet);
            body["tokenRequestor"]["id"] = json!(requestor);
            body
        };
        // Google Pay, another requestor id: the wallet entry counts every Google Pay token.
        let google = verify(&app, &decide("GOOGLE_PAY", "40010099999")).await;
        assert_eq!(
            (&google["decision"], &google["reason"]),
            (&json!("DECLINED"), &json!("TOO_MANY_TOKENS")),
            "{}",
            db.backend
        );
        // Samsung Pay (default policy, its own requestor): none of its tokens yet.
        let samsung = verify(&app, &decide("SAMSUNG_PAY", "30010030273")).await;
        assert_eq!(samsung["decision"], "APPROVED", "{}: {samsung}", db.backend);
        app.stop().await;
    }
}

/// `policy.contact_disclosure: approved_and_step_up`: an approved card's contact goes with the
/// answer too (a step-up by TMP, the network or the wallet needs it); a declined one's never.
#[tokio::test]
async fn the_contact_goes_with_an_approval_when_the_policy_says_so() {
    for db in test_databases().await {
        let app = TestApp::spawn_with(&db, |s| {
            s.policy.contact_disclosure = tmp_adapter::domain::policy::ContactDisclosure::ApprovedAndStepUp;
        })
        .await;
        app.import(&fixture_cards()).await;
        let cvc = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let approved = verify(&app, &verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&cvc)), "APPLE_PAY")).await;
        assert_eq!(approved["decision"], "APPROVED", "{}: {approved}", db.backend);
        assert_eq!(approved["cardholder"]["phone"], "+48500100200", "{approved}");
        let declined = verify(&app, &verify_body(app.card_payload(PAN_BLOCKED, EXPIRY, None), "GOOGLE_PAY")).await;
        assert_eq!(declined["decision"], "DECLINED", "{declined}");
        assert!(declined.get("cardholder").is_none(), "{declined}");
        app.stop().await;
    }
}

/// Velocity: with one tokenization per device allowed, the second naming that device is declined
/// (VELOCITY_EXCEEDED), another device and a request without one are not; TMP asking again for
/// one tokenization is that tokenization, not a second; the device and token type are audited.
#[tokio::test]
async fn the_tokenization_after_a_devices_limit_is_declined_for_velocity() {
    for db in test_databases().await {
        let app = TestApp::spawn_with(&db, |s| s.policy.default.max_tokenizations_per_device = 1).await;
        let b = db.backend;
        app.import(&fixture_cards()).await;
        let cvc = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let on = |device: Option<&str>, kind: &str| {
            let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&cvc)), "GOOGLE_PAY");
            if let Some(device) = device {
                body["device"] = json!({"id": device, "type": kind});
            }
            body["tokenType"] = json!("HCE");
            body
        };
        let first = on(Some("dev-1"), "PHONE");
        assert_eq!(verify(&app, &first).await["reason"], "CARD_VERIFIED", "{b}");
        // The same tokenization again (TMP's second call): not counted against itself.
        let mut again = on(Some("dev-1"), "PHONE");
        again["tokenizationId"] = first["tokenizationId"].clone();
        assert_eq!(verify(&app, &again).await["reason"], "CARD_VERIFIED", "{b}");
        let over = verify(&app, &on(Some("dev-1"), "PHONE")).await;
        assert_eq!((&over["decision"], &over["reason"]), (&json!("DECLINED"), &json!("VELOCITY_EXCEEDED")), "{b}");
        assert_eq!(over["cardStatus"], "ACTIVE", "{b}");
        assert_eq!(verify(&app, &on(Some("dev-2"), "WATCH")).await["reason"], "CARD_VERIFIED", "{b}");
        assert_eq!(verify(&app, &on(None, "")).await["reason"], "CARD_VERIFIED", "{b}");

        let audit = app.store.decisions_for_card("card-active", 10).await.expect("audit");
        let declined = audit.iter().find(|d| d.reason == "VELOCITY_EXCEEDED").expect("the declined one");
        assert_eq!(
            (declined.device_id.as_deref(), declined.device_type.as_deref(), declined.token_type.as_deref()),
            (Some("dev-1"), Some("PHONE"), Some("HCE")),
            "{b}"
        );
        // An unknown device type is the contract's 422, and is not a tokenization.
        let odd = app.request("/issuer-api/v1/cards/verify").json(&on(Some("dev-1"), "TOASTER")).send().await;
        expect_error(odd, 422, "VALIDATION_FAILED").await;
        assert_eq!(app.store.decisions_for_card("card-active", 10).await.expect("audit").len(), audit.len(), "{b}");
        // Apple Pay's entry (base.yaml) has no device limit: its tokenization is approved, and
        // still counts toward the limit of the wallets the default governs.
        let mut apple = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&cvc)), "APPLE_PAY");
        apple["device"] = json!({"id": "dev-3", "type": "PHONE"});
        assert_eq!(verify(&app, &apple).await["reason"], "CARD_VERIFIED", "{b}");
        let after_apple = verify(&app, &on(Some("dev-3"), "PHONE")).await;
        assert_eq!(after_apple["reason"], "VELOCITY_EXCEEDED", "{b}: {after_apple}");
    }
}

/// The risk context (recommendation reasons, PAN source, network score) is audited as TMP sent
/// it and read by no policy; a bad one is the contract's 422 and writes nothing.
#[tokio::test]
async fn the_risk_context_is_audited_and_a_bad_one_refused() {
    for db in test_databases().await {
        let app = TestApp::spawn(&db).await;
        let b = db.backend;
        app.import(&fixture_cards()).await;
        let with_risk = |risk: serde_json::Value| {
            let mut body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
            body["risk"] = risk;
            body
        };
        let risk = json!({"recommendationReasons": ["ACCOUNT_TOO_NEW", "LOW_DEVICE_SCORE"],
                          "panSource": "KEY_ENTERED", "networkScore": 2});
        let answer = verify(&app, &with_risk(risk)).await;
        // The network's low score is audited, not a policy input: the card is approved.
        assert_eq!(answer["decision"], "APPROVED", "{b}: {answer}");
        let audit = app.store.decisions_for_card("card-active", 10).await.expect("audit");
        assert_eq!(
            (audit[0].recommendation_reasons.as_deref(), audit[0].pan_source.as_deref(), audit[0].network_score),
            (Some(r#"["ACCOUNT_TOO_NEW","LOW_DEVICE_SCORE"]"#), Some("KEY_ENTERED"), Some(2)),
            "{b}"
        );
        let too_many: Vec<String> = (0..17).map(|n| format!("CODE_{n}")).collect();
        for bad in [
            json!({"networkScore": 0}),
            json!({"networkScore": 6}),
            json!({"panSource": "TELEPATHY"}),
            json!({"recommendationReasons": too_many}),
            json!({"recommendationReasons": ["4111111111111111"]}),
            json!({"recommendationReasons": ["R4111111111111111"]}),
            json!({"recommendationReasons": ["ACCOUNT TOO NEW"]}),
            json!("KEY_ENTERED"),
        ] {
            let refused = app.request("/issuer-api/v1/cards/verify").json(&with_risk(bad.clone())).send().await;
            expect_error(refused, 422, "VALIDATION_FAILED").await;
        }
        assert_eq!(app.store.decisions_for_card("card-active", 10).await.expect("audit").len(), 1, "{b}");
        // `null` members are absent, an unknown member is ignored, as elsewhere in the request.
        let lenient = with_risk(json!({"recommendationReasons": null, "panSource": null, "nextYearsField": 1}));
        assert_eq!(verify(&app, &lenient).await["decision"], "APPROVED", "{b}");
    }
}
