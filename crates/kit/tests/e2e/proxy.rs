//! A deliberately broken Issuer API: a proxy in front of a real, spawned tmp-adapter that
//! breaks one rule of the contract and passes everything else through unchanged.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Value, json};
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes everything through: the control.
    None,
    /// Turns the decline of a blocked card into an approval.
    ApprovesBlockedCards,
    /// Re-signs every Issuer API request with the right secret: whatever signature (or none)
    /// the caller sent is accepted.
    AcceptsBadSignatures,
    /// Replaces every X-Idempotency-Key with a fresh one.
    IgnoresIdempotencyKeys,
    /// Answers card verifications only after this delay.
    AnswersLate(Duration),
    /// Acknowledges token events with a body cut short.
    MalformedTokenAcks,
}

struct State {
    upstream: String,
    fault: Fault,
    secret: WebhookSecret,
    http: reqwest::Client,
}

pub struct Proxy {
    pub url: String,
    handle: ServerHandle,
}

impl Proxy {
    pub async fn start(upstream: &str, fault: Fault, secret: WebhookSecret) -> Proxy {
        let state = Data::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            fault,
            secret,
            http: reqwest::Client::new(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = HttpServer::new(move || {
            // As large as any body a case sends: the proxy must not refuse what the target would.
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .default_service(web::to(forward))
        })
        .workers(2)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Proxy { url, handle }
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

const PASSED_BACK: [&str; 4] = ["content-type", "idempotent-replayed", "x-correlation-id", "retry-after"];

async fn forward(state: Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let issuer_api = path.starts_with("/issuer-api/") && request.method() == actix_web::http::Method::POST;
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("a method");
    let mut outbound = state.http.request(method, format!("{}{path}", state.upstream));
    for (name, value) in request.headers() {
        let name = name.as_str();
        let dropped = matches!(name, "host" | "content-length" | "connection")
            || (state.fault == Fault::AcceptsBadSignatures && issuer_api && name.starts_with("webhook-"))
            || (state.fault == Fault::IgnoresIdempotencyKeys && name == "x-idempotency-key");
        if !dropped {
            outbound = outbound.header(name, value.as_bytes());
        }
    }
    if state.fault == Fault::AcceptsBadSignatures && issuer_api {
        let headers = SignatureHeaders::sign_now(std::slice::from_ref(&state.secret), &body).expect("sign");
        for (name, value) in headers.to_header_pairs() {
            outbound = outbound.header(name, value);
        }
    }
    if state.fault == Fault::IgnoresIdempotencyKeys && issuer_api {
        outbound = outbound.header("x-idempotency-key", uuid::Uuid::new_v4().to_string());
    }
    let Ok(answer) = outbound.body(body).send().await else {
        return HttpResponse::BadGateway().finish();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut bytes = answer.bytes().await.unwrap_or_default().to_vec();

    if path == "/issuer-api/v1/cards/verify" {
        if let Fault::AnswersLate(delay) = state.fault {
            tokio::time::sleep(delay).await;
        }
        if state.fault == Fault::ApprovesBlockedCards
            && let Ok(mut decision) = serde_json::from_slice::<Value>(&bytes)
            && decision["cardStatus"] == "BLOCKED"
        {
            decision["decision"] = json!("APPROVED");
            decision["reason"] = json!("CARD_VERIFIED");
            bytes = decision.to_string().into_bytes();
        }
    }
    if state.fault == Fault::MalformedTokenAcks && path == "/issuer-api/v1/tokens/events" && status.is_success() {
        bytes.truncate(bytes.len() / 2);
    }

    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status.as_u16()).expect("status"));
    for name in PASSED_BACK {
        if let Some(value) = headers.get(name) {
            response.insert_header((name, value.as_bytes()));
        }
    }
    response.body(bytes)
}
