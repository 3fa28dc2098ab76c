//! The token mirror against TMP's own list: drift found and repaired (Marqeta calls it exactly
//! this: a lost or late token event skews the live-token cap and every view built on the
//! mirror). Repairs are written by `tmp-adapter tokens reconcile` and by
//! `POST /ops/v1/cards/{cardId}/tokens/reconcile`; every `GET /ops/v1/cards/{cardId}/tokens` that
//! reaches TMP only reports how many tokens the mirror has wrong (a read writes nothing).
//!
//! A repair is a token event of TMP's state, written as if TMP had sent it (history, mirror,
//! outbox row for the issuer's sinks, one transaction): the history shows it, the issuer's
//! systems hear the change they missed, and the mirror's ordering rule still holds — an event
//! that happened after TMP's `updatedAt` still wins, and then the repair leaves no trace.
//!
//! A live token TMP does not list is reported, not repaired: TMP may have moved it to a
//! replacement card whose token event is still on its way, and deactivating it here would
//! outrank that event. The operator deactivates it in the mirror (`deactivateUnknown`) once they
//! know TMP dropped it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tmp_protocol::enums::{ChangeInitiator, TokenStatus, Tsp, Wallet};
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
    /// The mirror has a live token TMP does not list on the card.
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

/// Why a drift was left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeftBecause {
    /// The mirror's status comes from an event that happened after TMP's `updatedAt`: the mirror
    /// is the newer of the two.
    MirrorNewer,
    /// TMP does not list the token on this card (`unknown_at_tmp`) and the run was not asked to
    /// deactivate such tokens.
    NotListedAtTmp,
}

/// One token the mirror had wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub token_id: String,
    pub kind: DriftKind,
    /// The mirror's status before the run (none when it lacked the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_status: Option<TokenStatus>,
    /// TMP's status (none for a token TMP does not list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_status: Option<TokenStatus>,
    /// Whether the run wrote a repair: the mirror now holds TMP's status (`DEACTIVATED` for a
    /// token TMP does not list, when asked to).
    pub repaired: bool,
    /// Why not, when not repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<LeftBecause>,
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

/// The audit action of a reconciliation asked to deactivate what TMP does not list.
pub const DEACTIVATE_UNKNOWN_ACTION: &str = "tokens.reconcile.deactivate_unknown";

/// What a reconciliation may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Find and report; write nothing (a card-tokens read).
    Report,
    /// Repair what TMP's list settles; with `deactivate_unknown`, also deactivate the mirror's
    /// live tokens TMP does not list (an operator's decision, as of now).
    Repair { deactivate_unknown: bool },
}

/// A drift found, before anything is written.
struct Found<'a> {
    token_id: &'a str,
    kind: DriftKind,
    mirror: Option<&'a TokenRecord>,
    tmp: Option<&'a TokenInfo>,
}

/// Compares the mirror's tokens of `list.card_id` with TMP's `list` and, in
/// [`Mode::Repair`], repairs each difference TMP's list settles with a token event of TMP's
/// state. A repair's event id is derived from TMP's state, so the same repair is written once.
#[tracing::instrument(skip_all)]
pub async fn reconcile(
    store: &dyn Store,
    list: &TokenList,
    mode: Mode,
    now: OffsetDateTime,
) -> Result<Reconciliation, OpsError> {
    let mirror = store.tokens_for_card(&list.card_id).await?;
    let mut found = Vec::new();
    for token in &list.tokens {
        let known = mirror.iter().find(|m| m.token_id == token.token_id);
        let kind = match known {
            None => DriftKind::Missing,
            Some(m) if m.status != token.status => DriftKind::Status,
            Some(_) => continue,
        };
        found.push(Found { token_id: &token.token_id, kind, mirror: known, tmp: Some(token) });
    }
    for token in mirror.iter().filter(|m| m.status != TokenStatus::Deactivated && !listed(list, m)) {
        found.push(Found { token_id: &token.token_id, kind: DriftKind::UnknownAtTmp, mirror: Some(token), tmp: None });
    }
    // Every repair is built before any is written: a token TMP lists with an unusable id fails
    // the run before it has written half of it.
    let plans = found.iter().map(|f| plan(f, mode, now)).collect::<Result<Vec<_>, _>>()?;
    let mut drift = Vec::with_capacity(found.len());
    for (f, plan) in found.iter().zip(plans) {
        let (repaired, left) = match plan {
            Plan::Report => (false, None),
            Plan::Left(because) => (false, Some(because)),
            Plan::Write(event) => write_repair(store, &event, now).await?,
        };
        tracing::info!(kind = f.kind.as_str(), repaired, "token mirror drift");
        drift.push(Drift {
            token_id: f.token_id.to_owned(),
            kind: f.kind,
            mirror_status: f.mirror.map(|m| m.status),
            tmp_status: f.tmp.map(|t| t.status),
            repaired,
            left,
        });
    }
    let only_mirrored = mirror.iter().filter(|m| !listed(list, m)).count();
    let checked = u32::try_from(list.tokens.len() + only_mirrored).unwrap_or(u32::MAX);
    Ok(Reconciliation { card_id: list.card_id.clone(), checked, drift })
}

