//! The ops API's callers on both backends, with TMP unreachable (a closed port): API keys and
//! their scopes, revoked and unknown keys, operator tokens, client certificates, the rate limit,
//! the audit of writes, the decision audit of a card, the stale mirror and 503 on TMP writes.
//! The calls that reach TMP are covered against mock-tmp (mock-tmp/tests/mock/ops_api.rs).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_adapter::config::TlsSettings;
use tmp_adapter::domain::scopes::Scope;
use tmp_adapter::ops::api_keys::NewApiKey;
use tmp_adapter::store::{ApiKeyRecord, DecisionRecord, OpsAuditFilter, OpsAuditRecord};

use crate::helpers::app::*;
use crate::helpers::db::{TestDb, test_databases};
use crate::security::{Pki, client};
use crate::token_events::event_body;

const OPERATOR: &str = "tmpops_operator-token-for-the-ops-key-tests";

/// A port nothing listens on: TMP is down.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

async fn spawn(db: &TestDb, customize: impl FnOnce(&mut tmp_adapter::config::Settings)) -> (TestApp, String) {
    let tmp = closed_port();
    let app = TestApp::spawn_with(db, |s| {
        s.ops.enabled = true;
        s.ops.api_tokens = vec![hex::encode(Sha256::digest(OPERATOR.as_bytes()))];
        s.ops.tmp_request_timeout_ms = 2000;
        s.forwarding.tmp_api.base_url = tmp;
        customize(s);
    })
    .await;
    let ops = app.ops_url.clone().expect("ops listener");
    (app, ops)
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

async fn key(app: &TestApp, name: &str, scopes: &[&str], rate: Option<u32>) -> (String, String) {
    let new = NewApiKey::generate();
    let record = ApiKeyRecord {
        id: new.id.clone(),
        name: name.into(),
        secret_digest: new.digest.clone(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        rate_limit_per_minute: rate,
        created_at: OffsetDateTime::now_utc(),
        revoked_at: None,
    };
    app.store.create_api_key(&record, &audit_of("apikey.create", &new.id)).await.unwrap();
    (new.id, new.key.to_string())
}

async fn get(app: &TestApp, url: String, key: &str) -> reqwest::Response {
    app.client.get(url).bearer_auth(key).send().await.expect("ops request")
}

async fn post(app: &TestApp, url: String, key: &str, body: &Value, idempotency_key: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(url).bearer_auth(key).json(body);
    if let Some(k) = idempotency_key {
        request = request.header("X-Idempotency-Key", k);
    }
    request.send().await.expect("ops request")
}

#[tokio::test]
async fn api_keys_are_checked_by_digest_scope_and_revocation() {
    for db in test_databases().await {
        let (app, ops) = spawn(&db, |_| {}).await;
        let (admin_id, admin) = key(&app, "outbox admin", &["outbox:admin"], None).await;
        let (_, reader) = key(&app, "token reader", &["tokens:read"], None).await;

        expect_json(get(&app, format!("{ops}/ops/v1/outbox"), &admin).await, 200).await;
        let body = expect_error(get(&app, format!("{ops}/ops/v1/outbox"), &reader).await, 403, "FORBIDDEN").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("outbox:admin"), "{body}");
        // Every route holds its scope.
        for (method, path) in [
            ("GET", "/ops/v1/audit"),
            ("GET", "/ops/v1/cards/card-1/decisions"),
            ("POST", "/ops/v1/tokens/tok-1/suspend"),
            ("POST", "/ops/v1/cards/card-1/push-provisioning/apple-pay"),
            ("POST", "/ops/v1/cards/card-1/push-provisioning/google-pay"),
            ("POST", "/ops/v1/outbox/replay"),
            ("POST", "/ops/v1/config/reload"),
        ] {
            let url = format!("{ops}{path}");
            let response = match method {
                "GET" => get(&app, url, &reader).await,
                _ => post(&app, url, &reader, &json!({"reason": "x"}), None).await,
            };
            expect_error(response, 403, "FORBIDDEN").await;
        }
        // A token's history needs tokens:read, which the outbox admin lacks.
        let history = get(&app, format!("{ops}/ops/v1/tokens/tok-1/history"), &admin).await;
        expect_error(history, 403, "FORBIDDEN").await;
        // The operator token of ops.api_tokens holds every scope.
        expect_json(get(&app, format!("{ops}/ops/v1/audit"), OPERATOR).await, 200).await;

        // A key of the right shape that was never made, a tampered secret, a revoked key: 401.
        let unknown = NewApiKey::generate();
        let refused = get(&app, format!("{ops}/ops/v1/outbox"), &unknown.key).await;
        assert_eq!(refused.headers().get("www-authenticate").unwrap(), "Bearer");
        expect_error(refused, 401, "UNAUTHENTICATED").await;
        let mut tampered = admin.clone();
        tampered.replace_range(tampered.len() - 4.., "0000");
        expect_error(get(&app, format!("{ops}/ops/v1/outbox"), &tampered).await, 401, "UNAUTHENTICATED").await;
        assert!(
            app.store
                .revoke_api_key(&admin_id, OffsetDateTime::now_utc(), &audit_of("apikey.revoke", &admin_id))
                .await
                .unwrap()
        );
        expect_error(get(&app, format!("{ops}/ops/v1/outbox"), &admin).await, 401, "UNAUTHENTICATED").await;
        assert!(
            !app.store
                .revoke_api_key(&admin_id, OffsetDateTime::now_utc(), &audit_of("apikey.revoke", &admin_id))
                .await
                .unwrap()
        );
        let keys = app.store.list_api_keys().await.unwrap();
        assert_eq!(keys.len(), 2, "{}", db.backend);
        assert!(keys.iter().all(|k| k.secret_digest.len() == 32), "only digests are stored");
        assert!(keys.iter().find(|k| k.id == admin_id).unwrap().revoked_at.is_some());
        let audit = app.store.list_ops_audit(&OpsAuditFilter { card_id: None, limit: 10 }).await.unwrap();
        assert_eq!(audit[0].action, "apikey.revoke", "{}", db.backend);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_rate_limit_is_per_caller_with_retry_after() {
    for db in test_databases().await {
        let (app, ops) = spawn(&db, |s| {
            s.ops.rate_limit.requests_per_minute = 60;
            s.ops.rate_limit.burst = 2;
        })
        .await;
        let (_, first) = key(&app, "first", &["outbox:admin"], None).await;
        let (_, second) = key(&app, "second", &["outbox:admin"], None).await;
        let (_, slow) = key(&app, "slow", &["outbox:admin"], Some(1)).await;
        for _ in 0..2 {
            expect_json(get(&app, format!("{ops}/ops/v1/outbox"), &first).await, 200).await;
        }
        let limited = get(&app, format!("{ops}/ops/v1/outbox"), &first).await;
        assert_eq!(limited.headers()["retry-after"], "1");
        expect_error(limited, 429, "RATE_LIMITED").await;
        expect_json(get(&app, format!("{ops}/ops/v1/outbox"), &second).await, 200).await;
        // A key's own rate: one a minute, so a burst of one and a minute's wait.
        expect_json(get(&app, format!("{ops}/ops/v1/outbox"), &slow).await, 200).await;
        let limited = get(&app, format!("{ops}/ops/v1/outbox"), &slow).await;
        let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((55..=60).contains(&wait), "{wait}");
        expect_error(limited, 429, "RATE_LIMITED").await;
        app.stop().await;
    }
}

#[tokio::test]
async fn tmp_down_serves_the_stale_mirror_and_refuses_writes_with_503() {
    for db in test_databases().await {
        let (app, ops) = spawn(&db, |_| {}).await;
        let (_, key) =
            key(&app, "back office", &["tokens:read", "tokens:write", "provisioning", "audit:read"], None).await;
        // TMP told the adapter about a token earlier (the mirror).
        let event = event_body("tok-9", "card-9", "ACTIVE", "2026-03-01T10:00:00Z");
        expect_json(app.request("/issuer-api/v1/tokens/events").json(&event).send().await, 200).await;

        let listed = expect_json(get(&app, format!("{ops}/ops/v1/cards/card-9/tokens"), &key).await, 200).await;
        assert_eq!((listed["source"].as_str(), listed["stale"].as_bool()), (Some("mirror"), Some(true)), "{listed}");
        assert_eq!(listed["tokens"][0]["tokenId"], "tok-9");
        assert_eq!(listed["tokens"][0]["status"], "ACTIVE");
        assert_eq!(listed["tokens"][0]["wallet"], "GOOGLE_PAY");
        let empty = expect_json(get(&app, format!("{ops}/ops/v1/cards/card-0/tokens"), &key).await, 200).await;
        assert_eq!(empty["tokens"], json!([]), "{empty}");

        let response =
            post(&app, format!("{ops}/ops/v1/tokens/tok-9/suspend"), &key, &json!({"reason": "lost phone"}), None)
                .await;
        assert_eq!(response.headers()["retry-after"], "1");
        expect_error(response, 503, "UNAVAILABLE").await;
        let apple = json!({"certificates": ["MIIB"], "nonce": "0a0b", "nonceSignature": "0c0d"});
        let response =
            post(&app, format!("{ops}/ops/v1/cards/card-9/push-provisioning/apple-pay"), &key, &apple, None).await;
        expect_error(response, 503, "UNAVAILABLE").await;

        // Bad input is refused before TMP is tried.
        for (body, code) in [
            (json!({"certificates": [], "nonce": "0a", "nonceSignature": "0c"}), "VALIDATION_FAILED"),
            (json!({"certificates": ["MIIB"], "nonce": "xyz", "nonceSignature": "0c"}), "VALIDATION_FAILED"),
            (json!({"certificates": ["MIIB"], "nonce": "0a", "nonceSignature": "0c", "extra": 1}), "VALIDATION_FAILED"),
        ] {
            let response =
                post(&app, format!("{ops}/ops/v1/cards/card-9/push-provisioning/apple-pay"), &key, &body, None).await;
            expect_error(response, 422, code).await;
        }
        let huge = json!({"reason": "x".repeat(20_000)});
        expect_error(
            post(&app, format!("{ops}/ops/v1/tokens/tok-9/suspend"), &key, &huge, None).await,
            413,
            "PAYLOAD_TOO_LARGE",
        )
        .await;
        let bad_key =
            post(&app, format!("{ops}/ops/v1/tokens/tok-9/suspend"), &key, &json!({"reason": "x"}), Some("a b")).await;
        expect_error(bad_key, 400, "INVALID_HEADER").await;
        let bad_limit = get(&app, format!("{ops}/ops/v1/audit?limit=0"), &key).await;
        expect_error(bad_limit, 422, "VALIDATION_FAILED").await;

        // Every write attempt is audited with its outcome and reason.
        let audit = expect_json(get(&app, format!("{ops}/ops/v1/audit"), &key).await, 200).await;
        let items = audit["items"].as_array().unwrap();
        let suspend = items.iter().find(|e| e["action"] == "token.suspend" && e["outcome"] == "UNAVAILABLE").unwrap();
        assert_eq!((suspend["reason"].as_str(), suspend["status"].as_u64()), (Some("OTHER: lost phone"), Some(503)));
        assert!(suspend["actor"].as_str().unwrap().ends_with("(back office)"), "{suspend}");
        assert!(items.iter().any(|e| e["action"] == "provisioning.apple_pay" && e["outcome"] == "VALIDATION_FAILED"));
        app.stop().await;
    }
}

#[tokio::test]
async fn the_decision_audit_of_a_card_never_shows_card_data() {
    for db in test_databases().await {
        let (app, ops) = spawn(&db, |_| {}).await;
        let (_, auditor) = key(&app, "auditor", &["audit:read"], None).await;
        for (minute, decision) in ["APPROVED", "DECLINED"].iter().enumerate() {
            let record = DecisionRecord {
                id: uuid::Uuid::new_v4(),
                decided_at: OffsetDateTime::now_utc() + time::Duration::minutes(minute as i64),
                correlation_id: format!("corr-{minute}"),
                operation: "verify_card".into(),
                tokenization_id: Some(format!("tkn-{minute}")),
                card_id: Some("card-active".into()),
                pan_last4: Some("1111".into()),
                token_requestor_id: Some("50110030273".into()),
                wallet: Some("APPLE_PAY".into()),
                tsp: Some("MDES".into()),
                decision: (*decision).into(),
                reason: if minute == 0 { "CARD_VERIFIED".into() } else { "CVC_NO_MATCH".into() },
                card_status: "ACTIVE".into(),
                cvc_result: "MATCH".into(),
                stand_in: false,
                latency_ms: 12,
                device_id: Some("dev-phone-1".into()),
                device_type: Some("PHONE".into()),
                token_type: Some("SECURE_ELEMENT".into()),
                recommendation_reasons: Some(r#"["ACCOUNT_TOO_NEW"]"#.into()),
                pan_source: Some("KEY_ENTERED".into()),
                network_score: Some(3),
                hook_outcome: None,
                hook_decision: None,
                hook_reason: None,
            };
            app.store.record_decision(&record, None).await.unwrap();
        }
        let answer =
            expect_json(get(&app, format!("{ops}/ops/v1/cards/card-active/decisions?limit=5"), &auditor).await, 200)
                .await;
        assert_eq!(answer["cardId"], "card-active");
        let items = answer["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{}", db.backend);
        assert_eq!(
            (items[0]["decision"].as_str(), items[0]["reason"].as_str()),
            (Some("DECLINED"), Some("CVC_NO_MATCH"))
        );
        assert_eq!(items[1]["tokenizationId"], "tkn-0");
        // The risk context as TMP sent it.
        assert_eq!(
            (&items[1]["recommendationReasons"], &items[1]["panSource"], &items[1]["networkScore"]),
            (&json!(["ACCOUNT_TOO_NEW"]), &json!("KEY_ENTERED"), &json!(3))
        );
        let keys: Vec<_> = items[0].as_object().unwrap().keys().cloned().collect();
        assert!(!keys.iter().any(|k| k == "pan" || k == "cvc" || k == "expiry"), "{keys:?}");
        let none =
            expect_json(get(&app, format!("{ops}/ops/v1/cards/card-other/decisions"), &auditor).await, 200).await;
        assert_eq!(none["items"], json!([]));
        app.stop().await;
    }
}

#[tokio::test]
async fn outbox_writes_are_audited_and_honour_the_idempotency_key() {
    for db in test_databases().await {
        let (app, ops) = spawn(&db, |_| {}).await;
        let (admin_id, admin) = key(&app, "operator", &["outbox:admin", "audit:read"], None).await;
        let body = json!({"cardId": "card-7", "reason": "TMP outage over"});
        let first = post(&app, format!("{ops}/ops/v1/outbox/replay"), &admin, &body, Some("replay-1")).await;
        assert_eq!(expect_json(first, 200).await["replayed"], 0);
        let again = post(&app, format!("{ops}/ops/v1/outbox/replay"), &admin, &body, Some("replay-1")).await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        expect_json(again, 200).await;
        let other = json!({"cardId": "card-8"});
        expect_error(
            post(&app, format!("{ops}/ops/v1/outbox/replay"), &admin, &other, Some("replay-1")).await,
            422,
            "IDEMPOTENCY_KEY_REUSED",
        )
        .await;
        let unknown = uuid::Uuid::new_v4();
        expect_error(
            post(&app, format!("{ops}/ops/v1/outbox/{unknown}/retry"), &admin, &json!({}), None).await,
            404,
            "NOT_FOUND",
        )
        .await;

        let audit =
            app.store.list_ops_audit(&OpsAuditFilter { card_id: Some("card-7".into()), limit: 10 }).await.unwrap();
        assert_eq!(audit.len(), 1, "a replayed answer is not a second write ({})", db.backend);
        assert_eq!(audit[0].action, "outbox.replay");
        assert_eq!(audit[0].actor, format!("apikey:{admin_id} (operator)"));
        assert_eq!(audit[0].reason.as_deref(), Some("TMP outage over"));
        let listed = expect_json(get(&app, format!("{ops}/ops/v1/audit?limit=3"), &admin).await, 200).await;
        let actions: Vec<_> = listed["items"].as_array().unwrap().iter().map(|e| e["action"].clone()).collect();
        assert_eq!(actions, ["outbox.retry", "outbox.replay", "outbox.replay"], "{listed}");
        assert_eq!(listed["items"][1]["outcome"], "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(listed["items"][0]["outcome"], "NOT_FOUND");
        app.stop().await;
    }
}

#[tokio::test]
async fn client_certificates_authenticate_by_subject_with_the_configured_scopes() {
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf(&["127.0.0.1", "localhost"], "adapter-ops");
    let (known_cert, known_key) = pki.leaf(&[], "back-office.bank.example");
    let (other_cert, other_key) = pki.leaf(&[], "someone-else.bank.example");
    let tls = TlsSettings {
        cert_file: pki.write("ops.pem", &server_cert),
        key_file: pki.write("ops.key", &server_key),
        client_ca_file: Some(pki.dir.path().join("ca.pem")),
    };
    let ca = pki.dir.path().join("ca.pem");
    for db in test_databases().await {
        let tls = tls.clone();
        let (app, ops) = spawn(&db, |s| {
            s.ops.tls = Some(tls);
            s.ops.mtls.subjects.insert("back-office.bank.example".into(), [Scope::OutboxAdmin].into());
        })
        .await;
        let ops = ops.replace("http://", "https://");
        let known = client(&ca, Some((known_cert.clone(), known_key.clone())));
        let answer = known.get(format!("{ops}/ops/v1/outbox")).send().await.unwrap();
        expect_json(answer, 200).await;
        let forbidden = known.get(format!("{ops}/ops/v1/audit")).send().await.unwrap();
        expect_error(forbidden, 403, "FORBIDDEN").await;
        let retried = known
            .post(format!("{ops}/ops/v1/outbox/replay"))
            .json(&json!({"cardId": "card-1", "reason": "by certificate"}))
            .send()
            .await
            .unwrap();
        expect_json(retried, 200).await;
        let audit =
            app.store.list_ops_audit(&OpsAuditFilter { card_id: Some("card-1".into()), limit: 1 }).await.unwrap();
        assert_eq!(audit[0].actor, "mtls:back-office.bank.example", "{}", db.backend);

        let other = client(&ca, Some((other_cert.clone(), other_key.clone())));
        let refused = other.get(format!("{ops}/ops/v1/outbox")).send().await.unwrap();
        expect_error(refused, 401, "UNAUTHENTICATED").await;
        let anonymous = client(&ca, None);
        expect_error(anonymous.get(format!("{ops}/ops/v1/outbox")).send().await.unwrap(), 401, "UNAUTHENTICATED").await;
        // A bearer credential works over TLS too.
        let token = anonymous.get(format!("{ops}/ops/v1/audit")).bearer_auth(OPERATOR).send().await.unwrap();
        expect_json(token, 200).await;
        app.stop().await;
    }
}

/// `POST /ops/v1/config/reload` (scope `config:admin`) is the reload `SIGHUP` does, from where the
/// adapter reads its configuration: a new Issuer API secret is in force once it answers 200; a
/// broken configuration answers 409 with the reason and changes nothing; both are audited; an
/// adapter started without a configuration to reload from says so.
#[tokio::test]
async fn an_admin_reloads_keys_and_secrets_through_the_ops_api() {
    use std::sync::{Arc, Mutex};
    for db in test_databases().await {
        let b = db.backend;
        let (app, ops) = spawn(&db, |_| {}).await;
        app.import(&fixture_cards()).await;
        let (_, admin) = key(&app, "config admin", &["config:admin"], None).await;
        let url = format!("{ops}/ops/v1/config/reload");
        let body = json!({"reason": "issuer secret rotation"});

        // Nothing to reload from yet (the test built the adapter from settings in code).
        let refused = expect_error(post(&app, url.clone(), &admin, &body, None).await, 409, "CONFLICT").await;
        assert!(refused["error"]["message"].as_str().unwrap().contains("configuration directory"), "{b}: {refused}");

        let configured = Arc::new(Mutex::new(app.settings.clone()));
        let source = configured.clone();
        app.reloader.read_from(Arc::new(move || Ok(source.lock().unwrap().clone())));
        let (second, _) = tmp_protocol::webhook::WebhookSecret::generate();
        configured.lock().unwrap().auth.hmac_secrets = vec![app.secret.clone(), second.clone()];
        let card = verify_body_for(&app);
        let verify_signed_with_second = || {
            app.request("/issuer-api/v1/cards/verify").json(&card).signing(Signing::WithSecret(second.clone())).send()
        };
        expect_error(verify_signed_with_second().await, 401, "INVALID_SIGNATURE").await;
        let applied = expect_json(post(&app, url.clone(), &admin, &body, Some("reload-1")).await, 200).await;
        assert!(applied["summary"].as_str().unwrap().contains("2 Issuer API secret(s)"), "{b}: {applied}");
        expect_json(verify_signed_with_second().await, 200).await;
        // The same key and body: the stored answer, not a second reload.
        let replayed = expect_json(post(&app, url.clone(), &admin, &body, Some("reload-1")).await, 200).await;
        assert_eq!(replayed, applied, "{b}");

        // A broken configuration: 409 with the reason, the set in force keeps serving.
        configured.lock().unwrap().keys.jwe[0].private_key_file = "/nonexistent/jwe.pem".into();
        configured.lock().unwrap().keys.generate_missing_in = None;
        let refused = expect_error(post(&app, url.clone(), &admin, &body, None).await, 409, "CONFLICT").await;
        assert!(refused["error"]["message"].as_str().unwrap().contains("/nonexistent/jwe.pem"), "{b}: {refused}");
        expect_json(verify_signed_with_second().await, 200).await;

        let audit = app.store.list_ops_audit(&OpsAuditFilter { card_id: None, limit: 10 }).await.unwrap();
        let reloads: Vec<_> =
            audit.iter().filter(|a| a.action == "config.reload").map(|a| a.outcome.as_str()).collect();
        assert_eq!(reloads, vec!["CONFLICT", "ok", "CONFLICT"], "{b}: newest first");
        app.stop().await;
    }
}

fn verify_body_for(app: &TestApp) -> Value {
    crate::verify_card::verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY")
}
