//! mTLS with certificates made here; no card data in logs, metrics, databases, outbox rows or
//! anything sent; the public key set; operational endpoints.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use tmp_adapter::config::{AuthMode, TlsSettings};

use crate::helpers::app::*;
use crate::helpers::db::test_databases;
use crate::notifications::{OTP, notification_body};
use crate::verify_card::verify_body;

const VERIFY: &str = "/issuer-api/v1/cards/verify";
/// A well-known test PAN (Discover) that no fixture card has: issued by the processor here.
const NEW_PAN: &str = "6011111111111117";

pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Test Issuer CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Pki { dir, ca: Issuer::new(params, key) }
    }

    /// A leaf certificate for `names`, as (cert PEM, key PEM).
    pub(crate) fn leaf(&self, names: &[&str], cn: &str) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

pub(crate) fn client(ca_pem: &std::path::Path, identity: Option<(String, String)>) -> reqwest::Client {
    client_builder(ca_pem, identity).build().unwrap()
}

/// A client trusting the CAs of `ca_pem`, presenting `identity` (cert PEM, key PEM) when asked.
pub(crate) fn client_builder(ca_pem: &std::path::Path, identity: Option<(String, String)>) -> reqwest::ClientBuilder {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    tmp_edge::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes()).map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder().use_preconfigured_tls(config)
}

#[tokio::test]
async fn mtls_admits_only_clients_with_a_certificate_from_the_configured_ca() {
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf(&["127.0.0.1", "localhost"], "adapter");
    let (client_cert, client_key) = pki.leaf(&[], "tmp.verestro.test");
    let rogue = Pki::new();
    let (rogue_cert, rogue_key) = rogue.leaf(&[], "intruder");
    let tls = TlsSettings {
        cert_file: pki.write("server.pem", &server_cert),
        key_file: pki.write("server.key", &server_key),
        client_ca_file: Some(pki.dir.path().join("ca.pem")),
    };
    for db in test_databases().await {
        let tls = tls.clone();
        let mut app = TestApp::spawn_with(&db, |s| {
            s.server.tls = Some(tls);
            s.auth.mode = AuthMode::Mtls;
        })
        .await;
        app.import(&fixture_cards()).await;
        let ca = pki.dir.path().join("ca.pem");
        let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");

        // A certificate from the configured CA: admitted, even unsigned by HMAC in mode mtls.
        app.client = client(&ca, Some((client_cert.clone(), client_key.clone())));
        let answer = expect_json(app.request(VERIFY).json(&body).signing(Signing::None).send().await, 200).await;
        assert_eq!(answer["decision"], "APPROVED", "{}", db.backend);

        // No certificate: the TLS connection is allowed (health probes), the API is not.
        app.client = client(&ca, None);
        let response = app.request(VERIFY).json(&body).signing(Signing::None).send().await;
        expect_error(response, 401, "UNAUTHENTICATED").await;
        assert_eq!(app.get("/healthz").await.status(), 200);

        // A certificate from another CA: the handshake fails.
        app.client = client(&ca, Some((rogue_cert.clone(), rogue_key.clone())));
        let refused = app.client.post(format!("{}{}", app.base_url, VERIFY)).json(&body).send().await;
        assert!(refused.is_err(), "{}: a foreign client certificate must be refused", db.backend);
        app.stop().await;
    }
}

#[tokio::test]
async fn hmac_and_mtls_requires_both() {
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf(&["127.0.0.1"], "adapter");
    let (client_cert, client_key) = pki.leaf(&[], "tmp");
    let tls = TlsSettings {
        cert_file: pki.write("server.pem", &server_cert),
        key_file: pki.write("server.key", &server_key),
        client_ca_file: Some(pki.dir.path().join("ca.pem")),
    };
    let db = test_databases().await.remove(0);
    let mut app = TestApp::spawn_with(&db, |s| {
        s.server.tls = Some(tls);
        s.auth.mode = AuthMode::HmacAndMtls;
    })
    .await;
    app.import(&fixture_cards()).await;
    app.client = client(&pki.dir.path().join("ca.pem"), Some((client_cert, client_key)));
    let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
    expect_error(app.request(VERIFY).json(&body).signing(Signing::None).send().await, 401, "MISSING_SIGNATURE").await;
    expect_json(app.request(VERIFY).json(&body).send().await, 200).await;
    app.stop().await;
}

