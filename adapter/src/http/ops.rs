//! The ops API: operator endpoints on a listener of their own (`ops.host`/`ops.port`), never on
//! the Issuer API's port. Outbox administration mirroring `tmp-adapter outbox …`: list (dead
//! letters with their last error), show, retry, skip, replay by id, card or time range.
//!
//! Authenticated by a bearer token whose SHA-256 digest is listed in `ops.api_tokens` (compared
//! in constant time; only digests are configured). Every write is logged with who (the first
//! 12 hex characters of the token's digest), what and why (the request's `reason`).

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::web::{self, Bytes, Data};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use std::future::{Ready, ready};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tmp_protocol::error::ErrorBody;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::json::parse_body;
use crate::store::{OutboxEntry, OutboxFilter, ReplaySelector};

/// Largest accepted ops request body.
const BODY_LIMIT: usize = 16 * 1024;
/// Most rows one list answers.
const MAX_LIMIT: u32 = 1000;
/// Longest `reason` kept (it goes to the log and, for skip, to the row's last error).
const MAX_REASON: usize = 200;

/// State of the ops listener only: the accepted token digests.
pub struct OpsState {
    pub token_digests: Vec<[u8; 32]>,
}

/// Route table of the ops listener. Nothing of the Issuer API is served here.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str, route: actix_web::Route| {
        web::resource(path)
            .route(route)
            .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) }))
    };
    // `replay` before `{id}`: a literal segment wins over the pattern.
    cfg.service(resource("/ops/v1/outbox", web::get().to(list)))
        .service(resource("/ops/v1/outbox/replay", web::post().to(replay)))
        .service(resource("/ops/v1/outbox/{id}", web::get().to(show)))
        .service(resource("/ops/v1/outbox/{id}/retry", web::post().to(retry)))
        .service(resource("/ops/v1/outbox/{id}/skip", web::post().to(skip)))
        .service(resource("/openapi.json", web::get().to(openapi)));
}

/// The authenticated caller, named by a prefix of its token's digest (never the token).
pub struct Operator {
    pub who: String,
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Operator, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Operator, ApiError> {
    let state = req
        .app_data::<Data<OpsState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("ops state is not registered")))?;
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::InvalidToken)?;
    let digest = Sha256::digest(token.as_bytes());
    let digest: &[u8] = digest.as_slice();
    // Every configured digest is compared, each in constant time.
    let mut matched = subtle::Choice::from(0u8);
    for known in &state.token_digests {
        matched |= known.as_slice().ct_eq(digest);
    }
    if bool::from(matched) {
        Ok(Operator { who: hex::encode(&digest[..6]) })
    } else {
        tracing::warn!("ops API: missing or unknown bearer token");
        Err(ApiError::InvalidToken)
    }
}

// ---- wire types ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    Pending,
    Delivered,
    Dead,
}

impl OutboxStatus {
    fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }
}

/// Which rows to list, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only rows in this state (`dead`: the dead letters, with their last error).
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
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// `tmp_api`, `lifecycle_api` or `issuer_webhook:<sink>`.
    pub destination: String,
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

/// Error answers of the ops API.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only describes the answers; never constructed.
pub enum OpsErrors {
    /// Malformed JSON body.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No bearer token, or one whose digest is not in `ops.api_tokens` (`UNAUTHENTICATED`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No outbox row with this id.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The row is in a state that does not allow this (e.g. skipping a delivered row).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Bad query parameter or body field.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Storage unavailable; retry after `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

// ---- handlers ----

/// Lists outbox rows, newest first; `status=dead` lists the dead letters with their last error.
#[utoipa::path(
    get,
    path = "/ops/v1/outbox",
    operation_id = "list_outbox",
    tag = "Ops API",
    params(ListQuery),
    responses((status = 200, description = "Rows, newest first", body = OutboxList), OpsErrors),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub async fn list(_op: Operator, state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::validation(format!("query: {e}")))?
        .into_inner();
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::validation(format!("`limit` must be between 1 and {MAX_LIMIT}")));
    }
    let filter =
        OutboxFilter { status: query.status.map(|s| s.as_str().to_owned()), ordering_key: query.card_id, limit };
    let items = state.store.list_outbox(&filter).await?.iter().map(row).collect();
    Ok(HttpResponse::Ok().json(OutboxList { items }))
}

