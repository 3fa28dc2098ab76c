//! HTTP surfaces: the TMP API ([`tmp`]) and the Lifecycle API ([`lifecycle`]) as the contract
//! defines them, and the mock's own control plane ([`control`]) under `/_mock/v1`.

pub mod admit;
pub mod control;
pub mod lifecycle;
pub mod middleware;
pub mod tmp;

use actix_web::web;

use tmp_edge::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(tmp::configure).configure(lifecycle::configure).configure(control::configure);
}

pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::UnknownResource("no route for this path".into()))
}
