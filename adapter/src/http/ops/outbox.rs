//! Outbox administration on the ops API, mirroring `tmp-adapter outbox …`: list (held and
//! dead rows with their last error), show, retry, skip, replay by id, card or time range. Scope
//! `outbox:admin`; every write is audited.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::{Answer, AuditDraft, OpsErrors, Principal, optional_json, optional_reason};
use crate::domain::scopes::Scope;
use crate::http::AppState;
use crate::ops;
use crate::outbox::{Destination, OutboxStatus};
use crate::store::{OutboxEntry, OutboxFilter, ReplaySelector};
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

/// Most rows one list answers.
const MAX_LIMIT: u32 = 1000;

// ---- wire types ----

/// Which rows to list, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only rows in this state (`held`: failed for good, each blocking its card until retried or
    /// skipped; `dead`: given up on).
    pub status: Option<OutboxStatus>,
    /// Only this card's (ordering key's) rows.
    pub card_id: Option<String>,
    /// At most this many rows (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// An outbox row with its delivery state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    pub id: String,
    pub status: OutboxStatus,
    pub destination: Destination,
    pub event_type: String,
    /// The ordering key: usually the card id.
    pub card_id: String,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// RFC 3339.
    pub created_at: String,
    /// When the relay tries next (pending rows).
    pub next_attempt_at: String,
    /// Why the last attempt failed (HTTP status and error code, never a body).
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// One row in full: delivery state, lease and payload (card data only as `(encrypted card data)`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRowDetail {
    #[serde(flatten)]
    pub row: OutboxRow,
    /// Insertion order (FIFO within a card).
    pub seq: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<String>,
    /// Never delivered after this instant (OTP expiry).
    pub not_after: Option<String>,
    pub correlation_id: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxList {
    pub items: Vec<OutboxRow>,
}

/// Why an operator acts; logged with the action (and kept as the last error of a skipped row).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub reason: Option<String>,
}

/// Exactly one selector: `id`, `cardId`, or `since` and `until` (RFC 3339, `[since, until)` of
/// creation time). Dead rows are re-driven; delivered ones too with `includeDelivered`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    pub id: Option<String>,
    pub card_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    #[serde(default)]
    pub include_delivered: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayAck {
    /// Rows queued for delivery again.
    pub replayed: u64,
}

// ---- handlers ----

/// Lists outbox rows, newest first; `status=held` lists the rows failed for good, each with its
/// last error and blocking its card.
#[utoipa::path(
    get,
    path = "/ops/v1/outbox",
    operation_id = "list_outbox",
    tag = "Outbox",
    params(ListQuery),
    responses((status = 200, description = "Rows, newest first", body = OutboxList), OpsErrors),
    security(("bearer" = ["outbox:admin"]), ("mtls" = ["outbox:admin"]))
)]
#[tracing::instrument(skip_all)]
pub async fn list(principal: Principal, state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::OutboxAdmin)?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::validation(format!("query: {e}")))?
        .into_inner();
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::validation(format!("`limit` must be between 1 and {MAX_LIMIT}")));
    }
    let filter = OutboxFilter { status: query.status, ordering_key: query.card_id, limit };
    let items = ops::outbox::list(&*state.store, &filter).await?.iter().map(row).collect();
    Ok(HttpResponse::Ok().json(OutboxList { items }))
}

/// One row with its attempts, last error, lease and payload.
#[utoipa::path(
    get,
    path = "/ops/v1/outbox/{id}",
    operation_id = "show_outbox_row",
    tag = "Outbox",
    params(("id" = String, Path, description = "Outbox row id (UUID)")),
    responses((status = 200, description = "The row", body = OutboxRowDetail), OpsErrors),
    security(("bearer" = ["outbox:admin"]), ("mtls" = ["outbox:admin"]))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    principal: Principal,
    state: Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::OutboxAdmin)?;
    let entry = ops::outbox::find(&*state.store, &id).await?;
    Ok(HttpResponse::Ok().json(detail(&entry)))
}

/// Makes a pending (backing-off), held or dead row due now; a held or dead one starts a fresh
/// schedule.
#[utoipa::path(
    post,
    path = "/ops/v1/outbox/{id}/retry",
    operation_id = "retry_outbox_row",
    tag = "Outbox",
    params(("id" = String, Path, description = "Outbox row id (UUID)")),
    request_body(content = ActionRequest, description = "Optional; the reason is logged"),
    responses((status = 200, description = "The row, due now", body = OutboxRow), OpsErrors),
    security(("bearer" = ["outbox:admin"]), ("mtls" = ["outbox:admin"]))
)]
#[tracing::instrument(skip_all)]
pub async fn retry(
    principal: Principal,
    state: Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let draft = AuditDraft::new("outbox.retry", Some(id.to_string()), None);
    super::write(&state, &principal, &req, body, Scope::OutboxAdmin, draft, async |audit, _, bytes| {
        let action: ActionRequest = optional_json(bytes)?;
        audit.reason = optional_reason(action.reason)?;
        let entry = ops::outbox::retry(&*state.store, &id, audit).await?;
        state.relay_wakeup.rows_for(entry.record.destination);
        Answer::ok(&row(&entry))
    })
    .await
}

