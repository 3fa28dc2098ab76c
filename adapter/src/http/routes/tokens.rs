//! `POST /issuer-api/v1/tokens/events`.

use actix_web::http::StatusCode;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use time::OffsetDateTime;
use tmp_protocol::issuer_api::{TokenEventAck, TokenEventRequest};

use super::doc::{IssuerApiErrors, SignedRequestHeaders};
use crate::domain::token_events;
use crate::http::AppState;
use crate::http::body::SignedBody;
use crate::http::idempotency::{self, Begin};
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

/// A token changed status: mirrored with its history and queued for the issuer's systems.
#[utoipa::path(
    post,
    path = "/issuer-api/v1/tokens/events",
    tag = "Issuer API",
    request_body = TokenEventRequest,
    params(SignedRequestHeaders),
    responses(
        (status = 200, description = "Stored durably", body = TokenEventAck),
        IssuerApiErrors,
    )
)]
#[tracing::instrument(skip_all)]
pub async fn token_event(state: Data<AppState>, req: HttpRequest, body: SignedBody) -> Result<HttpResponse, ApiError> {
    let pending = match idempotency::begin(&state.store, "token_event", &req, &body.bytes).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Fresh(pending) => pending,
    };
    let event: TokenEventRequest = parse_body(&body.bytes)?;
    token_events::validate(&event)?;
    let (record, outbox) = token_events::to_records(&event, OffsetDateTime::now_utc());
    let ack =
        TokenEventAck { event_id: event.event_id.to_string(), token_id: event.token_id.to_string(), accepted: true };
    let response_body = serde_json::to_vec(&ack).map_err(|e| ApiError::Internal(e.into()))?;
    let record_idem = pending.record(StatusCode::OK, response_body);
    let (write, outcome) = state.store.apply_token_event(&record, &outbox, &record_idem).await?;
    if let Some(outcome) = &outcome {
        state.metrics.token_events.with_label_values(&[event.status.as_str()]).inc();
        tracing::info!(applied = outcome.applied, status = outcome.token.status.as_str(), "token event stored");
    }
    pending.settle(write, &record_idem)
}
