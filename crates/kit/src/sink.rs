//! The issuer's own system as the spawned adapter sees it: a webhook sink that verifies each
//! delivery's signature and decrypts the activation code sent to it. The journeys read the OTP
//! here, as an issuer's SMS gateway would, and type it into the mock's wallet.

use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use tmp_protocol::jwe::KeyRing;
use tmp_protocol::jwk::RsaKeyPair;
use tmp_protocol::sensitive::Otp;
use tmp_protocol::webhook::{Verifier, WebhookSecret};

/// One delivery the sink accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_type: String,
    pub data: Value,
    /// The activation code, decrypted (`notification.ACTIVATION_CODE_DELIVERY` only).
    pub otp: Option<Otp>,
}

struct SinkState {
    verifier: Verifier,
    keys: KeyRing,
    deliveries: Mutex<Vec<Delivery>>,
    /// While set, every delivery is answered 503 (the issuer's system down).
    refusing: std::sync::atomic::AtomicBool,
}

pub struct Sink {
    pub url: String,
    /// The secret the adapter signs its deliveries with.
    pub secret: WebhookSecret,
    /// The public JWK (JSON) the adapter encrypts activation codes to.
    pub otp_jwk_json: String,
    state: Data<SinkState>,
    handle: ServerHandle,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let key = tokio::task::spawn_blocking(|| RsaKeyPair::generate(2048)).await??.with_kid("conformance-sink")?;
        let otp_jwk_json = serde_json::to_string(&key.public_jwk())?;
        let (secret, _) = WebhookSecret::generate();
        let state = Data::new(SinkState {
            verifier: Verifier::new(vec![secret.clone()], Duration::from_secs(300)),
            keys: KeyRing::new(vec![key])?,
            deliveries: Mutex::new(Vec::new()),
            refusing: std::sync::atomic::AtomicBool::new(false),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/webhooks", listener.local_addr()?);
        let app_state = state.clone();
        let server =
            HttpServer::new(move || App::new().app_data(app_state.clone()).route("/webhooks", web::post().to(receive)))
                .workers(1)
                .listen(listener)?
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Sink { url, secret, otp_jwk_json, state, handle })
    }

    /// Makes the sink answer every delivery 503 (`true`) or accept again (`false`).
    pub fn refuse(&self, refusing: bool) {
        self.state.refusing.store(refusing, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries.lock().expect("deliveries").clone()
    }

    /// The activation code delivered for `token_id`, if it has arrived.
    pub fn otp_for(&self, token_id: &str) -> Option<Otp> {
        self.deliveries()
            .into_iter()
            .rev()
            .find(|d| d.data["tokenId"] == token_id && d.otp.is_some())
            .and_then(|d| d.otp)
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

async fn receive(state: Data<SinkState>, request: HttpRequest, body: Bytes) -> HttpResponse {
    if state.refusing.load(std::sync::atomic::Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if state
        .verifier
        .verify(header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"), &body, now)
        .is_err()
    {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let data = message["data"].clone();
    let otp = data["encryptedPayload"].as_str().and_then(|jwe| {
        let plain: Value = state.keys.decrypt_json(jwe).ok()?;
        Otp::parse(plain["otp"].as_str()?).ok()
    });
    let event_type = message["type"].as_str().unwrap_or_default().to_owned();
    state.deliveries.lock().expect("deliveries").push(Delivery { event_type, data, otp });
    HttpResponse::Ok().finish()
}