/// Gives up on a pending or held row: it goes dead and its card's next rows proceed.
#[utoipa::path(
    post,
    path = "/ops/v1/outbox/{id}/skip",
    operation_id = "skip_outbox_row",
    tag = "Outbox",
    params(("id" = String, Path, description = "Outbox row id (UUID)")),
    request_body(content = ActionRequest, description = "Optional; the reason is logged and kept as the row's last error"),
    responses((status = 200, description = "The row, dead", body = OutboxRow), OpsErrors),
    security(("bearer" = ["outbox:admin"]), ("mtls" = ["outbox:admin"]))
)]
#[tracing::instrument(skip_all)]
pub async fn skip(
    principal: Principal,
    state: Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let draft = AuditDraft::new("outbox.skip", Some(id.to_string()), None);
    super::write(&state, &principal, &req, body, Scope::OutboxAdmin, draft, async |audit, _, bytes| {
        let action: ActionRequest = optional_json(bytes)?;
        audit.reason = optional_reason(action.reason)?;
        let entry = ops::outbox::skip(&*state.store, &id, audit).await?;
        state.relay_wakeup.rows_for(entry.record.destination);
        Answer::ok(&row(&entry))
    })
    .await
}

/// Re-drives held and dead rows (and delivered ones with `includeDelivered`) by id, by card, or created
/// in a time range.
#[utoipa::path(
    post,
    path = "/ops/v1/outbox/replay",
    operation_id = "replay_outbox",
    tag = "Outbox",
    request_body = ReplayRequest,
    responses((status = 200, description = "How many rows were queued again", body = ReplayAck), OpsErrors),
    security(("bearer" = ["outbox:admin"]), ("mtls" = ["outbox:admin"]))
)]
#[tracing::instrument(skip_all)]
pub async fn replay(
    principal: Principal,
    state: Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let draft = AuditDraft::new("outbox.replay", None, None);
    super::write(&state, &principal, &req, body, Scope::OutboxAdmin, draft, async |audit, _, bytes| {
        let request: ReplayRequest = parse_body(bytes)?;
        audit.reason = optional_reason(request.reason)?;
        let parse_time = |field: &str, s: &str| {
            OffsetDateTime::parse(s, &Rfc3339)
                .map_err(|_| ApiError::validation(format!("`{field}` is not an RFC 3339 time")))
        };
        let selector = match (request.id, request.card_id, request.since, request.until) {
            (Some(id), None, None, None) => ReplaySelector::Id(ops::outbox::parse_id(&id)?),
            (None, Some(card), None, None) => ReplaySelector::OrderingKey(card),
            (None, None, Some(since), Some(until)) => {
                ReplaySelector::CreatedBetween(parse_time("since", &since)?, parse_time("until", &until)?)
            }
            _ => return Err(ApiError::validation("pass exactly one of `id`, `cardId`, or `since` with `until`")),
        };
        let replayed = ops::outbox::replay(&*state.store, &selector, request.include_delivered, audit).await?;
        if replayed > 0 {
            state.relay_wakeup.any();
        }
        Answer::ok(&ReplayAck { replayed })
    })
    .await
}

// ---- helpers ----

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn row(e: &OutboxEntry) -> OutboxRow {
    OutboxRow {
        id: e.record.id.to_string(),
        status: e.status,
        destination: e.record.destination,
        event_type: e.record.event_type(),
        card_id: e.record.ordering_key.clone(),
        attempts: e.attempts,
        created_at: ts(e.record.created_at),
        next_attempt_at: ts(e.next_attempt_at),
        last_error: e.last_error.clone(),
        delivered_at: e.delivered_at.map(ts),
    }
}

fn detail(e: &OutboxEntry) -> OutboxRowDetail {
    OutboxRowDetail {
        row: row(e),
        seq: e.seq,
        lease_owner: e.lease_owner.clone(),
        lease_until: e.lease_until.map(ts),
        not_after: e.record.not_after.map(ts),
        correlation_id: e.record.correlation_id.clone(),
        payload: e.record.message.to_operator_json(),
    }
}
