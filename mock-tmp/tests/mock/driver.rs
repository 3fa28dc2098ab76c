//! Driving a running mock-tmp as the issuer and a developer do: signed calls to its TMP and
//! Lifecycle APIs (HMAC, idempotency key, content type, each switchable to test a refusal), its
//! `/_mock/v1` control plane, and assertions on the contract's answers. The mock's own tests use
//! it with a fake issuer; the kit's end-to-end tests (`crates/kit/tests/e2e`) include this file
//! and use it with a real adapter, so both sign and read the mock the same way.

#![allow(dead_code)]

use serde_json::{Value, json};
use tmp_protocol::jwk::{JwkSet, PublicJwk};
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

pub const PAN_ACTIVE: &str = "4111111111111111";
pub const PAN_BLOCKED: &str = "5555555555554444";
pub const PAN_DATACORE: &str = "4012888888881881";
pub const EXPIRY: &str = "12/30";

/// A running mock, seen from outside.
pub struct MockDriver {
    pub mock_url: String,
    pub client: reqwest::Client,
    /// What the issuer signs its TMP / Lifecycle API calls with.
    pub secret: WebhookSecret,
}

impl MockDriver {
    pub fn new(mock_url: &str, secret: WebhookSecret) -> MockDriver {
        MockDriver { mock_url: mock_url.trim_end_matches('/').to_owned(), client: reqwest::Client::new(), secret }
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

    /// Simulates a Google Pay tokenization of `card-active` (approach external) and asserts it
    /// was GREEN; returns the token id. The callbacks to the issuer may still be in flight.
    pub async fn simulate_green(&self) -> String {
        let answer =
            self.simulate(json!({"card": {"pan": PAN_ACTIVE, "expiry": EXPIRY}, "wallet": "GOOGLE_PAY"})).await;
        assert_eq!(answer["path"], "GREEN", "{answer}");
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

    /// A signed call to the mock's TMP / Lifecycle API, as the issuer makes it.
    pub fn signed(&self, method: reqwest::Method, path: &str) -> Signed<'_> {
        Signed {
            driver: self,
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
    driver: &'a MockDriver,
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
        let driver = self.driver;
        let mut request = driver.client.request(self.method, format!("{}{}", driver.mock_url, self.path));
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

/// Asserts a contract error body with `code`; answers the body.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let body = expect_json(response, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["correlationId"].as_str().is_some_and(|c| !c.is_empty()), "{body}");
    body
}
