//! Processor ingest and the outbox relay, end to end over sockets: events posted to
//! `POST /processor/v1/events` reach a recording TMP / DataCore receiver (a stand-in for
//! `mock-tmp`, implementing the documented paths) and the issuer's own webhook sink.

use std::time::Duration;

use serde_json::{Value, json};
use tmp_adapter::config::{Approach, Settings, SinkSettings};
use tmp_adapter::outbox::OutboxStatus;
use tmp_protocol::enums::IssuerCardStatus;

use crate::helpers::app::*;
use crate::helpers::db::test_databases;
use crate::helpers::receiver::{Receiver, Reply};

pub const EVENTS: &str = "/processor/v1/events";
pub const WAIT: Duration = Duration::from_secs(30);

/// Relay on, fast schedule, the processor signing with the test secret, forwarding to `to`.
pub fn forwarding_settings(settings: &mut Settings, approach: Approach, to: &Receiver) {
    settings.relay.enabled = true;
    settings.relay.poll_interval_ms = 20;
    settings.relay.request_timeout_ms = 500;
    settings.relay.lease_secs = 5;
    settings.relay.retry_schedule_ms = vec![100, 200, 400];
    settings.relay.jitter_percent = 0;
    settings.relay.retry_after_max_secs = 1;
    settings.processor.hmac_secrets = settings.auth.hmac_secrets.clone();
    settings.forwarding.approach = approach;
    for d in [&mut settings.forwarding.tmp_api, &mut settings.forwarding.lifecycle_api] {
        d.base_url = to.url.clone();
        d.hmac_secrets = vec![to.secret.clone()];
    }
}

/// A sink `name` at `sink`'s `/hooks` taking `event_types` (none: all), without a key for
/// activation codes.
pub fn plain_sink(name: &str, sink: &Receiver, event_types: &[&str]) -> SinkSettings {
    SinkSettings {
        name: name.into(),
        url: format!("{}/hooks", sink.url),
        hmac_secrets: vec![sink.secret.clone()],
        event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
        otp_jwk_file: None,
        tls: Default::default(),
    }
}

/// The sink `core` at `sink`'s `/hooks`, taking token events and notifications, with
/// activation codes encrypted to `sink`'s key (its JWK written into `dir`).
pub fn code_sink(sink: &Receiver, dir: &std::path::Path) -> SinkSettings {
    let jwk_file = dir.join("sink.jwk.json");
    std::fs::write(&jwk_file, serde_json::to_string(&sink.jwk()).unwrap()).unwrap();
    SinkSettings {
        otp_jwk_file: Some(jwk_file),
        ..plain_sink("core", sink, &["token.status_changed", "notification.*"])
    }
}

pub fn event(id: &str, card: &str, kind: &str, data: Value) -> Value {
    json!({"id": id, "cardId": card, "type": kind, "occurredAt": "2026-03-01T10:00:00Z", "data": data})
}

#[tokio::test]
async fn a_delivery_that_frees_a_cards_next_row_or_a_slot_claims_again_without_waiting_for_the_poll() {
    // The poll is ten minutes away: every delivery after the first claim is claimed because a
    // delivery ended — its card's next row became claimable (card-active's queue, with slots
    // to spare), or the claim before had filled every slot (concurrency 1, two cards).
    for db in test_databases().await {
        for concurrency in [8, 1] {
            let tmp = Receiver::start().await;
            let app = TestApp::spawn_with(&db, |s| {
                forwarding_settings(s, Approach::External, &tmp);
                s.relay.poll_interval_ms = 600_000;
                s.relay.concurrency = concurrency;
            })
            .await;
            app.import(&fixture_cards()).await;
            // Event ids of their own per round: the rounds share the database.
            let id = |n: &str| format!("c{concurrency}-{n}");
            let blocked = |n: &str, card: &str| {
                event(&id(n), card, "card.status_changed", json!({"status": "BLOCKED", "reason": "lost"}))
            };
            let active = |n: &str, card: &str| event(&id(n), card, "card.status_changed", json!({"status": "ACTIVE"}));
            let batch = if concurrency == 1 {
                json!([blocked("e1", "card-active"), blocked("e2", "card-blocked"), active("e3", "card-active")])
            } else {
                json!([blocked("e1", "card-active"), active("e2", "card-active"), blocked("e3", "card-active")])
            };
            let ack = expect_json(app.request(EVENTS).json(&batch).send().await, 202).await;
            assert_eq!(ack["accepted"], 3, "{}", db.backend);
            // Far below the poll: a liveness bound, not a speed target.
            tmp.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 3).await;
            let card_active: Vec<Value> =
                tmp.accepted().into_iter().filter(|r| r.path.contains("card-active")).map(|r| r.body).collect();
            let expected: Vec<Value> = batch
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["cardId"] == "card-active")
                .map(|e| e["data"].clone())
                .collect();
            assert_eq!(card_active, expected, "{} concurrency {concurrency}: card-active in order", db.backend);
        }
    }
}

