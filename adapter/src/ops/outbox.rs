//! The outbox, for an operator: list and show rows, make a row due now, give up on one, re-drive
//! dead (or delivered) ones. Each write is audited by the surface that called it, with the
//! [`AuditDraft`](super::audit::AuditDraft) these fill in.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::OpsError;
use super::audit::AuditDraft;
use crate::store::{OutboxEntry, OutboxFilter, OutboxStore, ReplaySelector};

pub async fn list(store: &dyn OutboxStore, filter: &OutboxFilter) -> Result<Vec<OutboxEntry>, OpsError> {
    Ok(store.list_outbox(filter).await?)
}

/// A row id as an operator gives it: a UUID, or no row at all.
pub fn parse_id(id: &str) -> Result<uuid::Uuid, OpsError> {
    uuid::Uuid::parse_str(id).map_err(|_| unknown(id))
}

fn unknown(id: &str) -> OpsError {
    OpsError::NotFound(format!("no outbox row with id `{id}`"))
}

/// The row `id` names.
pub async fn find(store: &dyn OutboxStore, id: &str) -> Result<OutboxEntry, OpsError> {
    store.find_outbox(parse_id(id)?).await?.ok_or_else(|| unknown(id))
}

/// A pending (backing-off) or dead row becomes due now; a dead one starts a fresh schedule.
/// Returns the row as it now is.
pub async fn retry(store: &dyn OutboxStore, id: &str, audit: &mut AuditDraft) -> Result<OutboxEntry, OpsError> {
    let entry = find(store, id).await?;
    audit.card_id = Some(entry.record.ordering_key.clone());
    if !store.retry_outbox(entry.record.id, OffsetDateTime::now_utc()).await? {
        return Err(OpsError::Conflict(format!(
            "outbox row {} is {}: only pending, held or dead rows are retried",
            entry.record.id, entry.status
        )));
    }
    find(store, id).await
}

/// A pending or held row goes dead without delivery, so that its card's next rows proceed; the
/// operator's reason (in `audit`) is kept as its last error. Returns the row as it now is.
pub async fn skip(store: &dyn OutboxStore, id: &str, audit: &mut AuditDraft) -> Result<OutboxEntry, OpsError> {
    let entry = find(store, id).await?;
    audit.card_id = Some(entry.record.ordering_key.clone());
    let note = match &audit.reason {
        Some(reason) => format!("skipped by an operator: {reason}"),
        None => "skipped by an operator".to_owned(),
    };
    if !store.skip_outbox(entry.record.id, &note).await? {
        return Err(OpsError::Conflict(format!(
            "outbox row {} is {}: only pending or held rows are skipped",
            entry.record.id, entry.status
        )));
    }
    find(store, id).await
}

/// Held and dead rows (and delivered ones with `include_delivered`) that `selector` picks become pending
/// again with a fresh schedule. Returns how many.
pub async fn replay(
    store: &dyn OutboxStore,
    selector: &ReplaySelector,
    include_delivered: bool,
    audit: &mut AuditDraft,
) -> Result<u64, OpsError> {
    match selector {
        ReplaySelector::Id(id) => {
            let entry = find(store, &id.to_string()).await?;
            audit.target = Some(entry.record.id.to_string());
            audit.card_id = Some(entry.record.ordering_key.clone());
        }
        ReplaySelector::OrderingKey(card) => {
            if card.is_empty() {
                return Err(OpsError::Invalid("the card id must not be empty".into()));
            }
            audit.target = Some(format!("card {card}"));
            audit.card_id = Some(card.clone());
        }
        ReplaySelector::CreatedBetween(since, until) => {
            if since >= until {
                return Err(OpsError::Invalid("`since` must be before `until`".into()));
            }
            let ts = |t: &OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
            audit.target = Some(format!("created {} to {}", ts(since), ts(until)));
        }
    }
    Ok(store.replay_outbox(selector, include_delivered, OffsetDateTime::now_utc()).await?)
}