/// Captures every log line of the process at debug level.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every clear occurrence of `secret` in `haystack`, shown as its surrounding line with the
/// secret masked (to find the leak without printing it).
fn occurrences(haystack: &str, secret: &str) -> Vec<String> {
    haystack
        .match_indices(secret)
        .map(|(at, _)| {
            let start = haystack[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = haystack[at..].find('\n').map_or(haystack.len(), |i| at + i);
            haystack[start..end].replace(secret, "<SECRET>").chars().take(400).collect()
        })
        .collect()
}

/// Every row of every table of the adapter's PostgreSQL database, as text: a dump made with
/// SQL, so that it needs no `pg_dump` of the server's version.
async fn postgres_dump(url: &str) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut dump = String::new();
    for table in tables {
        // Table names come from the catalogue (our own migrations): safe to splice, quoted.
        let sql = format!("SELECT t::text FROM \"{table}\" t");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await.unwrap() {
            dump.push_str(&table);
            dump.push_str(": ");
            dump.push_str(&row.get::<String, _>(0));
            dump.push('\n');
        }
    }
    dump
}

/// Card data and activation codes go in, through every route that takes them, on each database;
/// then every place a leak would land is read: the logs at `debug`, `/metrics`, the database
/// (SQLite's file and WAL, a dump of every PostgreSQL table), the outbox rows, and every request
/// TMP's Lifecycle API and the issuer's sink received. No PAN, CVC or OTP is there in clear.
#[tokio::test]
async fn no_card_data_in_logs_metrics_databases_outbox_or_anything_sent() {
    use tmp_adapter::config::Approach;

    use crate::forwarding::{WAIT, code_sink, event, forwarding_settings};
    use crate::helpers::receiver::Receiver;
    // Under nextest this test has a process of its own; under `cargo test` the subscriber also
    // sees the tests running beside it: more lines searched, none of them allowed to leak.
    // No other test sets a global subscriber.
    let capture = Capture::default();
    // JSON lines carry every span and event field, so nothing a field could leak is hidden.
    let subscriber =
        tmp_adapter::telemetry::subscriber(tmp_adapter::config::LogFormat::Json, "debug", false, capture.clone());
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber of this process");
    // This test's own tokenizations: a request of a test beside it that began before the
    // subscriber was set logs under a request span that never existed for it.
    let mut own_tokenizations = Vec::new();
    for db in test_databases().await {
        let b = db.backend;
        let lifecycle = Receiver::start().await;
        let sink = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let app = TestApp::spawn_with(&db, |s| {
            forwarding_settings(s, Approach::Datacore, &lifecycle);
            s.sinks = vec![code_sink(&sink, dir.path())];
        })
        .await;
        app.import(&fixture_cards()).await;
        let cvc = app.cvc_of(PAN_ACTIVE, EXPIRY);
        let wrong_cvc = if cvc == "000" { "001" } else { "000" };

        // The Issuer API: green, wrong CVC, step-up, CVC check, token event, OTP, bad inputs.
        for c in [Some(cvc.as_str()), Some(wrong_cvc), None] {
            let body = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, c), "APPLE_PAY");
            expect_json(app.request(VERIFY).json(&body).send().await, 200).await;
        }
        let mut step_up = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        step_up["deviceScore"] = json!(1);
        own_tokenizations.push(step_up["tokenizationId"].as_str().unwrap().to_owned());
        expect_json(app.request(VERIFY).json(&step_up).send().await, 200).await;
        let cvc_check = json!({"encryptedPayload": app.card_payload(PAN_ACTIVE, EXPIRY, Some(&cvc))});
        expect_json(app.request("/issuer-api/v1/cards/verify-cvc").json(&cvc_check).send().await, 200).await;
        let token = crate::token_events::event_body("tok-log", "card-active", "ACTIVE", "2026-03-01T10:00:00Z");
        expect_json(app.request("/issuer-api/v1/tokens/events").json(&token).send().await, 200).await;
        let otp = notification_body(&app, "ACTIVATION_CODE_DELIVERY", "ntf-log", None);
        expect_json(app.request("/issuer-api/v1/notifications").json(&otp).send().await, 200).await;
        // Card data in the wrong places must not be echoed either.
        let mut leaky = verify_body(app.card_payload(PAN_ACTIVE, EXPIRY, None), "GOOGLE_PAY");
        leaky["walletScore"] = json!(PAN_ACTIVE);
        expect_error(app.request(VERIFY).json(&leaky).send().await, 422, "VALIDATION_FAILED").await;
        let bad_luhn = verify_body(app.card_payload("4111111111111112", EXPIRY, Some(&cvc)), "GOOGLE_PAY");
        expect_error(app.request(VERIFY).json(&bad_luhn).send().await, 422, "VALIDATION_FAILED").await;
        let mut in_text = crate::token_events::event_body("tok-text", "card-active", "ACTIVE", "2026-03-01T10:00:00Z");
        in_text["reason"] = json!(format!("card {PAN_BLOCKED}"));
        expect_error(app.request("/issuer-api/v1/tokens/events").json(&in_text).send().await, 422, "VALIDATION_FAILED")
            .await;

        // Processor ingest: a new card and a replacement carry PANs, encrypted to the adapter and
        // forwarded encrypted to the Lifecycle API's key; a PAN sent in clear is refused.
        let events = json!([
            event(
                "leak-1",
                "card-leak",
                "card.issued",
                json!({"encryptedPayload": app.card_payload(NEW_PAN, "12/30", None)})
            ),
            event(
                "leak-2",
                "card-leak",
                "card.replaced",
                json!({"newCardId": "card-leak-2", "encryptedPayload": app.card_payload(PAN_UNKNOWN, "12/32", None)})
            ),
        ]);
        expect_json(app.request(crate::forwarding::EVENTS).json(&events).send().await, 202).await;
        let clear = event("leak-3", "card-x", "card.issued", json!({"encryptedPayload": PAN_CLOSED}));
        expect_error(
            app.request(crate::forwarding::EVENTS).json(&json!([clear])).send().await,
            422,
            "INVALID_ENCRYPTED_PAYLOAD",
        )
        .await;
        lifecycle.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 2).await;
        sink.wait_for(WAIT, |r| r.iter().filter(|r| r.answered == 200).count() >= 2).await;
        assert!(
            lifecycle.accepted().iter().any(|r| r.decrypted.as_ref().is_some_and(|d| d["pan"] == NEW_PAN)),
            "{b}: the Lifecycle API did receive the card, encrypted"
        );
        assert!(
            sink.accepted().iter().any(|r| r.decrypted == Some(json!({"otp": OTP}))),
            "{b}: the sink did receive the code, encrypted"
        );

        // Where a leak would land.
        let mut places: Vec<(String, String)> = Vec::new();
        places.push(("/metrics".into(), app.get("/metrics").await.text().await.unwrap()));
        let outbox = app
            .store
            .list_outbox(&tmp_adapter::store::OutboxFilter { status: None, ordering_key: None, limit: 1000 })
            .await
            .unwrap();
        assert!(outbox.len() >= 4, "{b}: the outbox was written");
        let rows = outbox.iter().map(|r| format!("{:?} {}", r, r.record.message.to_json())).collect::<Vec<_>>();
        places.push(("outbox rows".into(), rows.join("\n")));
        for (name, receiver) in [("Lifecycle API", &lifecycle), ("sink", &sink)] {
            let sent = receiver.received().iter().map(|r| format!("{} {}", r.path, r.body)).collect::<Vec<_>>();
            places.push((format!("what the {name} received"), sent.join("\n")));
        }
        app.stop().await;
        let database = match b {
            "sqlite" => {
                // The file and its WAL, as bytes.
                let path = db.url.trim_start_matches("sqlite://").to_owned();
                let mut bytes = std::fs::read(&path).expect("database file");
                if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
                    bytes.extend(wal);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => postgres_dump(&db.url).await,
        };
        assert!(database.contains("card-leak"), "{b}: the scan does read the database");
        places.push((format!("the {b} database"), database));

        for (place, text) in &places {
            for secret in
                [PAN_ACTIVE, PAN_BLOCKED, PAN_CLOSED, PAN_EXPIRED, PAN_UNKNOWN, NEW_PAN, "4111111111111112", OTP]
            {
                let found = occurrences(text, secret);
                assert!(found.is_empty(), "{b}: a fixture secret appears in {place}: {found:?}");
            }
            // CVCs are short: look for them only where they would appear as values — not as an
            // HTTP status label of /metrics (`status="422"`), which a random CVC may equal.
            for c in [cvc.as_str(), wrong_cvc] {
                let quoted = format!("\"{c}\"");
                let as_value = text
                    .match_indices(&quoted)
                    .any(|(at, _)| !(place == "/metrics" && text[..at].ends_with("status=")));
                assert!(!as_value, "{b}: a CVC appears in {place}");
            }
        }
    }

    // The logs of both runs, at debug.
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("card verified"), "the capture saw the scenario");
    let verified = logs
        .lines()
        .find(|l| l.contains("card verified") && own_tokenizations.iter().any(|t| l.contains(t.as_str())))
        .expect("this test's decision line");
    assert!(verified.contains("correlation_id"), "decision lines carry the correlation id: {verified}");
    assert!(logs.contains("delivered"), "the capture saw the relay");
    for secret in [PAN_ACTIVE, PAN_BLOCKED, PAN_CLOSED, PAN_EXPIRED, PAN_UNKNOWN, NEW_PAN, "4111111111111112", OTP] {
        let found = occurrences(&logs, secret);
        assert!(found.is_empty(), "a fixture secret appears in the logs: {found:?}");
    }
}

