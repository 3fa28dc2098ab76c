//! HTTP surfaces: the TMP API ([`tmp`]) and the Lifecycle API ([`lifecycle`]) as the contract
//! defines them, the mock's own control plane ([`control`]) under `/_mock/v1`, and the browser
//! console over it ([`console`], `/_mock/console`), and the wallet's web flow of a web push
//! ([`web_push`], `/_mock/web-push/{receipt}`).

pub mod admit;
pub mod console;
pub mod control;
pub mod lifecycle;
pub mod middleware;
pub mod tmp;
pub mod web_push;

use actix_web::web;

use tmp_edge::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(tmp::configure)
        .configure(lifecycle::configure)
        .configure(control::configure)
        .configure(console::configure)
        .configure(web_push::configure)
        .route("/", web::get().to(index));
}

/// `GET /`: which service this port is, and where to go from here.
async fn index() -> actix_web::HttpResponse {
    tmp_edge::index::answer(
        "mock-tmp",
        "tmp-api, lifecycle-api, control",
        env!("CARGO_PKG_VERSION"),
        &[
            ("tmpApi", "/tmp-api/v1/…"),
            ("lifecycleApi", "/lifecycle/v1/…"),
            ("console", console::CONSOLE_PATH),
            ("control", "/_mock/v1/… (cards, tokens, requests, faults, simulate)"),
            ("docs", "docs/mock-tmp.md in the kit's repository"),
        ],
    )
}

pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::UnknownResource("no route for this path".into()))
}