#[tokio::test]
async fn external_events_reach_tmp_in_order_with_the_documented_mapping() {
    for db in test_databases().await {
        let tmp = Receiver::start().await;
        let app = TestApp::spawn_with(&db, |s| forwarding_settings(s, Approach::External, &tmp)).await;
        app.import(&fixture_cards()).await;
        let batch = json!([
            event("e1", "card-active", "card.status_changed", json!({"status": "BLOCKED", "reason": "lost"})),
            event("e2", "card-active", "card.status_changed", json!({"status": "ACTIVE"})),
            event(
                "e3",
                "card-active",
                "card.renewed",
                json!({"encryptedPayload": app.encrypt(&json!({"expiry": "11/31"}))})
            ),
            // An international number is a phone even where 12 of its digits pass the Luhn check.
            event(
                "e4",
                "card-active",
                "cardholder.updated",
                json!({"email": "new@example.com", "phone": "+49 176 1234 5678"})
            ),
            event(
                "e4m",
                "card-active",
                "card.metadata_updated",
                json!({"productName": "Example Gold", "productCategory": "CREDIT", "cardArtId": "art-gold-2026"})
            ),
            event(
                "e5",
                "card-active",
                "card.replaced",
                json!({"newCardId": "card-new",
                "encryptedPayload": app.card_payload(PAN_UNKNOWN, "12/32", None)})
            ),
            event("e6", "card-new", "card.closed", json!({"reason": "customer request"})),
        ]);
        let ack = expect_json(app.request(EVENTS).json(&batch).send().await, 202).await;
        assert_eq!(ack, json!({"accepted": 7, "duplicates": 0}), "{}", db.backend);

        // cardholder.updated has nothing to tell TMP in approach external: 6 calls.
        tmp.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 6).await;
        // Per-card FIFO; different cards go in parallel, so the new card's message is
        // compared on its own.
        let all = tmp.accepted();
        let (got, new_card): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.path.contains("card-active"));
        let got: Vec<_> = got.into_iter().chain(new_card).collect();
        let paths: Vec<_> = got.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/tmp-api/v1/cards/card-active/status",
                "/tmp-api/v1/cards/card-active/status",
                "/tmp-api/v1/cards/card-active/expiry",
                "/tmp-api/v1/cards/card-active/metadata",
                "/tmp-api/v1/cards/card-active/replace",
                "/tmp-api/v1/cards/card-new/status",
            ],
            "{}",
            db.backend
        );
        assert!(got.iter().all(|r| r.signature_ok && r.method == "POST" && !r.correlation_id.is_empty()));
        assert_eq!(got[0].body, json!({"status": "BLOCKED", "reason": "lost"}));
        assert_eq!(got[1].body, json!({"status": "ACTIVE"}));
        assert_eq!(got[2].decrypted, Some(json!({"expiry": "11/31"})));
        assert_eq!(
            got[3].body,
            json!({"productName": "Example Gold", "productCategory": "CREDIT", "cardArtId": "art-gold-2026"})
        );
        assert_eq!(got[4].body["newCardId"], "card-new");
        assert_eq!(got[4].decrypted, Some(json!({"pan": PAN_UNKNOWN, "expiry": "12/32"})));
        assert_eq!(got[5].body, json!({"status": "CLOSED", "reason": "customer request"}));
        let mut keys: Vec<_> = got.iter().map(|r| r.idempotency_key.clone()).collect();
        keys.dedup();
        assert_eq!(keys.len(), 6, "one idempotency key per message");

        // The registry followed, in the same transactions.
        let old = app.store.find_card("card-active").await.unwrap().unwrap();
        assert_eq!(old.status, IssuerCardStatus::Closed);
        assert_eq!(old.expiry_yymm, "3111");
        assert_eq!(old.cardholder_email.as_deref(), Some("new@example.com"));
        let new = app.store.find_card("card-new").await.unwrap().unwrap();
        assert_eq!(new.status, IssuerCardStatus::Closed);
        assert_eq!(new.pan_last4, &PAN_UNKNOWN[12..]);
        assert_eq!(new.cardholder_email.as_deref(), Some("new@example.com"), "contact carried over");
        assert_eq!(old.product_category.as_deref(), Some("CREDIT"), "what card verification answers follows");
        assert_eq!(new.product_category.as_deref(), Some("CREDIT"), "product carried over");

        // Same ids, same bodies: accepted, no new effect.
        let again = expect_json(app.request(EVENTS).json(&batch).send().await, 202).await;
        assert_eq!(again, json!({"accepted": 0, "duplicates": 7}));
        // Same id, another body: refused, nothing written.
        let changed = event("e1", "card-active", "card.status_changed", json!({"status": "CLOSED"}));
        expect_error(app.request(EVENTS).json(&changed).send().await, 422, "IDEMPOTENCY_KEY_REUSED").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(tmp.accepted().len(), 6, "{}: duplicates are not forwarded", db.backend);
        app.stop().await;
    }
}

