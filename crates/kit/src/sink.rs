//! The issuer's own system as the adapter sees it: a webhook sink that verifies each delivery's
//! signature and decrypts the activation code sent to it. The journeys read the OTP here, as an
//! issuer's SMS gateway would, and type it into the mock's wallet; `tmp-kit up` runs one as the
//! **dev inbox**, which also logs each delivery and lists them at `GET /inbox`, so a developer
//! can finish the yellow path by hand. Development only: it shows activation codes in clear.

use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use tmp_protocol::jwe::KeyRing;
use tmp_protocol::jwk::RsaKeyPair;
use tmp_protocol::sensitive::Otp;
use tmp_protocol::trace_context::{TRACEPARENT, TraceParent};
use tmp_protocol::webhook::{Verifier, WebhookSecret};

/// One delivery the sink accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_type: String,
    pub data: Value,
    /// The activation code, decrypted (`notification.ACTIVATION_CODE_DELIVERY` only).
    pub otp: Option<Otp>,
    /// The W3C trace id the delivery carried (`traceparent`): the trace of the TMP call or
    /// processor event that caused it.
    pub trace_id: Option<String>,
}

struct SinkState {
    verifier: Verifier,
    keys: KeyRing,
    deliveries: Mutex<Vec<Delivery>>,
    /// While set, every delivery is answered 503 (the issuer's system down).
    refusing: std::sync::atomic::AtomicBool,
    /// The dev inbox: log each delivery, code included.
    announce: bool,
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
    /// A sink on a port the system picks, quiet: the kit's tests and checks read it.
    pub async fn start() -> anyhow::Result<Sink> {
        Sink::start_on("127.0.0.1:0", false).await
    }

    /// The dev inbox on `address`: logs each delivery (activation codes in clear) and lists
    /// them at `GET /inbox`.
    pub async fn start_inbox(address: &str) -> anyhow::Result<Sink> {
        Sink::start_on(address, true).await
    }

    async fn start_on(address: &str, announce: bool) -> anyhow::Result<Sink> {
        let key = tokio::task::spawn_blocking(|| RsaKeyPair::generate(2048)).await??.with_kid("conformance-sink")?;
        let otp_jwk_json = serde_json::to_string(&key.public_jwk())?;
        let (secret, _) = WebhookSecret::generate();
        let state = Data::new(SinkState {
            verifier: Verifier::new(vec![secret.clone()], Duration::from_secs(300)),
            keys: KeyRing::new(vec![key])?,
            deliveries: Mutex::new(Vec::new()),
            refusing: std::sync::atomic::AtomicBool::new(false),
            announce,
        });
        let listener = std::net::TcpListener::bind(address)
            .map_err(|e| anyhow::anyhow!("the sink cannot listen on {address}: {e}"))?;
        let url = format!("http://{}/webhooks", listener.local_addr()?);
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .route("/webhooks", web::post().to(receive))
                .route("/inbox", web::get().to(inbox))
        })
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

    /// Where the inbox lists what arrived.
    pub fn inbox_url(&self) -> String {
        self.url.replace("/webhooks", "/inbox")
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// A Standard-Webhooks-signed JSON body, as the adapter sends the kit's receivers (the sink, the
/// decision engine); refused 401 for a bad signature, 400 for a body that is not JSON.
pub(crate) fn signed_json(verifier: &Verifier, request: &HttpRequest, body: &Bytes) -> Result<Value, StatusCode> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if verifier
        .verify(header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"), body, now)
        .is_err()
    {
        return Err(StatusCode::UNAUTHORIZED);
    }
    serde_json::from_slice::<Value>(body).map_err(|_| StatusCode::BAD_REQUEST)
}

async fn receive(state: Data<SinkState>, request: HttpRequest, body: Bytes) -> HttpResponse {
    if state.refusing.load(std::sync::atomic::Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let message = match signed_json(&state.verifier, &request, &body) {
        Ok(message) => message,
        Err(refused) => return HttpResponse::build(refused).finish(),
    };
    let data = message["data"].clone();
    let otp = data["encryptedPayload"].as_str().and_then(|jwe| {
        let plain: Value = state.keys.decrypt_json(jwe).ok()?;
        Otp::parse(plain["otp"].as_str()?).ok()
    });
    let event_type = message["type"].as_str().unwrap_or_default().to_owned();
    let trace_id = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| TraceParent::parse(t).ok())
        .map(|t| t.trace_id());
    if state.announce {
        let (token_id, card_id) = (data["tokenId"].as_str(), data["cardId"].as_str());
        match &otp {
            // The point of the dev inbox: the code the cardholder would read on their phone.
            Some(code) => tracing::info!(
                token_id,
                card_id,
                code = code.expose(),
                trace_id = trace_id.as_deref(),
                "dev inbox: activation code (type it with POST /_mock/v1/simulate/tokens/{{tokenId}}/otp)"
            ),
            None => tracing::info!(
                event_type,
                token_id,
                card_id,
                status = data["status"].as_str(),
                trace_id = trace_id.as_deref(),
                "dev inbox"
            ),
        }
    }
    state.deliveries.lock().expect("deliveries").push(Delivery { event_type, data, otp, trace_id });
    HttpResponse::Ok().finish()
}

/// `GET /inbox`: every delivery, newest first, activation codes in clear (the dev inbox is for
/// development only; a real issuer's system never shows them).
async fn inbox(state: Data<SinkState>) -> HttpResponse {
    let deliveries = state.deliveries.lock().expect("deliveries").clone();
    let items: Vec<Value> = deliveries
        .iter()
        .rev()
        .map(|d| {
            // The code decrypted in place of its JWE.
            let mut data = d.data.clone();
            if let Some(data) = data.as_object_mut() {
                data.remove("encryptedPayload");
            }
            let mut item = serde_json::json!({
                "type": d.event_type, "tokenId": d.data["tokenId"], "traceId": d.trace_id, "data": data
            });
            if let Some(code) = &d.otp {
                item["otp"] = Value::from(code.expose());
            }
            item
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "deliveries": items }))
}
