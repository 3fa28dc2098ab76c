//! Card events from the processor: validated, applied to the local card registry and queued
//! for TMP (approach `external`) or DataCore (approach `datacore`) in one transaction.
//!
//! Card data (PAN, expiry) arrives as JWE to the adapter's key. It is stored in the registry
//! encrypted under the data key, and — when the event is forwarded with card data — carried
//! in the outbox row only sealed under the data key (bound to the row's id), to be
//! re-encrypted to the destination's key at delivery. The outbox payload itself never holds it.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_protocol::enums::IssuerCardStatus;
use tmp_protocol::fields::{FreeText, Phone};
use tmp_protocol::processor::{ProcessorEvent, ProcessorEventBody};
use tmp_protocol::tmp_api::{ExpiryData, ReplacementCardData};
use zeroize::Zeroizing;

use super::Approach;
use super::error::DomainError;
use crate::crypto::aad;
use crate::keys::KeyMaterial;
use crate::outbox::{CardEventMessage, Destination, ForwardedEvent, OutboxMessage, SealedCardData};
use crate::store::{CardChange, CardRecord, OutboxRecord, ProcessorEventRecord};

/// The card data an event carried encrypted, once decrypted.
pub enum CardSecret {
    Card(ReplacementCardData),
    Expiry(ExpiryData),
}

/// A batch holds 1 to `max_batch` events.
pub fn check_batch(len: usize, max_batch: usize) -> Result<(), DomainError> {
    match len {
        0 => Err(DomainError::rule("the batch holds no event")),
        n if n > max_batch => Err(DomainError::rule(format!("a batch holds at most {max_batch} events"))),
        _ => Ok(()),
    }
}

/// Optional free text, when present, is not empty.
fn not_empty(field: &str, value: Option<&str>) -> Result<(), DomainError> {
    match value {
        Some("") => Err(DomainError::invalid(field, "must not be empty")),
        _ => Ok(()),
    }
}

/// The rules an event's types do not already hold (ids and free text are checked as they are
/// parsed: `tmp_protocol::fields`).
pub fn validate(event: &ProcessorEvent) -> Result<(), DomainError> {
    match &event.body {
        ProcessorEventBody::CardIssued(d) => {
            not_empty("data.productCategory", d.product_category.as_deref())?;
            if let Some(c) = &d.cardholder {
                not_empty("data.cardholder.phone", c.phone.as_deref())?;
                not_empty("data.cardholder.email", c.email.as_deref())?;
            }
        }
        ProcessorEventBody::CardStatusChanged(d) => not_empty("data.reason", d.reason.as_deref())?,
        ProcessorEventBody::CardReplaced(d) => {
            if d.new_card_id == event.card_id {
                return Err(DomainError::invalid("data.newCardId", "must differ from `cardId`"));
            }
        }
        ProcessorEventBody::CardRenewed(_) => {}
        ProcessorEventBody::CardClosed(d) => not_empty("data.reason", d.reason.as_deref())?,
        ProcessorEventBody::CardholderUpdated(c) => {
            if c.phone.is_none() && c.email.is_none() {
                return Err(DomainError::invalid("data", "must hold `phone`, `email` or both"));
            }
            not_empty("data.phone", c.phone.as_deref())?;
            not_empty("data.email", c.email.as_deref())?;
        }
        ProcessorEventBody::CardMetadataUpdated(m) => m.check().map_err(|(member, problem)| {
            DomainError::invalid(if member.is_empty() { "data".to_owned() } else { format!("data.{member}") }, problem)
        })?,
    }
    Ok(())
}

/// Where an event goes under `approach`; None when that approach has nothing to tell.
/// (`external`: TMP learns of new cards and contacts by asking the Issuer API.)
pub fn destination(approach: Approach, body: &ProcessorEventBody) -> Option<Destination> {
    match (approach, body) {
        (Approach::Datacore, _) => Some(Destination::LifecycleApi),
        (Approach::External, ProcessorEventBody::CardIssued(_) | ProcessorEventBody::CardholderUpdated(_)) => None,
        (Approach::External, _) => Some(Destination::TmpApi),
    }
}

