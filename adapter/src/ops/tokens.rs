//! The token mirror against TMP's own list: drift found and repaired (Marqeta calls it exactly
//! this: a lost or late token event skews the live-token cap and every view built on the
//! mirror). Called by `tmp-adapter tokens reconcile`, by `POST /ops/v1/cards/{cardId}/tokens/reconcile`
//! and after every successful `GET /ops/v1/cards/{cardId}/tokens`.
//!
//! A repair is a token event of TMP's state, written as if TMP had sent it (history, mirror,
//! outbox row for the issuer's sinks, one transaction): the history shows it, the issuer's
//! systems hear the change they missed, and the mirror's ordering rule still holds — an event
//! that happened after TMP's `updatedAt` still wins.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_protocol::enums::{TokenStatus, Tsp, Wallet};
use tmp_protocol::fields::{FreeText, Id};
use tmp_protocol::issuer_api::{TokenEventAck, TokenEventRequest, TokenRequestor};
use tmp_protocol::tmp_api::{TokenInfo, TokenList};
use utoipa::ToSchema;

use super::OpsError;
use crate::store::{IdempotencyRecord, Store, TokenRecord};

/// The free-text reason of a repair's token event.
pub const RECONCILED: &str = "RECONCILED_WITH_TMP";

/// How the mirror differed from TMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// TMP has the token; the mirror never heard of it.
    Missing,
    /// Both have it, with another status.
    Status,
    /// The mirror has a live token TMP does not list: repaired as `DEACTIVATED`.
    UnknownAtTmp,
}

impl DriftKind {
    pub const ALL: [DriftKind; 3] = [DriftKind::Missing, DriftKind::Status, DriftKind::UnknownAtTmp];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Status => "status",
            DriftKind::UnknownAtTmp => "unknown_at_tmp",
        }
    }
}

/// One token the mirror had wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub token_id: String,
    pub kind: DriftKind,
    /// The mirror's status before the repair (none when it lacked the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_status: Option<TokenStatus>,
    /// TMP's status (`DEACTIVATED` for a token TMP does not list).
    pub tmp_status: TokenStatus,
    /// Whether the mirror now holds TMP's status. False when an event that happened after
    /// TMP's `updatedAt` had already set it (the mirror is the newer one then).
    pub repaired: bool,
}

/// A card's mirror compared with TMP's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    pub card_id: String,
    /// Tokens compared (TMP's and the mirror's, each once).
    pub checked: u32,
    pub drift: Vec<Drift>,
}

/// Compares the mirror's tokens of `list.card_id` with TMP's `list` and repairs each
/// difference with a token event of TMP's state. Running it again finds nothing more: a
/// repair's event id is derived from what it repairs, so it is written once.
#[tracing::instrument(skip_all)]
pub async fn reconcile(store: &dyn Store, list: &TokenList, now: OffsetDateTime) -> Result<Reconciliation, OpsError> {
    let mirror = store.tokens_for_card(&list.card_id).await?;
    let mut drift = Vec::new();
    for token in &list.tokens {
        let known = mirror.iter().find(|m| m.token_id == token.token_id);
        let kind = match known {
            None => DriftKind::Missing,
            Some(m) if m.status != token.status => DriftKind::Status,
            Some(_) => continue,
        };
        let event = from_tmp(token, known.map(|m| m.status))?;
        drift.push(repair(store, &event, kind, known.map(|m| m.status), now).await?);
    }
    let live_unknown = mirror
        .iter()
        .filter(|m| m.status != TokenStatus::Deactivated && !list.tokens.iter().any(|t| t.token_id == m.token_id));
    for token in live_unknown {
        let event = unknown_at_tmp(token, now)?;
        drift.push(repair(store, &event, DriftKind::UnknownAtTmp, Some(token.status), now).await?);
    }
    let only_mirrored = mirror.iter().filter(|m| !list.tokens.iter().any(|t| t.token_id == m.token_id)).count();
    let checked = u32::try_from(list.tokens.len() + only_mirrored).unwrap_or(u32::MAX);
    Ok(Reconciliation { card_id: list.card_id.clone(), checked, drift })
}

