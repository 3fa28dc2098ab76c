//! A recording HTTP receiver on a random port: the issuer's own webhook sink, or a stand-in
//! for TMP / DataCore implementing the documented TMP API and Lifecycle API paths (to be
//! replaced by `mock-tmp` once it lands). It verifies every Standard-Webhooks signature,
//! decrypts every `encryptedPayload` with its own key (published at both public-key paths),
//! and records what arrived, so tests assert on what a real receiver saw.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Value, json};
use tmp_protocol::jwe::KeyRing;
use tmp_protocol::jwk::RsaKeyPair;
use tmp_protocol::webhook::{Verifier, WebhookSecret};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub idempotency_key: String,
    pub correlation_id: String,
    /// The W3C `traceparent` sent, as sent.
    pub traceparent: String,
    pub webhook_id: String,
    pub signature_ok: bool,
    pub at: Instant,
    pub body: Value,
    /// Plaintext of `encryptedPayload` (or `data.encryptedPayload`), when there was one.
    pub decrypted: Option<Value>,
    /// The status answered.
    pub answered: u16,
}

/// How to answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// Sleep this long before answering 200 (longer than the relay's timeout = a timeout).
    Delay(Duration),
}

type Behaviour = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

struct Shared {
    log: Mutex<Vec<Received>>,
    behaviour: Mutex<Behaviour>,
    /// Replaced when the receiver rotates its secret ([`Receiver::accept_secrets`]).
    verifier: Mutex<Verifier>,
    ring: KeyRing,
}

pub struct Receiver {
    pub url: String,
    pub port: u16,
    pub secret: WebhookSecret,
    shared: Arc<Shared>,
    handle: Mutex<Option<ServerHandle>>,
}

fn receiver_key() -> RsaKeyPair {
    static KEY: std::sync::OnceLock<RsaKeyPair> = std::sync::OnceLock::new();
    KEY.get_or_init(|| RsaKeyPair::generate(2048).expect("rsa").with_kid("receiver-1").expect("kid")).clone()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let (secret, _) = WebhookSecret::generate();
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Arc::new(|_| Reply::Status(200))),
            verifier: Mutex::new(Verifier::new(vec![secret.clone()], Duration::from_secs(300))),
            ring: KeyRing::new(vec![receiver_key()]).expect("ring"),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let receiver =
            Receiver { url: format!("http://127.0.0.1:{port}"), port, secret, shared, handle: Mutex::new(None) };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(Data::new(shared.clone()))
                .route("/tmp-api/v1/public-key", web::get().to(public_key))
                .route("/lifecycle/v1/public-key", web::get().to(public_key))
                .default_service(web::to(record))
        })
        .workers(2)
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        *self.handle.lock().unwrap() = Some(server.handle());
        tokio::spawn(server);
    }

    /// Stops listening: connections are refused until [`Receiver::resume`].
    pub async fn pause(&self) {
        let handle = self.handle.lock().unwrap().take();
        if let Some(handle) = handle {
            handle.stop(false).await;
        }
    }

    /// Listens again on the same port.
    pub fn resume(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind");
        self.serve(listener);
    }

    /// The public key payloads to this receiver are encrypted to.
    pub fn jwk(&self) -> tmp_protocol::jwk::PublicJwk {
        self.shared.ring.jwk_set().keys[0].clone()
    }

    /// Accepts signatures made with these secrets only, from now on (the receiver rotated).
    pub fn accept_secrets(&self, secrets: Vec<WebhookSecret>) {
        *self.shared.verifier.lock().unwrap() = Verifier::new(secrets, Duration::from_secs(300));
    }

    pub fn behave(&self, f: impl Fn(&Received) -> Reply + Send + Sync + 'static) {
        *self.shared.behaviour.lock().unwrap() = Arc::new(f);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many distinct idempotency keys were answered 2xx (cheap: no copy of the log).
    pub fn unique_accepted(&self) -> usize {
        let log = self.shared.log.lock().unwrap();
        log.iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| r.idempotency_key.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }

    /// Waits until `done` holds for the log (panics after `limit`).
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[Received]) -> bool) {
        let start = Instant::now();
        loop {
            if done(&self.received()) {
                return;
            }
            assert!(start.elapsed() < limit, "receiver did not get what was expected in {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn public_key(shared: Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(shared.ring.jwk_set())
}

async fn record(shared: Data<Arc<Shared>>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature_ok = shared
        .verifier
        .lock()
        .unwrap()
        .verify(
            header("webhook-id").as_deref(),
            header("webhook-timestamp").as_deref(),
            header("webhook-signature").as_deref(),
            &body,
            now,
        )
        .is_ok();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let jwe = json["encryptedPayload"].as_str().or_else(|| json["data"]["encryptedPayload"].as_str());
    let decrypted = jwe.and_then(|c| shared.ring.decrypt_json::<Value>(c).ok());
    let mut received = Received {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        idempotency_key: header("x-idempotency-key").unwrap_or_default(),
        correlation_id: header("x-correlation-id").unwrap_or_default(),
        traceparent: header("traceparent").unwrap_or_default(),
        webhook_id: header("webhook-id").unwrap_or_default(),
        signature_ok,
        at: Instant::now(),
        body: json,
        decrypted,
        answered: 0,
    };
    let behaviour = shared.behaviour.lock().unwrap().clone();
    let reply = if signature_ok { behaviour(&received) } else { Reply::Status(401) };
    let status = match reply {
        Reply::Status(status) => status,
        Reply::Delay(delay) => {
            tokio::time::sleep(delay).await;
            200
        }
    };
    received.answered = status;
    shared.log.lock().unwrap().push(received);
    let status = actix_web::http::StatusCode::from_u16(status).unwrap();
    if status.is_success() {
        HttpResponse::build(status).json(json!({"ok": true}))
    } else {
        HttpResponse::build(status)
            .json(json!({"error": {"code": "UNAVAILABLE", "message": "test", "correlationId": "x"}}))
    }
}
