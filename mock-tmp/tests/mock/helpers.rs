//! A real tmp-adapter (temp SQLite, shared test keys, fixture cards) and a mock pointed at it,
//! both on port 0, talking over real sockets. Request helpers sign and encrypt as the issuer
//! does when it calls the TMP and Lifecycle APIs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use actix_web::dev::ServerHandle;
use mock_tmp::{MockConfig, MockHandle};
use serde_json::{Value, json};
use tmp_adapter::config::{Settings, SinkSettings};
use tmp_adapter::keys::KeyMaterial;
use tmp_adapter::startup::Application;
use tmp_adapter::store::{self, DynStore};
use tmp_protocol::jwk::{JwkSet, PublicJwk};
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

pub const PAN_ACTIVE: &str = "4111111111111111";
pub const PAN_BLOCKED: &str = "5555555555554444";
pub const PAN_DATACORE: &str = "4012888888881881";
pub const EXPIRY: &str = "12/30";

fn fixture_cards() -> String {
    [
        json!({"cardId": "card-active", "pan": PAN_ACTIVE, "expiry": EXPIRY, "status": "ACTIVE",
               "phone": "+48500100200", "email": "holder@example.com"}),
        json!({"cardId": "card-blocked", "pan": PAN_BLOCKED, "expiry": EXPIRY, "status": "BLOCKED"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n")
}

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn base_settings(database_url: &str) -> Settings {
    let mut settings =
        Settings::load_with(&config_dir(), "local", config::Environment::with_prefix("MOCK_TMP_TEST_ENV_NEVER_SET"))
            .expect("config/local.yaml loads");
    settings.database.url = database_url.to_owned();
    settings.server.port = 0;
    settings.housekeeping.interval_secs = 3600;
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

/// Adapter keys generated once per build and shared by every test (RSA generation is slow).
fn shared_key_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("mock-tmp-adapter-keys-v1");
        if dir.join("complete").exists() {
            return dir;
        }
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

pub struct Kit {
    pub mock: MockHandle,
    pub mock_url: String,
    pub adapter_url: String,
    /// The adapter's ops API, when `ops.enabled`.
    pub ops_url: Option<String>,
    pub store: DynStore,
    pub adapter_keys: KeyMaterial,
    pub client: reqwest::Client,
    /// What the issuer signs its TMP / Lifecycle API calls with.
    pub secret: WebhookSecret,
    /// The issuer's SMS gateway: the adapter's webhook sink, where activation codes arrive.
    pub sink: tmp_conformance::sink::Sink,
    adapter: ServerHandle,
    pub dir: tempfile::TempDir,
}

/// The mock's defaults, tuned for tests: port 0, fast retries.
pub fn mock_config(adapter_url: &str) -> MockConfig {
    let mut config = MockConfig::defaults();
    config.server.port = 0;
    config.issuer.base_url = adapter_url.to_owned();
    config.sender.backoff_initial_ms = 10;
    config.sender.backoff_max_ms = 50;
    config
}

impl Kit {
    pub async fn spawn() -> Kit {
        Self::spawn_with(|_| {}, |_| {}).await
    }

    pub async fn spawn_with(adapter: impl FnOnce(&mut Settings), mock: impl FnOnce(&mut MockConfig)) -> Kit {
        let dir = tempfile::Builder::new().prefix("mock-tmp-test-").tempdir().expect("temp dir");
        let mut settings = base_settings(&format!("sqlite://{}", dir.path().join("adapter.db").display()));
        point_keys_at(&mut settings, &shared_key_dir());
        let sink = tmp_conformance::sink::Sink::start().await.expect("sink starts");
        let jwk_file = dir.path().join("sink-otp.jwk.json");
        std::fs::write(&jwk_file, &sink.otp_jwk_json).expect("write the sink's key");
        settings.sinks = vec![SinkSettings {
            name: "sms-gateway".into(),
            url: sink.url.clone(),
            hmac_secrets: vec![sink.secret.clone()],
            event_types: Vec::new(),
            otp_jwk_file: Some(jwk_file),
            tls: Default::default(),
        }];
        adapter(&mut settings);
        let app = Application::build(settings.clone()).await.expect("adapter starts");
        let scheme = if settings.server.tls.is_some() { "https" } else { "http" };
        let adapter_url = format!("{scheme}://127.0.0.1:{}", app.port());
        let ops_url = app.ops_port().map(|port| format!("http://127.0.0.1:{port}"));
        let adapter_handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        let adapter_keys = KeyMaterial::load(&settings).expect("keys");
        let store = store::connect(&settings.database.url, 2).await.expect("store");
        let (records, problems) = tmp_adapter::import::parse(
            &fixture_cards(),
            tmp_adapter::import::ImportFormat::Jsonl,
            &adapter_keys.data_keys,
            &adapter_keys.fingerprinter,
        )
        .expect("parse fixtures");
        assert!(problems.is_empty(), "{problems:?}");
        store.upsert_cards(&records.into_iter().map(|(_, r)| r).collect::<Vec<_>>()).await.expect("import fixtures");

        let mut config = mock_config(&adapter_url);
        mock(&mut config);
        let secret = WebhookSecret::parse(&config.auth.hmac_secrets[0]).expect("secret");
        let handle = mock_tmp::start(config).await.expect("mock starts");
        Kit {
            mock_url: handle.base_url(),
            mock: handle,
            adapter_url,
            ops_url,
            store,
            adapter_keys,
            client: reqwest::Client::new(),
            secret,
            sink,
            adapter: adapter_handle,
            dir,
        }
    }

    pub async fn stop_adapter(&self) {
        self.adapter.stop(true).await;
    }

    /// POSTs to the mock's control plane and returns the JSON answer (asserting 2xx).
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let response = self.client.post(format!("{}{path}", self.mock_url)).json(&body).send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("json") }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self.client.get(format!("{}{path}", self.mock_url)).send().await.expect("request");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.expect("json")
    }

    pub async fn simulate(&self, body: Value) -> Value {
        self.control("/_mock/v1/simulate/tokenizations", body).await
    }

    /// A green Google Pay token on `card-active` (approach external), delivered to the adapter.
    pub async fn green_token(&self) -> String {
        let answer =
            self.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
        assert_eq!(answer["path"], "GREEN", "{answer}");
        self.mock.wait_idle().await;
        answer["token"]["tokenId"].as_str().expect("token id").to_owned()
    }

    pub async fn mock_token(&self, token_id: &str) -> Value {
        let tokens = self.get("/_mock/v1/tokens").await;
        tokens["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .find(|t| t["tokenId"] == token_id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub async fn adapter_token(&self, token_id: &str) -> tmp_adapter::store::TokenRecord {
        self.store.find_token(token_id).await.expect("store").expect("the adapter mirrors the token")
    }

    /// A signed call to the mock's TMP / Lifecycle API, as the issuer makes it.
    pub fn signed(&self, method: reqwest::Method, path: &str) -> Signed<'_> {
        Signed {
            kit: self,
            method,
            path: path.to_owned(),
            body: Vec::new(),
            key: Some(uuid::Uuid::new_v4().to_string()),
            secret: Some(self.secret.clone()),
            webhook_id: None,
            content_type: "application/json".into(),
        }
    }

    pub async fn jwk(&self, path: &str) -> PublicJwk {
        let set: JwkSet = self
            .client
            .get(format!("{}{path}", self.mock_url))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("jwk set");
        set.encryption_key().expect("a key").clone()
    }

    /// The activation code of notification `notification_id`, as the issuer's SMS gateway
    /// received it from the adapter (waits up to 10 s for the delivery).
    pub async fn delivered_otp(&self, notification_id: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let delivered = self
                .sink
                .deliveries()
                .into_iter()
                .find_map(|d| (d.data["notificationId"] == notification_id).then_some(d.otp).flatten());
            if let Some(otp) = delivered {
                return otp.expose().to_owned();
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "no activation code delivered");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Journal entries the mock sent to `path`.
    pub async fn sent(&self, path: &str) -> Vec<Value> {
        let journal = self.get("/_mock/v1/requests").await;
        journal["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|e| e["direction"] == "sent" && e["path"] == path)
            .cloned()
            .collect()
    }

    /// Loads a card into the mock's DataCore through the Lifecycle API.
    pub async fn load_datacore_card(&self, card_id: &str, pan: &str, expiry: &str, status: &str) {
        let jwk = self.jwk("/lifecycle/v1/public-key").await;
        let payload = tmp_protocol::jwe::encrypt_json(&json!({"pan": pan, "expiry": expiry}), &jwk).expect("jwe");
        let response = self
            .signed(reqwest::Method::POST, "/lifecycle/v1/cards")
            .json(&json!({"cardId": card_id, "status": status, "cardholder": {"phone": "+48500100300"},
                          "encryptedPayload": payload}))
            .send()
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
    }
}

pub struct Signed<'a> {
    kit: &'a Kit,
    method: reqwest::Method,
    path: String,
    body: Vec<u8>,
    key: Option<String>,
    secret: Option<WebhookSecret>,
    webhook_id: Option<String>,
    content_type: String,
}

impl Signed<'_> {
    pub fn json(mut self, value: &Value) -> Self {
        self.body = serde_json::to_vec(value).expect("json");
        self
    }
    pub fn raw(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }
    pub fn secret(mut self, secret: Option<WebhookSecret>) -> Self {
        self.secret = secret;
        self
    }
    pub fn webhook_id(mut self, id: &str) -> Self {
        self.webhook_id = Some(id.to_owned());
        self
    }
    pub fn content_type(mut self, ct: &str) -> Self {
        self.content_type = ct.to_owned();
        self
    }

    pub async fn try_send(self) -> reqwest::Result<reqwest::Response> {
        let kit = self.kit;
        let mut request = kit.client.request(self.method, format!("{}{}", kit.mock_url, self.path));
        if !self.body.is_empty() {
            request = request.header("content-type", self.content_type);
        }
        if let Some(key) = &self.key {
            request = request.header("X-Idempotency-Key", key);
        }
        if let Some(secret) = self.secret {
            let id = self.webhook_id.unwrap_or_else(tmp_protocol::webhook::new_message_id);
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let headers = SignatureHeaders::sign(&[secret], &id, now, &self.body).expect("sign");
            for (name, value) in headers.to_header_pairs() {
                request = request.header(name, value);
            }
        }
        request.body(self.body).send().await
    }

    pub async fn send(self) -> reqwest::Response {
        self.try_send().await.expect("the mock answers")
    }
}

/// Reads a JSON answer, asserting its status.
pub async fn expect_json(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts a contract error body with `code`.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) {
    let body = expect_json(response, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["correlationId"].as_str().is_some_and(|c| !c.is_empty()), "{body}");
}
