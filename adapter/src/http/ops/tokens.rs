//! A card's tokens, and token actions (activate, suspend, resume, deactivate) through the TMP
//! API. Reading falls back to the adapter's token mirror, marked stale, when TMP is unavailable.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tmp_protocol::enums::TokenStatus;
use tmp_protocol::fields::FreeText;
use tmp_protocol::tmp_api::{ActionInitiator, TokenAction, TokenActionRequest, TokenInfo};
use utoipa::ToSchema;

use super::{Answer, AuditDraft, OpsErrors, OpsState, Principal, TmpCall, path_id};
use crate::domain::scopes::Scope;
use crate::http::AppState;
use crate::outbound::CallError;
use crate::store::TokenRecord;
use tmp_edge::correlation;
use tmp_edge::error::ApiError;
use tmp_edge::json::parse_body;

/// A token as the ops API shows it, from TMP or from the local mirror.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpsToken {
    pub token_id: String,
    pub card_id: String,
    pub status: TokenStatus,
    /// `MDES` or `VTS`.
    pub tsp: String,
    pub token_requestor_id: String,
    /// `APPLE_PAY`, `GOOGLE_PAY`, `SAMSUNG_PAY`, `MERCHANT` or `OTHER`.
    pub wallet: String,
    /// The token requestor's name (TMP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_requestor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_last4: Option<String>,
    /// TMP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&TokenInfo> for OpsToken {
    fn from(t: &TokenInfo) -> Self {
        OpsToken {
            token_id: t.token_id.clone(),
            card_id: t.card_id.clone(),
            status: t.status,
            tsp: t.tsp.as_str().to_owned(),
            token_requestor_id: t.token_requestor.id.to_string(),
            wallet: t.token_requestor.wallet.as_str().to_owned(),
            token_requestor_name: Some(t.token_requestor.name.to_string()),
            token_last4: t.token_last4.clone(),
            device_name: t.device_name.clone(),
            updated_at: super::ts(t.updated_at),
        }
    }
}

impl From<&TokenRecord> for OpsToken {
    fn from(t: &TokenRecord) -> Self {
        OpsToken {
            token_id: t.token_id.clone(),
            card_id: t.card_id.clone(),
            status: t.status,
            tsp: t.tsp.clone(),
            token_requestor_id: t.token_requestor_id.clone(),
            wallet: t.wallet.clone(),
            token_requestor_name: None,
            token_last4: t.token_last4.clone(),
            device_name: None,
            updated_at: super::ts(t.updated_at),
        }
    }
}

/// Where the answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// TMP answered.
    Tmp,
    /// TMP was unavailable: the adapter's mirror, fed by TMP's token events.
    Mirror,
}

/// A card's tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardTokens {
    pub card_id: String,
    pub source: TokenSource,
    /// True when TMP was unavailable and the mirror answered: it may lag behind TMP.
    pub stale: bool,
    pub tokens: Vec<OpsToken>,
}

/// One token event as the adapter received it from TMP.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenHistoryEvent {
    pub event_id: String,
    pub status: TokenStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<TokenStatus>,
    /// TMP's reason (e.g. `CARD_BLOCKED`, `ACTIVATION_CODE_VERIFIED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339: when the change happened (orders the history).
    pub occurred_at: String,
    /// RFC 3339: when the adapter received the event.
    pub received_at: String,
    /// Whether the event changed the token's status in the mirror: an event older than the
    /// mirror's state is history only.
    pub applied: bool,
}

/// What happened to a token, as the adapter knows it: the mirror's state and every token event
/// TMP sent, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenHistory {
    pub token: OpsToken,
    pub events: Vec<TokenHistoryEvent>,
}

/// Why a token action is taken (required, for the audit), and on whose behalf.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenActionBody {
    /// 1 to 200 characters, no card number.
    pub reason: Option<String>,
    /// `ISSUER` (default) or `CARDHOLDER` (the app acting for the cardholder). A token suspended
    /// by both resumes only when both have resumed it.
    pub initiator: Option<ActionInitiator>,
}

