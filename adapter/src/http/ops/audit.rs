//! What the adapter decided about a card (the verify-card / verify-CVC audit), and what
//! operators did through the ops API and the key CLI. Neither holds PAN, CVC or expiry.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{OpsErrors, Principal, limit, path_id, ts};
use crate::domain::scopes::Scope;
use crate::http::AppState;
use crate::store::{DecisionRecord, OpsAuditFilter, OpsAuditRecord};
use tmp_edge::error::ApiError;

/// Most rows one list answers.
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DecisionsQuery {
    /// At most this many decisions, newest first (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// One decision of the Issuer API about the card.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub id: String,
    /// RFC 3339.
    pub decided_at: String,
    /// `verify_card` or `verify_cvc`.
    pub operation: String,
    pub tokenization_id: Option<String>,
    /// The last four digits only.
    pub pan_last4: Option<String>,
    pub token_requestor_id: Option<String>,
    pub wallet: Option<String>,
    pub tsp: Option<String>,
    /// `APPROVED`, `REQUIRE_ADDITIONAL_AUTHENTICATION`, `DECLINED` (a CVC result for `verify_cvc`).
    pub decision: String,
    /// Why: `CARD_VERIFIED`, `CARD_BLOCKED`, `CVC_NO_MATCH`, `STAND_IN_TIMEOUT`, …
    pub reason: String,
    pub card_status: String,
    pub cvc_result: String,
    /// The card source missed the deadline or failed: the configured stand-in answered.
    pub stand_in: bool,
    pub latency_ms: i64,
    pub correlation_id: String,
    /// The device the tokenization named (its wallet id), and its type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// `SECURE_ELEMENT`, `HCE`, `CARD_ON_FILE`, when the request said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The wallet's recommendation reason codes, in TMP's order, when it sent them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendation_reasons: Vec<String>,
    /// `KEY_ENTERED`, `ON_FILE`, `MOBILE_BANKING_APP`, `OTHER`, when TMP said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_source: Option<String>,
    /// The network's score, 1–5, when TMP sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_score: Option<i32>,
    /// What came of asking the issuer's fraud engine (the bridge's decision hook): `ANSWERED`,
    /// `TIMEOUT`, `INVALID` or `FAILED`; absent when it was not asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_outcome: Option<String>,
    /// The engine's decision and its own reason code, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_reason: Option<String>,
}

impl From<&DecisionRecord> for Decision {
    fn from(d: &DecisionRecord) -> Self {
        Decision {
            id: d.id.to_string(),
            decided_at: ts(d.decided_at),
            operation: d.operation.clone(),
            tokenization_id: d.tokenization_id.clone(),
            pan_last4: d.pan_last4.clone(),
            token_requestor_id: d.token_requestor_id.clone(),
            wallet: d.wallet.clone(),
            tsp: d.tsp.clone(),
            decision: d.decision.clone(),
            reason: d.reason.clone(),
            card_status: d.card_status.clone(),
            cvc_result: d.cvc_result.clone(),
            stand_in: d.stand_in,
            latency_ms: d.latency_ms,
            correlation_id: d.correlation_id.clone(),
            device_id: d.device_id.clone(),
            device_type: d.device_type.clone(),
            token_type: d.token_type.clone(),
            recommendation_reasons: d
                .recommendation_reasons
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default(),
            pan_source: d.pan_source.clone(),
            network_score: d.network_score,
            hook_outcome: d.hook_outcome.clone(),
            hook_decision: d.hook_decision.clone(),
            hook_reason: d.hook_reason.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardDecisions {
    pub card_id: String,
    pub items: Vec<Decision>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only writes about this card.
    pub card_id: Option<String>,
    /// At most this many rows, newest first (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// One audited operator write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: String,
    /// RFC 3339.
    pub at: String,
    /// `apikey:<id> (<name>)`, `token:<digest prefix>`, `mtls:<subject CN>` or `cli:<user>`.
    pub actor: String,
    /// `token.activate|suspend|resume|deactivate`, `provisioning.apple_pay|google_pay`,
    /// `outbox.retry|skip|replay`, `apikey.create|revoke`.
    pub action: String,
    /// Token id, card id, outbox row id or selector, key id.
    pub target: Option<String>,
    pub card_id: Option<String>,
    pub reason: Option<String>,
    /// `ok`, or the error code the write was answered with.
    pub outcome: String,
    /// HTTP status of the answer (0: the CLI).
    pub status: u16,
    pub correlation_id: String,
}

impl From<&OpsAuditRecord> for AuditEntry {
    fn from(a: &OpsAuditRecord) -> Self {
        AuditEntry {
            id: a.id.to_string(),
            at: ts(a.at),
            actor: a.actor.clone(),
            action: a.action.clone(),
            target: a.target.clone(),
            card_id: a.card_id.clone(),
            reason: a.reason.clone(),
            outcome: a.outcome.clone(),
            status: a.status,
            correlation_id: a.correlation_id.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEntry>,
}

fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::validation(format!("query: {e}")))
}

/// The adapter's card verification and CVC decisions about a card, newest first: decision,
/// reason, stand-in, latency — never PAN, CVC or expiry.
#[utoipa::path(
    get,
    path = "/ops/v1/cards/{cardId}/decisions",
    operation_id = "card_decisions",
    tag = "Audit",
    params(("cardId" = String, Path, description = "The adapter's card id"), DecisionsQuery),
    responses((status = 200, description = "Decisions, newest first", body = CardDecisions), OpsErrors),
    security(("bearer" = ["audit:read"]), ("mtls" = ["audit:read"]))
)]
#[tracing::instrument(skip_all)]
pub async fn decisions(
    principal: Principal,
    state: Data<AppState>,
    req: HttpRequest,
    card_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::AuditRead)?;
    path_id("cardId", &card_id)?;
    let q: DecisionsQuery = query(&req)?;
    let limit = limit(q.limit, 50, MAX_LIMIT)?;
    let items = state.store.decisions_for_card(&card_id, limit).await?.iter().map(Decision::from).collect();
    Ok(HttpResponse::Ok().json(CardDecisions { card_id: card_id.into_inner(), items }))
}

/// The audit of operator writes (token actions, push provisioning, outbox administration, API
/// keys created and revoked), newest first.
#[utoipa::path(
    get,
    path = "/ops/v1/audit",
    operation_id = "ops_audit",
    tag = "Audit",
    params(AuditQuery),
    responses((status = 200, description = "Audited writes, newest first", body = AuditList), OpsErrors),
    security(("bearer" = ["audit:read"]), ("mtls" = ["audit:read"]))
)]
#[tracing::instrument(skip_all)]
pub async fn list(principal: Principal, state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::AuditRead)?;
    let q: AuditQuery = query(&req)?;
    if let Some(card) = &q.card_id {
        path_id("cardId", card)?;
    }
    let filter = OpsAuditFilter { card_id: q.card_id, limit: limit(q.limit, 50, MAX_LIMIT)? };
    let items = state.store.list_ops_audit(&filter).await?.iter().map(AuditEntry::from).collect();
    Ok(HttpResponse::Ok().json(AuditList { items }))
}
