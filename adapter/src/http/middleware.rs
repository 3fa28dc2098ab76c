//! Per-request cross-cutting work, in one place: correlation id (header in, header out, span
//! field, task-local for error bodies) and trace context (`traceparent` in, span field,
//! task-local for outbound calls and the outbox), an access log line, the HTTP metrics, and the Issuer
//! API listener's time budget.

use std::time::{Duration, Instant, SystemTime};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, ResponseError};
use tracing::Instrument;

use super::AppState;
use tmp_edge::correlation;
use tmp_edge::otlp::{AttributeValue, SpanKind, SpanRecord};
use tmp_protocol::trace_context::TraceParent;

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let correlation_id = correlation::from_request(&req);
    let caller = correlation::caller_trace(&req);
    let trace = caller.map(|t| t.child()).unwrap_or_else(TraceParent::start);
    correlation::remember(&req, &correlation_id);
    // A fixed set: any method token is accepted by HTTP, and each new label value would grow
    // the metrics forever.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "OTHER",
    }
    .to_owned();
    let span = tracing::info_span!(
        "request",
        correlation_id = %correlation_id,
        trace_id = %trace.trace_id(),
        method = %method,
        route = tracing::field::Empty
    );
    let state = req.app_data::<Data<AppState>>().cloned();
    let exporter = state.as_ref().and_then(|s| s.exporter.clone());

    let result = correlation::scope_exported(correlation_id.clone(), trace, exporter.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    let mut response = result?;

    // The matched pattern, never the raw path: no ids or card data in labels.
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16().to_string();
    span.record("route", route.as_str());
    if let Some((name, value)) = correlation::header_pair(&correlation_id) {
        response.headers_mut().insert(name, value);
    }
    if let Some(state) = state {
        state.metrics.http_requests.with_label_values(&[route.as_str(), method.as_str(), status.as_str()]).inc();
        state
            .metrics
            .http_duration
            .with_label_values(&[route.as_str(), status.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(status = %status, latency_ms = started.elapsed().as_millis() as u64, "request served");
    });
    if let Some(exporter) = exporter {
        exporter.record(server_span(&method, &route, response.status().as_u16(), trace, caller, started_at));
    }
    Ok(response)
}

/// A request served as an exported span: its id is the hop's own (the parent id of every call
/// it makes), its parent the caller's; named by the route pattern, never the raw path.
fn server_span(
    method: &str,
    route: &str,
    status: u16,
    trace: TraceParent,
    caller: Option<TraceParent>,
    started: SystemTime,
) -> SpanRecord {
    SpanRecord {
        name: format!("{method} {route}"),
        kind: SpanKind::Server,
        position: trace,
        parent: caller,
        start: started,
        end: SystemTime::now(),
        // OpenTelemetry's rule for servers: a 4xx is the caller's error, not the span's.
        failed: status >= 500,
        attributes: vec![
            ("http.request.method", AttributeValue::Str(method.to_owned())),
            ("http.route", AttributeValue::Str(route.to_owned())),
            ("http.response.status_code", AttributeValue::Int(i64::from(status))),
        ],
    }
}

/// Bounds a request of the Issuer API listener — body, signature, database and all — by
/// `server.request_timeout_ms`. A resource middleware: it clones the routed request to answer
/// in its place, which actix allows only once routing is done. Past it the work is dropped and the answer is 503
/// `UNAVAILABLE`: a write it had begun is rolled back or commits unacknowledged (a retry finds
/// it through the idempotency key), and nothing was acknowledged. Without it a stalled
/// database holds TMP's request for as long as it stalls, long after TMP has given up and
/// answered the wallet itself.
pub async fn time_budget(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(budget_ms) = req.app_data::<Data<AppState>>().map(|state| state.settings.server.request_timeout_ms) else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let request = req.request().clone();
    match tokio::time::timeout(Duration::from_millis(budget_ms), next.call(req)).await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            let error = tmp_edge::error::ApiError::NotAnsweredInTime { ms: budget_ms };
            Ok(ServiceResponse::new(request, error.error_response()))
        }
    }
}
