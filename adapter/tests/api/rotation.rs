//! Rotation without a restart: the Issuer API's HMAC secrets, the processor's HMAC secrets and
//! the JWE keys are replaced on a running adapter (what `SIGHUP` does) while a steady stream of
//! signed, encrypted requests runs — not one of them fails, no event is lost — and a broken
//! configuration is refused with the old set still serving.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tmp_protocol::jwk::{PublicJwk, RsaKeyPair};
use tmp_protocol::webhook::WebhookSecret;

use crate::forwarding::{EVENTS, event};
use crate::helpers::app::*;
use crate::helpers::db::test_databases;
use crate::verify_card::verify_body;

const VERIFY: &str = "/issuer-api/v1/cards/verify";

/// What the stream signs and encrypts with: switched by the drill as TMP and the processor would.
struct Senders {
    issuer_secret: WebhookSecret,
    processor_secret: WebhookSecret,
    jwk: PublicJwk,
}

#[tokio::test]
async fn keys_and_secrets_rotate_under_a_steady_stream_with_no_failed_request_and_no_lost_event() {
    let db = test_databases().await.remove(0);
    let (processor_1, _) = WebhookSecret::generate();
    let app = TestApp::spawn_with(&db, |s| s.processor.hmac_secrets = vec![processor_1.clone()]).await;
    app.import(&fixture_cards()).await;
    let senders = Mutex::new(Senders {
        issuer_secret: app.secret.clone(),
        processor_secret: processor_1.clone(),
        jwk: app.jwk.clone(),
    });
    let stop = AtomicBool::new(false);

    // The stream: a card verification and a processor event, again and again.
    let stream = async {
        let (mut sent, mut events, mut failures) = (0, 0, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let (issuer, processor, jwk) = {
                let s = senders.lock().unwrap();
                (s.issuer_secret.clone(), s.processor_secret.clone(), s.jwk.clone())
            };
            let card = tmp_protocol::jwe::encrypt_json(&json!({"pan": PAN_ACTIVE, "expiry": EXPIRY}), &jwk).unwrap();
            let answer = app
                .request(VERIFY)
                .json(&verify_body(card, "GOOGLE_PAY"))
                .signing(Signing::WithSecret(issuer))
                .send()
                .await;
            if answer.status() != 200 {
                failures.push(format!("verify-card {}: {}", answer.status(), answer.text().await.unwrap_or_default()));
            }
            let status = if events % 2 == 0 { "BLOCKED" } else { "ACTIVE" };
            let body = json!([event(
                &format!("drill-{events}"),
                "card-drill",
                "card.status_changed",
                json!({"status": status})
            )]);
            let answer = app.request(EVENTS).json(&body).signing(Signing::WithSecret(processor)).send().await;
            if answer.status() != 202 {
                failures.push(format!(
                    "processor event {}: {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                ));
            }
            sent += 1;
            events += 1;
        }
        (sent, events, failures)
    };

    let dir = tempfile::tempdir().unwrap();
    let drill = async {
        let pause = || tokio::time::sleep(Duration::from_millis(300));
        pause().await;
        let mut settings = app.settings.clone();

        // Issuer API secret: both live, TMP moves to the new one, the old one goes.
        let (issuer_2, _) = WebhookSecret::generate();
        settings.auth.hmac_secrets = vec![app.secret.clone(), issuer_2.clone()];
        app.reloader.reload(Ok(settings.clone())).expect("both issuer secrets");
        pause().await;
        senders.lock().unwrap().issuer_secret = issuer_2.clone();
        pause().await;
        settings.auth.hmac_secrets = vec![issuer_2.clone()];
        app.reloader.reload(Ok(settings.clone())).expect("the new issuer secret alone");
        pause().await;

        // Processor secret, the same way.
        let (processor_2, _) = WebhookSecret::generate();
        settings.processor.hmac_secrets = vec![processor_1.clone(), processor_2.clone()];
        app.reloader.reload(Ok(settings.clone())).expect("both processor secrets");
        pause().await;
        senders.lock().unwrap().processor_secret = processor_2.clone();
        pause().await;
        settings.processor.hmac_secrets = vec![processor_2.clone()];
        app.reloader.reload(Ok(settings.clone())).expect("the new processor secret alone");
        pause().await;

        // JWE key: a second kid is published next to the first, TMP encrypts to it, the first goes.
        let key_2 = RsaKeyPair::generate(2048).unwrap().with_kid("adapter-test-2").unwrap();
        let pem = dir.path().join("jwe-2.pem");
        std::fs::write(&pem, key_2.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        let first = settings.keys.jwe[0].clone();
        let second =
            tmp_adapter::config::JweKeySettings { kid: "adapter-test-2".into(), private_key_file: pem.clone() };
        settings.keys.jwe = vec![first.clone(), second.clone()];
        app.reloader.reload(Ok(settings.clone())).expect("both JWE keys");
        let published: serde_json::Value = app.get("/issuer-api/v1/public-key").await.json().await.unwrap();
        let kids: Vec<_> =
            published["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        assert!(kids.contains(&first.kid) && kids.contains(&"adapter-test-2".to_owned()), "{kids:?}");
        pause().await;
        senders.lock().unwrap().jwk = key_2.public_jwk();
        pause().await;
        settings.keys.jwe = vec![second];
        app.reloader.reload(Ok(settings.clone())).expect("the new JWE key alone");
        pause().await;

        // A broken configuration is refused; the set in force keeps serving.
        let mut broken = settings.clone();
        broken.keys.jwe[0].private_key_file = dir.path().join("missing.pem");
        broken.keys.generate_missing_in = None;
        assert!(app.reloader.reload(Ok(broken)).is_err());
        let mut other_mode = settings.clone();
        other_mode.auth.mode = tmp_adapter::config::AuthMode::Mtls;
        let refused = app.reloader.reload(Ok(other_mode)).unwrap_err().to_string();
        assert!(refused.contains("auth.mode"), "{refused}");
        pause().await;
        stop.store(true, Ordering::SeqCst);
        (issuer_2, processor_2)
    };
    let ((sent, events, failures), (issuer_2, processor_2)) = tokio::join!(stream, drill);

    assert!(failures.is_empty(), "{} of {sent} failed during the rotations: {failures:?}", failures.len());
    assert!(sent >= 10, "the stream ran through the drill ({sent} requests)");
    // No event lost: every acknowledged event is stored, with its outbox row.
    let filter =
        tmp_adapter::store::OutboxFilter { status: None, ordering_key: Some("card-drill".into()), limit: 10_000 };
    assert_eq!(app.store.list_outbox(&filter).await.unwrap().len(), events);

    // The old secrets and key are refused now; the new ones are in force.
    let card = app.card_payload(PAN_ACTIVE, EXPIRY, None);
    let old = app.request(VERIFY).json(&verify_body(card.clone(), "GOOGLE_PAY")).send().await;
    expect_error(old, 401, "INVALID_SIGNATURE").await;
    let old_key =
        app.request(VERIFY).json(&verify_body(card, "GOOGLE_PAY")).signing(Signing::WithSecret(issuer_2)).send().await;
    expect_error(old_key, 422, "INVALID_ENCRYPTED_PAYLOAD").await;
    let body = json!([event("drill-old", "card-drill", "card.closed", json!({}))]);
    let old_processor = app.request(EVENTS).json(&body).signing(Signing::WithSecret(processor_1)).send().await;
    expect_error(old_processor, 401, "INVALID_SIGNATURE").await;
    let ok = app.request(EVENTS).json(&body).signing(Signing::WithSecret(processor_2)).send().await;
    expect_json(ok, 202).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("tmp_adapter_config_reloads_total{outcome=\"applied\"} 6"), "{metrics}");
    assert!(metrics.contains("tmp_adapter_config_reloads_total{outcome=\"refused\"} 2"), "{metrics}");
    app.stop().await;
}