#[tokio::test]
async fn datacore_events_reach_the_lifecycle_api_with_card_data_encrypted_to_its_key() {
    for db in test_databases().await {
        let dc = Receiver::start().await;
        let app = TestApp::spawn_with(&db, |s| forwarding_settings(s, Approach::Datacore, &dc)).await;
        let batch = json!([
            event(
                "d1",
                "card-9",
                "card.issued",
                json!({"encryptedPayload": app.card_payload(PAN_ACTIVE, "12/30", None),
                "productCategory": "CONSUMER_DEBIT", "cardholder": {"phone": "+48500100200"}})
            ),
            event("d2", "card-9", "card.status_changed", json!({"status": "BLOCKED"})),
            event("d3", "card-9", "card.status_changed", json!({"status": "ACTIVE"})),
            event(
                "d4",
                "card-9",
                "card.renewed",
                json!({"encryptedPayload": app.encrypt(&json!({"expiry": "01/33"}))})
            ),
            event("d5", "card-9", "cardholder.updated", json!({"email": "h@example.com"})),
            event("d5m", "card-9", "card.metadata_updated", json!({"productId": "gold-2026", "cardArtId": "art-7"})),
            event(
                "d6",
                "card-9",
                "card.replaced",
                json!({"newCardId": "card-10",
                "encryptedPayload": app.card_payload(PAN_BLOCKED, "02/34", None)})
            ),
            event("d7", "card-10", "card.closed", json!({})),
        ]);
        expect_json(app.request(EVENTS).json(&batch).send().await, 202).await;
        dc.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 8).await;
        let all = dc.accepted();
        let (got, new_card): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| !r.path.contains("card-10"));
        let got: Vec<_> = got.into_iter().chain(new_card).collect();
        let calls: Vec<_> = got.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        assert_eq!(
            calls,
            [
                "POST /lifecycle/v1/cards",
                "PATCH /lifecycle/v1/cards/card-9",
                "PATCH /lifecycle/v1/cards/card-9",
                "PATCH /lifecycle/v1/cards/card-9",
                "PATCH /lifecycle/v1/cards/card-9",
                "PATCH /lifecycle/v1/cards/card-9",
                "POST /lifecycle/v1/cards/card-9/replace",
                "DELETE /lifecycle/v1/cards/card-10",
            ],
            "{}",
            db.backend
        );
        assert!(got.iter().all(|r| r.signature_ok));
        assert_eq!(got[0].body["cardId"], "card-9");
        assert_eq!(got[0].body["status"], "ACTIVE");
        assert_eq!(got[0].body["cardholder"], json!({"phone": "+48500100200"}));
        assert_eq!(got[0].decrypted, Some(json!({"pan": PAN_ACTIVE, "expiry": "12/30"})));
        assert_eq!(got[1].body, json!({"status": "BLOCKED"}));
        assert_eq!(got[2].body, json!({"status": "ACTIVE"}));
        assert_eq!(got[3].decrypted, Some(json!({"expiry": "01/33"})));
        assert_eq!(got[4].body, json!({"cardholder": {"email": "h@example.com"}}));
        assert_eq!(got[5].body, json!({"metadata": {"productId": "gold-2026", "cardArtId": "art-7"}}));
        assert_eq!(got[6].body["newCardId"], "card-10");
        assert_eq!(got[6].decrypted, Some(json!({"pan": PAN_BLOCKED, "expiry": "02/34"})));
        // No card data at rest in clear: the outbox rows hold it only sealed.
        for entry in app.store.list_outbox(&Default::default()).await.unwrap() {
            let text = entry.record.message.to_json().to_string();
            assert!(!text.contains(PAN_ACTIVE) && !text.contains(PAN_BLOCKED), "{}", db.backend);
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn ingest_refuses_bad_events_and_plaintext_pans_and_unsigned_requests() {
    for db in test_databases().await {
        let tmp = Receiver::start().await;
        let app = TestApp::spawn_with(&db, |s| forwarding_settings(s, Approach::Datacore, &tmp)).await;
        let plaintext = event("x1", "c", "card.issued", json!({"encryptedPayload": PAN_ACTIVE}));
        let body =
            expect_error(app.request(EVENTS).json(&plaintext).send().await, 422, "INVALID_ENCRYPTED_PAYLOAD").await;
        assert!(!body.to_string().contains(PAN_ACTIVE));
        let unknown = event("x2", "c", "card.lost", json!({}));
        expect_error(app.request(EVENTS).json(&unknown).send().await, 422, "VALIDATION_FAILED").await;
        let status = event("x3", "c", "card.status_changed", json!({"status": "STOLEN"}));
        expect_error(app.request(EVENTS).json(&status).send().await, 422, "VALIDATION_FAILED").await;
        // `data` as the array of its members (serde alone would read it positionally).
        let positional = event("x6", "c", "card.status_changed", json!(["BLOCKED"]));
        let body = expect_error(app.request(EVENTS).json(&positional).send().await, 422, "VALIDATION_FAILED").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("expected a JSON object"), "{body}");
        // A metadata update with nothing to change, or an empty name.
        for (data, message) in [
            (json!({}), "`data` must hold `productId`"),
            (json!({"productName": ""}), "`data.productName` must not be empty"),
        ] {
            let nothing = event("x7", "c", "card.metadata_updated", data);
            let body = expect_error(app.request(EVENTS).json(&nothing).send().await, 422, "VALIDATION_FAILED").await;
            assert!(body["error"]["message"].as_str().unwrap().contains(message), "{body}");
        }
        let ok = event("x4", "c", "card.closed", json!({}));
        let bad = event("x5", "", "card.closed", json!({}));
        let body =
            expect_error(app.request(EVENTS).json(&json!([ok, bad])).send().await, 422, "VALIDATION_FAILED").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("[1]"));
        expect_error(app.request(EVENTS).json(&json!([])).send().await, 422, "VALIDATION_FAILED").await;
        expect_error(app.request(EVENTS).json(&ok).signing(Signing::None).send().await, 401, "MISSING_SIGNATURE").await;
        // Nothing of the refused batch was stored.
        assert!(app.store.list_outbox(&Default::default()).await.unwrap().is_empty(), "{}", db.backend);
        app.stop().await;
    }
}

