//! The ops API over real sockets, on its own listener: bearer-token authentication, nothing of
//! the Issuer API served there, and outbox administration that changes rows the way
//! `tmp-adapter outbox …` does.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tmp_adapter::domain::scopes::Scope;
use tmp_adapter::outbox::{Destination, OutboxStatus};
use tmp_adapter::store::{DeliveryResult, OutboxEntry};

use crate::forwarding::{EVENTS, event};
use crate::helpers::app::*;
use crate::helpers::db::{TestDb, test_databases};

const TOKEN: &str = "tmpops_test-token-for-the-ops-api";

async fn spawn(db: &TestDb) -> (TestApp, String) {
    let app = TestApp::spawn_with(db, |s| {
        s.server.body_read_timeout_secs = 1;
        s.ops.enabled = true;
        s.ops.api_tokens = vec![hex::encode(Sha256::digest(TOKEN.as_bytes()))];
        s.processor.hmac_secrets = s.auth.hmac_secrets.clone();
    })
    .await;
    let ops = app.ops_url.clone().expect("ops listener");
    (app, ops)
}

async fn get(app: &TestApp, url: String, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("ops request")
}

async fn post(app: &TestApp, url: String, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.post(url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("ops request")
}

/// Every row of `card`, oldest first.
async fn rows_of(app: &TestApp, card: &str) -> Vec<OutboxEntry> {
    let filter = tmp_adapter::store::OutboxFilter { status: None, ordering_key: Some(card.into()), limit: 100 };
    let mut rows = app.store.list_outbox(&filter).await.unwrap();
    rows.sort_by_key(|e| e.seq);
    rows
}

/// Stands in for the relay: the oldest pending row of each card fails for good with `error`.
async fn fail_heads(app: &TestApp, error: &str) {
    let now = OffsetDateTime::now_utc();
    for destination in Destination::ALL {
        let lease = now + time::Duration::minutes(1);
        let claimed = app.store.claim_outbox("test-relay", destination, now, lease, 100).await.unwrap();
        for entry in claimed {
            let held = DeliveryResult::Held { error: error.to_owned() };
            assert!(app.store.finish_outbox(entry.record.id, "test-relay", now, &held).await.unwrap());
        }
    }
}

#[tokio::test]
async fn ops_api_needs_a_valid_token_and_serves_nothing_of_the_issuer_api() {
    for db in test_databases().await {
        let (app, ops) = spawn(&db).await;
        assert_ne!(ops, app.base_url, "{}: the ops API has its own port", db.backend);

        let refused = get(&app, format!("{ops}/ops/v1/outbox"), None).await;
        assert_eq!(refused.headers().get("www-authenticate").unwrap(), "Bearer");
        assert!(refused.headers().get("x-correlation-id").is_some());
        expect_error(refused, 401, "UNAUTHENTICATED").await;
        expect_error(get(&app, format!("{ops}/ops/v1/outbox"), Some("wrong-token")).await, 401, "UNAUTHENTICATED")
            .await;
        // A digest is not a token.
        let digest = hex::encode(Sha256::digest(TOKEN.as_bytes()));
        expect_error(get(&app, format!("{ops}/ops/v1/outbox"), Some(&digest)).await, 401, "UNAUTHENTICATED").await;
        let raw = app.client.get(format!("{ops}/ops/v1/outbox")).header("authorization", TOKEN).send().await.unwrap();
        expect_error(raw, 401, "UNAUTHENTICATED").await;
        // The ops port's root names it, without credentials.
        let index = expect_json(get(&app, format!("{ops}/"), None).await, 200).await;
        assert_eq!((index["service"].as_str(), index["listener"].as_str()), (Some("tmp-adapter"), Some("ops")));
        let listed = expect_json(get(&app, format!("{ops}/ops/v1/outbox"), Some(TOKEN)).await, 200).await;
        assert_eq!(listed["items"], json!([]), "{}", db.backend);

        // Writes are authenticated too.
        let id = uuid::Uuid::new_v4();
        let unauthenticated = app.client.post(format!("{ops}/ops/v1/outbox/{id}/skip")).send().await.unwrap();
        expect_error(unauthenticated, 401, "UNAUTHENTICATED").await;
        let replay = app.client.post(format!("{ops}/ops/v1/outbox/replay")).json(&json!({"cardId": "c"}));
        expect_error(replay.bearer_auth("nope").send().await.unwrap(), 401, "UNAUTHENTICATED").await;

        // Unknown rows, bad parameters: the contract's error body.
        expect_error(get(&app, format!("{ops}/ops/v1/outbox/{id}"), Some(TOKEN)).await, 404, "NOT_FOUND").await;
        expect_error(get(&app, format!("{ops}/ops/v1/outbox/not-a-uuid"), Some(TOKEN)).await, 404, "NOT_FOUND").await;
        expect_error(post(&app, format!("{ops}/ops/v1/outbox/{id}/retry"), None).await, 404, "NOT_FOUND").await;
        expect_error(
            get(&app, format!("{ops}/ops/v1/outbox?status=lost"), Some(TOKEN)).await,
            422,
            "VALIDATION_FAILED",
        )
        .await;
        expect_error(get(&app, format!("{ops}/ops/v1/outbox?limit=0"), Some(TOKEN)).await, 422, "VALIDATION_FAILED")
            .await;
        let wrong_method = app.client.delete(format!("{ops}/ops/v1/outbox")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(wrong_method.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET"));
        expect_error(wrong_method, 405, "METHOD_NOT_ALLOWED").await;

        // Nothing of the Issuer API on the ops port...
        for path in ["/issuer-api/v1/public-key", "/healthz", "/metrics"] {
            expect_error(get(&app, format!("{ops}{path}"), Some(TOKEN)).await, 404, "NOT_FOUND").await;
        }
        let verify = app.client.post(format!("{ops}/issuer-api/v1/cards/verify")).json(&json!({})).send().await;
        expect_error(verify.unwrap(), 404, "NOT_FOUND").await;
        let ingest = app.client.post(format!("{ops}{EVENTS}")).json(&json!([])).send().await;
        expect_error(ingest.unwrap(), 404, "NOT_FOUND").await;
        // ...and nothing of the ops API on the Issuer API port.
        let on_issuer_port = get(&app, format!("{}/ops/v1/outbox", app.base_url), Some(TOKEN)).await;
        expect_error(on_issuer_port, 404, "NOT_FOUND").await;

        // The ops listener serves its own OpenAPI document, and is counted in the metrics.
        let served = get(&app, format!("{ops}/openapi.json"), None).await.text().await.unwrap();
        assert_eq!(served, tmp_adapter::openapi::ops_api_json());
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("tmp_adapter_http_requests_total{method=\"GET\",route=\"/ops/v1/outbox\",status=\"401\"}"),
            "{metrics}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn ops_api_lists_held_rows_and_retries_skips_and_replays_like_the_cli() {
    for db in test_databases().await {
        let (app, ops) = spawn(&db).await;
        let started = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let batch = json!([
            event("c1-0", "c1", "card.status_changed", json!({"status": "BLOCKED", "reason": "0"})),
            event("c1-1", "c1", "card.status_changed", json!({"status": "ACTIVE", "reason": "1"})),
            event("c2-0", "c2", "card.closed", json!({})),
            event("c3-0", "c3", "card.closed", json!({})),
        ]);
        expect_json(app.request(EVENTS).json(&batch).send().await, 202).await;
        // The head of every card fails for good: three held rows; c1-1 waits behind c1-0.
        fail_heads(&app, "HTTP 404 NOT_FOUND").await;
        let (c1_0, c1_1) = {
            let rows = rows_of(&app, "c1").await;
            (rows[0].record.id, rows[1].record.id)
        };
        let c2_0 = rows_of(&app, "c2").await[0].record.id;

        // Held rows, with their last error; the one waiting behind is merely pending.
        let held = expect_json(get(&app, format!("{ops}/ops/v1/outbox?status=held"), Some(TOKEN)).await, 200).await;
        let items = held["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{}: {held}", db.backend);
        let pending =
            expect_json(get(&app, format!("{ops}/ops/v1/outbox?status=pending"), Some(TOKEN)).await, 200).await;
        assert_eq!(pending["items"].as_array().unwrap().len(), 1, "{}: {pending}", db.backend);
        assert_eq!(pending["items"][0]["id"], c1_1.to_string());
        for item in items {
            assert_eq!(item["status"], "held");
            assert_eq!(item["lastError"], "HTTP 404 NOT_FOUND");
            assert_eq!(item["attempts"], 1);
        }
        let c1 = expect_json(get(&app, format!("{ops}/ops/v1/outbox?cardId=c1&limit=1"), Some(TOKEN)).await, 200).await;
        assert_eq!(c1["items"].as_array().unwrap().len(), 1, "{c1}");
        assert_eq!(c1["items"][0]["id"], c1_1.to_string(), "newest first");
        let shown = expect_json(get(&app, format!("{ops}/ops/v1/outbox/{c1_0}"), Some(TOKEN)).await, 200).await;
        assert_eq!(shown["cardId"], "c1");
        assert_eq!(shown["eventType"], "card.status_changed");
        assert_eq!(shown["destination"], "tmp_api");
        assert_eq!(shown["lastError"], "HTTP 404 NOT_FOUND");
        assert_eq!(shown["attempts"], 1);
        assert!(shown["seq"].is_i64() && shown["payload"].is_object(), "{shown}");

        // Retry by id: the held row is due again with a fresh schedule.
        let retried = expect_json(post(&app, format!("{ops}/ops/v1/outbox/{c1_0}/retry"), None).await, 200).await;
        assert_eq!(retried["status"], "pending");
        let row = app.store.find_outbox(c1_0).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.attempts), ("pending", 0), "{}", db.backend);

        // Skip by id: a pending row goes dead with the operator's reason; a dead one can't be skipped.
        let body = json!({"reason": "card migrated by hand"});
        let skipped = expect_json(post(&app, format!("{ops}/ops/v1/outbox/{c1_1}/skip"), Some(body)).await, 200).await;
        assert_eq!(skipped["status"], "dead");
        let row = app.store.find_outbox(c1_1).await.unwrap().unwrap();
        assert_eq!(row.status, OutboxStatus::Dead, "{}", db.backend);
        assert_eq!(row.last_error.as_deref(), Some("skipped by an operator: card migrated by hand"));
        expect_error(post(&app, format!("{ops}/ops/v1/outbox/{c1_1}/skip"), None).await, 409, "CONFLICT").await;
        // A held row is skipped the same way.
        let skipped = expect_json(post(&app, format!("{ops}/ops/v1/outbox/{c2_0}/skip"), None).await, 200).await;
        assert_eq!(skipped["status"], "dead", "{}", db.backend);

        // Replay by id.
        let replayed =
            expect_json(post(&app, format!("{ops}/ops/v1/outbox/replay"), Some(json!({"id": c1_1}))).await, 200).await;
        assert_eq!(replayed["replayed"], 1, "{}", db.backend);
        assert_eq!(app.store.find_outbox(c1_1).await.unwrap().unwrap().status, OutboxStatus::Pending);
        // By card.
        let replayed =
            expect_json(post(&app, format!("{ops}/ops/v1/outbox/replay"), Some(json!({"cardId": "c2"}))).await, 200)
                .await;
        assert_eq!(replayed["replayed"], 1, "{}", db.backend);
        assert_eq!(rows_of(&app, "c2").await[0].status, OutboxStatus::Pending);
        // By time range: only c3's row is still held in it; an empty range replays nothing.
        let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
        let range = |since: OffsetDateTime, until: OffsetDateTime| {
            json!({"since": since.format(&Rfc3339).unwrap(), "until": until.format(&Rfc3339).unwrap(),
                   "reason": "receiver fixed"})
        };
        let before = started - time::Duration::hours(1);
        let empty =
            expect_json(post(&app, format!("{ops}/ops/v1/outbox/replay"), Some(range(before, started))).await, 200)
                .await;
        assert_eq!(empty["replayed"], 0);
        assert_eq!(rows_of(&app, "c3").await[0].status, OutboxStatus::Held);
        let replayed =
            expect_json(post(&app, format!("{ops}/ops/v1/outbox/replay"), Some(range(started, now))).await, 200).await;
        assert_eq!(replayed["replayed"], 1, "{}", db.backend);
        assert_eq!(rows_of(&app, "c3").await[0].status, OutboxStatus::Pending);
        for status in ["held", "dead"] {
            let listed =
                expect_json(get(&app, format!("{ops}/ops/v1/outbox?status={status}"), Some(TOKEN)).await, 200).await;
            assert_eq!(listed["items"], json!([]), "{}: {status}", db.backend);
        }

        // Malformed replays: the contract's errors.
        for body in [json!({}), json!({"id": c1_0, "cardId": "c1"}), json!({"since": "2026-01-01T00:00:00Z"})] {
            let response = post(&app, format!("{ops}/ops/v1/outbox/replay"), Some(body)).await;
            expect_error(response, 422, "VALIDATION_FAILED").await;
        }
        let bad_time = json!({"since": "yesterday", "until": "2026-01-01T00:00:00Z"});
        expect_error(post(&app, format!("{ops}/ops/v1/outbox/replay"), Some(bad_time)).await, 422, "VALIDATION_FAILED")
            .await;
        let unknown = json!({"id": uuid::Uuid::new_v4()});
        expect_error(post(&app, format!("{ops}/ops/v1/outbox/replay"), Some(unknown)).await, 404, "NOT_FOUND").await;
        let malformed = app
            .client
            .post(format!("{ops}/ops/v1/outbox/replay"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        expect_error(malformed, 400, "MALFORMED_JSON").await;
        app.stop().await;
    }
}

#[tokio::test]
async fn a_slow_or_oversized_body_cannot_hold_an_ops_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for db in test_databases().await {
        let (app, ops) = spawn(&db).await;
        let address = ops.trim_start_matches("http://").to_owned();
        let head = |length: usize| {
            format!(
                "POST /ops/v1/outbox/replay HTTP/1.1\r\nHost: ops\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
            )
        };
        let answer = |mut stream: tokio::net::TcpStream| async move {
            let mut text = Vec::new();
            // Bounded: a listener that waits forever fails the test instead of hanging it.
            let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut text));
            read.await.expect("answered").expect("read");
            String::from_utf8_lossy(&text).into_owned()
        };
        // A declared body larger than the limit is refused before a byte of it is read.
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(head(1 << 30).as_bytes()).await.unwrap();
        let text = answer(stream).await;
        assert!(text.starts_with("HTTP/1.1 413"), "{}: {text}", db.backend);
        assert!(text.contains("PAYLOAD_TOO_LARGE"), "{text}");
        // A body that stops arriving is given up on after server.body_read_timeout_secs.
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(format!("{}{{\"cardId\"", head(40)).as_bytes()).await.unwrap();
        let text = answer(stream).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{}: {text}", db.backend);
        assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
        app.stop().await;
    }
}

#[test]
fn ops_settings_are_validated() {
    let db_url = "sqlite://unused.db";
    let mut settings = base_settings(db_url);
    settings.ops.enabled = true;
    settings.ops.api_tokens = vec![TOKEN.to_owned()];
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("ops.api_tokens[0]"), "{error}");
    settings.ops.api_tokens = vec![];
    settings.ops.port = 8080;
    settings.server.port = 8080;
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("ops.port"), "{error}");

    // Client certificate subjects need a client CA, and name real scopes.
    let mut settings = base_settings(db_url);
    settings.ops.mtls.subjects.insert("back-office".into(), [Scope::TokensRead].into());
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("ops.mtls.subjects needs ops.tls"), "{error}");
    settings.ops.tls = Some(tmp_adapter::config::TlsSettings {
        cert_file: "cert.pem".into(),
        key_file: "key.pem".into(),
        client_ca_file: Some("ca.pem".into()),
    });
    settings.validate().expect("subjects with a client CA");
    let mut settings = base_settings(db_url);
    settings.ops.rate_limit.burst = 0;
    assert!(settings.validate().unwrap_err().to_string().contains("ops.rate_limit"));

    // Production: API keys live in the database, so the ops API may be enabled without a digest.
    let mut settings = base_settings(db_url);
    settings.environment = tmp_adapter::config::Environment::Production;
    settings.keys.generate_missing_in = None;
    settings.auth.hmac_secrets = vec![tmp_protocol::webhook::WebhookSecret::generate().0];
    settings.processor.hmac_secrets = vec![];
    settings.forwarding.lifecycle_api.hmac_secrets = vec![];
    settings.log.level = "info".into();
    settings.server.tls_terminated_by_proxy = true;
    settings.ops.enabled = true;
    // The ops API calls TMP: production wants its real, signed address.
    settings.forwarding.tmp_api.base_url = "https://tmp.verestro.example".into();
    settings.forwarding.tmp_api.hmac_secrets = vec![tmp_protocol::webhook::WebhookSecret::generate().0];
    settings.validate().expect("production-ready, API keys only");
}

