//! A real `tmp-adapter` on a random port, over a real socket, with typed request helpers
//! that sign and encrypt like TMP does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use actix_web::dev::ServerHandle;
use serde::Serialize;
use serde_json::{Value, json};
use tmp_adapter::config::Settings;
use tmp_adapter::keys::KeyMaterial;
use tmp_adapter::startup::Application;
use tmp_adapter::store::{self, DynStore};
use tmp_protocol::jwk::PublicJwk;
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

use super::db::TestDb;

/// Well-known test PANs (Visa and Mastercard test numbers), Luhn-valid.
pub const PAN_ACTIVE: &str = "4111111111111111";
pub const PAN_BLOCKED: &str = "5555555555554444";
pub const PAN_CLOSED: &str = "4012888888881881";
pub const PAN_EXPIRED: &str = "5105105105105100";
pub const PAN_UNKNOWN: &str = "4000056655665556";
pub const EXPIRY: &str = "12/30";

/// Registry fixture: one card per status.
pub fn fixture_cards() -> String {
    [
        json!({"cardId": "card-active", "pan": PAN_ACTIVE, "expiry": EXPIRY, "status": "ACTIVE",
               "phone": "+48500100200", "email": "holder@example.com", "productCategory": "CONSUMER_DEBIT"}),
        json!({"cardId": "card-blocked", "pan": PAN_BLOCKED, "expiry": EXPIRY, "status": "BLOCKED"}),
        json!({"cardId": "card-closed", "pan": PAN_CLOSED, "expiry": EXPIRY, "status": "CLOSED"}),
        json!({"cardId": "card-expired", "pan": PAN_EXPIRED, "expiry": "01/20", "status": "ACTIVE"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n")
}

/// Directory of test keys, generated once and shared by every test process of this build
/// (RSA key generation is the slow part of starting an adapter).
fn shared_key_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("adapter-test-keys-v1");
        if dir.join("complete").exists() {
            return dir;
        }
        // Generate into a private directory, then rename: concurrent test processes race
        // safely, the loser uses the winner's keys.
        let scratch = tempfile::tempdir_in(&root).expect("scratch dir").keep();
        let mut settings = base_settings("sqlite://unused.db");
        point_keys_at(&mut settings, &scratch);
        KeyMaterial::load(&settings).expect("generate test keys");
        std::fs::write(scratch.join("complete"), "").expect("marker");
        if std::fs::rename(&scratch, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        dir
    })
    .clone()
}

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// The repository's `local` configuration, untouched by the test process's environment.
pub fn base_settings(database_url: &str) -> Settings {
    let mut settings =
        Settings::load_with(&config_dir(), "local", config::Environment::with_prefix("TMP_ADAPTER_TEST_ENV_NEVER_SET"))
            .expect("config/local.yaml loads");
    settings.database.url = database_url.to_owned();
    settings.server.port = 0;
    settings.ops.port = 0;
    settings
}

fn point_keys_at(settings: &mut Settings, dir: &Path) {
    settings.keys.generate_missing_in = Some(dir.to_path_buf());
    settings.keys.jwe[0].private_key_file = dir.join("jwe-1.pem");
    let active = settings.keys.data_keys.active.clone();
    settings.keys.data_keys.files.insert(active, dir.join("data-key.hex"));
    settings.keys.fingerprint_key_file = dir.join("fingerprint.hex");
    settings.card_source.local_registry.cvk_file = dir.join("cvk.hex");
}

/// Settings for a test adapter on `db`, with the shared test keys.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut settings = base_settings(&db.url);
    point_keys_at(&mut settings, &shared_key_dir());
    settings.housekeeping.interval_secs = 3600;
    // Most tests inspect the outbox as written; the relay tests turn it on.
    settings.relay.enabled = false;
    settings
}

pub struct TestApp {
    pub base_url: String,
    /// The ops API's base URL, when `ops.enabled`.
    pub ops_url: Option<String>,
    pub client: reqwest::Client,
    pub secret: WebhookSecret,
    pub jwk: PublicJwk,
    pub store: DynStore,
    pub keys: KeyMaterial,
    pub settings: Settings,
    pub backend: &'static str,
    handle: ServerHandle,
    /// Replaces the running adapter's keys and secrets, as `SIGHUP` does.
    pub reloader: tmp_adapter::startup::Reloader,
}