#[tokio::test]
async fn token_events_and_notifications_reach_the_issuers_sink_signed_with_the_code_reencrypted() {
    for db in test_databases().await {
        let sink = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::External, &sink);
            s.sinks = vec![code_sink(&sink, dir.path())];
        })
        .await;
        let token = crate::token_events::event_body("tok-1", "card-1", "ACTIVE", "2026-03-01T10:00:00Z");
        expect_json(app.request("/issuer-api/v1/tokens/events").json(&token).send().await, 200).await;
        let notification = crate::notifications::notification_body(&app, "ACTIVATION_CODE_DELIVERY", "n-1", None);
        expect_json(app.request("/issuer-api/v1/notifications").json(&notification).send().await, 200).await;
        sink.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 2).await;
        let got = sink.accepted();
        assert!(got.iter().all(|r| r.signature_ok && r.path == "/hooks"), "{}", db.backend);
        assert_eq!(got[0].body["type"], "token.status_changed");
        assert_eq!(got[0].body["data"]["tokenId"], "tok-1");
        assert_eq!(got[1].body["type"], "notification.ACTIVATION_CODE_DELIVERY");
        assert_eq!(got[1].decrypted, Some(json!({"otp": crate::notifications::OTP})));
        assert!(!got[1].body.to_string().contains(crate::notifications::OTP));
        // Erased once delivered.
        let mut erased = false;
        for _ in 0..100 {
            let n = app.store.find_notification("n-1").await.unwrap().unwrap();
            if n.otp_ciphertext.is_none() {
                erased = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(erased, "{}: the code is erased after delivery", db.backend);
        app.stop().await;
    }
}

