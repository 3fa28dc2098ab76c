//! `POST /processor/v1/events`: the processor's card events, one or a batch.

use actix_web::HttpResponse;
use actix_web::web::Data;
use time::OffsetDateTime;
use tmp_protocol::processor::{ProcessorEvent, ProcessorEventBody, ProcessorEventsAck};
use utoipa::ToSchema;

use super::decrypt;
use super::doc::{IssuerApiErrors, ProcessorRequestHeaders};
use crate::domain::processor_events::{self, CardSecret};
use crate::http::AppState;
use crate::http::body::ProcessorBody;
use crate::store::{IngestOutcome, StoreError};
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

/// The request body: one event, or a batch as an array (documentation only; parsed in
/// [`events`]).
#[derive(serde::Serialize, ToSchema)]
#[allow(dead_code)] // Only describes the body; never constructed.
#[serde(untagged)]
pub enum ProcessorEventsRequest {
    One(ProcessorEvent),
    Batch(ProcessorEventBatch),
}

/// A batch: at least one event (an empty one is a 422), at most `processor.max_batch_events`.
#[derive(serde::Serialize)]
#[allow(dead_code)] // Only describes the body; never constructed.
pub struct ProcessorEventBatch(Vec<ProcessorEvent>);

impl utoipa::PartialSchema for ProcessorEventBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("ProcessorEvent"))
            .min_items(Some(1))
            .description(Some("At least one event; at most `processor.max_batch_events` (default 1000)."))
            .into()
    }
}

impl ToSchema for ProcessorEventBatch {}

/// The processor's card events: committed with the card registry change and the outbox row
/// before `202`; an event id seen before with the same body is accepted again without effect
/// (counted in `duplicates`), with another body refused (422 `IDEMPOTENCY_KEY_REUSED`). A batch
/// is all or nothing. Served only when `processor.hmac_secrets` is set (otherwise 404).
#[utoipa::path(
    post,
    path = "/processor/v1/events",
    operation_id = "processor_events",
    tag = "Processor",
    request_body = ProcessorEventsRequest,
    params(ProcessorRequestHeaders),
    responses(
        (status = 202, description = "Every event of the request is committed (or was already)", body = ProcessorEventsAck),
        (status = 404, description = "Ingest not configured (`processor.hmac_secrets` is empty)", body = tmp_protocol::error::ErrorBody),
        IssuerApiErrors,
    )
)]
/// Answers `202` only once every event of the request is committed with its registry change
/// and outbox row; an event id seen before with the same body is accepted without effect.
#[tracing::instrument(skip_all)]
pub async fn events(state: Data<AppState>, body: ProcessorBody) -> Result<HttpResponse, ApiError> {
    // One event object, or a JSON array of them.
    let is_batch = body.bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let events =
        if is_batch { parse_body::<Vec<ProcessorEvent>>(&body.bytes)? } else { vec![parse_body(&body.bytes)?] };
    // Members the contract does not define are ignored — but never one holding a card number
    // in clear: that is card data sent the wrong way, refused before anything is stored.
    let raw: serde_json::Value = parse_body(&body.bytes)?;
    if let Some(path) = tmp_protocol::processor::stray_card_number(&raw) {
        return Err(ApiError::validation(format!(
            "`{path}` holds a card number in clear: PAN and expiry travel only in `encryptedPayload`"
        )));
    }
    processor_events::check_batch(events.len(), state.settings.processor.max_batch_events)?;
    let now = OffsetDateTime::now_utc();
    let mut records = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let at = |e: ApiError| match (events.len() > 1, e) {
            (true, ApiError::Validation(m)) => ApiError::Validation(format!("event [{index}]: {m}")),
            (true, ApiError::InvalidEncryptedPayload(m)) => {
                ApiError::InvalidEncryptedPayload(format!("event [{index}]: {m}"))
            }
            (_, e) => e,
        };
        processor_events::validate(event).map_err(|e| at(e.into()))?;
        let secret = match &event.body {
            ProcessorEventBody::CardIssued(d) => {
                Some(CardSecret::Card(decrypt(&state, &d.encrypted_payload).await.map_err(at)?))
            }
            ProcessorEventBody::CardReplaced(d) => {
                Some(CardSecret::Card(decrypt(&state, &d.encrypted_payload).await.map_err(at)?))
            }
            ProcessorEventBody::CardRenewed(d) => {
                Some(CardSecret::Expiry(decrypt(&state, &d.encrypted_payload).await.map_err(at)?))
            }
            _ => None,
        };
        records.push(processor_events::to_record(
            event,
            secret.as_ref(),
            &state.keys,
            state.settings.forwarding.approach,
            now,
        )?);
    }
    let outcome = match state.store.ingest_processor_events(&records).await {
        Ok(outcome) => outcome,
        Err(StoreError::DuplicatePan) => {
            return Err(ApiError::validation("a card with this PAN is already registered under another card id"));
        }
        Err(e) => return Err(e.into()),
    };
    match outcome {
        IngestOutcome::Conflict { event_id } => Err(ApiError::EventIdReused(event_id)),
        IngestOutcome::Committed { accepted, duplicates } => {
            for outbox in records.iter().filter_map(|record| record.outbox.as_ref()) {
                state.relay_wakeup.rows_for(outbox.destination);
            }
            for event in &events {
                state.metrics.processor_events.with_label_values(&[event.body.type_name()]).inc();
            }
            tracing::info!(accepted, duplicates, "processor events stored");
            Ok(HttpResponse::Accepted().json(ProcessorEventsAck { accepted, duplicates }))
        }
    }
}