/// One row with its attempts, last error, lease and payload.
#[utoipa::path(
    get,
    path = "/ops/v1/outbox/{id}",
    operation_id = "show_outbox_row",
    tag = "Ops API",
    params(("id" = String, Path, description = "Outbox row id (UUID)")),
    responses((status = 200, description = "The row", body = OutboxRowDetail), OpsErrors),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub async fn show(_op: Operator, state: Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let entry = find(&state, &id).await?;
    Ok(HttpResponse::Ok().json(detail(&entry)))
}

/// Makes a pending (backing-off) or dead row due now; a dead one starts a fresh schedule.
#[utoipa::path(
    post,
    path = "/ops/v1/outbox/{id}/retry",
    operation_id = "retry_outbox_row",
    tag = "Ops API",
    params(("id" = String, Path, description = "Outbox row id (UUID)")),
    request_body(content = ActionRequest, description = "Optional; the reason is logged"),
    responses((status = 200, description = "The row, due now", body = OutboxRow), OpsErrors),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub async fn retry(
    op: Operator,
    state: Data<AppState>,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let action: ActionRequest = optional_body(body).await?;
    let reason = reason(action.reason)?;
    let entry = find(&state, &id).await?;
    if !state.store.retry_outbox(entry.record.id, OffsetDateTime::now_utc()).await? {
        return Err(ApiError::Conflict(format!(
            "outbox row {} is {}: only pending or dead rows are retried",
            entry.record.id, entry.status
        )));
    }
    tracing::info!(who = %op.who, action = "outbox.retry", id = %entry.record.id, reason = %reason.as_deref().unwrap_or("-"), "ops write: row made due now");
    state.relay_wakeup.notify_one();
    let entry = find(&state, &id).await?;
    Ok(HttpResponse::Ok().json(row(&entry)))
}

/// Gives up on a pending row: it goes dead and its card's next rows proceed.
#[utoipa::path(
    post,
    path = "/ops/v1/outbox/{id}/skip",
    operation_id = "skip_outbox_row",
    tag = "Ops API",
    params(("id" = String, Path, description = "Outbox row id (UUID)")),
    request_body(content = ActionRequest, description = "Optional; the reason is logged and kept as the row's last error"),
    responses((status = 200, description = "The row, dead", body = OutboxRow), OpsErrors),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub async fn skip(
    op: Operator,
    state: Data<AppState>,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let action: ActionRequest = optional_body(body).await?;
    let reason = reason(action.reason)?;
    let entry = find(&state, &id).await?;
    let note = match &reason {
        Some(r) => format!("skipped by an operator: {r}"),
        None => "skipped by an operator".to_owned(),
    };
    if !state.store.skip_outbox(entry.record.id, &note).await? {
        return Err(ApiError::Conflict(format!(
            "outbox row {} is {}: only pending rows are skipped",
            entry.record.id, entry.status
        )));
    }
    tracing::info!(who = %op.who, action = "outbox.skip", id = %entry.record.id, reason = %reason.as_deref().unwrap_or("-"), "ops write: row skipped (dead)");
    state.relay_wakeup.notify_one();
    let entry = find(&state, &id).await?;
    Ok(HttpResponse::Ok().json(row(&entry)))
}