/// Runs `tmp-adapter` with the repository's configuration and `env`.
/// The relay's destinations do not share their slots: with the issuer's sink hanging on every
/// delivery and a backlog queued for it first, a card change still reaches TMP while the sink
/// has answered nothing. (Claimed in seq order across destinations, the TMP row would wait for
/// a slot until a sink delivery came back.)
#[tokio::test]
async fn a_hanging_issuer_sink_does_not_hold_up_card_changes_to_tmp() {
    for db in test_databases().await {
        let tmp = Receiver::start().await;
        let sink = Receiver::start().await;
        sink.behave(|_| Reply::Delay(Duration::from_secs(3)));
        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::External, &tmp);
            s.relay.concurrency = 2;
            s.relay.request_timeout_ms = 5_000;
            s.relay.lease_secs = 12;
            s.sinks = vec![plain_sink("core", &sink, &["token.status_changed"])];
        })
        .await;
        app.import(&fixture_cards()).await;
        for n in 0..3 {
            let token = crate::token_events::event_body(
                &format!("tok-{n}"),
                &format!("card-{n}"),
                "ACTIVE",
                "2026-03-01T10:00:00Z",
            );
            expect_json(app.request("/issuer-api/v1/tokens/events").json(&token).send().await, 200).await;
        }
        let change = json!([event("e1", "card-active", "card.status_changed", json!({"status": "BLOCKED"}))]);
        expect_json(app.request(EVENTS).json(&change).send().await, 202).await;

        tmp.wait_for(WAIT, |r| r.iter().any(|r| r.answered == 200)).await;
        assert!(sink.received().is_empty(), "{}: the sink had answered before TMP got the change", db.backend);
        assert_eq!(tmp.accepted()[0].path, "/tmp-api/v1/cards/card-active/status", "{}", db.backend);
        app.stop().await;
    }
}