fn card_record(card_id: &str, card: &ReplacementCardData, keys: &KeyMaterial, now: OffsetDateTime) -> CardRecord {
    let sealed = keys.data_keys.current().encrypt(card.pan.expose().as_bytes(), &aad::card_pan(card_id));
    CardRecord {
        card_id: card_id.to_owned(),
        pan_fingerprint: keys.fingerprinter.fingerprint(&card.pan).to_vec(),
        pan_ciphertext: sealed.bytes,
        pan_key_id: sealed.key_id,
        pan_last4: card.pan.last4().to_owned(),
        expiry_yymm: card.expiry.yymm(),
        status: IssuerCardStatus::Active,
        cardholder_phone: None,
        cardholder_email: None,
        product_category: None,
        updated_at: now,
    }
}

/// The records to commit for one validated event and its decrypted card data.
pub fn to_record(
    event: &ProcessorEvent,
    secret: Option<&CardSecret>,
    keys: &KeyMaterial,
    approach: Approach,
    now: OffsetDateTime,
) -> Result<ProcessorEventRecord, DomainError> {
    let internal = |what: &str| DomainError::Internal(format!("processor event: {what}"));
    let change = match (&event.body, secret) {
        (ProcessorEventBody::CardIssued(d), Some(CardSecret::Card(card))) => {
            let mut record = card_record(&event.card_id, card, keys, now);
            record.product_category = d.product_category.as_ref().map(FreeText::to_string);
            record.cardholder_phone = d.cardholder.as_ref().and_then(|c| c.phone.as_ref().map(Phone::to_string));
            record.cardholder_email = d.cardholder.as_ref().and_then(|c| c.email.as_ref().map(FreeText::to_string));
            CardChange::Register(record)
        }
        (ProcessorEventBody::CardReplaced(d), Some(CardSecret::Card(card))) => {
            CardChange::Replace(card_record(&d.new_card_id, card, keys, now))
        }
        (ProcessorEventBody::CardRenewed(_), Some(CardSecret::Expiry(e))) => {
            CardChange::Expiry { expiry_yymm: e.expiry.yymm() }
        }
        (ProcessorEventBody::CardStatusChanged(d), None) => CardChange::Status(d.status),
        (ProcessorEventBody::CardClosed(_), None) => CardChange::Status(IssuerCardStatus::Closed),
        (ProcessorEventBody::CardholderUpdated(c), None) => CardChange::Contact {
            phone: c.phone.as_ref().map(Phone::to_string),
            email: c.email.as_ref().map(FreeText::to_string),
        },
        // The registry keeps what card verification answers: the category. The rest is TMP's.
        (ProcessorEventBody::CardMetadataUpdated(m), None) => {
            CardChange::Product { product_category: m.product_category.as_ref().map(FreeText::to_string) }
        }
        _ => return Err(internal("card data does not match the event type")),
    };

    let canonical = serde_json::to_vec(event).map_err(|_| internal("the event does not serialize"))?;
    let outbox = match destination(approach, &event.body) {
        None => None,
        Some(destination) => {
            let id = uuid::Uuid::new_v4();
            // The JWE was for the adapter: the card data travels sealed, and the relay
            // re-encrypts it for the destination.
            let sealed = secret
                .map(|secret| {
                    let plaintext = Zeroizing::new(
                        match secret {
                            CardSecret::Card(card) => serde_json::to_vec(card),
                            CardSecret::Expiry(expiry) => serde_json::to_vec(expiry),
                        }
                        .map_err(|_| internal("card data does not serialize"))?,
                    );
                    let sealed = keys.data_keys.current().encrypt(&plaintext, &aad::outbox_row(&id));
                    Ok::<_, DomainError>(SealedCardData { key_id: sealed.key_id, data: sealed.bytes })
                })
                .transpose()?;
            Some(OutboxRecord {
                id,
                destination,
                ordering_key: event.card_id.to_string(),
                message: OutboxMessage::CardEvent(CardEventMessage { event: ForwardedEvent::from(event), sealed }),
                created_at: now,
                not_after: None,
                correlation_id: Some(tmp_edge::correlation::current()),
                traceparent: tmp_edge::correlation::current_trace(),
            })
        }
    };
    Ok(ProcessorEventRecord {
        event_id: event.id.to_string(),
        body_hash: Sha256::digest(&canonical).to_vec(),
        card_id: event.card_id.to_string(),
        event_type: event.body.type_name().to_owned(),
        occurred_at: event.occurred_at,
        received_at: now,
        change,
        outbox,
    })
}