#[tokio::test]
async fn the_public_key_set_publishes_every_live_key() {
    let db = test_databases().await.remove(0);
    let app = TestApp::spawn(&db).await;
    let set = expect_json(app.get("/issuer-api/v1/public-key").await, 200).await;
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), app.settings.keys.jwe.len());
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RSA-OAEP-256");
    assert_eq!(keys[0]["use"], "enc");
    assert_eq!(keys[0]["kid"], app.jwk.kid.as_str());
    assert!(keys[0].get("d").is_none() && keys[0].get("p").is_none(), "no private parts: {set}");
    app.stop().await;
}

#[tokio::test]
async fn key_rotation_keeps_the_old_key_live() {
    let db = test_databases().await.remove(0);
    let dir = tempfile::tempdir().unwrap();
    let new_key = dir.path().join("jwe-2.pem");
    std::fs::write(&new_key, tmp_protocol::jwk::RsaKeyPair::generate(2048).unwrap().to_pkcs8_pem().unwrap().as_bytes())
        .unwrap();
    let app = TestApp::spawn_with(&db, |s| {
        s.keys.jwe.push(tmp_adapter::config::JweKeySettings { kid: "adapter-2".into(), private_key_file: new_key });
    })
    .await;
    app.import(&fixture_cards()).await;
    let set: tmp_protocol::jwk::JwkSet =
        serde_json::from_value(expect_json(app.get("/issuer-api/v1/public-key").await, 200).await).unwrap();
    assert_eq!(set.keys.len(), 2);
    for jwk in &set.keys {
        let payload = tmp_protocol::jwe::encrypt_json(&json!({"pan": PAN_ACTIVE, "expiry": EXPIRY}), jwk).unwrap();
        let answer = expect_json(app.request(VERIFY).json(&verify_body(payload, "GOOGLE_PAY")).send().await, 200).await;
        assert_eq!(answer["decision"], "APPROVED", "kid {}", jwk.kid);
    }
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_correlation() {
    let db = test_databases().await.remove(0);
    let app = TestApp::spawn(&db).await;
    assert_eq!(expect_json(app.get("/healthz").await, 200).await["status"], "ok");
    assert_eq!(expect_json(app.get("/readyz").await, 200).await["status"], "ready");
    let index = expect_json(app.get("/").await, 200).await;
    assert_eq!((index["service"].as_str(), index["listener"].as_str()), (Some("tmp-adapter"), Some("issuer-api")));
    assert_eq!(index["links"]["openapi"], "/openapi.json", "{index}");
    let response = app
        .client
        .post(format!("{}{}", app.base_url, VERIFY))
        .header("X-Correlation-Id", "corr-123")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "corr-123");
    let body = expect_error(response, 401, "MISSING_SIGNATURE").await;
    assert_eq!(body["error"]["correlationId"], "corr-123");
    let generated = app.get("/healthz").await;
    assert!(!generated.headers()["x-correlation-id"].is_empty());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "tmp_adapter_http_requests_total{method=\"POST\",route=\"/issuer-api/v1/cards/verify\",status=\"401\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("tmp_adapter_rejected_requests_total{code=\"MISSING_SIGNATURE\"} 1"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn the_checked_in_openapi_documents_match_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi");
    let documents = tmp_adapter::openapi::documents();
    for (name, generated) in &documents {
        let path = dir.join(name);
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            &checked_in == generated,
            "docs/openapi/{name} is stale: run `UPDATE_OPENAPI=1 cargo test -p tmp-adapter openapi`"
        );
    }
    // Every checked-in file is one the code generates (none left behind, none unchecked).
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(documents.iter().any(|(n, _)| *n == name), "docs/openapi/{name} is not generated by the code");
    }
    let generated = tmp_adapter::openapi::issuer_api_json();
    let db = test_databases().await.remove(0);
    let app = TestApp::spawn(&db).await;
    let served = app.get("/openapi.json").await.text().await.unwrap();
    assert_eq!(served, generated);
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/issuer-api/v1/cards/verify",
        "/issuer-api/v1/cards/verify-cvc",
        "/issuer-api/v1/tokens/events",
        "/issuer-api/v1/notifications",
        "/issuer-api/v1/public-key",
        "/processor/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    app.stop().await;
}

