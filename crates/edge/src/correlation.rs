//! `X-Correlation-Id`: taken from the request (when sane) or generated, echoed on the
//! response, attached to the request's tracing span, and available (task-local) to error
//! bodies and outbound calls made while serving the request.

use std::future::Future;

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use tmp_protocol::headers::{CORRELATION_ID, MAX_CORRELATION_ID_LEN};

tokio::task_local! {
    static CORRELATION: String;
}

/// The correlation id of the request being served ("-" outside a request).
pub fn current() -> String {
    CORRELATION.try_with(|id| id.clone()).unwrap_or_else(|_| "-".to_owned())
}

/// Runs `fut` with `id` as the current correlation id.
pub fn scope<F: Future>(id: String, fut: F) -> impl Future<Output = F::Output> {
    CORRELATION.scope(id, fut)
}

/// The request's correlation id if it is printable ASCII of a sane length holding nothing like a
/// card number, else a new one. It goes into every log line and answer of the request, so a PAN
/// a caller put there would be spread everywhere; it only correlates, so a caller's id that
/// merely looks like one (one in ten long digit runs does) loses nothing but its own value.
pub fn from_request(req: &ServiceRequest) -> String {
    req.headers()
        .get(CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_CORRELATION_ID_LEN)
        .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
        .filter(|v| !tmp_protocol::sensitive::contains_pan_like(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Stored in request extensions so handlers can read it without the task-local.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

pub fn remember(req: &ServiceRequest, id: &str) {
    req.extensions_mut().insert(CorrelationId(id.to_owned()));
}

pub fn header_pair(id: &str) -> Option<(HeaderName, HeaderValue)> {
    HeaderValue::from_str(id).ok().map(|v| (HeaderName::from_static("x-correlation-id"), v))
}