impl TestApp {
    pub async fn spawn(db: &TestDb) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    pub async fn spawn_with(db: &TestDb, customize: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(db);
        customize(&mut settings);
        let app = Application::build(settings.clone()).await.expect("adapter starts");
        let scheme = if settings.server.tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://127.0.0.1:{}", app.port());
        let ops_url = app.ops_port().map(|port| format!("http://127.0.0.1:{port}"));
        let handle = app.handle();
        let reloader = app.reloader();
        tokio::spawn(app.run_until_stopped());
        let keys = KeyMaterial::load(&settings).expect("keys");
        let jwk = keys.jwe.jwk_set().keys[0].clone();
        let store = store::connect(&settings.database.url, 2).await.expect("store");
        let secret = settings.auth.hmac_secrets[0].clone();
        TestApp {
            base_url,
            ops_url,
            client: reqwest::Client::new(),
            secret,
            jwk,
            store,
            keys,
            settings,
            backend: db.backend,
            handle,
            reloader,
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// Loads the fixture cards through the import code path.
    pub async fn import(&self, jsonl: &str) {
        let (records, problems) = tmp_adapter::import::parse(
            jsonl,
            tmp_adapter::import::ImportFormat::Jsonl,
            &self.keys.data_keys.current(),
            &self.keys.fingerprinter,
        )
        .expect("parse");
        assert!(problems.is_empty(), "fixture problems: {problems:?}");
        self.store.upsert_cards(&records.into_iter().map(|(_, r)| r).collect::<Vec<_>>()).await.expect("import");
    }

    pub fn encrypt<T: Serialize>(&self, value: &T) -> String {
        tmp_protocol::jwe::encrypt_json(value, &self.jwk).expect("encrypt")
    }

    pub fn card_payload(&self, pan: &str, expiry: &str, cvc: Option<&str>) -> String {
        let mut card = json!({"pan": pan, "expiry": expiry});
        if let Some(cvc) = cvc {
            card["cvc"] = json!(cvc);
        }
        self.encrypt(&card)
    }

    /// The CVC2 the local registry expects for a fixture card.
    pub fn cvc_of(&self, pan: &str, expiry: &str) -> String {
        let pan = tmp_protocol::sensitive::Pan::parse(pan).expect("pan");
        let expiry = tmp_protocol::sensitive::Expiry::parse(expiry).expect("expiry");
        self.keys.cvk.as_ref().expect("cvk").cvc2(&pan, &expiry).expose().to_owned()
    }

    pub fn request(&self, path: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            path: path.to_owned(),
            body: Vec::new(),
            idempotency_key: Some(uuid::Uuid::new_v4().to_string()),
            content_type: Some("application/json".into()),
            signing: Signing::Valid,
            timestamp: None,
            webhook_id: None,
            headers: Vec::new(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{}", self.base_url, path)).send().await.expect("request")
    }
}

pub enum Signing {
    Valid,
    None,
    WithSecret(WebhookSecret),
    /// Signed correctly, then the body is changed.
    TamperedBody,
}

/// A POST as TMP would send it, with knobs to break each part.
pub struct TestRequest<'a> {
    app: &'a TestApp,
    path: String,
    body: Vec<u8>,
    idempotency_key: Option<String>,
    content_type: Option<String>,
    signing: Signing,
    timestamp: Option<i64>,
    webhook_id: Option<String>,
    headers: Vec<(String, String)>,
}

impl TestRequest<'_> {
    pub fn json(mut self, value: &Value) -> Self {
        self.body = serde_json::to_vec(value).expect("json");
        self
    }
    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    pub fn idempotency_key(mut self, key: Option<&str>) -> Self {
        self.idempotency_key = key.map(str::to_owned);
        self
    }
    pub fn content_type(mut self, content_type: Option<&str>) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self
    }
    pub fn signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }
    pub fn timestamp(mut self, unix: i64) -> Self {
        self.timestamp = Some(unix);
        self
    }
    pub fn webhook_id(mut self, id: &str) -> Self {
        self.webhook_id = Some(id.to_owned());
        self
    }
    /// Sends one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub async fn send(self) -> reqwest::Response {
        let app = self.app;
        let mut request = app.client.post(format!("{}{}", app.base_url, self.path));
        if let Some(ct) = &self.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(key) = &self.idempotency_key {
            request = request.header("X-Idempotency-Key", key);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let id = self.webhook_id.unwrap_or_else(tmp_protocol::webhook::new_message_id);
        let timestamp = self.timestamp.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
        let secret = match &self.signing {
            Signing::None => None,
            Signing::Valid | Signing::TamperedBody => Some(app.secret.clone()),
            Signing::WithSecret(secret) => Some(secret.clone()),
        };
        let mut body = self.body;
        if let Some(secret) = secret {
            let headers = SignatureHeaders::sign(&[secret], &id, timestamp, &body).expect("sign");
            for (name, value) in headers.to_header_pairs() {
                request = request.header(name, value);
            }
        }
        if let Signing::TamperedBody = self.signing {
            body.push(b' ');
        }
        request.body(body).send().await.expect("request reaches the adapter")
    }
}

/// Reads a response as JSON, asserting its status.
pub async fn expect_json(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts a contract error body with `code`.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let body = expect_json(response, status).await;
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
    assert!(body["error"]["correlationId"].as_str().is_some_and(|c| !c.is_empty()), "body: {body}");
    body
}
