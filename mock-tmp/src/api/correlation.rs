//! `X-Correlation-Id`: taken from the request when sane, else generated; echoed on the
//! response and available (task-local) to error bodies.

use std::future::Future;

use actix_web::dev::ServiceRequest;
use tmp_protocol::headers::{CORRELATION_ID, MAX_CORRELATION_ID_LEN};

tokio::task_local! {
    static CORRELATION: String;
}

/// The correlation id of the request being served ("-" outside a request).
pub fn current() -> String {
    CORRELATION.try_with(|id| id.clone()).unwrap_or_else(|_| "-".to_owned())
}

pub fn scope<F: Future>(id: String, fut: F) -> impl Future<Output = F::Output> {
    CORRELATION.scope(id, fut)
}

pub fn from_request(req: &ServiceRequest) -> String {
    req.headers()
        .get(CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_CORRELATION_ID_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
