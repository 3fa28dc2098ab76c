//! Token events from TMP: validated, mirrored (with history), and queued for the issuer's own
//! systems through the outbox.

use time::OffsetDateTime;
use tmp_protocol::issuer_api::TokenEventRequest;

use super::fields::{check_id, check_requestor, check_text};
use crate::outbox::{Destination, OutboxMessage};
use crate::store::{OutboxRecord, TokenEventRecord};
use tmp_edge::error::ApiError;

pub fn validate(event: &TokenEventRequest) -> Result<(), ApiError> {
    check_id("eventId", &event.event_id)?;
    check_id("tokenId", &event.token_id)?;
    check_id("cardId", &event.card_id)?;
    check_requestor("tokenRequestor", &event.token_requestor)?;
    if let Some(last4) = &event.token_last4
        && (last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::validation("`tokenLast4` must be 4 digits"));
    }
    if let Some(reason) = &event.reason {
        check_text("reason", reason)?;
    }
    Ok(())
}

pub fn to_records(event: &TokenEventRequest, now: OffsetDateTime) -> (TokenEventRecord, OutboxRecord) {
    let record = TokenEventRecord {
        event_id: event.event_id.clone(),
        token_id: event.token_id.clone(),
        card_id: event.card_id.clone(),
        tsp: event.tsp.as_str().into(),
        token_requestor_id: event.token_requestor.id.clone(),
        wallet: event.token_requestor.wallet.as_str().into(),
        status: event.status,
        previous_status: event.previous_status,
        reason: event.reason.clone(),
        token_last4: event.token_last4.clone(),
        occurred_at: event.occurred_at,
        received_at: now,
    };
    let outbox = OutboxRecord {
        id: uuid::Uuid::new_v4(),
        destination: Destination::IssuerWebhook,
        ordering_key: event.card_id.clone(),
        // The wire event itself: it holds no card data.
        message: OutboxMessage::TokenEvent(event.clone()),
        created_at: now,
        not_after: None,
        correlation_id: Some(tmp_edge::correlation::current()),
    };
    (record, outbox)
}