/// The tokens of a card from TMP; when TMP is unreachable or failing, from the local mirror with
/// `stale: true` and `source: "mirror"`.
#[utoipa::path(
    get,
    path = "/ops/v1/cards/{cardId}/tokens",
    operation_id = "card_tokens",
    tag = "Tokens",
    params(("cardId" = String, Path, description = "The card id TMP knows the card by")),
    responses((status = 200, description = "The card's tokens", body = CardTokens), OpsErrors),
    security(("bearer" = ["tokens:read"]), ("mtls" = ["tokens:read"]))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    card_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::TokensRead)?;
    path_id("cardId", &card_id)?;
    let answer = match ops.tmp().card_tokens(&card_id, &correlation::current()).await {
        Ok(list) => CardTokens {
            card_id: card_id.into_inner(),
            source: TokenSource::Tmp,
            stale: false,
            tokens: list.tokens.iter().map(OpsToken::from).collect(),
        },
        Err(CallError::Unavailable { cause, .. }) => {
            tracing::warn!(%cause, "TMP unavailable: answering a card's tokens from the mirror");
            let tokens = state.store.tokens_for_card(&card_id).await?;
            CardTokens {
                card_id: card_id.into_inner(),
                source: TokenSource::Mirror,
                stale: true,
                tokens: tokens.iter().map(OpsToken::from).collect(),
            }
        }
        Err(error) => return Err(super::tmp_error(TmpCall::CardTokens { card_id: &card_id }, error)),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// A token's history from the adapter's mirror: every token event TMP sent for it (retries of
/// one event once), oldest first, and the state the mirror holds. Customer service's first
/// question — "what happened to my token" — without a call to TMP.
#[utoipa::path(
    get,
    path = "/ops/v1/tokens/{tokenId}/history",
    operation_id = "token_history",
    tag = "Tokens",
    params(("tokenId" = String, Path, description = "TMP's token id")),
    responses((status = 200, description = "The token and its events", body = TokenHistory), OpsErrors),
    security(("bearer" = ["tokens:read"]), ("mtls" = ["tokens:read"]))
)]
#[tracing::instrument(skip_all)]
pub async fn history(
    principal: Principal,
    state: Data<AppState>,
    token_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::TokensRead)?;
    path_id("tokenId", &token_id)?;
    let Some(token) = state.store.find_token(&token_id).await? else {
        return Err(ApiError::NotFound);
    };
    // Replayed in arrival order, as the mirror took them: an event changed the status unless
    // one that happened later had already arrived (the store's `status_at <=` rule).
    let mut events = state.store.token_history(&token_id).await?;
    events.sort_by_key(|e| e.received_at);
    let mut latest: Option<time::OffsetDateTime> = None;
    let mut history = Vec::with_capacity(events.len());
    for e in &events {
        let applied = latest.is_none_or(|latest| latest <= e.occurred_at);
        latest = latest.max(Some(e.occurred_at));
        history.push((
            e.occurred_at,
            TokenHistoryEvent {
                event_id: e.event_id.clone(),
                status: e.status,
                previous_status: e.previous_status,
                reason: e.reason.clone(),
                occurred_at: super::ts(e.occurred_at),
                received_at: super::ts(e.received_at),
                applied,
            },
        ));
    }
    // Shown in the order things happened.
    history.sort_by_key(|(occurred_at, _)| *occurred_at);
    let events = history.into_iter().map(|(_, event)| event).collect();
    Ok(HttpResponse::Ok().json(TokenHistory { token: OpsToken::from(&token), events }))
}

/// Activates, suspends, resumes or deactivates a token at TMP, with a reason. TMP's answer is
/// the token after the action.
#[utoipa::path(
    post,
    path = "/ops/v1/tokens/{tokenId}/{action}",
    operation_id = "token_action",
    tag = "Tokens",
    params(
        ("tokenId" = String, Path, description = "TMP's token id"),
        ("action" = String, Path, description = "`activate`, `suspend`, `resume` or `deactivate`"),
        ("X-Idempotency-Key" = Option<String>, Header, description = "Same key and body: the stored answer, no second action"),
    ),
    request_body = TokenActionBody,
    responses((status = 200, description = "The token after the action", body = OpsToken), OpsErrors),
    security(("bearer" = ["tokens:write"]), ("mtls" = ["tokens:write"]))
)]
#[tracing::instrument(skip_all)]
pub async fn action(
    principal: Principal,
    state: Data<AppState>,
    ops: Data<OpsState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (token_id, action_name) = path.into_inner();
    let action = match action_name.as_str() {
        "activate" => TokenAction::Activate,
        "suspend" => TokenAction::Suspend,
        "resume" => TokenAction::Resume,
        "deactivate" => TokenAction::Deactivate,
        _ => return Err(ApiError::NotFound),
    };
    let audit_action = match action {
        TokenAction::Activate => "token.activate",
        TokenAction::Suspend => "token.suspend",
        TokenAction::Resume => "token.resume",
        TokenAction::Deactivate => "token.deactivate",
    };
    let draft = AuditDraft::new(audit_action, Some(token_id.clone()), None);
    super::write(&state, &principal, &req, body, Scope::TokensWrite, draft, async |audit, write, bytes| {
        path_id("tokenId", &token_id)?;
        let request: TokenActionBody = parse_body(bytes)?;
        let reason = super::required_reason(request.reason)?;
        audit.reason = Some(reason.clone());
        let reason = FreeText::parse(reason).map_err(|e| crate::http::error::invalid_field("reason", e))?;
        let tmp_request =
            TokenActionRequest { initiator: request.initiator.unwrap_or(ActionInitiator::Issuer), reason };
        let token = ops
            .tmp()
            .token_action(&token_id, action, &tmp_request, &write.downstream_key, &correlation::current())
            .await
            .map_err(|e| super::tmp_error(TmpCall::TokenAction { token_id: &token_id, action: &action_name }, e))?;
        audit.card_id = Some(token.card_id.clone());
        Answer::ok(&OpsToken::from(&token))
    })
    .await
}