pub fn run_cli(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tmp-adapter"));
    command
        .current_dir(dir.path())
        .args(args)
        .env_remove("RUST_LOG")
        .env("TMP_ADAPTER_ENV", "local")
        .env("TMP_ADAPTER_CONFIG_DIR", std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("tmp-adapter runs")
}

#[tokio::test]
async fn outages_and_refused_credentials_are_retried_on_schedule_and_a_failed_head_holds_its_card() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    for db in test_databases().await {
        let tmp = Receiver::start().await;
        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::External, &tmp);
            s.relay.retry_schedule_ms = vec![100, 200, 400, 800, 1600, 3200, 3200, 3200];
        })
        .await;
        // Connections refused first...
        tmp.pause().await;
        let mut batch = Vec::new();
        for (card, n) in [("c1", 3usize), ("c2", 2)] {
            for i in 0..n {
                let status = if i.is_multiple_of(2) { "BLOCKED" } else { "ACTIVE" };
                batch.push(event(
                    &format!("{card}-{i}"),
                    card,
                    "card.status_changed",
                    json!({"status": status, "reason": format!("{i}")}),
                ));
            }
        }
        batch.push(event("perm-0", "card-perm", "card.status_changed", json!({"status": "BLOCKED", "reason": "0"})));
        batch.push(event("perm-1", "card-perm", "card.closed", json!({})));
        expect_json(app.request(EVENTS).json(&Value::Array(batch)).send().await, 202).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ...then a refusal of our credentials (a clock skew, say), 503s, answers slower than
        // the relay's timeout, then normal service; card-perm's first event is refused for good
        // (404).
        let calls = Arc::new(AtomicUsize::new(0));
        tmp.behave(move |r| {
            if r.path.contains("card-perm") {
                return Reply::Status(404);
            }
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::Status(401),
                1..4 => Reply::Status(503),
                4..6 => Reply::Delay(Duration::from_millis(800)),
                _ => Reply::Status(200),
            }
        });
        tmp.resume();
        tmp.wait_for(WAIT, |r| {
            let mut keys: Vec<_> = r.iter().filter(|r| r.answered == 200).map(|r| r.idempotency_key.clone()).collect();
            keys.sort();
            keys.dedup();
            keys.len() >= 5
        })
        .await;
        let received = tmp.received();
        for card in ["c1", "c2"] {
            // First acceptance of each message, in arrival order: the card's order.
            let mut seen = Vec::new();
            for r in received.iter().filter(|r| r.answered == 200 && r.path.contains(&format!("/{card}/"))) {
                if !seen.contains(&r.idempotency_key) {
                    seen.push(r.idempotency_key.clone());
                    assert_eq!(r.body["reason"], format!("{}", seen.len() - 1), "{}: {card} out of order", db.backend);
                }
            }
        }
        // The backoff is visible: each retry of a message came at least its scheduled delay
        // after the previous attempt (a lower bound only; slowness cannot fail it).
        let first_key =
            received.iter().find(|r| r.answered == 503).expect("503s were answered").idempotency_key.clone();
        let attempts: Vec<_> = received.iter().filter(|r| r.idempotency_key == first_key).map(|r| r.at).collect();
        assert!(attempts.len() >= 2, "{}", db.backend);
        assert!(attempts.windows(2).all(|w| w[1] - w[0] >= Duration::from_millis(90)), "{}", db.backend);
        let webhook_ids: Vec<_> =
            received.iter().filter(|r| r.idempotency_key == first_key).map(|r| r.webhook_id.clone()).collect();
        let mut unique = webhook_ids.clone();
        unique.dedup();
        assert_eq!(unique.len(), webhook_ids.len(), "a new webhook-id per attempt");

        // The refused credentials were retried like an outage, and counted.
        assert!(received.iter().any(|r| r.answered == 401), "{}", db.backend);
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("tmp_adapter_outbox_auth_failures_total{destination=\"tmp_api\"} 1"), "{metrics}");

        // The permanent error held card-perm's head, with its error, at once; the card's next
        // event waits behind it instead of overtaking it.
        let list = |status| {
            let filter = tmp_adapter::store::OutboxFilter { status: Some(status), ordering_key: None, limit: 10 };
            let store = app.store.clone();
            async move { store.list_outbox(&filter).await }
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        let held = loop {
            let held = list(OutboxStatus::Held).await.unwrap();
            if !held.is_empty() || tokio::time::Instant::now() > deadline {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(held.len(), 1, "{}", db.backend);
        assert_eq!(held[0].record.ordering_key, "card-perm");
        assert!(held[0].last_error.as_deref().unwrap().starts_with("HTTP 404"));
        assert!(list(OutboxStatus::Dead).await.unwrap().is_empty(), "{}", db.backend);
        let waiting = app
            .store
            .list_outbox(&tmp_adapter::store::OutboxFilter {
                status: Some(OutboxStatus::Pending),
                ordering_key: Some("card-perm".into()),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(waiting.len(), 1, "{}: perm-1 waits", db.backend);
        assert_eq!(waiting[0].attempts, 0, "{}: perm-1 was never tried", db.backend);
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("tmp_adapter_outbox_held_total{destination=\"tmp_api\"} 1"), "{metrics}");
        let env = [("TMP_ADAPTER__DATABASE__URL", db.url.clone())];
        let listed = run_cli(&["outbox", "list", "--status", "held"], &env);
        let listed_out = String::from_utf8_lossy(&listed.stdout);
        assert!(listed_out.contains("last_error=HTTP 404") && listed_out.contains("held"), "{listed:?}");
        assert_eq!(listed_out.lines().count(), 1, "{listed_out}");

        // Fixed at the receiver; the operator retries the held row and the card resumes in order.
        tmp.behave(|_| Reply::Status(200));
        let retried = run_cli(&["outbox", "retry", &held[0].record.id.to_string()], &env);
        assert!(retried.status.success(), "{retried:?}");
        tmp.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200 && r.path.contains("card-perm")).count() >= 2)
            .await;
        let perm: Vec<_> =
            tmp.received().into_iter().filter(|r| r.answered == 200 && r.path.contains("card-perm")).collect();
        assert!(perm[0].path.ends_with("/status"), "{}: the held event first, {:?}", db.backend, perm[0].path);
        assert!(list(OutboxStatus::Held).await.unwrap().is_empty(), "{}", db.backend);
        app.stop().await;
    }
}

