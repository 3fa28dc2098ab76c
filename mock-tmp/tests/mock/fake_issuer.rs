//! A small fake issuer for the mock's own tests: serves the Issuer API the mock calls (public
//! key, verify card, verify CVC, token events, notifications) with contract-shaped answers,
//! checks the mock's Standard-Webhooks signature, decrypts the activation codes sent to its
//! key, and records every request. It can be told to fail a route's next answers, as an issuer
//! that is down would. Every card is ACTIVE; the decision is whatever the test set (APPROVED).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Value, json};
use tmp_protocol::jwe::KeyRing;
use tmp_protocol::jwk::{JwkSet, RsaKeyPair};
use tmp_protocol::webhook::{Verifier, WebhookSecret};

/// One request the fake issuer received and answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub webhook_id: Option<String>,
    pub body: Value,
    pub status: u16,
    /// The activation code of an `ACTIVATION_CODE_DELIVERY`, decrypted with the issuer's key.
    pub otp: Option<String>,
}

struct State {
    verifier: Verifier,
    keys: KeyRing,
    jwk_set: JwkSet,
    received: Mutex<Vec<Received>>,
    /// Route path → how many more answers are 503.
    failing: Mutex<HashMap<String, u32>>,
    /// What verify card answers.
    decision: Mutex<&'static str>,
}

pub struct FakeIssuer {
    pub url: String,
    /// What the mock signs its callbacks with (`issuer.hmac_secrets`).
    pub secret: WebhookSecret,
    state: Data<State>,
}

impl FakeIssuer {
    pub async fn start() -> FakeIssuer {
        let key = tokio::task::spawn_blocking(|| RsaKeyPair::generate(2048))
            .await
            .expect("key task")
            .expect("key")
            .with_kid("fake-issuer-1")
            .expect("kid");
        let (secret, _) = WebhookSecret::generate();
        let state = Data::new(State {
            verifier: Verifier::new(vec![secret.clone()], Duration::from_secs(300)),
            jwk_set: JwkSet { keys: vec![key.public_jwk()] },
            keys: KeyRing::new(vec![key]).expect("key ring"),
            received: Mutex::new(Vec::new()),
            failing: Mutex::new(HashMap::new()),
            decision: Mutex::new("APPROVED"),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .route("/issuer-api/v1/public-key", web::get().to(public_key))
                .default_service(web::post().to(answer))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        // Serves until the test's runtime ends.
        tokio::spawn(server);
        FakeIssuer { url, secret, state }
    }

    /// The next `times` answers on `path` are 503, as from an issuer that is down.
    pub fn fail(&self, path: &str, times: u32) {
        self.state.failing.lock().expect("failing").insert(path.to_owned(), times);
    }

    /// Verify card answers `decision` from now on (`APPROVED` at the start).
    pub fn decide(&self, decision: &'static str) {
        *self.state.decision.lock().expect("decision") = decision;
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state.received.lock().expect("received").iter().filter(|r| r.path == path).cloned().collect()
    }
}

async fn public_key(state: Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(&state.jwk_set)
}

async fn answer(state: Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = state
        .verifier
        .verify(
            header("webhook-id").as_deref(),
            header("webhook-timestamp").as_deref(),
            header("webhook-signature").as_deref(),
            &body,
            now,
        )
        .is_ok();
    let path = request.path().to_owned();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let failing = {
        let mut failing = state.failing.lock().expect("failing");
        match failing.get_mut(&path) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    };
    let (status, reply) = if !signed {
        (401, json!({"error": {"code": "INVALID_SIGNATURE", "message": "unsigned", "correlationId": "-"}}))
    } else if failing {
        (503, json!({"error": {"code": "UNAVAILABLE", "message": "down", "correlationId": "-"}}))
    } else {
        match path.as_str() {
            "/issuer-api/v1/cards/verify" => (
                200,
                json!({"decision": *state.decision.lock().expect("decision"), "reason": "CARD_VERIFIED", "cardStatus": "ACTIVE", "cardId": "card-active",
                       "cvcResult": "NOT_PROVIDED", "standIn": false,
                       "cardholder": {"phone": "+48500100200"}}),
            ),
            "/issuer-api/v1/cards/verify-cvc" => {
                (200, json!({"cvcResult": "MATCH", "cardStatus": "ACTIVE", "cardId": "card-active"}))
            }
            "/issuer-api/v1/tokens/events" => {
                (200, json!({"eventId": value["eventId"], "tokenId": value["tokenId"], "accepted": true}))
            }
            "/issuer-api/v1/notifications" => {
                (200, json!({"notificationId": value["notificationId"], "accepted": true}))
            }
            _ => (404, json!({"error": {"code": "NOT_FOUND", "message": "no route", "correlationId": "-"}})),
        }
    };
    let otp = value["encryptedPayload"].as_str().and_then(|jwe| {
        let plain: Value = state.keys.decrypt_json(jwe).ok()?;
        plain["otp"].as_str().map(str::to_owned)
    });
    state.received.lock().expect("received").push(Received {
        path,
        idempotency_key: header("x-idempotency-key"),
        webhook_id: header("webhook-id"),
        body: value,
        status,
        otp,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(reply)
}
