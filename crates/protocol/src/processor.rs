//! Processor events: what the issuer's card processor posts to the adapter at
//! `POST /processor/v1/events` (one event, or a JSON array of them), signed with
//! Standard-Webhooks HMAC. PAN and expiry arrive only as JWE to the adapter's key.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::enums::{IssuerCardStatus, ReplacementTokens};
use crate::fields::{FreeText, Id};
use crate::issuer_api::CardholderContact;
use crate::tmp_api::CardMetadata;

pub const EVENTS_PATH: &str = "/processor/v1/events";

/// One card event from the processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorEvent {
    /// Unique per event: the deduplication key (same id + same body → accepted once).
    pub id: Id,
    pub card_id: Id,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    #[serde(flatten)]
    pub body: ProcessorEventBody,
}

/// `type` and `data` of a processor event.
// `data` is buffered by serde before its type is known, out of reach of `json::parse`'s
// object rule: each variant applies the rule itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum ProcessorEventBody {
    #[serde(rename = "card.issued", deserialize_with = "crate::json::object")]
    CardIssued(CardIssuedData),
    #[serde(rename = "card.status_changed", deserialize_with = "crate::json::object")]
    CardStatusChanged(CardStatusChangedData),
    #[serde(rename = "card.replaced", deserialize_with = "crate::json::object")]
    CardReplaced(CardReplacedData),
    #[serde(rename = "card.renewed", deserialize_with = "crate::json::object")]
    CardRenewed(CardRenewedData),
    #[serde(rename = "card.closed", deserialize_with = "crate::json::object")]
    CardClosed(CardClosedData),
    #[serde(rename = "cardholder.updated", deserialize_with = "crate::json::object")]
    CardholderUpdated(CardholderContact),
    /// The card's product or card art changed (an upgrade, a new design).
    #[serde(rename = "card.metadata_updated", deserialize_with = "crate::json::object")]
    CardMetadataUpdated(CardMetadata),
}

impl ProcessorEventBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            ProcessorEventBody::CardIssued(_) => "card.issued",
            ProcessorEventBody::CardStatusChanged(_) => "card.status_changed",
            ProcessorEventBody::CardReplaced(_) => "card.replaced",
            ProcessorEventBody::CardRenewed(_) => "card.renewed",
            ProcessorEventBody::CardClosed(_) => "card.closed",
            ProcessorEventBody::CardholderUpdated(_) => "cardholder.updated",
            ProcessorEventBody::CardMetadataUpdated(_) => "card.metadata_updated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardIssuedData {
    /// Compact JWE of `{"pan", "expiry"}`.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_category: Option<FreeText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardholder: Option<CardholderContact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardStatusChangedData {
    pub status: IssuerCardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FreeText>,
    /// Whether the card's tokens follow (`BLOCKED` suspends them, `ACTIVE` lifts that
    /// suspension). `false`: the card alone changes — a block for a reason that does not concern
    /// the wallets (a PIN locked at an ATM). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_to_tokens: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardReplacedData {
    pub new_card_id: Id,
    /// What happens to the old card's tokens: `MOVE` (default) or `DEACTIVATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<ReplacementTokens>,
    /// Compact JWE of `{"pan", "expiry"}` of the new card.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardRenewedData {
    /// Compact JWE of `{"expiry": "MM/YY"}`.
    #[schema(
        min_length = 9,
        max_length = 16384,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    )]
    pub encrypted_payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardClosedData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FreeText>,
}

/// `202` answer of `POST /processor/v1/events`: every event of the request is durably stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorEventsAck {
    /// Events stored by this request.
    pub accepted: u32,
    /// Events already stored earlier with the same body (no new effect).
    pub duplicates: u32,
}

/// Where a processor event's members are typed and checked by their own rules (ids judged as a
/// whole, a phone in international form, the JWE's ciphertext, a timestamp), as paths within
/// one event.
const TYPED_PATHS: [&str; 9] = [
    "id",
    "cardId",
    "occurredAt",
    "data.encryptedPayload",
    "data.newCardId",
    "data.phone",
    "data.cardholder.phone",
    "data.productId",
    "data.cardArtId",
];

/// Where a processor request carries a card number in clear in a member the contract does not
/// define — a member whose value would otherwise be ignored without a look: the JSON path of
/// the first one (`[0].data.pan`), never the value. A value (string or number) or a member name
/// that is, as a whole, a card number (12–19 digits passing Luhn, alone or split by separators,
/// as ids are judged, or by spaces) is found; free text in such a member is not searched, as it is in the
/// members the contract types as free text. A member name that is a card number is shown as
/// `<card number>`. PAN and expiry travel only as `encryptedPayload` (docs/contract.md §1.6).
pub fn stray_card_number(raw: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    /// `path` without a leading batch index (`[3].data.x` → `data.x`).
    fn within_event(path: &str) -> &str {
        match path.strip_prefix('[').and_then(|rest| rest.split_once("].")) {
            Some((index, rest)) if index.chars().all(|c| c.is_ascii_digit()) => rest,
            _ => path,
        }
    }
    fn walk(value: &Value, path: &str) -> Option<String> {
        if TYPED_PATHS.contains(&within_event(path)) {
            return None;
        }
        match value {
            Value::Object(members) => members.iter().find_map(|(name, member)| {
                let join = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
                if crate::sensitive::is_pan_like(name) {
                    return Some(join("<card number>"));
                }
                walk(member, &join(name))
            }),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| walk(item, &format!("{path}[{i}]"))),
            // As written on a card too: groups of digits split by spaces.
            Value::String(text) if crate::sensitive::is_pan_like(&text.split_whitespace().collect::<String>()) => {
                Some(path.to_owned())
            }
            Value::Number(number) if crate::sensitive::is_pan_like(&number.to_string()) => Some(path.to_owned()),
            _ => None,
        }
    }
    walk(raw, "")
}

#[cfg(test)]
mod stray_card_number_tests {
    use serde_json::json;

    use super::stray_card_number;

    #[test]
    fn card_numbers_outside_the_typed_members_are_found_by_path_and_never_shown() {
        let clean = json!({"id": "pev-1", "cardId": "card-1", "occurredAt": "2026-11-25T10:00:00Z",
            "type": "card.issued", "data": {"encryptedPayload": "a.b.c.d.e", "cardholder": {"phone": "+49 176 1234 5678 901"},
            "extension": {"note": "order 12345 of 4111 1111 1111 1111 customers", "count": 7}}});
        assert_eq!(stray_card_number(&clean), None);
        for (event, path) in [
            (json!({"data": {"pan": "4111111111111111"}}), "data.pan"),
            (json!([{"data": {}}, {"data": {"x": {"y": ["ok", "4111 1111 1111 1111"]}}}]), "[1].data.x.y[1]"),
            (json!({"data": {"card": 4111111111111111_u64}}), "data.card"),
            (json!({"data": {"4111111111111111": true}}), "data.<card number>"),
            // A typed name elsewhere than its typed place is searched like any other member.
            (
                json!({"data": {"extension": {"id": "4111111111111111", "phone": "4111111111111111"}}}),
                "data.extension.id",
            ),
        ] {
            assert_eq!(stray_card_number(&event).as_deref(), Some(path), "{event}");
        }
        assert_eq!(stray_card_number(&json!([{"id": "4111111111111111"}])), None, "ids have their own rule");
    }
}