/// Re-drives dead rows (and delivered ones with `includeDelivered`) by id, by card, or created
/// in a time range.
#[utoipa::path(
    post,
    path = "/ops/v1/outbox/replay",
    operation_id = "replay_outbox",
    tag = "Ops API",
    request_body = ReplayRequest,
    responses((status = 200, description = "How many rows were queued again", body = ReplayAck), OpsErrors),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub async fn replay(op: Operator, state: Data<AppState>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let bytes = read_body(body).await?;
    let request: ReplayRequest = parse_body(&bytes)?;
    let reason = reason(request.reason)?;
    let parse_time = |field: &str, s: &str| {
        OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|_| ApiError::validation(format!("`{field}` is not an RFC 3339 time")))
    };
    let selector = match (request.id, request.card_id, request.since, request.until) {
        (Some(id), None, None, None) => {
            let entry = find(&state, &id).await?;
            ReplaySelector::Id(entry.record.id)
        }
        (None, Some(card), None, None) if !card.is_empty() => ReplaySelector::OrderingKey(card),
        (None, None, Some(since), Some(until)) => {
            let (since, until) = (parse_time("since", &since)?, parse_time("until", &until)?);
            if since >= until {
                return Err(ApiError::validation("`since` must be before `until`"));
            }
            ReplaySelector::CreatedBetween(since, until)
        }
        _ => return Err(ApiError::validation("pass exactly one of `id`, `cardId`, or `since` with `until`")),
    };
    let replayed = state.store.replay_outbox(&selector, request.include_delivered, OffsetDateTime::now_utc()).await?;
    tracing::info!(
        who = %op.who,
        action = "outbox.replay",
        selector = ?selector,
        include_delivered = request.include_delivered,
        replayed,
        reason = %reason.as_deref().unwrap_or("-"),
        "ops write: rows queued again"
    );
    if replayed > 0 {
        state.relay_wakeup.notify_one();
    }
    Ok(HttpResponse::Ok().json(ReplayAck { replayed }))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(crate::openapi::ops_api_json())
}

// ---- helpers ----

async fn find(state: &AppState, id: &str) -> Result<OutboxEntry, ApiError> {
    let unknown = || ApiError::UnknownResource(format!("no outbox row with id `{id}`"));
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| unknown())?;
    state.store.find_outbox(uuid).await?.ok_or_else(unknown)
}

async fn read_body(body: web::Payload) -> Result<Bytes, ApiError> {
    match body.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::MalformedJson(format!("request body could not be read: {e}"))),
        Err(_) => Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT }),
    }
}

/// An empty body is the default value.
async fn optional_body<T: Default + serde::de::DeserializeOwned>(body: web::Payload) -> Result<T, ApiError> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { parse_body(&bytes) }
}

fn reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON || r.chars().any(char::is_control) => Err(ApiError::validation(
            format!("`reason` must be at most {MAX_REASON} characters without control characters"),
        )),
        Some(r) if r.trim().is_empty() => Ok(None),
        r => Ok(r),
    }
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn row(e: &OutboxEntry) -> OutboxRow {
    OutboxRow {
        id: e.record.id.to_string(),
        status: e.status.clone(),
        destination: e.record.destination.clone(),
        event_type: e.record.event_type.clone(),
        card_id: e.record.ordering_key.clone(),
        attempts: e.attempts,
        created_at: ts(e.record.created_at),
        next_attempt_at: ts(e.next_attempt_at),
        last_error: e.last_error.clone(),
        delivered_at: e.delivered_at.map(ts),
    }
}

fn detail(e: &OutboxEntry) -> OutboxRowDetail {
    let mut payload = e.record.payload.clone();
    if let Some(sealed) = payload.get_mut("sealed") {
        *sealed = serde_json::json!("(encrypted card data)");
    }
    OutboxRowDetail {
        row: row(e),
        seq: e.seq,
        lease_owner: e.lease_owner.clone(),
        lease_until: e.lease_until.map(ts),
        not_after: e.record.not_after.map(ts),
        correlation_id: e.record.correlation_id.clone(),
        payload,
    }
}