/// docs/security.md names the test behind each control: every adapter test it names exists, so
/// the threat model cannot go on citing a test that was renamed or removed.
#[test]
fn the_threat_model_cites_tests_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../docs/security.md")).expect("docs/security.md");
    let mut cited = 0;
    for quoted in doc.split('`').skip(1).step_by(2) {
        let Some((module, name)) = quoted.split_once("::") else { continue };
        let file = root.join(format!("tests/api/{module}.rs"));
        if name.contains("::") || name.contains('*') || !file.exists() {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        assert!(source.contains(&format!("fn {name}(")), "docs/security.md cites `{quoted}`, which does not exist");
        cited += 1;
    }
    assert!(cited >= 20, "the scan found the citations ({cited})");
}

/// Every limit the code enforces on the Issuer API's input is stated in its OpenAPI with the
/// code's own value, so that a generated client or a fuzzer knows what is refused: a limit
/// changed in code and not in the document (or the other way round) fails here.
#[test]
fn the_openapi_states_the_limits_the_code_enforces() {
    use serde_json::Value;
    use tmp_protocol::{fields, headers, jwe, webhook};
    let doc: Value = serde_json::from_str(&tmp_adapter::openapi::issuer_api_json()).unwrap();
    // Every `encryptedPayload`, wherever it is: the compact form and its length limits.
    fn walk<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if key == "encryptedPayload" && inner.get("type").is_some() {
                        found.push(inner);
                    }
                    walk(inner, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut payloads = Vec::new();
    walk(&doc, &mut payloads);
    assert!(payloads.len() >= 5, "every encryptedPayload was found: {}", payloads.len());
    for schema in payloads {
        assert_eq!(schema["pattern"], jwe::COMPACT_PATTERN, "{schema}");
        assert_eq!(schema["maxLength"], jwe::MAX_COMPACT_LEN, "{schema}");
        assert_eq!(schema["minLength"], jwe::MIN_COMPACT_LEN, "{schema}");
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Id"]["maxLength"], fields::MAX_ID_LEN);
    assert_eq!(schemas["Id"]["minLength"], 1);
    assert_eq!(schemas["FreeText"]["maxLength"], fields::MAX_TEXT_LEN);
    assert_eq!(schemas["ProcessorEventBatch"]["minItems"], 1);
    // The signed headers of every operation that takes them.
    let mut checked = 0;
    for path in doc["paths"].as_object().unwrap().values() {
        for parameter in path["post"]["parameters"].as_array().into_iter().flatten() {
            let limit = match parameter["name"].as_str().unwrap() {
                headers::IDEMPOTENCY_KEY => headers::MAX_IDEMPOTENCY_KEY_LEN,
                headers::WEBHOOK_ID => webhook::MAX_ID_LEN,
                _ => continue,
            };
            assert_eq!(parameter["schema"]["maxLength"], limit, "{parameter}");
            assert_eq!(parameter["schema"]["minLength"], 1, "{parameter}");
            checked += 1;
        }
    }
    assert!(checked >= 5, "the signed operations' headers were found ({checked})");

    // The rules that depend on another member (each found by schemathesis as a schema-valid
    // request the code refused, before the document stated it).
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["TokenEventRequest"]["properties"]["tokenLast4"]["pattern"], "^[0-9]{4}$");
    let notification = &schemas["NotificationRequest"]["allOf"][0];
    assert_eq!(notification["if"]["properties"]["type"]["const"], "ACTIVATION_CODE_DELIVERY");
    assert_eq!(notification["then"]["required"], serde_json::json!(["encryptedPayload", "expiresAt"]));
    let event_data = |kind: &str| {
        let bodies = schemas["ProcessorEventBody"]["oneOf"].as_array().unwrap();
        let body = bodies.iter().find(|body| body["properties"]["type"]["enum"][0] == kind).unwrap();
        body["allOf"][0]["properties"]["data"].clone()
    };
    assert_eq!(event_data("cardholder.updated")["anyOf"].as_array().map(Vec::len), Some(2));
    assert_eq!(event_data("card.status_changed")["properties"]["reason"]["minLength"], 1);
}
