//! Token events from TMP: validated, mirrored (with history), and queued for the issuer's own
//! systems through the outbox.

use time::OffsetDateTime;
use tmp_protocol::issuer_api::TokenEventRequest;

use super::error::DomainError;
use crate::outbox::{Destination, OutboxMessage};
use crate::store::{OutboxRecord, TokenEventRecord};

/// The rules a token event's types do not already hold (ids and free text are checked as they
/// are parsed: `tmp_protocol::fields`).
pub fn validate(event: &TokenEventRequest) -> Result<(), DomainError> {
    if let Some(last4) = &event.token_last4
        && (last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DomainError::invalid("tokenLast4", "must be 4 digits"));
    }
    Ok(())
}

pub fn to_records(event: &TokenEventRequest, now: OffsetDateTime) -> (TokenEventRecord, OutboxRecord) {
    let record = TokenEventRecord {
        event_id: event.event_id.to_string(),
        token_id: event.token_id.to_string(),
        card_id: event.card_id.to_string(),
        tsp: event.tsp.as_str().into(),
        token_requestor_id: event.token_requestor.id.to_string(),
        wallet: event.token_requestor.wallet.as_str().into(),
        status: event.status,
        previous_status: event.previous_status,
        reason: event.reason.as_ref().map(|r| r.to_string()),
        reason_code: event.reason_code,
        initiator: event.initiator,
        tokenization_id: event.tokenization_id.as_ref().map(|id| id.to_string()),
        token_last4: event.token_last4.clone(),
        occurred_at: event.occurred_at,
        received_at: now,
    };
    let outbox = OutboxRecord {
        id: uuid::Uuid::new_v4(),
        destination: Destination::IssuerWebhook,
        ordering_key: event.card_id.to_string(),
        // The wire event itself: it holds no card data.
        message: OutboxMessage::TokenEvent(event.clone()),
        created_at: now,
        not_after: None,
        correlation_id: Some(tmp_edge::correlation::current()),
        traceparent: tmp_edge::correlation::current_trace(),
    };
    (record, outbox)
}
