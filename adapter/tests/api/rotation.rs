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
        app.reloader.reload(Ok(settings.clone())).await.expect("both issuer secrets");
        pause().await;
        senders.lock().unwrap().issuer_secret = issuer_2.clone();
        pause().await;
        settings.auth.hmac_secrets = vec![issuer_2.clone()];
        app.reloader.reload(Ok(settings.clone())).await.expect("the new issuer secret alone");
        pause().await;

        // Processor secret, the same way.
        let (processor_2, _) = WebhookSecret::generate();
        settings.processor.hmac_secrets = vec![processor_1.clone(), processor_2.clone()];
        app.reloader.reload(Ok(settings.clone())).await.expect("both processor secrets");
        pause().await;
        senders.lock().unwrap().processor_secret = processor_2.clone();
        pause().await;
        settings.processor.hmac_secrets = vec![processor_2.clone()];
        app.reloader.reload(Ok(settings.clone())).await.expect("the new processor secret alone");
        pause().await;

        // JWE key: a second kid is published next to the first, TMP encrypts to it, the first goes.
        let key_2 = RsaKeyPair::generate(2048).unwrap().with_kid("adapter-test-2").unwrap();
        let pem = dir.path().join("jwe-2.pem");
        std::fs::write(&pem, key_2.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        let first = settings.keys.jwe[0].clone();
        let second =
            tmp_adapter::config::JweKeySettings { kid: "adapter-test-2".into(), private_key_file: pem.clone() };
        settings.keys.jwe = vec![first.clone(), second.clone()];
        app.reloader.reload(Ok(settings.clone())).await.expect("both JWE keys");
        let published: serde_json::Value = app.get("/issuer-api/v1/public-key").await.json().await.unwrap();
        let kids: Vec<_> =
            published["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        assert!(kids.contains(&first.kid) && kids.contains(&"adapter-test-2".to_owned()), "{kids:?}");
        pause().await;
        senders.lock().unwrap().jwk = key_2.public_jwk();
        pause().await;
        settings.keys.jwe = vec![second];
        app.reloader.reload(Ok(settings.clone())).await.expect("the new JWE key alone");
        pause().await;

        // A broken configuration is refused; the set in force keeps serving.
        let mut broken = settings.clone();
        broken.keys.jwe[0].private_key_file = dir.path().join("missing.pem");
        broken.keys.generate_missing_in = None;
        assert!(app.reloader.reload(Ok(broken)).await.is_err());
        let mut other_mode = settings.clone();
        other_mode.auth.mode = tmp_adapter::config::AuthMode::Mtls;
        let refused = app.reloader.reload(Ok(other_mode)).await.unwrap_err().to_string();
        assert!(refused.contains("auth.mode"), "{refused}");
        pause().await;
        stop.store(true, Ordering::SeqCst);
        (issuer_2, processor_2)
    };
    let ((sent, events, failures), (issuer_2, processor_2)) = tokio::join!(stream, drill);

    assert!(
        failures.is_empty(),
        "{} of {sent} failed during the rotations, the first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
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

/// A second data key, written into `dir`, made the active one next to the key in force.
fn add_active_data_key(settings: &mut tmp_adapter::config::Settings, dir: &std::path::Path, id: &str) {
    let path = dir.join(format!("{id}.hex"));
    tmp_adapter::keys::write_private(&path, tmp_adapter::keys::random_hex(32).as_bytes()).unwrap();
    settings.keys.data_keys.files.insert(id.to_owned(), path);
    settings.keys.data_keys.active = id.to_owned();
}

/// Data-key rotation, on both databases: a new active key seals what comes next while the old
/// one still opens what it sealed; a reload that would drop the old key is refused while
/// anything is under it; `keys reseal` moves every card PAN, activation code and outbox card
/// data to the new key, in pages, each still opening to what it was; then the old key may go.
#[tokio::test]
async fn keys_reseal_moves_every_sealed_value_and_only_then_may_the_old_data_key_go() {
    use tmp_adapter::crypto::aad;
    use tmp_adapter::store::SealedKind;
    const NEW_PAN: &str = "6011111111111117";
    for db in test_databases().await {
        let b = db.backend;
        let (processor, _) = WebhookSecret::generate();
        let app = TestApp::spawn_with(&db, |s| s.processor.hmac_secrets = vec![processor.clone()]).await;
        app.import(&fixture_cards()).await;
        let old_key = app.settings.keys.data_keys.active.clone();
        let notify = |id: &str| {
            app.request("/issuer-api/v1/notifications").json(&crate::notifications::notification_body(
                &app,
                "ACTIVATION_CODE_DELIVERY",
                id,
                None,
            ))
        };
        expect_json(notify("ntf-old").send().await, 200).await;
        // A new card (its PAN goes into the registry) and a replacement (the new card's data is
        // sealed into the outbox row for TMP).
        let issued = json!([
            event(
                "reseal-1",
                "card-new",
                "card.issued",
                json!({"encryptedPayload": app.card_payload(NEW_PAN, EXPIRY, None)})
            ),
            event(
                "reseal-2",
                "card-active",
                "card.replaced",
                json!({"newCardId": "card-repl", "encryptedPayload": app.card_payload(PAN_UNKNOWN, EXPIRY, None)})
            ),
        ]);
        let ack = app.request(EVENTS).json(&issued).signing(Signing::WithSecret(processor.clone())).send().await;
        expect_json(ack, 202).await;

        // A new active key: new values go under it, old ones still open.
        let dir = tempfile::tempdir().unwrap();
        let mut settings = app.settings.clone();
        add_active_data_key(&mut settings, dir.path(), "data-2");
        app.reloader.reload(Ok(settings.clone())).await.expect("a new active data key");
        expect_json(notify("ntf-new").send().await, 200).await;
        let new_otp = app.store.find_notification("ntf-new").await.unwrap().unwrap();
        assert_eq!(new_otp.otp_key_id.as_deref(), Some("data-2"), "{b}: new values are sealed under the active key");

        // The old key cannot go while it seals anything.
        let mut without_old = settings.clone();
        without_old.keys.data_keys.files.remove(&old_key);
        let refused = app.reloader.reload(Ok(without_old.clone())).await.unwrap_err().to_string();
        assert!(refused.contains(&old_key) && refused.contains("keys reseal"), "{b}: {refused}");
        // Nor may a key keep its id with other key material.
        let mut swapped = settings.clone();
        add_active_data_key(&mut swapped, dir.path(), "data-2-other");
        let other_file = swapped.keys.data_keys.files["data-2-other"].clone();
        swapped.keys.data_keys.files.insert("data-2".into(), other_file);
        swapped.keys.data_keys.active = "data-2".into();
        let refused = app.reloader.reload(Ok(swapped)).await.unwrap_err().to_string();
        assert!(refused.contains("other key material"), "{b}: {refused}");

        // Reseal, two values per page.
        let ring = tmp_adapter::keys::KeyMaterial::load(&settings).unwrap().data_keys.current();
        let before: Vec<u64> = not_under_active_key(&app, &ring).await;
        assert_eq!(before, vec![6, 1, 1], "{b}: fixture cards and two new ones, the old code, the replacement's row");
        let mut seen = Vec::new();
        let report = tmp_adapter::ops::reseal::reseal(&*app.store, &ring, 2, |p| seen.push(p)).await.unwrap();
        assert_eq!(report.total(), 8, "{b}: {report:?}");
        assert_eq!(not_under_active_key(&app, &ring).await, vec![0, 0, 0], "{b}: nothing left under the old key");
        assert!(seen.iter().any(|p| p.kind == SealedKind::CardPan && p.moved == 2 && p.total == 6), "{b}: {seen:?}");

        // Each value opens under the new key alone, to what it was.
        let new_ring = tmp_adapter::keys::KeyMaterial::load(&without_old).unwrap().data_keys.current();
        let card = app.store.find_card("card-active").await.unwrap().unwrap();
        assert_eq!(card.pan_key_id, "data-2");
        let pan = new_ring.decrypt(&card.pan_key_id, &card.pan_ciphertext, &aad::card_pan("card-active")).unwrap();
        assert_eq!(pan.as_slice(), PAN_ACTIVE.as_bytes(), "{b}");
        let old_otp = app.store.find_notification("ntf-old").await.unwrap().unwrap();
        let otp = new_ring
            .decrypt(
                old_otp.otp_key_id.as_deref().unwrap(),
                old_otp.otp_ciphertext.as_deref().unwrap(),
                &aad::otp("ntf-old"),
            )
            .unwrap();
        assert_eq!(otp.as_slice(), crate::notifications::OTP.as_bytes(), "{b}");
        let filter =
            tmp_adapter::store::OutboxFilter { status: None, ordering_key: Some("card-active".into()), limit: 10 };
        let rows = app.store.list_outbox(&filter).await.unwrap();
        let row = rows.iter().find(|r| r.record.event_type() == "card.replaced").expect("the replacement's row");
        let tmp_adapter::outbox::OutboxMessage::CardEvent(message) = &row.record.message else {
            panic!("{b}: card event")
        };
        let sealed = message.sealed.as_ref().expect("sealed card data");
        assert_eq!(sealed.key_id, "data-2", "{b}");
        let card_data = new_ring.decrypt(&sealed.key_id, &sealed.data, &aad::outbox_row(&row.record.id)).unwrap();
        let card_data: serde_json::Value = serde_json::from_slice(&card_data).unwrap();
        assert_eq!(card_data["pan"], PAN_UNKNOWN, "{b}");

        // Now the old key may go; a second run finds nothing to do; the adapter still serves.
        app.reloader.reload(Ok(without_old)).await.expect("the old key, no longer used, goes");
        let again = tmp_adapter::ops::reseal::reseal(&*app.store, &new_ring, 2, |_| {}).await.unwrap();
        assert_eq!(again.total(), 0, "{b}");
        let verify = verify_body(app.card_payload(NEW_PAN, EXPIRY, None), "GOOGLE_PAY");
        let answer = expect_json(app.request(VERIFY).json(&verify).send().await, 200).await;
        assert_eq!(answer["decision"], "APPROVED", "{b}: {answer}");
        app.stop().await;
    }
}

/// How many values of each kind are not under `ring`'s active key.
async fn not_under_active_key(app: &TestApp, ring: &tmp_adapter::crypto::at_rest::DataKeyRing) -> Vec<u64> {
    let mut counts = Vec::new();
    for kind in tmp_adapter::store::SealedKind::ALL {
        counts.push(app.store.count_sealed_elsewhere(kind, ring.active_key_id()).await.unwrap());
    }
    counts
}

/// A request as TMP sends it, on `client`: signed with `secret`, with a fresh idempotency key.
async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    secret: &WebhookSecret,
) -> Result<reqwest::Response, reqwest::Error> {
    let bytes = serde_json::to_vec(body).unwrap();
    let id = tmp_protocol::webhook::new_message_id();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature =
        tmp_protocol::webhook::SignatureHeaders::sign(std::slice::from_ref(secret), &id, now, &bytes).unwrap();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("X-Idempotency-Key", uuid::Uuid::new_v4().to_string());
    for (name, value) in signature.to_header_pairs() {
        request = request.header(name, value);
    }
    request.body(bytes).send().await
}

/// The drill for what the adapter sends and presents: its sink's secret, its data keys (with a
/// reseal while requests keep coming) and its listener's certificate and client CA are replaced
/// while a steady stream of signed, encrypted card verifications and activation codes arrives over
/// mTLS, each on a new connection (a new handshake). Not one request fails, every code reaches the
/// sink (opened from its sealed copy, under whichever data key) and no delivery is refused for its
/// signature; afterwards only the new CA's certificates are admitted and only the new server
/// certificate is presented.
#[tokio::test]
async fn sink_secrets_data_keys_and_certificates_rotate_under_a_steady_stream_with_nothing_failed_or_lost() {
    use tmp_adapter::config::{Approach, AuthMode, TlsSettings};

    use crate::forwarding::{WAIT, code_sink, forwarding_settings};
    use crate::helpers::receiver::Receiver;
    use crate::security::{Pki, client_builder};

    let db = test_databases().await.remove(0);
    let (old_ca, new_ca) = (Pki::new(), Pki::new());
    let ca_file = |pki: &Pki| pki.dir.path().join("ca.pem");
    let (server_cert, server_key) = old_ca.leaf(&["127.0.0.1"], "adapter");
    // TMP trusts both CAs before the switch: it was told of the new one first.
    let both_cas = new_ca.write(
        "both.pem",
        &(std::fs::read_to_string(ca_file(&old_ca)).unwrap() + &std::fs::read_to_string(ca_file(&new_ca)).unwrap()),
    );
    let tmp = Receiver::start().await;
    let sink = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSettings {
        cert_file: old_ca.write("server.pem", &server_cert),
        key_file: old_ca.write("server.key", &server_key),
        client_ca_file: Some(ca_file(&old_ca)),
    };
    let app = TestApp::spawn_with(&db, |s| {
        forwarding_settings(s, Approach::External, &tmp);
        s.sinks = vec![code_sink(&sink, dir.path())];
        s.server.tls = Some(tls.clone());
        s.auth.mode = AuthMode::HmacAndMtls;
    })
    .await;
    app.import(&fixture_cards()).await;
    // A new connection, and so a new handshake, for every request.
    let tmp_client = |identity: (String, String)| {
        client_builder(&both_cas, Some(identity)).pool_max_idle_per_host(0).build().unwrap()
    };
    let current_client = Mutex::new(tmp_client(old_ca.leaf(&[], "tmp")));
    let stop = AtomicBool::new(false);

    let stream = async {
        let (mut sent, mut codes, mut failures) = (0, Vec::new(), Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let client = current_client.lock().unwrap().clone();
            let verify = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
            let id = format!("drill-code-{sent}");
            let code = crate::notifications::notification_body(&app, "ACTIVATION_CODE_DELIVERY", &id, None);
            for (path, body) in [(VERIFY, verify), ("/issuer-api/v1/notifications", code)] {
                match post_signed(&client, &format!("{}{path}", app.base_url), &body, &app.secret).await {
                    Ok(answer) if answer.status() == 200 => {}
                    Ok(answer) => failures.push(format!("{path} {}", answer.status())),
                    Err(error) => failures.push(format!("{path}: {error:?}")),
                }
            }
            codes.push(id);
            sent += 2;
        }
        (sent, codes, failures)
    };

    let drill = async {
        let pause = || tokio::time::sleep(Duration::from_millis(400));
        pause().await;
        let mut settings = app.settings.clone();

        // The sink's secret: the adapter signs with both, the sink moves to the new one, the old goes.
        let (sink_2, _) = WebhookSecret::generate();
        settings.sinks[0].hmac_secrets = vec![sink.secret.clone(), sink_2.clone()];
        app.reloader.reload(Ok(settings.clone())).await.expect("both sink secrets");
        pause().await;
        sink.accept_secrets(vec![sink_2.clone()]);
        pause().await;
        settings.sinks[0].hmac_secrets = vec![sink_2];
        app.reloader.reload(Ok(settings.clone())).await.expect("the new sink secret alone");
        pause().await;

        // The data key: a new active one, everything re-sealed under it while requests keep
        // coming, then the old one goes.
        let old_key = settings.keys.data_keys.active.clone();
        add_active_data_key(&mut settings, dir.path(), "data-2");
        app.reloader.reload(Ok(settings.clone())).await.expect("a new active data key");
        pause().await;
        let ring = tmp_adapter::keys::KeyMaterial::load(&settings).unwrap().data_keys.current();
        let report = tmp_adapter::ops::reseal::reseal(&*app.store, &ring, 3, |_| {}).await.expect("reseal");
        assert!(report.total() >= 4, "the fixture cards at least: {report:?}");
        settings.keys.data_keys.files.remove(&old_key);
        app.reloader.reload(Ok(settings.clone())).await.expect("the old data key, no longer used, goes");
        pause().await;

        // The listener: a certificate from the new CA, and both CAs for clients; TMP moves to a
        // certificate from the new CA; then only the new CA is trusted.
        let (cert, key) = new_ca.leaf(&["127.0.0.1"], "adapter-2");
        let mut tls = settings.server.tls.clone().unwrap();
        tls.cert_file = new_ca.write("server-2.pem", &cert);
        tls.key_file = new_ca.write("server-2.key", &key);
        tls.client_ca_file = Some(both_cas.clone());
        settings.server.tls = Some(tls.clone());
        app.reloader.reload(Ok(settings.clone())).await.expect("the new certificate, both client CAs");
        pause().await;
        *current_client.lock().unwrap() = tmp_client(new_ca.leaf(&[], "tmp"));
        pause().await;
        tls.client_ca_file = Some(ca_file(&new_ca));
        settings.server.tls = Some(tls.clone());
        app.reloader.reload(Ok(settings.clone())).await.expect("only the new client CA");
        pause().await;

        // A key that does not match its certificate is refused; the set in force keeps serving.
        let mut mismatched = settings.clone();
        let (_, other_key) = new_ca.leaf(&["127.0.0.1"], "other");
        mismatched.server.tls.as_mut().unwrap().key_file = new_ca.write("other.key", &other_key);
        let refused = app.reloader.reload(Ok(mismatched)).await.unwrap_err();
        assert!(format!("{refused:#}").contains("do not match"), "{refused:#}");
        pause().await;
        stop.store(true, Ordering::SeqCst);
    };
    let ((sent, codes, failures), ()) = tokio::join!(stream, drill);

    assert!(
        failures.is_empty(),
        "{} of {sent} failed during the rotations, the first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(sent >= 20, "the stream ran through the drill ({sent} requests)");
    // Every code reached the sink, opened from its sealed copy, signed so the sink accepted it.
    sink.wait_for(WAIT, |received| {
        let delivered: std::collections::HashSet<_> = received
            .iter()
            .filter(|r| r.answered == 200)
            .filter_map(|r| r.body["data"]["notificationId"].as_str().map(str::to_owned))
            .collect();
        codes.iter().all(|id| delivered.contains(id))
    })
    .await;
    let received = sink.received();
    assert!(received.iter().all(|r| r.signature_ok), "no delivery was refused for its signature");
    assert!(
        received.iter().all(|r| r.decrypted == Some(json!({"otp": crate::notifications::OTP}))),
        "every code opened"
    );
    for kind in tmp_adapter::store::SealedKind::ALL {
        assert_eq!(app.store.count_sealed_elsewhere(kind, "data-2").await.unwrap(), 0, "{}", kind.as_str());
    }

    // Only the new CA now: its server certificate is presented, its client certificates admitted.
    let verify = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
    let url = format!("{}{VERIFY}", app.base_url);
    let new_only = client_builder(&ca_file(&new_ca), Some(new_ca.leaf(&[], "tmp"))).build().unwrap();
    assert_eq!(post_signed(&new_only, &url, &verify, &app.secret).await.unwrap().status(), 200);
    let old_server = client_builder(&ca_file(&old_ca), Some(new_ca.leaf(&[], "tmp"))).build().unwrap();
    assert!(post_signed(&old_server, &url, &verify, &app.secret).await.is_err(), "the old certificate is gone");
    let old_client = client_builder(&both_cas, Some(old_ca.leaf(&[], "tmp"))).build().unwrap();
    assert!(
        post_signed(&old_client, &url, &verify, &app.secret).await.is_err(),
        "a client certificate from the old CA is refused at the handshake"
    );
    app.stop().await;
}