/// One peer holds at most `max_connections_per_peer` connections on a listener: a further one is
/// shut down as it is accepted (no answer at all), another peer is served meanwhile, and a
/// connection closed frees its slot. The ops listener here; the Issuer API's uses the same code.
#[tokio::test]
async fn one_peer_cannot_hold_more_than_its_share_of_a_listeners_connections() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = test_databases().await.remove(0);
    let app = TestApp::spawn_with(&db, |s| {
        s.ops.enabled = true;
        s.ops.max_connections_per_peer = 3;
    })
    .await;
    let address: std::net::SocketAddr = app.ops_url.clone().unwrap().trim_start_matches("http://").parse().unwrap();
    let connect_from = |source: &'static str| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(address).await.unwrap()
    };
    // What a connection gets for `GET /`: the status line, or nothing when it was shut down.
    let get_index = |mut stream: tokio::net::TcpStream| async move {
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n").await;
        let mut text = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut text));
        let _ = read.await.expect("the connection ends");
        String::from_utf8_lossy(&text).lines().next().unwrap_or_default().to_owned()
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1").await);
    }
    assert_eq!(get_index(connect_from("127.0.0.1").await).await, "", "a fourth connection gets no answer");
    assert_eq!(get_index(connect_from("127.0.0.2").await).await, "HTTP/1.1 200 OK", "another peer is served");
    drop(held.pop());
    // The slot frees once the adapter has seen the close.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = get_index(connect_from("127.0.0.1").await).await;
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the closed connection's slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_tokens_history_lists_every_event_in_the_order_things_happened() {
    use crate::token_events::event_body;
    for db in test_databases().await {
        let (app, ops) = spawn(&db).await;
        let b = db.backend;
        // The card verification of the tokenization that creates the token.
        app.import(&crate::helpers::app::fixture_cards()).await;
        let cvc = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let mut verify =
            crate::verify_card::verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, Some(&cvc)), "GOOGLE_PAY");
        verify["tokenizationId"] = json!("tkn-h");
        expect_json(app.request("/issuer-api/v1/cards/verify").json(&verify).send().await, 200).await;
        // Created, suspended, then a late ACTIVE that happened between the two (history only);
        // then the card is replaced and the token moves to the new card.
        for (status, at, card) in [
            ("ACTIVE", "2026-03-01T10:00:00Z", "card-active"),
            ("SUSPENDED", "2026-03-01T12:00:00Z", "card-active"),
            ("ACTIVE", "2026-03-01T11:00:00Z", "card-active"),
            ("SUSPENDED", "2026-03-01T13:00:00Z", "card-new"),
        ] {
            let mut body = event_body("tok-h", card, status, at);
            body["reason"] = json!(format!("{status} at {at}"));
            if at.contains("T10") {
                body["tokenizationId"] = json!("tkn-h");
            }
            expect_json(app.request("/issuer-api/v1/tokens/events").json(&body).send().await, 200).await;
        }
        let history =
            expect_json(get(&app, format!("{ops}/ops/v1/tokens/tok-h/history"), Some(TOKEN)).await, 200).await;
        assert_eq!(history["token"]["status"], "SUSPENDED", "{b}: {history}");
        let events: Vec<(String, bool)> = history["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| (e["reason"].as_str().unwrap_or_default().to_owned(), e["applied"] == true))
            .collect();
        assert_eq!(
            events,
            [
                ("ACTIVE at 2026-03-01T10:00:00Z".to_owned(), true),
                ("ACTIVE at 2026-03-01T11:00:00Z".to_owned(), false),
                ("SUSPENDED at 2026-03-01T12:00:00Z".to_owned(), true),
                ("SUSPENDED at 2026-03-01T13:00:00Z".to_owned(), true),
            ],
            "{b}: {history}"
        );
        // The decision was made for the card the token was created on, not the one it is on now.
        assert_eq!(history["token"]["cardId"], "card-new", "{b}: {history}");
        assert_eq!(history["tokenizationId"], "tkn-h", "{b}: {history}");
        let decisions: Vec<_> =
            history["decisions"].as_array().unwrap().iter().map(|d| d["operation"].clone()).collect();
        assert_eq!(decisions, [json!("verify_card")], "{b}: {history}");
        // An unknown token is the contract's 404; no token, no answer.
        expect_error(get(&app, format!("{ops}/ops/v1/tokens/tok-none/history"), Some(TOKEN)).await, 404, "NOT_FOUND")
            .await;
        assert_eq!(get(&app, format!("{ops}/ops/v1/tokens/tok-h/history"), None).await.status(), 401, "{b}");
        app.stop().await;
    }
}