#[tokio::test]
async fn an_activation_code_is_never_delivered_after_it_expires() {
    for db in test_databases().await {
        let sink = Receiver::start().await;
        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::External, &sink);
            s.sinks = vec![plain_sink("core", &sink, &[])];
        })
        .await;
        // Already expired when it arrives (a late TMP retry): accepted, stored, never delivered.
        let late = crate::notifications::notification_body(
            &app,
            "ACTIVATION_CODE_DELIVERY",
            "n-late",
            Some(time::Duration::seconds(-1)),
        );
        expect_json(app.request("/issuer-api/v1/notifications").json(&late).send().await, 200).await;
        // The card's next message is queued behind it: its delivery shows the relay moved on.
        let token = crate::token_events::event_body("tok-1", "card-active", "ACTIVE", "2026-03-01T10:00:00Z");
        expect_json(app.request("/issuer-api/v1/tokens/events").json(&token).send().await, 200).await;
        sink.wait_for(WAIT, |r| r.iter().any(|r| r.answered == 200)).await;
        let got = sink.accepted();
        assert_eq!(
            got.len(),
            1,
            "{}: only the token event: {:?}",
            db.backend,
            got.iter().map(|r| &r.body["type"]).collect::<Vec<_>>()
        );
        assert_eq!(got[0].body["type"], "token.status_changed");
        let filter =
            tmp_adapter::store::OutboxFilter { status: Some(OutboxStatus::Dead), ordering_key: None, limit: 10 };
        let dead = app.store.list_outbox(&filter).await.unwrap();
        assert_eq!(dead.len(), 1, "{}", db.backend);
        assert_eq!(dead[0].record.event_type(), "notification.ACTIVATION_CODE_DELIVERY");
        assert!(dead[0].last_error.as_deref().is_some_and(|e| e.contains("expired")), "{:?}", dead[0].last_error);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_message_no_sink_takes_is_dead_as_unrouted_not_delivered() {
    for db in test_databases().await {
        let tmp = Receiver::start().await;
        // A sink for token events only: notifications have nowhere to go.
        let sink = Receiver::start().await;
        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::External, &tmp);
            s.sinks = vec![plain_sink("token-events", &sink, &["token.status_changed"])];
        })
        .await;
        let code = crate::notifications::notification_body(&app, "ACTIVATION_CODE_DELIVERY", "n-nowhere", None);
        expect_json(app.request("/issuer-api/v1/notifications").json(&code).send().await, 200).await;
        let filter =
            tmp_adapter::store::OutboxFilter { status: Some(OutboxStatus::Dead), ordering_key: None, limit: 10 };
        let started = std::time::Instant::now();
        let dead = loop {
            let dead = app.store.list_outbox(&filter).await.unwrap();
            if !dead.is_empty() || started.elapsed() > WAIT {
                break dead;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(dead.len(), 1, "{}", db.backend);
        assert_eq!(dead[0].last_error.as_deref(), Some(tmp_adapter::relay::NO_SINK), "{}", db.backend);
        assert!(sink.accepted().is_empty(), "nothing was sent");
        // Not kept for nobody: the code is erased at once.
        let stored = app.store.find_notification("n-nowhere").await.unwrap().expect("stored");
        assert!(stored.otp_ciphertext.is_none(), "{}", db.backend);
        // Counted as what it is, not as a dead letter to alert on.
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics
                .contains("tmp_adapter_outbox_attempts_total{destination=\"issuer_webhook\",outcome=\"unrouted\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("tmp_adapter_outbox_dead_total{destination=\"issuer_webhook\"} 0"), "{metrics}");
        let stats = app.store.outbox_stats().await.unwrap();
        assert_eq!(stats.dead, 0, "{}: not among the dead letters the gauge counts", db.backend);
        app.stop().await;
    }
}