async fn repair(
    store: &dyn Store,
    event: &TokenEventRequest,
    kind: DriftKind,
    mirror_status: Option<TokenStatus>,
    now: OffsetDateTime,
) -> Result<Drift, OpsError> {
    let (record, outbox) = crate::domain::token_events::to_records(event, now);
    let ack =
        TokenEventAck { event_id: event.event_id.to_string(), token_id: event.token_id.to_string(), accepted: true };
    let idempotency = IdempotencyRecord {
        scope: "reconcile".into(),
        key: event.event_id.to_string(),
        request_hash: Sha256::digest(event.event_id.as_str().as_bytes()).to_vec(),
        response_status: 200,
        response_body: serde_json::to_vec(&ack).unwrap_or_default(),
        created_at: now,
    };
    let (_, outcome) = store.apply_token_event(&record, &outbox, &idempotency).await?;
    // Written before (the same repair found again): the mirror says whether it held.
    let repaired = match outcome {
        Some(outcome) => outcome.applied,
        None => store.find_token(event.token_id.as_str()).await?.is_some_and(|t| t.status == event.status),
    };
    tracing::info!(kind = kind.as_str(), status = event.status.as_str(), repaired, "token mirror drift");
    Ok(Drift { token_id: event.token_id.to_string(), kind, mirror_status, tmp_status: event.status, repaired })
}

/// A repair's event id: the same drift gives the same id.
fn repair_id(token_id: &str, status: TokenStatus, at: OffsetDateTime) -> Result<Id, OpsError> {
    let digest = Sha256::digest(format!("{token_id}\n{}\n{}", status.as_str(), at.unix_timestamp_nanos()).as_bytes());
    Id::parse(format!("reconcile-{}", &hex::encode(digest)[..32])).map_err(|e| OpsError::Invalid(e.to_string()))
}

fn id(field: &str, value: &str) -> Result<Id, OpsError> {
    Id::parse(value).map_err(|e| OpsError::Invalid(format!("TMP listed a token with an unusable {field}: {e}")))
}

fn reason() -> FreeText {
    FreeText::parse(RECONCILED).expect("a plain reason")
}

/// TMP's state of `token` as the token event that would have told the mirror.
fn from_tmp(token: &TokenInfo, previous: Option<TokenStatus>) -> Result<TokenEventRequest, OpsError> {
    Ok(TokenEventRequest {
        event_id: repair_id(&token.token_id, token.status, token.updated_at)?,
        token_id: id("tokenId", &token.token_id)?,
        card_id: id("cardId", &token.card_id)?,
        tsp: token.tsp,
        token_requestor: token.token_requestor.clone(),
        status: token.status,
        previous_status: previous,
        reason: Some(reason()),
        reason_code: None,
        initiator: None,
        tokenization_id: None,
        token_last4: token.token_last4.clone(),
        occurred_at: token.updated_at,
    })
}

/// A mirrored token TMP does not list: deactivated as of now.
fn unknown_at_tmp(token: &TokenRecord, now: OffsetDateTime) -> Result<TokenEventRequest, OpsError> {
    let stored = |what: &str| OpsError::Invalid(format!("the mirror's token {} has an unknown {what}", token.token_id));
    let tsp: Tsp = serde_json::from_value(serde_json::json!(token.tsp)).map_err(|_| stored("TSP"))?;
    let wallet: Wallet = serde_json::from_value(serde_json::json!(token.wallet)).map_err(|_| stored("wallet"))?;
    Ok(TokenEventRequest {
        // Once per token: it stays unknown to TMP.
        event_id: repair_id(&token.token_id, TokenStatus::Deactivated, OffsetDateTime::UNIX_EPOCH)?,
        token_id: id("tokenId", &token.token_id)?,
        card_id: id("cardId", &token.card_id)?,
        tsp,
        token_requestor: TokenRequestor {
            id: id("tokenRequestorId", &token.token_requestor_id)?,
            // The mirror does not keep the requestor's name; the wallet names it well enough.
            name: FreeText::parse(token.wallet.as_str()).map_err(|_| stored("wallet"))?,
            wallet,
        },
        status: TokenStatus::Deactivated,
        previous_status: Some(token.status),
        reason: Some(reason()),
        reason_code: None,
        initiator: None,
        tokenization_id: None,
        token_last4: token.token_last4.clone(),
        occurred_at: now,
    })
}
