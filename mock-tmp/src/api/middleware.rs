//! Per-request work in one place: correlation id, the body read once under the size limit,
//! the route's fault rules (latency, error status, dropped connection), and the journal entry.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};
use tmp_protocol::headers::{IDEMPOTENCY_KEY, WEBHOOK_ID};
use tracing::Instrument;

use crate::context::Mock;
use crate::faults::FaultAction;
use crate::journal::{Direction, JournalEntry, Outcome, mask_bytes};
use tmp_edge::correlation;
use tmp_edge::error::ApiError;

/// The request body, read once by the middleware (handlers never touch the payload stream).
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let correlation_id = correlation::from_request(&req);
    let trace = correlation::trace_from_request(&req);
    let span = tracing::info_span!(
        "request",
        correlation_id = %correlation_id,
        trace_id = %trace.trace_id(),
        method = %req.method()
    );
    correlation::scope(correlation_id.clone(), trace, handle(req, next, correlation_id)).instrument(span).await
}

async fn handle(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    correlation_id: String,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let Some(mock) = req.app_data::<Data<Mock>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let method = req.method().to_string();
    let path = req.path().to_owned();
    // Before routing, naming the route means matching the path against every route of the mock
    // (≈ 90 k instructions, callgrind: a quarter of what the mock spends on a TMP API call); after
    // routing actix knows a matched route's pattern. So it is looked up before routing only when
    // a fault rule may need it, and otherwise read from the routed request.
    let mut route = None;
    // The journal holds the calls of the contract and what drives the mock; reading the mock's
    // state (the console polls it every second) or the console's files would bury them.
    let read_of_the_mock = method == "GET" && path.starts_with("/_mock/");
    let journaled = !read_of_the_mock && !path.starts_with("/_mock/v1/requests");
    let mut entry = JournalEntry::new(Direction::Received, &method, &path, Outcome::Answered);
    entry.correlation_id = Some(correlation_id.clone());
    entry.trace_id = correlation::current_trace().map(|t| t.trace_id());
    entry.idempotency_key = header(&req, IDEMPOTENCY_KEY);
    entry.webhook_id = header(&req, WEBHOOK_ID);

    let mut payload = req.take_payload();
    let body = match tmp_edge::admit::read_body(req.headers(), &mut payload, mock.config.server.body_limit_bytes, None)
        .await
    {
        Ok(body) => body,
        Err(error) => {
            entry.route = req.match_pattern();
            entry.status = Some(error.status_code().as_u16());
            if journaled {
                mock.journal.record(entry);
            }
            return Ok(respond(req, error.error_response(), &correlation_id));
        }
    };
    entry.body = mask_bytes(&body);
    req.extensions_mut().insert(RawBody(body.clone()));
    req.set_payload(Payload::from(body));

    // Asked after the body is read, as the decision is: a rule set meanwhile applies.
    let fault = match mock.faults.any() {
        true => {
            route = req.match_pattern();
            mock.faults.decide(&format!("{method} {}", route.as_deref().unwrap_or(&path)), None)
        }
        false => FaultAction::default(),
    };
    entry.fault_id = fault.rule_id;
    if let Some(latency) = fault.latency {
        tokio::time::sleep(latency).await;
    }
    let response = if fault.drop_connection {
        entry.outcome = Outcome::Dropped;
        entry.note = Some("injected fault: connection dropped".into());
        // A body whose first item is an error makes actix abort the connection mid-response.
        let dropped = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other("injected fault: connection dropped"))
        });
        req.into_response(HttpResponse::Ok().streaming(dropped))
    } else if let Some(status) = fault.error_status {
        entry.note = Some("injected fault".into());
        respond(req, ApiError::Injected(status).error_response(), &correlation_id)
    } else {
        let mut response = next.call(req).await?.map_into_boxed_body();
        set_correlation(response.headers_mut(), &correlation_id);
        route = route.or_else(|| response.request().match_pattern());
        response
    };
    entry.route = route.clone();
    if entry.outcome == Outcome::Answered {
        entry.status = Some(response.status().as_u16());
    }
    // A status is logged as the number, or not at all (no answer): never `Some(200)`.
    tracing::info!(status = entry.status, outcome = ?entry.outcome, latency_ms = started.elapsed().as_millis() as u64, route = route.as_deref().unwrap_or("unmatched"), "request served");
    if journaled {
        mock.journal.record(entry);
    }
    Ok(response)
}

fn header(req: &ServiceRequest, name: &str) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn respond(req: ServiceRequest, response: HttpResponse, correlation_id: &str) -> ServiceResponse<BoxBody> {
    let mut response = req.into_response(response);
    set_correlation(response.headers_mut(), correlation_id);
    response
}

fn set_correlation(headers: &mut actix_web::http::header::HeaderMap, correlation_id: &str) {
    if let Some((name, value)) = correlation::header_pair(correlation_id) {
        headers.insert(name, value);
    }
}