/// With `log.otlp.endpoint` set, the hops the W3C `traceparent` names are exported to the
/// collector as one tree: the request served (its parent the caller's span), the outbox
/// delivery under it, and the call to the sink whose span id is the parent id the sink saw;
/// a request without a `traceparent` starts a trace of its own. Nothing but routes, methods,
/// statuses, peers and destinations is exported.
#[tokio::test]
async fn spans_are_exported_over_otlp_linking_the_caller_the_adapter_and_the_sink() {
    use tmp_protocol::trace_context::TraceParent;
    for db in test_databases().await {
        let sink = Receiver::start().await;
        let collector = Receiver::start().await;
        let endpoint = collector.url.clone();
        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::External, &sink);
            s.sinks = vec![plain_sink("core", &sink, &["token.status_changed"])];
            s.log.otlp.endpoint = endpoint;
            s.log.otlp.flush_interval_ms = 50;
        })
        .await;
        let caller = TraceParent::start();
        let event = crate::token_events::event_body("tok-otlp", "card-otlp", "ACTIVE", "2026-03-01T10:00:00Z");
        let answer =
            app.request("/issuer-api/v1/tokens/events").header("traceparent", &caller.to_string()).json(&event);
        expect_json(answer.send().await, 200).await;
        let untraced = crate::token_events::event_body("tok-otlp-2", "card-otlp", "ACTIVE", "2026-03-01T10:00:01Z");
        expect_json(app.request("/issuer-api/v1/tokens/events").json(&untraced).send().await, 200).await;
        sink.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 2).await;
        let delivered =
            sink.accepted().into_iter().find(|r| r.body["data"]["tokenId"] == "tok-otlp").expect("delivered");
        let seen = TraceParent::parse(&delivered.traceparent).expect("the sink got a traceparent");
        assert_eq!(seen.trace_id(), caller.trace_id(), "{}", db.backend);

        // Every span of the caller's trace, once the collector has the sink call's and the request's.
        let spans_of = |received: &[crate::helpers::receiver::Received]| -> Vec<Value> {
            received
                .iter()
                .filter(|r| r.path == "/v1/traces")
                .flat_map(|r| r.body["resourceSpans"].as_array().cloned().unwrap_or_default())
                .inspect(|rs| assert_eq!(rs["resource"]["attributes"][0]["value"]["stringValue"], "tmp-adapter"))
                .flat_map(|rs| rs["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default())
                .collect()
        };
        let sink_call = seen.parent_id();
        // The request's own span may come in a later export than the sink call's (see below).
        collector
            .wait_for(WAIT, |r| {
                let spans = spans_of(r);
                spans.iter().any(|s| s["spanId"] == sink_call.as_str())
                    && spans.iter().any(|s| s["traceId"] == caller.trace_id().as_str() && s["kind"] == 2)
            })
            .await;
        let spans = spans_of(&collector.received());
        let traced: Vec<&Value> = spans.iter().filter(|s| s["traceId"] == caller.trace_id().as_str()).collect();
        let find = |kind: u64| -> &Value {
            traced.iter().find(|s| s["kind"] == kind).unwrap_or_else(|| panic!("kind {kind} in {traced:?}"))
        };
        let (server, delivery, client) = (find(2), find(1), find(3));
        assert_eq!(server["name"], "POST /issuer-api/v1/tokens/events", "{server}");
        assert_eq!(server["parentSpanId"], caller.parent_id().as_str(), "the caller's span is the parent");
        assert_eq!(delivery["name"], "deliver issuer_webhook", "{delivery}");
        assert_eq!(delivery["parentSpanId"], server["spanId"], "the delivery is under the request that queued it");
        assert_eq!(client["spanId"], sink_call.as_str(), "the call's span is the sink's parent");
        assert_eq!(client["parentSpanId"], delivery["spanId"]);
        let attribute = |span: &Value, key: &str| {
            span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| a["value"].clone())
        };
        assert_eq!(attribute(server, "http.response.status_code"), Some(json!({"intValue": "200"})));
        assert_eq!(attribute(client, "server.address"), Some(json!({"stringValue": "127.0.0.1"})));
        assert_eq!((client["status"]["code"].as_u64(), delivery["status"]["code"].as_u64()), (Some(0), Some(0)));
        let text = serde_json::to_string(&spans).unwrap();
        for absent in ["tok-otlp", "card-otlp", "/hooks", "whsec_"] {
            assert!(!text.contains(absent), "{absent} exported: {text}");
        }

        // Without a traceparent the request starts a trace: its span has no parent.
        let other = sink.accepted().into_iter().find(|r| r.body["data"]["tokenId"] == "tok-otlp-2").expect("delivered");
        let other = TraceParent::parse(&other.traceparent).expect("traceparent");
        assert_ne!(other.trace_id(), caller.trace_id());
        // The delivery can start before the request's own span has ended (the relay is woken by
        // the commit, the span ends once the answer is written), and the two may be exported in
        // different batches: wait for both.
        collector
            .wait_for(WAIT, |r| {
                let spans = spans_of(r);
                spans.iter().any(|s| s["spanId"] == other.parent_id().as_str())
                    && spans.iter().any(|s| s["traceId"] == other.trace_id().as_str() && s["kind"] == 2)
            })
            .await;
        let spans = spans_of(&collector.received());
        let root = spans
            .iter()
            .find(|s| s["traceId"] == other.trace_id().as_str() && s["kind"] == 2)
            .expect("the request's span");
        assert!(root.get("parentSpanId").is_none(), "{root}");
        app.stop().await;
    }
}
