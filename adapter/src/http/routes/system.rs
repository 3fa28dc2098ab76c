//! Operational endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document.

use actix_web::HttpResponse;
use actix_web::web::Data;

use crate::http::AppState;
use crate::openapi;

/// Alive: the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready: the database answers.
pub async fn readyz(state: Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(error) => {
            tracing::warn!(error = ?error, "not ready: database unreachable or durability lost");
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
