//! What an outbox row holds, as types: where it goes ([`Destination`]), how far it got
//! ([`OutboxStatus`]) and what it says ([`OutboxMessage`]).
//!
//! The stored form is the contract with rows already written: `destination`, `status` and
//! `event_type` are the strings below, and the payload's JSON is exactly what earlier versions
//! wrote (a card event without its JWE plus its sealed card data, the token event as received,
//! the notification without its JWE), so upgrading needs no migration. `tests/api/outbox_rows.rs`
//! decodes and delivers rows written by the version before these types existed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use tmp_protocol::enums::ReplacementTokens;
use tmp_protocol::fields::{FreeText, Id};
use tmp_protocol::issuer_api::{CardholderContact, NotificationRequest, TokenEventRequest};
use tmp_protocol::processor::{CardClosedData, CardStatusChangedData, ProcessorEvent, ProcessorEventBody};
use tmp_protocol::tmp_api::CardMetadata;
use utoipa::ToSchema;

/// Where a message is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// The issuer's own systems, through the configured webhook sinks.
    IssuerWebhook,
    /// TMP's card-lifecycle methods (approach `external`).
    TmpApi,
    /// Verestro DataCore's Lifecycle API (approach `datacore`).
    LifecycleApi,
}

impl Destination {
    pub const ALL: [Destination; 3] = [Destination::IssuerWebhook, Destination::TmpApi, Destination::LifecycleApi];

    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::IssuerWebhook => "issuer_webhook",
            Destination::TmpApi => "tmp_api",
            Destination::LifecycleApi => "lifecycle_api",
        }
    }

    pub fn parse(s: &str) -> Option<Destination> {
        Destination::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a row got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for (another) attempt.
    Pending,
    /// Failed for good (a permanent refusal, the retry schedule exhausted): kept at the head of
    /// its card, whose later rows wait behind it, until an operator retries or skips it. Stored
    /// as `pending` with `held_at` set.
    Held,
    Delivered,
    /// Given up on (expired before delivery, or skipped by an operator): blocks nothing.
    Dead,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 4] =
        [OutboxStatus::Pending, OutboxStatus::Held, OutboxStatus::Delivered, OutboxStatus::Dead];

    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Held => "held",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxMessage {
    /// A processor event forwarded to TMP or DataCore.
    CardEvent(CardEventMessage),
    /// A token event from TMP, for the issuer's systems.
    TokenEvent(TokenEventRequest),
    /// A user notification from TMP, for the issuer's systems; an activation code is not in it
    /// (the relay reads it from the notification's row).
    Notification(NotificationRequest),
}

/// The stored payload is the message's own JSON, without a tag (the row's `event_type` tells
/// them apart).
impl Serialize for OutboxMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OutboxMessage::CardEvent(m) => m.serialize(serializer),
            OutboxMessage::TokenEvent(e) => e.serialize(serializer),
            OutboxMessage::Notification(n) => n.serialize(serializer),
        }
    }
}

/// The stored `event_type` of token events.
pub const TOKEN_EVENT_TYPE: &str = "token.status_changed";
/// The prefix of notifications' stored `event_type` (then the notification type).
const NOTIFICATION_PREFIX: &str = "notification.";

impl OutboxMessage {
    /// The row's `event_type`: the card event's type, `token.status_changed`, or
    /// `notification.<type>`; what sinks subscribe to.
    pub fn event_type(&self) -> String {
        match self {
            OutboxMessage::CardEvent(m) => m.event.body.type_name().to_owned(),
            OutboxMessage::TokenEvent(_) => TOKEN_EVENT_TYPE.to_owned(),
            OutboxMessage::Notification(n) => format!("{NOTIFICATION_PREFIX}{}", n.notification_type.as_str()),
        }
    }

    /// The stored payload, as a JSON value (for the operator's views and the sinks' bodies; the
    /// store writes the message itself: see the `Serialize` impl).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("outbox messages serialize: their maps have string keys")
    }

    /// A stored row's message (its payload's JSON text), told apart by its `event_type`: parsed
    /// once, straight into its type.
    pub fn from_stored(event_type: &str, payload: &str) -> Result<OutboxMessage, String> {
        let decoded = if event_type == TOKEN_EVENT_TYPE {
            serde_json::from_str(payload).map(OutboxMessage::TokenEvent)
        } else if event_type.starts_with(NOTIFICATION_PREFIX) {
            serde_json::from_str(payload).map(OutboxMessage::Notification)
        } else {
            serde_json::from_str(payload).map(OutboxMessage::CardEvent)
        };
        let message = decoded.map_err(|e| format!("outbox payload of `{event_type}` does not decode: {e}"))?;
        if message.event_type() != event_type {
            return Err(format!("outbox payload of `{event_type}` holds a `{}`", message.event_type()));
        }
        Ok(message)
    }

    /// What an operator is shown: the stored payload, sealed card data replaced by a marker.
    pub fn to_operator_json(&self) -> serde_json::Value {
        let mut json = self.to_json();
        if let Some(sealed) = json.get_mut("sealed") {
            *sealed = serde_json::Value::String("(encrypted card data)".into());
        }
        json
    }

    /// The data key its sealed card data is under, if it carries any (stored beside the payload
    /// as `sealed_key_id`, for key rotation).
    pub fn sealed_key_id(&self) -> Option<&str> {
        match self {
            OutboxMessage::CardEvent(m) => m.sealed.as_ref().map(|s| s.key_id.as_str()),
            OutboxMessage::TokenEvent(_) | OutboxMessage::Notification(_) => None,
        }
    }

    /// The card the message is about: the ordering key of its row.
    pub fn card_id(&self) -> &str {
        match self {
            OutboxMessage::CardEvent(m) => &m.event.card_id,
            OutboxMessage::TokenEvent(e) => &e.card_id,
            OutboxMessage::Notification(n) => &n.card_id,
        }
    }
}

