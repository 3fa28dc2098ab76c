//! A processor bridge for tests: a real HTTP server implementing the bridge contract
//! (`tmp_protocol::bridge`) over a fixed card list, with a configurable answer delay and an
//! optional failure status — what a slow or broken processor looks like to the adapter — and,
//! when told, a decision hook answering a fixed status and body after its own delay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{self, Data};
use actix_web::{App, HttpResponse, HttpServer};
use tmp_protocol::bridge::{BridgeCard, BridgeCvcRequest, BridgeCvcResponse, BridgeLookupRequest};

pub struct BridgeCardEntry {
    pub pan: String,
    pub card: BridgeCard,
    pub cvc: String,
}

pub struct BridgeBehaviour {
    pub cards: Vec<BridgeCardEntry>,
    pub delay: Duration,
    /// Answer every call with this status instead.
    pub fail_with: Option<u16>,
    /// What the decision hook answers; none: 404, as a bridge without one.
    pub decide: Option<DecideAnswer>,
}

/// The decision hook's answer: a status and a raw body (valid or not), after `delay`; status
/// 0 starts an answer and cuts the connection before its body ends.
#[derive(Clone)]
pub struct DecideAnswer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

pub struct TestBridge {
    pub base_url: String,
    /// Every lookup as `{"members": [its top-level member names, sorted], "tokenization": …}`,
    /// as the adapter sent it (the PAN itself not kept here).
    pub lookups: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Every decision-hook request body, as sent.
    pub decides: Arc<Mutex<Vec<serde_json::Value>>>,
    handle: actix_web::dev::ServerHandle,
}

impl TestBridge {
    pub async fn start(behaviour: BridgeBehaviour) -> TestBridge {
        let behaviour = Data::new(Arc::new(behaviour));
        let lookups = Arc::new(Mutex::new(Vec::new()));
        let seen = Data::new(lookups.clone());
        let decides = Arc::new(Mutex::new(Vec::new()));
        let asked = Data::new(Asked(decides.clone()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(behaviour.clone())
                .app_data(seen.clone())
                .app_data(asked.clone())
                .route(tmp_protocol::bridge::DECIDE_PATH, web::post().to(decide))
                .route(tmp_protocol::bridge::LOOKUP_PATH, web::post().to(lookup))
                .route(tmp_protocol::bridge::VERIFY_CVC_PATH, web::post().to(verify_cvc))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        TestBridge { base_url: format!("http://127.0.0.1:{port}"), lookups, decides, handle }
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn lookup(
    b: Data<Arc<BridgeBehaviour>>,
    seen: Data<Arc<Mutex<Vec<serde_json::Value>>>>,
    raw: web::Json<serde_json::Value>,
) -> HttpResponse {
    let mut members: Vec<String> = raw.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    members.sort();
    seen.lock().expect("lookups").push(serde_json::json!({"members": members, "tokenization": raw["tokenization"]}));
    let Ok(body) = serde_json::from_value::<BridgeLookupRequest>(raw.into_inner()) else {
        return HttpResponse::BadRequest().finish();
    };
    tokio::time::sleep(b.delay).await;
    if let Some(status) = b.fail_with {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).finish();
    }
    match b.cards.iter().find(|c| c.pan == body.pan.expose()) {
        Some(entry) => HttpResponse::Ok().json(&entry.card),
        None => HttpResponse::NotFound().finish(),
    }
}

/// The decision-hook requests seen (a type of its own: app data is found by type).
struct Asked(Arc<Mutex<Vec<serde_json::Value>>>);

async fn decide(b: Data<Arc<BridgeBehaviour>>, asked: Data<Asked>, raw: web::Json<serde_json::Value>) -> HttpResponse {
    asked.0.lock().expect("decides").push(raw.into_inner());
    let Some(answer) = b.decide.clone() else { return HttpResponse::NotFound().finish() };
    tokio::time::sleep(answer.delay).await;
    if answer.status == 0 {
        let cut = futures_util::stream::once(async {
            Err::<web::Bytes, _>(actix_web::error::ErrorInternalServerError("cut"))
        });
        return HttpResponse::Ok().content_type("application/json").streaming(cut);
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status).expect("status"))
        .content_type("application/json")
        .body(answer.body)
}

async fn verify_cvc(b: Data<Arc<BridgeBehaviour>>, body: web::Json<BridgeCvcRequest>) -> HttpResponse {
    tokio::time::sleep(b.delay).await;
    let matches = b.cards.iter().any(|c| c.card.card_id == body.card_id && c.cvc == body.cvc.expose());
    HttpResponse::Ok().json(BridgeCvcResponse { matches })
}