fn listed(list: &TokenList, token: &TokenRecord) -> bool {
    list.tokens.iter().any(|t| t.token_id == token.token_id)
}

/// What becomes of one drift.
enum Plan {
    /// Reported only ([`Mode::Report`]).
    Report,
    Left(LeftBecause),
    /// The token event that repairs it.
    Write(Box<TokenEventRequest>),
}

fn plan(found: &Found<'_>, mode: Mode, now: OffsetDateTime) -> Result<Plan, OpsError> {
    Ok(match (found.tmp, found.mirror) {
        // The mirror heard of a change after the one TMP's list shows (the list was read
        // before that event was delivered): nothing to repair, nor to report as wrong.
        (Some(tmp), Some(mirror)) if mirror.status_at > tmp.updated_at => Plan::Left(LeftBecause::MirrorNewer),
        _ if mode == Mode::Report => Plan::Report,
        (Some(tmp), mirror) => Plan::Write(Box::new(from_tmp(tmp, mirror.map(|m| m.status))?)),
        (None, Some(mirror)) if mode == (Mode::Repair { deactivate_unknown: true }) => {
            Plan::Write(Box::new(deactivation(mirror, now)?))
        }
        (None, _) => Plan::Left(LeftBecause::NotListedAtTmp),
    })
}

/// Writes the repair of one drift, or says why it is left.
async fn write_repair(
    store: &dyn Store,
    event: &TokenEventRequest,
    now: OffsetDateTime,
) -> Result<(bool, Option<LeftBecause>), OpsError> {
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
    // Decided again in the store's transaction: a token event delivered since the mirror was
    // read may have made the mirror the newer one.
    if store.apply_repair_event(&record, &outbox, &idempotency).await? {
        Ok((true, None))
    } else {
        Ok((false, Some(LeftBecause::MirrorNewer)))
    }
}

/// A repair's event id: the same repair gives the same id.
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

/// The operator's deactivation of a mirrored token TMP does not list, as of `now` (the moment
/// they decided; each run's is its own event).
fn deactivation(token: &TokenRecord, now: OffsetDateTime) -> Result<TokenEventRequest, OpsError> {
    let stored = |what: &str| OpsError::Invalid(format!("the mirror's token {} has an unknown {what}", token.token_id));
    let tsp = Tsp::parse(&token.tsp).ok_or_else(|| stored("TSP"))?;
    let wallet = Wallet::parse(&token.wallet).ok_or_else(|| stored("wallet"))?;
    Ok(TokenEventRequest {
        event_id: repair_id(&token.token_id, TokenStatus::Deactivated, now)?,
        token_id: id("tokenId", &token.token_id)?,
        card_id: id("cardId", &token.card_id)?,
        tsp,
        token_requestor: TokenRequestor {
            id: id("tokenRequestorId", &token.token_requestor_id)?,
            // The mirror does not keep the requestor's name (TMP's events carry it; this event
            // is the adapter's own): the sinks see the wallet's name instead, as documented.
            name: FreeText::parse(wallet.as_str()).map_err(|_| stored("wallet"))?,
            wallet,
        },
        status: TokenStatus::Deactivated,
        previous_status: Some(token.status),
        reason: Some(reason()),
        reason_code: None,
        initiator: Some(ChangeInitiator::Issuer),
        tokenization_id: None,
        token_last4: token.token_last4.clone(),
        occurred_at: now,
    })
}