/// A processor event as forwarded: the event without its JWE (which was for the adapter), and
/// the card data it carried sealed under a data key until the relay re-encrypts it for the
/// destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardEventMessage {
    pub event: ForwardedEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedCardData>,
}

/// [`ProcessorEvent`] less its `encryptedPayload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardedEvent {
    pub id: Id,
    pub card_id: Id,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    #[serde(flatten)]
    pub body: ForwardedBody,
}

/// [`ProcessorEventBody`] less its `encryptedPayload`: the same `type` tags and `data` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ForwardedBody {
    #[serde(rename = "card.issued", rename_all = "camelCase")]
    CardIssued {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        product_category: Option<FreeText>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cardholder: Option<CardholderContact>,
    },
    #[serde(rename = "card.status_changed")]
    CardStatusChanged(CardStatusChangedData),
    #[serde(rename = "card.replaced", rename_all = "camelCase")]
    CardReplaced {
        new_card_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<ReplacementTokens>,
    },
    #[serde(rename = "card.renewed")]
    CardRenewed {},
    #[serde(rename = "card.closed")]
    CardClosed(CardClosedData),
    #[serde(rename = "cardholder.updated")]
    CardholderUpdated(CardholderContact),
    #[serde(rename = "card.metadata_updated")]
    CardMetadataUpdated(CardMetadata),
}

impl ForwardedBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            ForwardedBody::CardIssued { .. } => "card.issued",
            ForwardedBody::CardStatusChanged(_) => "card.status_changed",
            ForwardedBody::CardReplaced { .. } => "card.replaced",
            ForwardedBody::CardRenewed {} => "card.renewed",
            ForwardedBody::CardClosed(_) => "card.closed",
            ForwardedBody::CardholderUpdated(_) => "cardholder.updated",
            ForwardedBody::CardMetadataUpdated(_) => "card.metadata_updated",
        }
    }
}

impl From<&ProcessorEvent> for ForwardedEvent {
    fn from(event: &ProcessorEvent) -> ForwardedEvent {
        let body = match &event.body {
            ProcessorEventBody::CardIssued(d) => ForwardedBody::CardIssued {
                product_category: d.product_category.clone(),
                cardholder: d.cardholder.clone(),
            },
            ProcessorEventBody::CardStatusChanged(d) => ForwardedBody::CardStatusChanged(d.clone()),
            ProcessorEventBody::CardReplaced(d) => {
                ForwardedBody::CardReplaced { new_card_id: d.new_card_id.clone(), tokens: d.tokens }
            }
            ProcessorEventBody::CardRenewed(_) => ForwardedBody::CardRenewed {},
            ProcessorEventBody::CardClosed(d) => ForwardedBody::CardClosed(d.clone()),
            ProcessorEventBody::CardholderUpdated(c) => ForwardedBody::CardholderUpdated(c.clone()),
            ProcessorEventBody::CardMetadataUpdated(m) => ForwardedBody::CardMetadataUpdated(m.clone()),
        };
        ForwardedEvent { id: event.id.clone(), card_id: event.card_id.clone(), occurred_at: event.occurred_at, body }
    }
}

/// Card data (`{"pan", "expiry"}` or `{"expiry"}`) sealed under data key `key_id`, bound to its
/// outbox row (`crypto::aad::outbox_row`). Stored as `{"keyId", "data": base64}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedCardData {
    pub key_id: String,
    #[serde(serialize_with = "base64_encode", deserialize_with = "base64_decode")]
    pub data: Vec<u8>,
}

fn base64_encode<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

fn base64_decode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for d in Destination::ALL {
            assert_eq!(Destination::parse(d.as_str()), Some(d));
        }
        for s in OutboxStatus::ALL {
            assert_eq!(OutboxStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()), "the ops API shows the stored name");
        }
        for d in Destination::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), json!(d.as_str()));
        }
        assert_eq!(Destination::parse("webhook"), None);
        assert_eq!(OutboxStatus::parse("PENDING"), None);
    }

    #[test]
    fn a_payload_that_does_not_match_its_event_type_is_refused() {
        let renewed = json!({"event": {"id": "e1", "cardId": "c1", "occurredAt": "2026-03-01T10:00:00Z",
                                       "type": "card.renewed", "data": {}}});
        let renewed = renewed.to_string();
        assert!(OutboxMessage::from_stored("card.renewed", &renewed).is_ok());
        assert!(OutboxMessage::from_stored("card.closed", &renewed).unwrap_err().contains("holds a"));
        assert!(OutboxMessage::from_stored("token.status_changed", &renewed).is_err());
        let partial = json!({"event": {"type": "card.renewed"}}).to_string();
        assert!(OutboxMessage::from_stored("card.renewed", &partial).is_err());
    }
}
