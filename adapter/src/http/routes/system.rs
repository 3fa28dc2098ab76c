//! Operational endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document.

use actix_web::HttpResponse;
use actix_web::web::Data;

use crate::http::AppState;
use crate::openapi;

/// `GET /`: which service this port is, and where to go from here.
pub async fn index() -> HttpResponse {
    tmp_edge::index::answer(
        "tmp-adapter",
        "issuer-api",
        env!("CARGO_PKG_VERSION"),
        &[
            ("openapi", "/openapi.json"),
            ("publicKey", tmp_protocol::issuer_api::PUBLIC_KEY_PATH),
            ("health", "/healthz"),
            ("readiness", "/readyz"),
            ("metrics", "/metrics"),
            ("docs", "docs/contract.md and docs/operations.md in the kit's repository"),
        ],
    )
}

/// Alive: the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready: the database answers.
pub async fn readyz(state: Data<AppState>) -> HttpResponse {
    let budget = std::time::Duration::from_millis(state.settings.server.readiness_timeout_ms);
    // A stalled database must make the probe fail fast, not hang it (and the load balancer's
    // connection) for as long as the stall lasts.
    let ping = tokio::time::timeout(budget, state.store.ping()).await;
    // Anyone who reaches the port can probe as often as they like.
    static NOT_READY: tmp_edge::log_budget::LogBudget = tmp_edge::log_budget::LogBudget::new();
    match ping {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Ok(Err(error)) => {
            if let Some(suppressed) = NOT_READY.admit() {
                tracing::warn!(error = ?error, suppressed, "not ready: database unreachable or durability lost");
            }
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable", "reason": "database"}))
        }
        Err(_) => {
            if let Some(suppressed) = NOT_READY.admit() {
                let budget_ms = budget.as_millis() as u64;
                tracing::warn!(budget_ms, suppressed, "not ready: the database did not answer in time");
            }
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable", "reason": "database"}))
        }
    }
}

pub async fn metrics(state: Data<AppState>) -> HttpResponse {
    state.metrics.observe_group_commit(state.store.group_commit_stats());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(openapi::issuer_api_json())
}
