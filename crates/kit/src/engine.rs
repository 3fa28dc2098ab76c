//! The issuer's decision engine as the kit's adapter sees it: the processor bridge's decision
//! hook (`POST /bridge/v1/tokenizations/decide`, docs/bridge.md §1.3) served alone, for an
//! adapter whose cards are in its local registry. It checks each call's signature, keeps what it
//! was asked per tokenization, and answers as the conformance suite told it for that
//! tokenization ([`EngineAnswer`]) — by default the decision the adapter proposed, so that a run
//! that tells it nothing sees the policy's decisions unchanged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Value, json};
use tmp_conformance::harness::EngineAnswer;
use tmp_protocol::bridge::DECIDE_PATH;
use tmp_protocol::webhook::{Verifier, WebhookSecret};

struct EngineState {
    verifier: Verifier,
    /// How to answer, by tokenization id.
    answers: Mutex<HashMap<String, EngineAnswer>>,
    /// What was asked, by tokenization id (the last question).
    questions: Mutex<HashMap<String, Value>>,
    /// How long a late answer waits: past the adapter's verification deadline.
    late_by: Mutex<Duration>,
}

pub struct DecisionEngine {
    /// The base URL the adapter's `card_source.processor_bridge.base_url` names.
    pub url: String,
    /// The secret the adapter signs its calls with.
    pub secret: WebhookSecret,
    state: Data<EngineState>,
    handle: ServerHandle,
}

impl DecisionEngine {
    /// An engine on a port the system picks; a late answer comes 10 s after the question until
    /// [`DecisionEngine::answer_late_by`] says otherwise.
    pub async fn start() -> anyhow::Result<DecisionEngine> {
        let (secret, _) = WebhookSecret::generate();
        let state = Data::new(EngineState {
            verifier: Verifier::new(vec![secret.clone()], Duration::from_secs(300)),
            answers: Mutex::new(HashMap::new()),
            questions: Mutex::new(HashMap::new()),
            late_by: Mutex::new(Duration::from_secs(10)),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let app_state = state.clone();
        let server =
            HttpServer::new(move || App::new().app_data(app_state.clone()).route(DECIDE_PATH, web::post().to(decide)))
                .workers(1)
                // A late answer still sleeping must not hold the kit's stop.
                .shutdown_timeout(1)
                .listen(listener)?
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(DecisionEngine { url, secret, state, handle })
    }

    /// How long a late answer waits: set past the adapter's deadline once its settings are final.
    pub fn answer_late_by(&self, late_by: Duration) {
        *self.state.late_by.lock().expect("late_by") = late_by;
    }

    pub fn set_answer(&self, tokenization_id: &str, answer: EngineAnswer) {
        self.state.answers.lock().expect("answers").insert(tokenization_id.to_owned(), answer);
    }

    pub fn question(&self, tokenization_id: &str) -> Option<Value> {
        self.state.questions.lock().expect("questions").get(tokenization_id).cloned()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn decide(state: Data<EngineState>, request: HttpRequest, body: Bytes) -> HttpResponse {
    let question = match crate::sink::signed_json(&state.verifier, &request, &body) {
        Ok(question) => question,
        Err(refused) => return HttpResponse::build(refused).finish(),
    };
    let tokenization_id = question["tokenization"]["tokenizationId"].as_str().unwrap_or_default().to_owned();
    let proposed = question["decision"].clone();
    state.questions.lock().expect("questions").insert(tokenization_id.clone(), question);
    let told = state.answers.lock().expect("answers").get(&tokenization_id).copied();
    match told {
        None => HttpResponse::Ok().json(json!({"decision": proposed})),
        Some(EngineAnswer::Decide(decision)) => {
            HttpResponse::Ok().json(json!({"decision": decision, "reason": "CONFORMANCE"}))
        }
        Some(EngineAnswer::Late) => {
            let late_by = *state.late_by.lock().expect("late_by");
            tokio::time::sleep(late_by).await;
            HttpResponse::Ok().json(json!({"decision": "DECLINED", "reason": "TOO_LATE"}))
        }
        Some(EngineAnswer::Malformed) => HttpResponse::Ok().json(json!({"decision": "MAYBE"})),
        Some(EngineAnswer::Unavailable) => HttpResponse::ServiceUnavailable().finish(),
    }
}
