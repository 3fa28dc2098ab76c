//! `X-Correlation-Id` and W3C `traceparent`: taken from the request (when sane) or generated,
//! the id echoed on the response, both attached to the request's tracing span, and available
//! (task-local) to error bodies and to outbound calls made while serving the request — or while
//! delivering what it queued (the relay scopes each delivery with the trace its row kept).

use std::future::Future;

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use tmp_protocol::headers::{CORRELATION_ID, MAX_CORRELATION_ID_LEN};
use tmp_protocol::trace_context::{TRACEPARENT, TraceParent};

use crate::otlp::Exporter;

/// What ties the work of one request together, across hops and across the outbox.
#[derive(Debug, Clone)]
struct Hop {
    correlation_id: String,
    trace: TraceParent,
    /// Where the hop's outbound calls are exported as spans, when OTLP export is on.
    exporter: Option<Exporter>,
}

tokio::task_local! {
    static CORRELATION: Hop;
}

/// The correlation id of the request being served ("-" outside a request).
pub fn current() -> String {
    CORRELATION.try_with(|hop| hop.correlation_id.clone()).unwrap_or_else(|_| "-".to_owned())
}

/// This hop's place in the trace of the request being served (`None` outside a request).
pub fn current_trace() -> Option<TraceParent> {
    CORRELATION.try_with(|hop| hop.trace).ok()
}

/// The `traceparent` an outbound call sends: the current trace with a new parent id, or a new
/// trace when the call is made outside any (a CLI run, a timer).
pub fn outbound_trace() -> TraceParent {
    current_trace().map(|t| t.child()).unwrap_or_else(TraceParent::start)
}

/// Runs `fut` with `id` as the current correlation id and `trace` as this hop's trace position.
pub fn scope<F: Future>(id: String, trace: TraceParent, fut: F) -> impl Future<Output = F::Output> {
    scope_exported(id, trace, None, fut)
}

/// [`scope`], and the hop's outbound calls recorded as client spans through `exporter`.
pub fn scope_exported<F: Future>(
    id: String,
    trace: TraceParent,
    exporter: Option<Exporter>,
    fut: F,
) -> impl Future<Output = F::Output> {
    CORRELATION.scope(Hop { correlation_id: id, trace, exporter }, fut)
}

/// The exporter of the request being served, when it exports spans.
pub fn current_exporter() -> Option<Exporter> {
    CORRELATION.try_with(|hop| hop.exporter.clone()).ok().flatten()
}

/// The caller's own position in the trace, from its `traceparent` (`None`: absent or
/// malformed, the hop starts a trace): the parent of this hop's span.
pub fn caller_trace(req: &ServiceRequest) -> Option<TraceParent> {
    req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(|h| TraceParent::parse(h).ok())
}

/// The caller's trace continued by this hop, or a new one (absent or malformed header). The
/// value is parsed to fixed-size ids, so nothing a caller writes there reaches a log or a row.
pub fn trace_from_request(req: &ServiceRequest) -> TraceParent {
    TraceParent::continue_or_start(req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()))
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
